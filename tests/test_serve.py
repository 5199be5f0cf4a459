"""`mmlabel serve` for real: the command run in this process, its server on a thread and a port of its own, called
over a socket with httpx and loaded by 16 concurrent clients; then in a process of its own, its page rendered by
headless Chromium."""
import base64
import json
import shutil
import struct
import subprocess
import threading
import time
import traceback
import zlib
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest

from conftest import process_environment, run_cli

httpx = pytest.importorskip("httpx", reason="the serve tests need the dev extra (httpx)")
pytest.importorskip("fastapi", reason="mmlabel serve needs the serve extra (fastapi, uvicorn, python-multipart)")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def glued(tokens: list[str]) -> str:
    """A synthetic post as typed: punctuation glued to the words (the run's tokenizer splits it off again)."""
    return " ".join(tokens).replace(" ,", ",").replace(" !", "!").replace("@ ", "@").replace(" :", ":")


def served_settings(run, *options: str, env: dict | None = None) -> dict:
    """What `mmlabel serve RUN OPTIONS`, run in this process, would serve: the app, the host and port it asked for
    and uvicorn's settings. Nothing listens: the port it asks for is not bound (a free one of 127.0.0.1 is)."""
    from mmlabel.serving import listen

    handed, originals = {}, (listen.open_port, listen.serve)

    def open_port(host: str, port: int):
        handed.update(host=host, port=port)
        return originals[0]("127.0.0.1", 0)

    listen.open_port = open_port
    listen.serve = lambda app, listener, **settings: handed.update(app=app, **settings)
    try:
        result = run_cli("serve", str(run), *options, env=env)
    finally:
        listen.open_port, listen.serve = originals
    assert result.returncode == 0, result.stderr
    return handed


