"""Throughput and latency of `mmlabel serve` under load, with and without dynamic batching.

    python benchmarks/serve_load.py RUN [--requests 200] [--concurrency 16] [--images DIR]

Starts `mmlabel serve RUN` on a free local port once per setting (batching: --max-batch 32 --batch-window-ms 5;
none: --max-batch 1 --batch-window-ms 0), sends the run's test posts (raw text with their photos, base64 in JSON)
from `--concurrency` clients until `--requests` have been answered, and prints a Markdown table: requests per second,
and the p50 and p99 latency of a request as its client saw it. Needs the serve extra and httpx.
"""
import argparse
import base64
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

SETTINGS = {"batching (max 32, 5 ms)": ["--max-batch", "32", "--batch-window-ms", "5"],
            "none (one at a time)": ["--max-batch", "1", "--batch-window-ms", "0"]}


def bodies(run: Path, images: Path | None) -> list[dict]:
    from mmlabel.run_dir import RunDir

    image_dir = images or RunDir(run).recipe().data.images_path()
    records = [json.loads(line) for line in (run / "predictions-test.jsonl").read_text().splitlines()]
    return [{"text": " ".join(r["tokens"]), "image": base64.b64encode((image_dir / r["image"]).read_bytes()).decode()}
            for r in records]


def serve(run: Path, options: list[str]) -> tuple[subprocess.Popen, str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "mmlabel", "serve", str(run), "--port", str(port), *options])
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("the server did not start")


def load(url: str, posts: list[dict], requests: int, concurrency: int) -> dict:
    """Send `requests` posts from `concurrency` clients; requests per second and latency percentiles in ms."""
    def client(indices: range) -> list[float]:
        latencies = []
        with httpx.Client(timeout=300) as session:
            for index in indices:
                start = time.perf_counter()
                answer = session.post(f"{url}/predict", json=posts[index % len(posts)])
                answer.raise_for_status()
                latencies.append(time.perf_counter() - start)
        return latencies

    load_start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        latencies = [t for part in pool.map(client, [range(k, requests, concurrency) for k in range(concurrency)])
                     for t in part]
    wall = time.perf_counter() - load_start
    cuts = statistics.quantiles(latencies, n=100)
    return {"requests": len(latencies), "per_second": len(latencies) / wall, "p50_ms": cuts[49] * 1000,
            "p99_ms": cuts[98] * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--images", type=Path, help="the folder of the run's test images (default: its recipe's)")
    arguments = parser.parse_args()
    posts = bodies(arguments.run, arguments.images)
    print(f"| batching | requests | requests/s | p50 (ms) | p99 (ms) |\n|---|---|---|---|---|")
    for name, options in SETTINGS.items():
        process, url = serve(arguments.run, options)
        try:
            load(url, posts, 2 * arguments.concurrency, arguments.concurrency)  # warm-up
            figures = load(url, posts, arguments.requests, arguments.concurrency)
        finally:
            process.terminate()
            process.wait()
        print(f"| {name} | {figures['requests']} | {figures['per_second']:.1f} | {figures['p50_ms']:.0f} | "
              f"{figures['p99_ms']:.0f} |", flush=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONPATH", str(Path(__file__).resolve().parents[1]))
    main()
