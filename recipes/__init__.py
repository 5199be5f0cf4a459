"""The built-in recipes and experiment files, installed as the package `mmlabel.recipes` (see setup.py and
`mmlabel.recipe_files`); the .toml files beside this one are the recipes, `experiments/` holds the experiment files."""
