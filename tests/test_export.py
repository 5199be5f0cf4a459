"""`mmlabel export` (mmlabel/export.py): the folder predicts, evaluates and loads exactly as its run does; its recipe
retrains the run exactly (the card's training command); the model card's figures are the run's, with mean ± std over
seeds where several ran, and it says when the photos were all blanked; `--push` goes as far as huggingface_hub's
upload call."""
import json
import shutil
import statistics

import pytest

from conftest import TINY, run_cli

FAST = ["--set", "train.epochs=2", "--set", "train.batch_size=4", "--set", "train.max_steps_per_epoch=3", *TINY]


@pytest.fixture(scope="module")
def seeds_run(small_synthetic, tmp_path_factory):
    """The tiny quickstart trained on seeds 1 and 2 (`train --seeds`), seed-1 exported."""
    root = tmp_path_factory.mktemp("export")
    result = run_cli("train", "recipes/quickstart.toml", "--out", str(root / "runs"), "--seeds", "1,2",
                     "--set", f"data.root={small_synthetic}", *FAST)
    assert result.returncode == 0, result.stderr
    exported = run_cli("export", str(root / "runs" / "seed-1"), str(root / "export"))
    assert exported.returncode == 0, exported.stderr
    return root / "runs", root / "export"


def test_the_export_predicts_and_evaluates_as_its_run(seeds_run, small_synthetic):
    from mmlabel.tagger import Tagger

    runs, export = seeds_run
    assert not (export / "checkpoint.pt").exists() and (export / "README.md").exists()
    run_test = json.loads((runs / "seed-1" / "metrics.json").read_text())["test"]
    evaluated = run_cli("evaluate", str(export), "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout) == run_test  # evaluate reproduces a run's figures exactly
    original, handed_on = Tagger.load(runs / "seed-1"), Tagger.load(export)
    words = "the food here was great but the service slow".split()
    image = sorted((small_synthetic / "images").iterdir())[0]
    assert handed_on.predict(words, image=image) == original.predict(words, image=image)
    predicted = run_cli("predict", str(export), "--text", "the food here was great", "--image", str(image), "--json")
    assert predicted.returncode == 0, predicted.stderr
    expected = original.predict("the food here was great", image=image)
    assert [(span["start"], span["end"], span["label"]) for span in json.loads(predicted.stdout)] == \
        [(span.start, span.end, span.label) for span in expected]


def test_the_cards_training_command_retrains_the_run_exactly(seeds_run, tmp_path):
    runs, export = seeds_run
    card = (export / "README.md").read_text()
    assert "mmlabel train recipe.toml --seeds 1,2" in card
    again = run_cli("train", str(export / "recipe.toml"), "--out", str(tmp_path / "again"), "--json")
    assert again.returncode == 0, again.stderr
    original = json.loads((runs / "seed-1" / "metrics.json").read_text())
    assert json.loads(again.stdout)["test"] == original["test"] and json.loads(again.stdout)["dev"] == original["dev"]


def test_the_card_has_the_runs_figures_and_the_mean_and_std_over_seeds(seeds_run):
    runs, export = seeds_run
    card = (export / "README.md").read_text()
    metrics = json.loads((runs / "seed-1" / "metrics.json").read_text())
    assert f"| test (this model) | {metrics['test']['precision']:.2f} | {metrics['test']['recall']:.2f} | " \
           f"{metrics['test']['f1']:.2f} |" in card
    f1s = [json.loads((runs / f"seed-{seed}" / "metrics.json").read_text())["test"]["f1"] for seed in (1, 2)]
    assert f"{statistics.fmean(f1s):.2f} ± {statistics.stdev(f1s):.2f} |" in card.split("| test (mean ± std, 2 seeds)")[1]
    assert "`mmlabel:dtca`" in card and "Yu et al." in card and "AACL 2022" in card
    environment = json.loads((export / "environment.json").read_text())
    assert environment["exported_with"]["packages"]["torch"] and environment["trained_with"]["status"] == "finished"


def test_a_run_whose_photos_were_all_blanked_says_so(small_synthetic, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(small_synthetic, data)
    shutil.rmtree(data / "images")
    (data / "images").mkdir()
    result = run_cli("train", "recipes/quickstart.toml", "--out", str(tmp_path / "run"), "--set", f"data.root={data}",
                     "--set", "data.missing_image=blank", *FAST, "--set", "train.epochs=1")
    assert result.returncode == 0, result.stderr
    assert run_cli("export", str(tmp_path / "run"), str(tmp_path / "export")).returncode == 0
    assert "- Trained without photos: every one of the 32 photos" in (tmp_path / "export" / "README.md").read_text()


def test_export_refuses_a_folder_that_is_not_empty(seeds_run, tmp_path):
    runs, _ = seeds_run
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "file").write_text("x")
    result = run_cli("export", str(runs / "seed-1"), str(tmp_path / "busy"))
    assert result.returncode == 2 and result.stderr.strip() == f"error: {tmp_path / 'busy'}: not empty; export into " \
                                                               "a new folder"


def test_push_creates_the_repository_and_uploads_the_folder(seeds_run, tmp_path, monkeypatch):
    """No network here: huggingface_hub's HfApi is replaced by a recorder at the two calls the upload makes."""
    import huggingface_hub

    runs, _ = seeds_run
    calls = []

    class RecordingApi:
        def create_repo(self, repo_id, **options):
            calls.append(("create_repo", repo_id, options))

        def upload_folder(self, **options):
            calls.append(("upload_folder", options["repo_id"], options))
            assert (tmp_path / "pushed" / "README.md").exists() and (tmp_path / "pushed" / "model.safetensors").exists()

    monkeypatch.setattr(huggingface_hub, "HfApi", RecordingApi)
    result = run_cli("export", str(runs / "seed-1"), str(tmp_path / "pushed"), "--push", "someone/tiny-tagger")
    assert result.returncode == 0, result.stderr
    assert [(name, repo) for name, repo, _ in calls] == [("create_repo", "someone/tiny-tagger"),
                                                        ("upload_folder", "someone/tiny-tagger")]
    assert calls[1][2]["folder_path"] == str(tmp_path / "pushed") and calls[1][2]["repo_type"] == "model"
    assert "pushed: https://huggingface.co/someone/tiny-tagger" in result.stderr


class FakeHub:
    """A local stand-in for the Hugging Face Hub serving one model repository (the folder `root` at commit `sha`):
    the three calls `snapshot_download` makes (repo_info, list_repo_tree, each file's resolve), so that
    huggingface_hub itself lays the export out in its cache."""

    def __init__(self, repo_id: str, root, sha: str = "0123456789abcdef0123456789abcdef01234567"):
        import hashlib
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        files = {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, body: bytes, headers: dict, content_type="application/json"):
                self.send_response(200)
                for key, value in {"Content-Type": content_type, "Content-Length": str(len(body)), **headers}.items():
                    self.send_header(key, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def do_HEAD(self):
                self.do_GET()

            def do_GET(self):
                path = self.path.split("?")[0]
                hub.requests.append(path)
                if path.startswith(f"/api/models/{repo_id}/revision/"):
                    info = {"id": repo_id, "sha": sha, "siblings": [{"rfilename": name} for name in files]}
                    return self._send(json.dumps(info).encode(), {})
                if path.startswith(f"/api/models/{repo_id}/tree/"):
                    tree = [{"type": "file", "path": name, "size": len(body),
                             "oid": hashlib.sha1(body).hexdigest()} for name, body in files.items()]
                    return self._send(json.dumps(tree).encode(), {})
                prefix = f"/{repo_id}/resolve/"
                if path.startswith(prefix):
                    name = path[len(prefix):].split("/", 1)[1]
                    if name in files:
                        body = files[name]
                        return self._send(body, {"X-Repo-Commit": sha, "ETag": f'"{hashlib.sha256(body).hexdigest()}"'},
                                          "application/octet-stream")
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.requests: list[str] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.system
def test_hf_uri_loads_an_export_from_the_hub_cache_offline(seeds_run, small_synthetic, tmp_path, monkeypatch):
    """The export served by a local stand-in of the Hub; `Tagger.load("hf://...")` downloads it through
    huggingface_hub into a cache of its own; then, the server gone and HF_HUB_OFFLINE=1, a fresh process loads it from
    that cache alone and predicts as the export does."""
    import subprocess
    import sys

    from huggingface_hub import constants

    from conftest import process_environment
    from mmlabel.tagger import Tagger

    runs, export = seeds_run
    hub = FakeHub("someone/tiny-tagger", export)
    cache = tmp_path / "hub-cache"
    monkeypatch.setattr(constants, "ENDPOINT", hub.url)  # read by HfApi; files by the URL template, made at import
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub.url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    try:
        online = Tagger.load("hf://someone/tiny-tagger")
    finally:
        hub.close()
    assert any(path.startswith("/someone/tiny-tagger/resolve/") for path in hub.requests)
    snapshot = next((cache / "models--someone--tiny-tagger" / "snapshots").iterdir())
    assert (snapshot / "model.safetensors").is_symlink()  # huggingface_hub's own layout: blobs, linked
    words, image = "the food here was great".split(), sorted((small_synthetic / "images").iterdir())[0]
    expected = [(span.start, span.end, span.label) for span in Tagger.load(export).predict(words, image=image)]
    assert [(span.start, span.end, span.label) for span in online.predict(words, image=image)] == expected
    code = ("import json, mmlabel; tagger = mmlabel.Tagger.load('hf://someone/tiny-tagger'); print(json.dumps("
            f"[[s.start, s.end, s.label] for s in tagger.predict({words!r}, image={str(image)!r})]))")
    offline = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                             env=process_environment({"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache),
                                                      "HF_ENDPOINT": hub.url}))
    assert offline.returncode == 0, offline.stderr
    assert [tuple(span) for span in json.loads(offline.stdout.strip().splitlines()[-1])] == expected
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # what HF_HUB_OFFLINE=1 sets when huggingface_hub loads
    missing = run_cli("evaluate", "hf://someone/not-there")
    assert missing.returncode == 2 and "hf:/" in missing.stderr and len(missing.stderr.strip().splitlines()) == 1
