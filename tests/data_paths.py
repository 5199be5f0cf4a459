"""Where the real benchmark data is (`../shared/data` or $MMLABEL_DATA), and a marker that skips without it."""
import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("MMLABEL_DATA", REPO_ROOT.parent / "shared" / "data"))

realdata = pytest.mark.skipif(
    not (DATA_DIR / "mabsa").is_dir(),
    reason=f"real data not found at {DATA_DIR} (set MMLABEL_DATA to the folder holding mabsa/, mabsa-conll/, mner/)",
)

# (format, folder) of every real dataset, per benchmark.
REAL_SETS = [
    ("jml", "mabsa/twitter2015"), ("jml", "mabsa/twitter2017"),
    ("tsv", "mabsa/twitter2015"), ("tsv", "mabsa/twitter2017"),
    ("conll", "mabsa-conll/twitter2015"), ("conll", "mabsa-conll/twitter2017"),
    ("conll", "mner/twitter2015"), ("conll", "mner/twitter2017"),
]
