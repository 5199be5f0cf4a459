"""The command groups of the `mmlabel` CLI, one module per group; `cli.py` mounts them."""
