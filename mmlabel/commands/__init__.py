"""The CLI's command groups, one module per concern; `mmlabel/cli.py` assembles them."""
