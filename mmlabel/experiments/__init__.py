"""Experiments: sweeps over a grid of recipe changes (`grid`, `sweep`), their tables (`results`) and figures
(`figures`), and the paper's experiments kept as files under recipes/experiments/ (`experiment_file`)."""
