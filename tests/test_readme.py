"""The README's "Using it" block, walked through as a newcomer would: in an empty folder holding only the clone's
recipes, every line as it stands, in order, each one expected to succeed, then its Python lines.

Three liberties, each for the suite's time and each named here: training lines get `--set train.epochs=1 --set
data.root=demo` (one epoch on the 400 posts the block's first line writes, not on the quickstart's 1,200: the
README's figures come from its first command, measured apart; here the commands must work, not reach them);
`mmlabel serve` runs on a free port instead of 8000 and is stopped once it has answered; the two `mmlabel reproduce`
lines (7 and 15 minutes) and `mmlabel tune` (8 trials) are not run: tests/test_sweep.py runs the experiment files on
tiny cells, tests/test_tune.py the search space.
"""
import ast
import base64
import json
import re
import shlex
import shutil
import subprocess
import sys

import httpx
import pytest

from conftest import REPO, process_environment, run_cli

pytestmark = pytest.mark.system

QUICK = ["--set", "train.epochs=1", "--set", "data.root=demo"]  # one epoch on the block's own 400 posts


def using_it_lines() -> list[str]:
    """The command lines of the README's "Using it" bash block, comments stripped."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Using it", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.S).group(1)
    lines = []
    for line in block.splitlines():
        words = shlex.split(line, comments=True)
        if words:
            lines.append(line)
    return lines


def python_lines() -> str:
    section = (REPO / "README.md").read_text().split("## Using it", 1)[1]
    return re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)


def test_the_using_it_block_names_what_it_makes_before_using_it():
    """The block makes its own sample files: no line names ../shared, and photo.png and posts.jsonl are made first."""
    lines = using_it_lines()
    assert not any("../shared" in line for line in lines)
    made = " ".join(lines[:3])
    assert "photo.png" in made and "posts.jsonl" in made and "mmlabel data synth demo" in made


# session: the xdist worker of the system tests may leave this module and come back to it
@pytest.fixture(scope="session")
def walked(tmp_path_factory):
    """The folder the block ran in, with what each line printed: {line: CompletedProcess}."""
    folder = tmp_path_factory.mktemp("newcomer")
    shutil.copytree(REPO / "recipes", folder / "recipes")
    outputs = {}
    for line in using_it_lines():
        words = shlex.split(line, comments=True)
        if words[:2] in (["mmlabel", "reproduce"], ["mmlabel", "tune"]):
            continue
        if words[:2] == ["mmlabel", "serve"]:
            outputs[line] = _served(words, folder)
        elif words[0] == "mmlabel":
            extra = QUICK if words[1] == "train" else []
            outputs[line] = run_cli(*words[1:], *extra, cwd=folder)
        else:  # the shell lines that make the sample files
            outputs[line] = subprocess.run(["bash", "-c", line], cwd=folder, capture_output=True, text=True)
        assert outputs[line].returncode == 0, f"{line}\n{outputs[line].stdout}\n{outputs[line].stderr}"
    return folder, outputs


def _served(words: list[str], folder) -> subprocess.CompletedProcess:
    """`mmlabel serve ...` started as the README says (on a free port), asked for one post, then stopped."""
    from mmlabel.serving.local import start_server

    options = words[3:]
    if "--port" in options:
        at = options.index("--port")
        del options[at:at + 2]
    process, url = start_server(folder / words[2], *options, env=process_environment(), capture=True)
    try:
        photo = base64.b64encode((folder / "photo.png").read_bytes()).decode()
        answer = httpx.post(f"{url}/predict", json={"text": "look at Alice in this photo", "image": photo}, timeout=30)
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0]
    return subprocess.CompletedProcess(words, 0 if answer.status_code == 200 else answer.status_code, output, "")


def test_every_line_of_the_block_succeeds_in_an_empty_folder(walked):
    folder, outputs = walked
    assert (folder / "runs" / "qs" / "seed-3" / "metrics.json").is_file()
    assert (folder / "runs" / "qs-text-only" / "metrics.json").is_file()
    assert (folder / "report.html").stat().st_size > 1000
    spans = [json.loads(line) for line in (folder / "spans.jsonl").read_text().splitlines()]
    assert len(spans) == 2 and all("spans" in record for record in spans)


def test_the_lines_say_what_the_readme_says_they_do(walked):
    _, outputs = walked
    by_start = {line.split("#")[0].strip(): result for line, result in outputs.items()}
    assert "mean ± std" in by_start["mmlabel evaluate runs/qs --split test"].stdout
    verified = by_start["mmlabel data verify quickstart.photos.tsv --images demo/images"]
    assert re.search(r"all \d+ photos of quickstart\.photos\.tsv match", verified.stdout + verified.stderr)
    without_image = by_start["mmlabel predict runs/qs/seed-1 --input posts.jsonl --output spans.jsonl"]
    assert "blank" in without_image.stderr  # the post without "image" is tagged with a blank one, and it says so
    served = next(result for line, result in outputs.items() if line.startswith("mmlabel serve"))
    assert re.search(r"listening on http://127\.0\.0\.1:\d+", served.stdout)


def test_the_python_lines_run_against_the_walked_runs(walked):
    """The README's Python block, its last expression printed as an interpreter would show it."""
    folder, _ = walked
    tree = ast.parse(python_lines())
    tree.body[-1] = ast.Expr(ast.Call(ast.Name("print", ast.Load()), [tree.body[-1].value], []))
    script = ast.unparse(ast.fix_missing_locations(tree))
    result = subprocess.run([sys.executable, "-c", script], cwd=folder, capture_output=True, text=True,
                            env=process_environment())
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("[")  # the post's spans
