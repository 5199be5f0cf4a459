"""The GPU question in one command: how fast the reference recipe trains on one GPU, where the time goes, and
whether a training step makes the host wait.

    python benchmarks/gpu_probe.py --out DIR            # on a GPU machine: at most ~8 minutes on one H200
    python benchmarks/gpu_probe.py --tiny --out DIR     # tiny sizes, on a CPU: a check that it runs (the test suite)

Each phase writes its own JSON file into DIR as soon as it ends (a time-out keeps what finished), then `summary.json`
and a markdown table on stdout:

  01-machine      versions, device, memory, CPU cores
  02-decode       ms per photo to decode and transform realistic JPEGs (1024x768, 500x375): every time (as before
                  the image store), into the store (first use), and read back from it (every later use)
  03-loader       training batches per second from the store with 0, 2, 4 and 8 loader workers
  04-step         `Trainer.step` of recipes/dtca.toml at the paper's sizes (random weights), 30 steps each with the
                  exact EMD, Sinkhorn, no alignment, and compiled: wall ms a step, GPU kernel ms a step (profiler),
                  the device's busy share, host syncs counted under `torch.cuda.set_sync_debug_mode("warn")`, and
                  whether one step passes under `set_sync_debug_mode("error")`
  05-epoch        60 training steps through the loader plus a dev evaluation, and the Twitter-2015 epoch time they
                  imply (2,101 training posts, 727 dev posts)
  06-concurrent   MiniLM-sized text-only training: one run alone against four at once on the same device

Nothing is downloaded: the encoders have random weights of the real shapes, the photos are generated.
"""
import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TWITTER2015 = {"train": 2101, "dev": 727}  # posts, the benchmark's split sizes
PHOTO_SIZES = [(1024, 768), (500, 375)]
TINY_TEXT = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64,
             "max_position_embeddings": 80}
TINY_IMAGE = {"img_size": 32, "patch_size": 8, "depth": 1, "embed_dim": 32, "num_heads": 2}
MINILM = {"hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12, "intermediate_size": 1536}


# -- the workload ---------------------------------------------------------------------------------------------
def write_workload(root: Path, posts: dict[str, int], photos: int, seed: int = 0) -> Path:
    """A jml dataset whose sentence lengths follow the Twitter data's (log-normal, 3 to 40 words), one or two
    aspects each, and `photos` JPEGs at tweet sizes (smooth colour fields with noise: JPEG sizes like photos')."""
    import numpy as np
    from PIL import Image

    from mmlabel.data.example import Example, Span
    from mmlabel.registry import build

    rng = random.Random(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed)
    for index in range(photos):
        width, height = PHOTO_SIZES[index % len(PHOTO_SIZES)]
        ys, xs = np.mgrid[0:height, 0:width]
        field = np.stack([(xs * (3 + c) + ys * (5 - c)) % 256 for c in range(3)], -1).astype(np.float32)
        field += pixels.normal(0, 12, field.shape)
        Image.fromarray(field.clip(0, 255).astype(np.uint8)).save(root / "images" / f"{index}.jpg", quality=88)
    vocabulary = [f"w{index}" for index in range(800)] + ["@user", "#tag", "RT", ":", "http://t.co/x", "!"]
    reader = build("dataset_reader", "jml")
    for split, count in posts.items():
        examples = []
        for index in range(count):
            length = min(40, max(3, round(rng.lognormvariate(2.68, 0.45))))
            words = [rng.choice(vocabulary) for _ in range(length)]
            start = rng.randrange(length - 1)
            spans = [Span(start, start + rng.choice([1, 2]), rng.choice(["POS", "NEU", "NEG"]))]
            examples.append(Example(f"{split}-{index}", words, f"{index % photos}.jpg", spans))
        reader.write(examples, root / f"{split}.txt")
    return root


def reference_recipe(root: Path, tiny: bool, overrides: tuple[str, ...] = ()):
    """recipes/dtca.toml on the workload, with random weights of the paper's sizes (or tiny ones)."""
    from mmlabel.recipe import load_recipe

    text = TINY_TEXT if tiny else {"vocab_size": 50265}
    keys = [f"data.root={root}", 'data.images="images"', 'text_encoder.init="random"',
            'text_encoder.model_type="roberta"', 'text_encoder.tokenizer="train"',
            f"text_encoder.config_overrides={_toml(text)}", "image_encoder.pretrained=false"]
    if tiny:
        keys += ['image_encoder.model="vit_base_patch16_224"', f"image_encoder.model_args={_toml(TINY_IMAGE)}",
                 "fusion_head.heads=2"]
    return load_recipe(REPO / "recipes" / "dtca.toml", [*keys, *overrides])


def _toml(table: dict) -> str:
    return "{" + ", ".join(f"{key} = {value}" for key, value in table.items()) + "}"


# -- the phases -----------------------------------------------------------------------------------------------
def machine() -> dict:
    import torch

    versions = {}
    for package in ("torch", "transformers", "timm", "ot", "geomloss", "numpy", "PIL"):
        try:
            versions[package] = getattr(__import__(package), "__version__", "?")
        except ImportError:
            versions[package] = None
    cuda = torch.cuda.is_available()
    facts = {"python": platform.python_version(), "platform": platform.platform(), "cpu_cores": os.cpu_count(),
             "versions": versions, "cuda": cuda, "device": torch.cuda.get_device_name() if cuda else "cpu"}
    if cuda:
        properties = torch.cuda.get_device_properties(0)
        facts.update(cuda_version=torch.version.cuda, memory_gb=round(properties.total_memory / 2**30, 1),
                     multiprocessors=properties.multi_processor_count, bf16=torch.cuda.is_bf16_supported())
    try:
        facts["mmlabel_commit"] = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True,
                                                 text=True).stdout.strip() or None
    except OSError:
        facts["mmlabel_commit"] = None
    return facts


