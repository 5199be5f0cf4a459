"""The GPU probe in its tiny mode, on the CPU: every phase runs as one process and writes its JSON, so that the command
a GPU session runs once cannot break unseen."""
import json
import subprocess
import sys

import pytest

from conftest import REPO, process_environment

PHASES = ["01-machine", "02-decode", "03-loader", "04-step", "05-epoch", "06-concurrent"]


@pytest.mark.system
def test_the_probe_runs_every_phase_in_tiny_mode_and_writes_each_phases_figures(tmp_path):
    out = tmp_path / "probe"
    result = subprocess.run([sys.executable, "benchmarks/gpu_probe.py", "--tiny", "--out", str(out)], cwd=REPO,
                            env=process_environment(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = {phase: json.loads((out / f"{phase}.json").read_text()) for phase in PHASES}
    assert not [phase for phase, found in figures.items() if "error" in found], result.stderr[-3000:]
    assert json.loads((out / "summary.json").read_text()).keys() == set(PHASES)
    for size in ("1024x768", "500x375"):  # a stored photo is read back faster than it is decoded
        assert figures["02-decode"][size]["from_store_ms"] < figures["02-decode"][size]["decoded_every_time_ms"]
    assert set(figures["03-loader"]) - {"phase_seconds"} == {"workers_0", "workers_2", "workers_4", "workers_8"}
    step = figures["04-step"]
    for setting in ("emd", "sinkhorn", "none", "emd-compiled"):
        assert step[setting]["wall_ms"] > 0
        assert step[setting]["sync_error_mode"] == "passed (no_host_reads, CPU)"
    assert "alignment_cost" in step["emd"]
    assert figures["05-epoch"]["twitter2015_epoch_seconds"] > figures["05-epoch"]["train_seconds"]
    assert len(figures["06-concurrent"]["four_at_once_steps_per_s"]) == 4
    assert "| step | emd |" in result.stdout  # the markdown table
