"""`python -m mmlabel`, as torchrun launches it."""
from mmlabel.cli import main

main()