def decode(root: Path, tiny: bool, scratch: Path) -> dict:
    """ms per photo: decoded and transformed every time, decoded into the store, read back from it."""
    from mmlabel.data.images import ImageLoader
    from mmlabel.data.image_store import ImageStore
    from mmlabel.registry import build

    recipe = reference_recipe(root, tiny)
    encoder = build("image_encoder", {"name": recipe.image_encoder.name, **recipe.image_encoder.options})
    names = sorted(path.name for path in (root / "images").glob("*.jpg"))
    by_size = {f"{w}x{h}": [n for i, n in enumerate(names) if PHOTO_SIZES[i % len(PHOTO_SIZES)] == (w, h)]
               for w, h in PHOTO_SIZES}
    figures = {}
    for size, chosen in by_size.items():
        loader = ImageLoader(root / "images")
        started = time.perf_counter()
        for name in chosen:
            encoder.transform(loader.load(name))
        every_time = (time.perf_counter() - started) / len(chosen)
        store = ImageStore(ImageLoader(root / "images"), encoder.pixel_transform, encoder.pixel_signature,
                           root=scratch / f"store-{size}")
        started = time.perf_counter()
        for name in chosen:
            store.get(name)
        first = (time.perf_counter() - started) / len(chosen)
        started = time.perf_counter()
        for name in chosen:
            store.get(name)
        stored = (time.perf_counter() - started) / len(chosen)
        figures[size] = {"photos": len(chosen), "decoded_every_time_ms": 1000 * every_time,
                         "into_store_ms": 1000 * first, "from_store_ms": 1000 * stored,
                         "speedup_from_store": every_time / stored}
    return figures


