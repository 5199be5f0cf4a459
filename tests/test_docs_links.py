"""Every test a doc cites as evidence exists: docs/reliability.md's table cannot point at a test that was removed."""
import re

import pytest

from conftest import REPO

CITED = sorted(set(re.findall(r"`tests/(test_\w+\.py)::(test_\w+)`", (REPO / "docs" / "reliability.md").read_text())))


@pytest.mark.parametrize(("module", "test"), CITED)
def test_cited_test_exists(module, test):
    source = (REPO / "tests" / module).read_text()
    assert re.search(rf"^def {test}\(", source, re.M), f"docs/reliability.md cites tests/{module}::{test}"