@contextmanager
def serving(run, *options: str, env: dict | None = None):
    """`mmlabel serve RUN OPTIONS` run in this process, its app served on a thread, on a port the system chose
    (no race for a free one) of 127.0.0.1 (whatever --host says: the tests reach no other machine): yields (the base
    URL, what `mmlabel serve` handed to uvicorn.run)."""
    import uvicorn

    settings = served_settings(run, *options, env=env)
    server = uvicorn.Server(uvicorn.Config(settings["app"], host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, name="mmlabel-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", settings
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="session")
def tiny_run(quickstart_run):
    """The session's quickstart run (two short epochs: it already predicts spans)."""
    return quickstart_run[0]


@pytest.fixture(scope="session")
def server(tiny_run):
    with serving(tiny_run, "--max-batch", "16", "--batch-window-ms", "10") as (url, _):
        yield url


@pytest.fixture(scope="session")
def posts(tiny_run, synthetic):
    """(raw text, image path, expected spans from Tagger.predict) of the test posts, some with spans."""
    from mmlabel.tagger import Tagger

    tagger = Tagger.load(tiny_run, device="cpu")
    records = [json.loads(line) for line in (tiny_run / "predictions-test.jsonl").read_text().splitlines()]
    found = []
    for record in records:
        text, image = glued(record["tokens"]), synthetic / "images" / record["image"]
        found.append((text, image, [span.to_dict() for span in tagger.predict(text, image=image)]))
    assert sum(bool(spans) for _, _, spans in found) >= 3  # comparisons of spans below can fail
    return found


def as_base64(path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def spans_of(result: dict) -> list[dict]:
    return [{key: span[key] for key in ("start", "end", "label", "start_char", "end_char")} for span in result["spans"]]


def test_health_and_the_models_description(server, tiny_run):
    assert httpx.get(f"{server}/health").json() == {"status": "ok"}
    model = httpx.get(f"{server}/model").json()
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert model["dev"]["f1"] == metrics["dev"]["f1"] and model["test"]["f1"] == metrics["test"]["f1"]
    assert model["components"]["fusion_head"] == "dtca" and model["components"]["image_encoder"] == "timm"
    assert model["multimodal"] is True and model["tokenizer"] == "twitter"
    assert model["labels"] == ["POS", "NEU", "NEG"] and "B-POS" in model["tags"]
    assert model["limits"]["max_upload_bytes"] == 10 * 1024 * 1024


def test_json_form_and_batch_requests_answer_as_the_tagger(server, posts):
    text, image, expected = next(post for post in posts if post[2])
    answer = httpx.post(f"{server}/predict", json={"text": text, "image": as_base64(image)})
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["text"] == text and spans_of(result) == expected
    for span in result["spans"]:
        assert span["text"] == text[span["start_char"]:span["end_char"]] == span["words"]
    form = httpx.post(f"{server}/predict/form", data={"text": text}, files={"image": ("x.png", image.read_bytes())})
    assert form.status_code == 200, form.text
    assert form.json() == result
    batch = [{"text": t, "image": as_base64(i)} for t, i, _ in posts]  # 24 posts: over the server's --max-batch 16
    answer = httpx.post(f"{server}/predict", json=batch)
    assert [spans_of(r) for r in answer.json()] == [spans for _, _, spans in posts]
    tokens = httpx.post(f"{server}/predict", json={"tokens": result["tokens"], "image": as_base64(image)}).json()
    assert [{k: s[k] for k in ("start", "end", "label")} for s in tokens["spans"]] == \
        [{k: s[k] for k in ("start", "end", "label")} for s in expected]


def test_attention_on_request_is_the_taggers_over_the_photos_grid(server, posts, tiny_run):
    """"attention": true adds the grid and, per span, the report's heat map of the tagger's own attention."""
    from mmlabel.data.example import Span
    from mmlabel.report.heatmap import patch_grid, span_heat
    from mmlabel.tagger import Tagger

    text, image, expected = next(post for post in posts if post[2])
    result = httpx.post(f"{server}/predict", json={"text": text, "image": as_base64(image), "attention": True}).json()
    tagger = Tagger.load(tiny_run, device="cpu")
    weights = tagger.predict(text, image=image, attention=True).attention
    grid = patch_grid(tagger.model.image_encoder, weights.shape[-1])
    assert result["attention_grid"] == {"prefix": grid[0], "rows": grid[1], "columns": grid[2]} and grid[1] == 8
    for span in result["spans"]:
        cells = span["attention"]
        assert len(cells) == grid[1] * grid[2] and "f" in cells  # scaled: the strongest cell is f
        assert cells == span_heat(weights, Span(span["start"], span["end"], span["label"]), grid)
    plain = httpx.post(f"{server}/predict", json={"text": text, "image": as_base64(image)}).json()
    assert "attention_grid" not in plain and all("attention" not in span for span in plain["spans"])
    form = httpx.post(f"{server}/predict/form", data={"text": text, "attention": "true"},
                      files={"image": ("x.png", image.read_bytes())}).json()
    assert form["spans"] == result["spans"]
    refused = httpx.post(f"{server}/predict", json={"text": text, "attention": True})
    assert refused.status_code == 422 and "this model reads images" in refused.json()["error"]


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares `width` x `height` pixels in its header and holds one row of data: a decompression bomb
    as PIL sees it when it opens the file."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def bad_requests(image) -> list[tuple[str, str, dict, int, str]]:
    """(what, route, httpx.post keyword arguments, status, part of the reason) of every kind of bad input."""
    png = image.read_bytes()
    encoded = lambda data: {"json": {"text": "Alice is great", "image": base64.b64encode(data).decode()}}  # noqa: E731
    with_image = lambda post: {"json": {**post, "image": base64.b64encode(png).decode()}}  # noqa: E731
    return [
        ("no image", "/predict", {"json": {"text": "Alice is great"}}, 422,
         "post: this model reads images: give 'image' (base64 in JSON, a file in a form)"),
        ("not an image", "/predict", encoded(b"hello, this is text"), 415, "not an image"),
        ("truncated image", "/predict", encoded(png[: len(png) // 2]), 400, "post: 'image' is truncated or damaged"),
        ("decompression bomb", "/predict", encoded(png_header(12_000, 12_000)), 413,
         "12000x12000 pixels, over the limit"),
        ("huge decompression bomb", "/predict", encoded(png_header(30_000, 30_000)), 413, "twice the limit"),
        ("upload over 10 MB", "/predict/form",
         {"data": {"text": "Alice"}, "files": {"image": ("big.png", b"\0" * (11 << 20))}}, 413, "over the limit"),
        ("JSON over 10 MB", "/predict", {"json": {"text": "a" * (11 << 20)}}, 413, "over the limit"),
        ("malformed JSON", "/predict",
         {"content": b'{"text": "Alice', "headers": {"content-type": "application/json"}}, 400, "malformed JSON"),
        ("empty text", "/predict", with_image({"text": "  "}), 422, "post: 'text' is empty"),
        ("text over the word limit", "/predict", with_image({"text": "word " * 1001}), 422,
         "post: 'text' has 1,001 words, over this server's limit of 1,000 (--max-words)"),
        ("tokens over the word limit", "/predict", with_image({"tokens": ["word"] * 1001}), 422,
         "post: 1,001 tokens, over this server's limit of 1,000 words (--max-words)"),
        ("a path as image", "/predict", {"json": {"text": "Alice", "image": str(image)}}, 400, "not valid base64"),
        ("a path as form field", "/predict/form", {"files": {"text": (None, "Alice"), "image": (None, str(image))}},
         422, "never reads a path"),
        ("urlencoded form", "/predict", {"data": {"text": "Alice"}}, 415,
         "POST /predict reads JSON (application/json), not application/x-www-form-urlencoded; a form "
         "(multipart/form-data) goes to POST /predict/form"),
        ("a form to the JSON route", "/predict", {"files": {"text": (None, "Alice")}}, 415,
         "a form (multipart/form-data) goes to POST /predict/form"),
        ("JSON to the form route", "/predict/form", {"json": {"text": "Alice"}}, 415,
         "JSON (application/json) goes to POST /predict"),
        ("text over the character limit", "/predict", with_image({"text": "a" * 10_001}), 422,
         "10,001 characters, over the limit of 10,000"),
        ("empty tokens", "/predict", with_image({"tokens": []}), 422, "'tokens' is empty"),
        ("attention not a boolean", "/predict", with_image({"text": "Alice", "attention": "yes"}), 422,
         "post: 'attention': Input should be a valid boolean"),
        ("attention not a boolean in a form", "/predict/form", {"data": {"text": "Alice", "attention": "yes"}}, 422,
         "post: 'attention': Input should be 'true' or 'false'"),
        ("text not a string", "/predict", with_image({"text": 5}), 422, "post: 'text': Input should be a valid string"),
        ("too many posts", "/predict", {"json": [{"text": "a"}] * 300}, 413,
         "300 posts in one request, over the limit of 256"),
        ("an empty list", "/predict", {"json": []}, 422, "an empty list of posts"),
        ("not an object in a list", "/predict", {"json": [{"text": "a"}, 5]}, 422,
         "post 1: expected a JSON object with 'text' or 'tokens', found int"),
        ("text and tokens", "/predict", {"json": {"text": "a", "tokens": ["a"]}}, 422, "post: give either 'text'"),
        ("unknown key", "/predict", {"json": [{"text": "a"}, {"txt": "a"}]}, 422,
         "post 1: unknown key 'txt' (expected text, tokens, image, context, attention)"),
        ("tokens not JSON in a form", "/predict/form", {"data": {"tokens": "Alice Bob"}}, 422,
         "form field 'tokens' must be a JSON list of words"),
    ]


def test_bad_input_is_a_4xx_with_one_line_and_the_server_goes_on(server, posts):
    text, image, expected = posts[0]
    for what, route, request, status, reason in bad_requests(image):
        answer = httpx.post(f"{server}{route}", timeout=60, **request)
        assert answer.status_code == status, (what, answer.text)
        error = answer.json()["error"]
        assert reason in error and "\n" not in error, (what, error)
    assert httpx.get(f"{server}/health").json() == {"status": "ok"}
    answer = httpx.post(f"{server}/predict", json={"text": text, "image": as_base64(image)})
    assert spans_of(answer.json()) == expected


def test_starlettes_own_refusals_have_the_documented_shape(server):
    """404 and 405 come from Starlette's router, not from a route: they too are {"error": one line}."""
    nowhere = httpx.get(f"{server}/nowhere")
    assert nowhere.status_code == 404
    assert nowhere.json() == {"error": "GET /nowhere: no such route (the API: GET /docs; the page: GET /)"}
    wrong_method = httpx.get(f"{server}/predict")
    assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "POST"
    assert wrong_method.json() == {"error": "GET /predict: method not allowed (this route takes POST)"}
    assert httpx.delete(f"{server}/model").json() == {"error": "DELETE /model: method not allowed (this route "
                                                                "takes GET)"}


def test_a_port_in_use_is_one_line_before_the_model_loads(tiny_run, monkeypatch):
    import socket

    from mmlabel.tagger import Tagger

    monkeypatch.setattr(Tagger, "load",
                        lambda *a, **k: pytest.fail("the model loaded before the port was checked"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("serve", str(tiny_run), "--port", str(port))
    assert result.returncode == 2
    assert result.stderr == (f"error: port {port} of 127.0.0.1 is in use (another server?): stop it, or choose "
                             "another with --port\n")
    result = run_cli("serve", str(tiny_run), "--host", "192.0.2.1", "--no-auth")  # TEST-NET-1: never this machine's
    assert result.returncode == 2 and result.stderr == "error: --host 192.0.2.1 is not an address of this machine\n"


def test_a_post_longer_than_the_model_reads_is_tagged_whole_as_tagger_predict_does(server, tiny_run, synthetic):
    """The word limit is the request's, not the model's: a 200-word post (the model reads under 60 words at once) is
    tagged in windows, as `Tagger.predict` tags it, with spans past the first window."""
    from mmlabel.tagger import Tagger

    records = [json.loads(line) for line in (tiny_run / "predictions-test.jsonl").read_text().splitlines()]
    words = [word for record in records if record["spans"] for word in record["tokens"]] * 10
    text, image = " ".join(words[:200]), synthetic / "images" / records[0]["image"]
    expected = [span.to_dict() for span in Tagger.load(tiny_run, device="cpu").predict(text, image=image)]
    assert max(span["end"] for span in expected) > 60
    answer = httpx.post(f"{server}/predict", json={"text": text, "image": as_base64(image)}, timeout=60)
    assert answer.status_code == 200, answer.text
    assert spans_of(answer.json()) == expected


def test_load_of_16_clients_loses_no_request_and_batches(server, posts):
    """200 requests from 16 concurrent clients: every answer is the one Tagger.predict gives for its post, and the
    server ran them in fewer model calls than requests."""
    before = httpx.get(f"{server}/model").json()["batching"]
    bodies = [{"text": text, "image": as_base64(image)} for text, image, _ in posts]

    def client(indices: list[int]) -> list[tuple[int, int, list]]:
        with httpx.Client(timeout=120) as session:
            answers = [session.post(f"{server}/predict", json=bodies[i % len(posts)]) for i in indices]
        return [(i, a.status_code, spans_of(a.json()) if a.status_code == 200 else a.text) for i, a in zip(indices, answers)]

    with ThreadPoolExecutor(16) as pool:
        done = [item for part in pool.map(client, [list(range(k, 200, 16)) for k in range(16)]) for item in part]
    assert sorted(i for i, _, _ in done) == list(range(200))
    assert all(status == 200 for _, status, _ in done), [answer for _, status, answer in done if status != 200][:1]
    wrong = [i for i, _, spans in done if spans != posts[i % len(posts)][2]]
    assert not wrong, f"{len(wrong)} answers differ from Tagger.predict, e.g. request {wrong[0]}"
    after = httpx.get(f"{server}/model").json()["batching"]
    assert after["posts"] - before["posts"] == 200
    assert after["batches"] - before["batches"] < 200


def test_the_server_binds_to_localhost_unless_told(tiny_run):
    settings = served_settings(tiny_run)
    assert (settings["host"], settings["port"]) == ("127.0.0.1", 8000)
    assert served_settings(tiny_run, "--host", "0.0.0.0", "--port", "8123", "--no-auth")["host"] == "0.0.0.0"
    result = run_cli("serve", str(tiny_run.parent / "nothing"))
    assert result.returncode == 2 and result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1


def test_the_openapi_schema_is_served_with_the_request_and_response_models(server):
    schema = httpx.get(f"{server}/openapi.json").json()
    assert set(schema["paths"]) == {"/predict", "/predict/form", "/model", "/health"}
    models = schema["components"]["schemas"]
    assert set(models["PostIn"]["properties"]) == {"text", "tokens", "image", "context", "attention"}
    assert models["PostIn"]["additionalProperties"] is False
    body = schema["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert {"$ref": "#/components/schemas/PostIn"} in body["oneOf"]  # one post, or a list of them
    answers = schema["paths"]["/predict"]["post"]["responses"]
    assert "#/components/schemas/PostOut" in json.dumps(answers["200"])
    assert answers["413"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorOut"}
    form = schema["paths"]["/predict/form"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in form and "security" not in schema  # no API key asked for
    page = httpx.get(f"{server}/docs")
    assert page.status_code == 200 and "swagger-ui" in page.text and "/openapi.json" in page.text


def failing(tagger, method: str, word: str):
    """`tagger.METHOD`, raising where its posts (or raw text) hold `word`."""
    original = getattr(tagger, method)

    def fail(posts, *args, **options):
        given = [posts] if isinstance(posts, str) else [post.text for post in posts]
        if any(word in text for text in given):
            raise RuntimeError(f"the model broke on {word!r}\nsecond line")
        return original(posts, *args, **options)

    return fail


def test_every_500_is_one_line_and_logged_with_its_traceback(tiny_run, posts, caplog):
    text, image, expected = posts[0]
    with serving(tiny_run) as (url, settings):
        tagger = settings["app"].state.served.tagger
        tagger.predict = failing(tagger, "predict", "boom")  # in the batcher's model call
        tagger.words = failing(tagger, "words", "crash")  # in the route, before the batcher
        good = {"text": text, "image": as_base64(image)}
        failed = httpx.post(f"{url}/predict", json={"tokens": ["boom"], "image": as_base64(image)})
        assert failed.status_code == 500
        assert failed.json() == {"error": "internal error: RuntimeError: the model broke on 'boom'"}
        assert spans_of(httpx.post(f"{url}/predict", json=good).json()) == expected  # the server goes on
        crashed = httpx.post(f"{url}/predict", json={"text": "crash now", "image": as_base64(image)})
        assert crashed.status_code == 500 and crashed.json()["error"].startswith("internal error: RuntimeError")
    logged = [record for record in caplog.records if record.name == "mmlabel"]
    assert [record.levelname for record in logged] == ["ERROR"] * 3
    batch, answered, route = logged
    assert batch.getMessage() == "a batch of 1 posts from 1 requests failed: RuntimeError: the model broke on " \
                                 "'boom'\nsecond line"
    assert "in fail" in "".join(traceback.format_exception(*batch.exc_info))  # the model thread's frames
    assert answered.exc_info is None and answered.getMessage().endswith("(the traceback is logged with its batch)")
    assert route.getMessage().startswith("POST /predict answered 500, internal error: RuntimeError")
    assert route.exc_info[0] is RuntimeError and "in check_post" in "".join(traceback.format_tb(route.exc_info[2]))


def test_an_api_key_is_asked_for_on_every_route_but_health(tiny_run, posts):
    text, image, expected = posts[0]
    key = {"Authorization": "Bearer s3cret"}
    with serving(tiny_run, "--api-key", "s3cret") as (url, _):
        assert httpx.get(f"{url}/health").json() == {"status": "ok"}
        for method, route in (("GET", "/model"), ("GET", "/"), ("GET", "/docs"), ("GET", "/openapi.json"),
                              ("POST", "/predict"), ("POST", "/predict/form"), ("GET", "/nowhere")):
            refused = httpx.request(method, f"{url}{route}", json={"text": text, "image": as_base64(image)})
            assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer", route
            assert refused.json() == {"error": "this server needs its API key: send the header "
                                               "'Authorization: Bearer KEY'"}
        wrong = httpx.get(f"{url}/model", headers={"Authorization": "Bearer s3cre"})
        assert wrong.status_code == 401 and wrong.json() == {"error": "wrong API key"}
        assert httpx.get(f"{url}/model", headers={"Authorization": "Basic s3cret"}).status_code == 401
        assert httpx.get(f"{url}/model", headers=key).json()["run"] == tiny_run.name
        answer = httpx.post(f"{url}/predict", json={"text": text, "image": as_base64(image)}, headers=key)
        assert spans_of(answer.json()) == expected
        schema = httpx.get(f"{url}/openapi.json", headers=key).json()
        assert schema["components"]["securitySchemes"]["apiKey"] == {"type": "http", "scheme": "bearer"}
        assert schema["paths"]["/health"]["get"]["security"] == []


def test_an_address_other_machines_reach_needs_a_key_or_no_auth(tiny_run, posts):
    for host in ("0.0.0.0", "192.168.1.20", "::", "myhost.example.org"):
        result = run_cli("serve", str(tiny_run), "--host", host)
        assert result.returncode == 2 and result.stderr == (
            f"error: --host {host} is reachable from other machines: give --api-key KEY (or set MMLABEL_API_KEY), "
            "or --no-auth to serve it without a key\n")
    for host in ("localhost", "127.0.0.2", "::1"):
        assert served_settings(tiny_run, "--host", host)["host"] == host
    assert served_settings(tiny_run, "--host", "0.0.0.0", "--no-auth")["host"] == "0.0.0.0"
    contradiction = run_cli("serve", str(tiny_run), "--host", "0.0.0.0", "--api-key", "k", "--no-auth")
    assert contradiction.returncode == 2 and contradiction.stderr.count("\n") == 1
    text, image, expected = posts[0]
    with serving(tiny_run, "--host", "0.0.0.0", env={"MMLABEL_API_KEY": "from-env"}) as (url, settings):
        assert settings["host"] == "0.0.0.0"  # (the test serves it on 127.0.0.1)
        assert httpx.get(f"{url}/model").status_code == 401
        answer = httpx.post(f"{url}/predict", json={"text": text, "image": as_base64(image)},
                            headers={"Authorization": "Bearer from-env"})
        assert spans_of(answer.json()) == expected


@pytest.fixture(scope="module")
def started_server(tiny_run):
    """`mmlabel serve` in a process of its own (mmlabel.serving.local), as users and benchmarks/serve_load.py
    start it: (its base URL, the lines of its output so far, filled by a thread as they come)."""
    from mmlabel.serving.local import start_server

    process, url = start_server(tiny_run, "--max-batch", "16", env=process_environment(), capture=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
    reader.start()
    yield url, lines
    process.terminate()
    process.wait(timeout=30)
    reader.join(timeout=10)


@pytest.fixture(scope="module")
def server_process(started_server):
    return started_server[0]


def logged(lines: list[str], pattern: str, timeout: float = 10) -> list[str]:
    """The lines of a server's output matching `pattern` (a regular expression), waiting up to `timeout` seconds for
    a first one: the server logs a request after answering it."""
    import re

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [line.rstrip("\n") for line in list(lines) if re.fullmatch(pattern, line.rstrip("\n"))]
        if found:
            return found
        time.sleep(0.05)
    return []


@pytest.mark.system
def test_the_server_says_where_it_listens_and_logs_each_request(started_server, posts):
    url, lines = started_server
    assert logged(lines, rf"listening on {url} \(Ctrl-C stops it\)"), lines[:3]
    assert lines[0] == f"listening on {url} (Ctrl-C stops it)\n"  # before the first request's line
    text, image, _ = posts[0]
    assert httpx.post(f"{url}/predict", json={"text": text, "image": as_base64(image)}).status_code == 200
    assert httpx.get(f"{url}/nowhere").status_code == 404
    assert httpx.post(f"{url}/predict", json={"txt": "a"}).status_code == 422
    assert httpx.post(f"{url}/predict/form", json={"text": "a"}).status_code == 415  # refused by the Guard
    for request, status in (("POST /predict", 200), ("GET /nowhere", 404), ("POST /predict", 422),
                            ("POST /predict/form", 415)):
        assert logged(lines, rf"{request} {status} \d+\.\d ms"), (request, lines[-5:])
    assert logged(lines, r"GET /health 200 \d+\.\d ms")  # start_server's own probes
    assert not [line for line in lines if "Traceback" in line or line.startswith("INFO")]  # no uvicorn log beside


def test_requests_are_logged_through_the_mmlabel_logger(server, caplog):
    import logging

    caplog.set_level(logging.INFO, logger="mmlabel")
    httpx.get(f"{server}/model")
    httpx.get(f"{server}/predict")
    deadline = time.monotonic() + 10
    while len([r for r in caplog.records if r.name == "mmlabel"]) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    messages = [record.getMessage() for record in caplog.records if record.name == "mmlabel"]
    assert [message.rsplit(" ", 2)[0] for message in messages] == ["GET /model 200", "GET /predict 405"], messages
    assert all(record.levelname == "INFO" for record in caplog.records if record.name == "mmlabel")


@pytest.mark.system
def test_a_server_in_its_own_process_answers_as_the_one_in_this_process(server_process, server, posts):
    assert httpx.get(f"{server_process}/health").json() == {"status": "ok"}
    assert httpx.get(f"{server_process}/model").json() | {"batching": None} == \
        httpx.get(f"{server}/model").json() | {"batching": None}
    batch = [{"text": t, "image": as_base64(i)} for t, i, _ in posts]
    answer = httpx.post(f"{server_process}/predict", json=batch, timeout=120)
    assert [spans_of(r) for r in answer.json()] == [spans for _, _, spans in posts]


def chromium(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                           "--virtual-time-budget=20000", "--window-size=1000,900", *arguments],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.system
@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (Debian: apt-get install chromium)")
def test_the_page_tags_a_post_in_headless_chromium(server_process, posts, tmp_path):
    """The page, opened with a post and its photo in its link, shows the tagger's spans highlighted; the screenshot
    is not blank and holds the highlight colour of a predicted label."""
    from urllib.parse import quote

    from PIL import Image

    text, image, expected = next(post for post in posts if post[2])
    server = server_process
    link = f"{server}/#text={quote(text)}&image={quote('data:image/png;base64,' + as_base64(image))}"
    dom = chromium("--dump-dom", link)
    assert 'data-done="' in dom.stdout, dom.stderr[-2000:]
    marks = [(span["label"], text[span["start_char"]:span["end_char"]]) for span in expected]
    for label, words in marks:
        assert f'<mark class="{label}" data-label="{label}">{words}</mark>' in dom.stdout
    assert "F1 on dev" in dom.stdout
    shot = tmp_path / "page.png"
    chromium(f"--screenshot={shot}", link)
    pixels = Image.open(shot).convert("RGB")
    colours = {colour for _, colour in pixels.getcolors(1 << 20)}
    assert len(colours) > 20  # text, boxes and highlights, not a blank page
    highlight = {"POS": (0x7B, 0xE0, 0x8A), "NEU": (0xFF, 0xD8, 0x4D), "NEG": (0xFF, 0x8A, 0x80)}[marks[0][0]]
    assert highlight in colours
    assert 'data-drawn=""' in dom.stdout  # no heat map unless asked for
    first = httpx.post(f"{server}/predict", json={"text": text, "image": as_base64(image),
                                                  "attention": True}).json()["spans"][0]["attention"]
    heated = chromium("--dump-dom", link + "&attention")
    assert f'data-drawn="{first}"' in heated.stdout, heated.stdout[-2000:]  # the first span's map, over the photo


@pytest.mark.system
@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (Debian: apt-get install chromium)")
def test_the_page_speaks_in_page_terms_in_headless_chromium(server_process, posts, tiny_run):
    """The model in words (no recipe keys), word positions counted from 1 with both ends included, and a refusal
    said as the page's user acts on it (a photo to choose, not an API field to give)."""
    import html
    import re
    from urllib.parse import quote

    text, image, expected = next(post for post in posts if post[2])
    link = f"{server_process}/#text={quote(text)}&image={quote('data:image/png;base64,' + as_base64(image))}"
    dom = chromium("--dump-dom", link).stdout
    header = html.unescape(re.search(r'<div id="model">(.*?)</div>', dom).group(1))
    header = re.sub(r"<[^>]+>", "", header)
    assert header.startswith(f"Model {tiny_run.name}, reads the text and the photo. "), header
    assert "text encoder: hf" in header and "photo encoder: timm" in header and "tag scheme: collapsed5" in header
    assert "data.tag_scheme" not in header and "_" not in header.replace(tiny_run.name, "")
    table = re.search(r'<table id="spans">(.*?)</table>', dom).group(1)
    cells = re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td></tr>", table)
    wanted = [(text[s["start_char"]:s["end_char"]], s["label"],
               f"word {s['start'] + 1}" if s["end"] - s["start"] == 1 else f"words {s['start'] + 1}\u2013{s['end']}")
              for s in expected]
    assert [(html.unescape(a), b, html.unescape(c)) for a, b, c in cells] == wanted
    without_photo = chromium("--dump-dom", f"{server_process}/#text={quote(text)}").stdout
    error = re.search(r'<span id="error">(.*?)</span>', without_photo).group(1)
    assert error == "This model reads photos: choose an image (drop one above, or pick a file).", error
    empty = chromium("--dump-dom", f"{server_process}/#text=%20").stdout
    assert '<span id="error">Type a post first.</span>' in empty