def loader_speed(root: Path, tiny: bool, scratch: Path, batches: int) -> dict:
    """Training batches per second through the trainer's own loader, moved to the device, per worker count."""
    import torch

    figures = {}
    for workers in (0, 2, 4, 8):
        trainer = _trainer(root, tiny, scratch / f"loader-{workers}", (f"train.workers={workers}",))
        loader = trainer.prepare(trainer.parts.splits["train"])
        count, started = 0, None
        while count < batches:
            for batch in loader:
                trainer._to_device(batch)
                count += 1
                if count == 2:  # after the workers have started
                    started = time.perf_counter()
                if count >= batches:
                    break
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
        figures[f"workers_{workers}"] = {"batches_per_s": (batches - 2) / (time.perf_counter() - started)}
        del loader
    return figures


def step_speed(root: Path, tiny: bool, scratch: Path, steps: int) -> dict:
    """`Trainer.step` timed per alignment loss and compiled; syncs counted and refused."""
    settings = {"emd": (), "sinkhorn": ("alignment_loss.name=sinkhorn",), "none": ("alignment_loss.name=none",),
                "emd-compiled": ("train.compile=true", "train.compile_bucket=64",
                                 *(('train.compile_backend="eager"',) if tiny else ()))}
    figures = {}
    for name, overrides in settings.items():
        trainer = _trainer(root, tiny, scratch / f"step-{name}", overrides)
        loader = trainer.prepare(trainer.parts.splits["train"])
        batches = _pinned_batches(loader, steps + 5)
        trainer.network.train()
        for batch in batches[:5]:  # warm-up: the optimiser's state, kernel choice, compilation
            trainer.step(batch)
        figures[name] = _time_steps(trainer, batches[5:])
        figures[name]["sync_error_mode"] = _sync_error_mode(trainer, batches[5])
    base = figures.get("none", {}).get("wall_ms")
    for name in ("emd", "sinkhorn"):
        if base and name in figures:
            figures[name]["alignment_cost"] = figures[name]["wall_ms"] / base - 1
    return figures


def epoch_estimate(root: Path, tiny: bool, scratch: Path, steps: int) -> dict:
    """`steps` training steps through the loader and a dev evaluation; the Twitter-2015 epoch they imply."""
    import torch

    trainer = _trainer(root, tiny, scratch / "epoch", (f"train.max_steps_per_epoch={steps}",))
    loader = trainer.prepare(trainer.parts.splits["train"])
    trainer.train_epoch(loader, 1)  # a first pass: warm-up (allocations, kernel choice)
    _sync(trainer)
    started = time.perf_counter()
    trainer.train_epoch(loader, 2)
    _sync(trainer)
    train_seconds = time.perf_counter() - started
    dev = trainer.parts.splits["dev"]
    started = time.perf_counter()
    trainer.evaluate(dev)
    dev_seconds = time.perf_counter() - started
    batch = trainer.settings.batch_size
    implied = (TWITTER2015["train"] / batch / steps) * train_seconds + TWITTER2015["dev"] / len(dev) * dev_seconds
    return {"steps": steps, "batch_size": batch, "train_seconds": train_seconds, "ms_per_step": 1000 * train_seconds / steps,
            "dev_posts": len(dev), "dev_seconds": dev_seconds, "twitter2015_epoch_seconds": implied,
            "device": str(trainer.device), "precision": trainer.settings.precision,
            "peak_memory_gb": torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None}


