"""Throughput and latency of `mmlabel serve` under load, with and without dynamic batching.

    python benchmarks/serve_load.py RUN [--requests 200] [--concurrency 16] [--rounds 3] [--images DIR]

Starts `mmlabel serve RUN` on a free local port for each setting (batching: --max-batch 32 --batch-window-ms 5;
none: --max-batch 1 --batch-window-ms 0), and in each of `--rounds` rounds sends the run's test posts (raw text with
their photos, base64 in JSON) from `--concurrency` clients to each server in turn until `--requests` have been
answered (alternating, so that a change in the machine's other load falls on both). Prints a Markdown table per
setting: requests per second (the median of the rounds), and the p50 and p99 latency of a request as its client
saw it, over all rounds. Needs the serve extra and httpx.
"""
import argparse
import base64
import http.client
import json
import os
import statistics
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


SETTINGS = {"batching (max 32, 5 ms)": ["--max-batch", "32", "--batch-window-ms", "5"],
            "none (one at a time)": ["--max-batch", "1", "--batch-window-ms", "0"]}


def bodies(run: Path, images: Path | None) -> list[dict]:
    from mmlabel.run_dir import RunDir

    image_dir = images or RunDir(run).recipe().data.images_path()
    records = [json.loads(line) for line in (run / "predictions-test.jsonl").read_text().splitlines()]
    return [{"text": " ".join(r["tokens"]), "image": base64.b64encode((image_dir / r["image"]).read_bytes()).decode()}
            for r in records]


def serve(run: Path, options: list[str]) -> tuple[subprocess.Popen, str]:
    from mmlabel.serving.local import start_server

    try:
        return start_server(run, *options)
    except RuntimeError as error:
        raise SystemExit(str(error)) from None


def load(url: str, posts: list[dict], requests: int, concurrency: int) -> tuple[float, list[float]]:
    """Send `requests` posts from `concurrency` clients: requests per second, and each request's latency in s."""
    host, port = url.removeprefix("http://").split(":")

    def client(indices: range) -> list[float]:  # http.client: a lighter client than httpx, on the same cores
        latencies = []
        connection = http.client.HTTPConnection(host, int(port), timeout=300)
        for index in indices:
            start = time.perf_counter()
            connection.request("POST", "/predict", json.dumps(posts[index % len(posts)]),
                               {"content-type": "application/json"})
            answer = connection.getresponse()
            answer.read()
            if answer.status != 200:
                raise SystemExit(f"request {index}: HTTP {answer.status}")
            latencies.append(time.perf_counter() - start)
        connection.close()
        return latencies

    load_start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        latencies = [t for part in pool.map(client, [range(k, requests, concurrency) for k in range(concurrency)])
                     for t in part]
    return len(latencies) / (time.perf_counter() - load_start), latencies


def model_only(run: Path, posts: list[dict], sizes=(1, 16, 32), calls: int = 64) -> dict[int, float]:
    """Milliseconds of the model per post, called directly (`Tagger.predict` on a list of posts) on batches of each
    size."""
    import io

    from PIL import Image

    from mmlabel.tagger import Post, Tagger
    from mmlabel.threads import use_threads

    tagger = Tagger.load(run, device="cpu")
    use_threads()
    decoded = [Post(post["text"], Image.open(io.BytesIO(base64.b64decode(post["image"]))).convert("RGB"))
               for post in posts]
    figures = {}
    for size in sizes:
        tagger.batch_size = size
        batch = (decoded * size)[:size]
        tagger.predict(batch)  # warm-up
        start = time.perf_counter()
        for _ in range(max(1, calls // size)):
            tagger.predict(batch)
        figures[size] = (time.perf_counter() - start) / max(1, calls // size) / size * 1000
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--images", type=Path, help="the folder of the run's test images (default: its recipe's)")
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    posts = bodies(arguments.run, arguments.images)
    servers = {name: serve(arguments.run, options) for name, options in SETTINGS.items()}
    rates = {name: [] for name in SETTINGS}
    latencies = {name: [] for name in SETTINGS}
    try:
        for name, (_, url) in servers.items():
            load(url, posts, 2 * arguments.concurrency, arguments.concurrency)  # warm-up
        for _ in range(arguments.rounds):
            for name, (_, url) in servers.items():
                rate, times = load(url, posts, arguments.requests, arguments.concurrency)
                rates[name].append(rate)
                latencies[name] += times
    finally:
        for process, _ in servers.values():
            process.terminate()
            process.wait()
    print(f"| batching | requests | requests/s (rounds) | p50 (ms) | p99 (ms) |\n|---|---|---|---|---|")
    for name in SETTINGS:
        cuts = statistics.quantiles(latencies[name], n=100)
        each = ", ".join(f"{rate:.0f}" for rate in rates[name])
        print(f"| {name} | {len(latencies[name])} | {statistics.median(rates[name]):.1f} ({each}) | "
              f"{cuts[49] * 1000:.0f} | {cuts[98] * 1000:.0f} |")
    figures = model_only(arguments.run, posts)
    print("\nthe model alone, per post: " + ", ".join(f"{ms:.2f} ms in batches of {size}" for size, ms in figures.items()))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONPATH", str(Path(__file__).resolve().parents[1]))
    main()