def concurrent(root: Path, tiny: bool, scratch: Path, steps: int) -> dict:
    """Text-only MiniLM-sized training (random weights): one process alone, then four at once."""
    def launch(count: int) -> list[dict]:
        command = [sys.executable, __file__, "--worker", "text-path", "--root", str(root), "--steps", str(steps),
                   *(["--tiny"] if tiny else [])]
        processes = [subprocess.Popen([*command, "--out", str(scratch / f"text-{count}-{index}")],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                     for index in range(count)]
        results = []
        for process in processes:
            out, err = process.communicate()
            if process.returncode != 0:
                raise RuntimeError(f"text-path worker failed:\n{err[-2000:]}")
            results.append(json.loads(out.strip().splitlines()[-1]))
        return results

    alone = launch(1)[0]
    together = launch(4)
    total = sum(result["steps_per_s"] for result in together)
    return {"alone_steps_per_s": alone["steps_per_s"], "four_at_once_steps_per_s": [r["steps_per_s"] for r in together],
            "four_at_once_total_steps_per_s": total, "throughput_gain": total / alone["steps_per_s"]}


def text_path_worker(root: Path, tiny: bool, out: Path, steps: int) -> dict:
    """One text-only MiniLM-sized run: steps per second after a warm-up."""
    sizes = TINY_TEXT if tiny else MINILM
    trainer = _trainer(root, tiny, out, ("image_encoder.name=none", 'text_encoder.model_type="bert"',
                                         f"text_encoder.config_overrides={_toml(sizes)}"))
    loader = trainer.prepare(trainer.parts.splits["train"])
    batches = _pinned_batches(loader, steps + 5)
    trainer.network.train()
    for batch in batches[:5]:
        trainer.step(batch)
    _sync(trainer)
    started = time.perf_counter()
    for batch in batches[5:]:
        trainer.step(batch)
    trainer.read_losses()
    _sync(trainer)
    return {"steps_per_s": steps / (time.perf_counter() - started)}


# -- helpers --------------------------------------------------------------------------------------------------
def _trainer(root: Path, tiny: bool, out: Path, overrides: tuple[str, ...]):
    from rich.console import Console

    from mmlabel.training.assemble import assemble
    from mmlabel.training.trainer import Trainer

    recipe = reference_recipe(root, tiny, overrides)
    return Trainer(assemble(recipe, out, console=Console(stderr=True, quiet=True)))


def _pinned_batches(loader, count: int) -> list[dict]:
    batches = []
    while len(batches) < count:
        for batch in loader:
            batches.append(batch)
            if len(batches) == count:
                break
    return batches


def _sync(trainer) -> None:
    import torch

    if trainer.device.type == "cuda":
        torch.cuda.synchronize()


def _time_steps(trainer, batches: list[dict]) -> dict:
    """Wall ms a step (no profiler), GPU kernel ms a step (a second pass under the profiler), host syncs."""
    import torch

    cuda = trainer.device.type == "cuda"
    _sync(trainer)
    started = time.perf_counter()
    for batch in batches:
        trainer.step(batch)
    trainer.read_losses()
    _sync(trainer)
    wall = 1000 * (time.perf_counter() - started) / len(batches)
    figures = {"steps": len(batches), "wall_ms": wall}
    if cuda:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as profiler:
            for batch in batches:
                trainer.step(batch)
            torch.cuda.synchronize()
        kernel_us = sum(event.self_device_time_total for event in profiler.key_averages()
                        if event.device_type == torch.autograd.DeviceType.CUDA)
        figures["kernel_ms"] = kernel_us / 1000 / len(batches)
        figures["device_busy"] = figures["kernel_ms"] / wall
        figures["host_syncs_per_step"], figures["sync_messages"] = _count_syncs(trainer, batches[:5])
    return figures


def _count_syncs(trainer, batches: list[dict]) -> tuple[float, list[str]]:
    import torch

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            for batch in batches:
                trainer.step(batch)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    messages = [str(warning.message).splitlines()[0] for warning in caught if "synchroniz" in str(warning.message)]
    return len(messages) / len(batches), sorted(set(messages))[:10]


def _sync_error_mode(trainer, batch: dict) -> str:
    """'passed' where a whole step runs under set_sync_debug_mode("error"); the error's first line where it does
    not; 'not on CUDA' elsewhere (the CPU tests use mmlabel.testing.host_reads instead)."""
    import torch

    if trainer.device.type != "cuda":
        from mmlabel.testing.host_reads import HostRead, no_host_reads

        try:
            with no_host_reads():
                trainer.step(batch)
            return "passed (no_host_reads, CPU)"
        except HostRead as error:
            return f"failed (no_host_reads, CPU): {error}"
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        trainer.step(batch)
        return "passed"
    except RuntimeError as error:
        return f"failed: {str(error).splitlines()[0]}"
    finally:
        torch.cuda.set_sync_debug_mode("default")
        torch.cuda.synchronize()


def _table(results: dict) -> str:
    lines = ["| phase | figure | value |", "|---|---|---|"]
    step = results.get("04-step", {})
    for name, figures in step.items() if isinstance(step, dict) else []:
        if isinstance(figures, dict) and "wall_ms" in figures:
            busy = f", busy {100 * figures['device_busy']:.0f}%" if "device_busy" in figures else ""
            syncs = f", {figures['host_syncs_per_step']:.1f} syncs/step" if "host_syncs_per_step" in figures else ""
            lines.append(f"| step | {name} | {figures['wall_ms']:.1f} ms{busy}{syncs}; error mode "
                         f"{figures.get('sync_error_mode')} |")
    epoch = results.get("05-epoch", {})
    if "twitter2015_epoch_seconds" in epoch:
        lines.append(f"| epoch | Twitter-2015, implied | {epoch['twitter2015_epoch_seconds']:.1f} s |")
    for size, figures in (results.get("02-decode") or {}).items():
        if isinstance(figures, dict) and "from_store_ms" in figures:
            lines.append(f"| decode | {size} | {figures['decoded_every_time_ms']:.2f} ms every time, "
                         f"{figures['from_store_ms']:.3f} ms from the store |")
    for workers, figures in (results.get("03-loader") or {}).items():
        if isinstance(figures, dict) and "batches_per_s" in figures:
            lines.append(f"| loader | {workers} | {figures['batches_per_s']:.0f} batches/s |")
    gain = (results.get("06-concurrent") or {}).get("throughput_gain")
    if gain is not None:
        lines.append(f"| concurrent | 4 MiniLM text runs vs 1 | {gain:.2f}x the throughput |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu-probe")))
    parser.add_argument("--tiny", action="store_true", help="tiny sizes and few steps: a check on a CPU")
    parser.add_argument("--phases", default="machine,decode,loader,step,epoch,concurrent")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "text-path":
        print(json.dumps(text_path_worker(args.root, args.tiny, args.out, args.steps)))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("MMLABEL_CACHE", str(args.out / "cache"))
    steps = {"step": 3 if args.tiny else 30, "epoch": 4 if args.tiny else 60, "loader": 6 if args.tiny else 200,
             "concurrent": 3 if args.tiny else 200}
    results = {}
    with tempfile.TemporaryDirectory(prefix="mmlabel-probe-") as scratch:
        scratch = Path(scratch)
        posts = {"train": 48, "dev": 16, "test": 8} if args.tiny else {"train": 400, "dev": 128, "test": 16}
        root = write_workload(scratch / "data", posts, photos=8 if args.tiny else 48)
        phases = {"01-machine": machine, "02-decode": lambda: decode(root, args.tiny, scratch),
                  "03-loader": lambda: loader_speed(root, args.tiny, scratch, steps["loader"]),
                  "04-step": lambda: step_speed(root, args.tiny, scratch, steps["step"]),
                  "05-epoch": lambda: epoch_estimate(root, args.tiny, scratch, steps["epoch"]),
                  "06-concurrent": lambda: concurrent(root, args.tiny, scratch, steps["concurrent"])}
        wanted = set(args.phases.split(","))
        for name, phase in phases.items():
            if name.split("-", 1)[1] not in wanted:
                continue
            started = time.perf_counter()
            try:
                result = phase()
            except Exception as error:  # a phase that fails is recorded; the next one still runs
                result = {"error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()[-4000:]}
            result = {**result, "phase_seconds": round(time.perf_counter() - started, 1)}
            results[name] = result
            (args.out / f"{name}.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
            print(f"{name}: {result['phase_seconds']} s" + (f" ({result['error']})" if "error" in result else ""),
                  file=sys.stderr, flush=True)
    (args.out / "summary.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    print(_table(results))


if __name__ == "__main__":
    main()
