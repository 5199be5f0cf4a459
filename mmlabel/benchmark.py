"""`mmlabel bench`: training and prediction speed of DTCA at the paper's sizes (random weights, no download), for
the optimised settings against a naive baseline that does what the reference code does, measured in alternating
worker processes so that both see the same machine load.

Each optimisation is a flag of a setting (OPTIMISATIONS); `naive` has none, `optimised` has all, and `--ablate` adds
one setting per optimisation with that one left out, to measure what each is worth. Naive: fp32, every batch
padded to `max_tokens`, random batches, eager attention, images decoded and transformed every step in the training
loop (float pixels) and words tokenised every batch, the image encoder run even when frozen, AdamW one tensor at a time, glibc's default allocator, prediction at
the training batch size under `no_grad`.
"""
import contextlib
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mmlabel.benchmark_models import TEXT_SIZES, AlignmentInputs, default_model, recipe_model, with_attention  # noqa: F401

SETTINGS = ("naive", "optimised")
OPTIMISATIONS = {
    "bf16": "bf16 autocast",
    "padding": "padding to the batch's longest sentence, length-bucketed batches",
    "attention": "mmlabel's attention kernels: SDPA in the text encoder, and in the image encoder beside an "
                 "accelerator (on a CPU written out, faster there) (naive: written out in both)",
    "store": "photos decoded and resized once into the image store, uint8 pixels normalised on the device, words "
             "tokenised once (with padding)",
    "workers": "batches gathered (images decoded, without the store) in a DataLoader worker",
    "cache": "cached states of the frozen image encoder (--freeze-image)",
    "fused_adamw": "fused AdamW (training)",
    "allocator": "freed memory kept in the process (mmlabel/device.py)",
    "inference": "inference_mode and batches of 32 (prediction)",
}


def applicable(mode: str, freeze_image: bool, accelerator: bool | None = None) -> list[str]:
    """The optimisations that change something in this benchmark. A decoding worker is one only beside an
    accelerator: on a CPU it takes cycles from the model's threads on the same cores (measured in
    docs/performance.md), which is why `train.workers` defaults to 0."""
    if accelerator is None:
        import torch

        accelerator = torch.cuda.is_available()
    skip = {"cache"} if not freeze_image else set()
    skip |= {"fused_adamw"} if mode == "predict" else {"inference"}
    skip |= set() if accelerator else {"workers"}
    return [name for name in OPTIMISATIONS if name not in skip]


def setting_flags(setting: str, mode: str, freeze_image: bool, accelerator: bool | None = None) -> list[str]:
    """`naive`, `optimised` or `without-NAME` (optimised with one optimisation left out) as a list of flags;
    `with-workers` adds the decoding worker where it is not one of the optimisations (on a CPU)."""
    flags = applicable(mode, freeze_image, accelerator)
    if setting.startswith(("alignment-", "fusion-")):  # optimised, with another alignment loss or fusion head
        return flags
    if setting == "with-compile":  # optimised, with the model's encoding compiled by torch.compile
        return flags + ["compile"]
    if setting == "with-workers" and "workers" not in flags:
        return flags + ["workers"]
    if setting == "naive":
        return []
    if setting == "optimised":
        return flags
    if setting.startswith("without-") and setting[len("without-"):] in flags:
        return [flag for flag in flags if flag != setting[len("without-"):]]
    raise ValueError(f"unknown setting {setting!r}: naive, optimised, with-compile, with-workers (on a CPU), "
                     f"alignment-NAME or without-NAME with "
                     f"NAME in {', '.join(flags)}")


def make_workload(directory: Path, lengths: list[int] | None, examples: int = 64, images: int = 16, seed: int = 0):
    """Sentences whose lengths follow the Twitter data (or `lengths`), tweet-sized JPEGs and a tokenizer."""
    import numpy as np
    from PIL import Image

    from mmlabel.text_encoders.tokenizer import train_word_tokenizer

    rng = random.Random(seed)
    vocabulary = [f"w{index}" for index in range(500)] + ["@user", "#tag", "RT", ":", "http://t.co/x", "!"]
    lengths = lengths or [min(40, max(3, round(rng.lognormvariate(2.68, 0.45)))) for _ in range(examples)]
    sentences = [[rng.choice(vocabulary) for _ in range(rng.choice(lengths))] for _ in range(examples)]
    pixels = np.random.default_rng(seed)
    for index in range(images):
        noise = pixels.integers(0, 255, (375, 500, 3), dtype=np.uint8)
        Image.fromarray(noise).save(directory / f"{index}.jpg", quality=90)
    train_word_tokenizer(sentences, directory / "tokenizer", "roberta")
    (directory / "sentences.json").write_text(json.dumps(sentences))
    return directory


def twitter_lengths(path: Path, format: str) -> list[int]:
    """Sentence lengths (words) of a dataset, to draw benchmark sentences from."""
    from mmlabel.registry import build

    reader = build("dataset_reader", format)
    split_paths = reader.find_splits(path) if path.is_dir() else {"train": path}
    return [len(example.tokens) for example in reader.read(split_paths.get("train", next(iter(split_paths.values()))))]


def bench(mode: str, text_size: str = "base", image_model: str = "vit_base_patch16_224", batch: int = 4,
          steps: int = 10, rounds: int = 3, freeze_image: bool = False, lengths: list[int] | None = None,
          only: str | None = None, progress=None, alignment: str = "sinkhorn", ablate: bool = False,
          profile: bool = False, recipe=None, naive_alignment: str | None = None,
          also_alignments: tuple[str, ...] = (), compile: bool = False,
          also_fusion_heads: tuple[str, ...] = ()) -> dict:
    """Examples per second and peak memory of each setting (median over `rounds` alternating worker runs).
    `ablate` adds `without-NAME` for every optimisation that applies, under the key "without"; `profile` adds each
    setting's torch.profiler table of its last round under "profile". With a `recipe` (mmlabel.recipe.Recipe), its
    components, loss and sizes are timed (`recipe_model`), and `batch`, `freeze_image`, `alignment` come from it;
    `naive_alignment` names the alignment loss of the naive setting (default: the same as the optimised);
    `also_alignments` adds one setting `alignment-NAME` per name: optimised, with that alignment loss; `compile`
    adds `with-compile`: optimised, with the encoding compiled (torch.compile); `also_fusion_heads` adds
    `fusion-NAME` per name: optimised, with that fusion head."""
    if recipe is not None:
        batch, freeze_image = recipe.train.batch_size, _frozen(recipe)
    settings = _settings(mode, freeze_image, only, ablate, also_alignments, compile)
    settings += [f"fusion-{name}" for name in also_fusion_heads]
    flags = {setting: setting_flags(setting, mode, freeze_image) for setting in settings}  # a typo fails here
    results: dict[str, list[dict]] = {setting: [] for setting in settings}
    with tempfile.TemporaryDirectory(prefix="mmlabel-bench-") as directory:
        make_workload(Path(directory), lengths)
        if recipe is not None:
            model, notes = recipe_model(recipe, Path(directory), text_size)
            for note in notes:
                progress and progress(note)
        else:
            model = default_model(Path(directory), text_size, image_model, freeze_image, alignment)
        for round_index in range(rounds):
            order = settings if round_index % 2 == 0 else settings[::-1]
            for setting in order:
                setting_model = _model_of(model, setting, naive_alignment)
                job = {"mode": mode, "setting": setting, "flags": flags[setting], "model": setting_model,
                       "batch": batch, "steps": steps, "max_tokens": recipe.data.max_tokens if recipe else 60,
                       "freeze_image": freeze_image, "workload": directory, "profile": profile}
                results[setting].append(_run_worker(job))
                if progress:
                    progress(f"round {round_index + 1}/{rounds} {setting}: {results[setting][-1]['examples_per_s']:.2f} ex/s")
    return _summary(results, settings, only, ablate, profile)


def _summary(results: dict[str, list[dict]], settings: list[str], only: str | None, ablate: bool,
             profile: bool) -> dict:
    """Each setting's figures under its name (`without-NAME` under "without"), and optimised/naive as "ratio"."""
    figures = {setting: _figures(runs) for setting, runs in results.items()}
    if profile:
        for setting, runs in results.items():
            figures[setting]["profile"] = runs[-1]["profile"]
    summary = {setting: figures[setting] for setting in SETTINGS if setting in figures}
    if only and only not in SETTINGS:
        summary[only] = figures[only]
    if "naive" in figures and "optimised" in figures:
        summary["ratio"] = figures["optimised"]["examples_per_s"] / figures["naive"]["examples_per_s"]
    summary.update({setting: figures[setting] for setting in settings
                    if setting.startswith(("alignment-", "fusion-", "with-"))})
    if "alignment-none" in figures and "optimised" in figures:
        # what the optimised setting's alignment loss adds to a whole step, overlap included: the step against the
        # same step without alignment
        summary["alignment_cost"] = figures["optimised"]["step_ms"] / figures["alignment-none"]["step_ms"] - 1
    if ablate:
        summary["without"] = {setting[len("without-"):]: figures[setting] for setting in settings
                              if setting.startswith("without-")}
    return summary


def _settings(mode: str, freeze_image: bool, only: str | None, ablate: bool, also_alignments,
              compile: bool = False) -> list[str]:
    settings = ([only] if only else list(SETTINGS)) + ["with-compile"] * compile
    if ablate:
        optimisations = applicable(mode, freeze_image)
        settings += [f"without-{name}" for name in optimisations]
        settings += [] if "workers" in optimisations else ["with-workers"]
    return settings + [f"alignment-{name}" for name in also_alignments]


def _model_of(model: dict, setting: str, naive_alignment: str | None) -> dict:
    """The model a setting times: `naive` with `naive_alignment`, `alignment-NAME` with that alignment loss and
    `fusion-NAME` with that fusion head (default options; `fusion-text` without the image encoder, the text-only
    row)."""
    if setting.startswith("fusion-"):
        head = setting[len("fusion-"):]
        return {**model, "fusion_head": {"name": head}, **({"image_encoder": None} if head == "text" else {})}
    name = naive_alignment if setting == "naive" else setting.partition("alignment-")[2] or None
    return {**model, "alignment_loss": {"name": name}} if name else model


def _frozen(recipe) -> bool:
    return recipe.image_encoder is not None and bool(getattr(recipe.image_encoder, "freeze", False))


def _figures(runs: list[dict]) -> dict:
    """The median speed over the rounds, the highest peak, and where measured the alignment's share of a step."""
    figures = {"examples_per_s": statistics.median(r["examples_per_s"] for r in runs),
               "peak_mb": max(r["peak_mb"] for r in runs), "rounds": [r["examples_per_s"] for r in runs],
               "step_ms": statistics.median(r["step_ms"] for r in runs)}
    if all("alignment_ms" in r for r in runs):
        figures["alignment_ms"] = statistics.median(r["alignment_ms"] for r in runs)
        figures["alignment_share"] = figures["alignment_ms"] / figures["step_ms"]
    return figures


def _run_worker(job: dict) -> dict:
    code = "import sys, json; from mmlabel.benchmark import worker; print(json.dumps(worker(json.loads(sys.argv[1]))))"
    result = subprocess.run([sys.executable, "-c", code, json.dumps(job)], capture_output=True, text=True)
    if result.returncode != 0:
        last = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else ""
        if last.startswith("mmlabel.errors."):  # a user error (a component's options): one line, as elsewhere
            from mmlabel import errors

            kind, _, message = last[len("mmlabel.errors."):].partition(": ")
            raise getattr(errors, kind, errors.MMLabelError)(message)
        raise RuntimeError(f"benchmark worker ({job['setting']}) failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def worker(job: dict) -> dict:
    """One setting, in its own process: build the model, warm up, then time `steps` batches."""
    if "allocator" in job["flags"]:
        from mmlabel.device import keep_freed_memory

        keep_freed_memory()
    import torch

    from mmlabel.device import resolve_device

    torch.manual_seed(0)
    device = resolve_device("auto")
    model, dataset, collate = _build(job, device)
    batches = _batches(dataset, collate, job)
    step = (_train_step if job["mode"] == "train" else _predict_step)(model, device, job["flags"])
    if "compile" in job["flags"]:  # the encoders and the fusion head's emissions; the CRF's loops stay eager
        model._encode = torch.compile(model._encode)
    for _ in range(3 if "compile" in job["flags"] else 1):
        step(next(batches))  # warm-up: first-call allocations, kernel selection (and compilation, shapes)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    profiler = _profiler(device) if job.get("profile") else contextlib.nullcontext()
    examples, started = 0, time.perf_counter()
    with profiler, AlignmentInputs(model) as alignment_inputs:
        for _ in range(job["steps"]):
            batch = next(batches)
            step(batch)
            examples += batch["input_ids"].shape[0]
        if device.type == "cuda":
            torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    result = {"examples_per_s": examples / seconds, "peak_mb": round(peak, 1), "device": device.type,
              "step_ms": 1000 * seconds / job["steps"]}
    if alignment_inputs.calls:
        result["alignment_ms"] = alignment_inputs.time(model.alignment_loss, job["mode"] == "train", device,
                                                       "bf16" in job["flags"]) / job["steps"]
    if job.get("profile"):
        sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
        result["profile"] = profiler.key_averages(group_by_input_shape=True).table(sort_by=sort, row_limit=25,
                                                                                   max_name_column_width=50)
    return result


def _profiler(device):
    """torch.profiler over the timed steps, with input shapes (which weight a copy or a product belongs to)."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    return profile(activities=activities, record_shapes=True)


def _build(job: dict, device):
    from mmlabel.data.batches import Collator, TaggingDataset
    from mmlabel.data.example import Example
    from mmlabel.data.image_store import DecodedImages, pixel_source
    from mmlabel.data.images import ImageLoader
    from mmlabel.data.token_rows import TokenRows
    from mmlabel.feature_cache import ImageFeatureCache
    from mmlabel.model import TaggingModel
    from mmlabel.recipe import recipe_from_dict
    from mmlabel.registry import build

    workload = Path(job["workload"])
    recipe = recipe_from_dict(with_attention(job["model"], "attention" in job["flags"]))
    labels = ["NEG", "NEU", "POS"] if recipe.metric.name == "mabsa" else ["LOC", "MISC", "ORG", "PER"]
    scheme = build("tag_scheme", recipe.data.tag_scheme, labels=labels)
    model = TaggingModel.for_scheme(recipe, scheme)
    model.to(device)
    images = ImageLoader(workload, "error")
    sentences = json.loads((workload / "sentences.json").read_text())
    names = sorted(path.name for path in workload.glob("*.jpg"))
    examples = [Example(str(i), words, names[i % len(names)]) for i, words in enumerate(sentences)]
    flags, encoder, max_tokens = job["flags"], model.image_encoder, job.get("max_tokens", 60)
    pixels = None
    if encoder is not None:  # the store in the workload's folder, filled here, before the timed steps
        pixels = (pixel_source(images, encoder, root=workload / "store") if "store" in flags
                  else DecodedImages(images, encoder.transform))
        pixels.prepare([example.image for example in examples])
    features = None
    if "cache" in flags and encoder is not None:
        features = ImageFeatureCache(encoder, pixels, device, "bf16" if "bf16" in flags else "fp32")
        features.fill([example.image for example in examples])
    # tokenised once where batches are padded to their longest; the naive padding to max_tokens tokenises each batch
    text = TokenRows.for_encoder(model.text_encoder, max_tokens) if {"store", "padding"} <= set(flags) else None
    dataset = TaggingDataset(examples, scheme, pixels, features, text)
    if "padding" not in flags:
        tokenize = _PadTo(model.text_encoder.tokenize, model.text_encoder.tokenizer.pad_token_id)
        return model, dataset, Collator(tokenize, max_tokens)
    return model, dataset, Collator.for_encoder(model.text_encoder, max_tokens)


class _PadTo:
    """The reference code's padding: every batch padded to `max_tokens` whatever its sentences' lengths."""

    def __init__(self, tokenize, pad_id: int):
        self.tokenize, self.pad_id = tokenize, pad_id

    def __call__(self, words, max_tokens: int):
        import torch.nn.functional as F

        batch = self.tokenize(words, max_tokens)
        missing = max_tokens - batch["input_ids"].shape[1]
        batch["input_ids"] = F.pad(batch["input_ids"], (0, missing), value=self.pad_id)
        batch["attention_mask"] = F.pad(batch["attention_mask"], (0, missing), value=0)
        return batch


def _batches(dataset, collate, job: dict):
    """An endless stream of batches: length-bucketed or random, images decoded in a worker or in this process."""
    from torch.utils.data import DataLoader

    from mmlabel.data.batches import make_loader

    flags, predict = job["flags"], job["mode"] == "predict"
    batch_size = 32 if predict and "inference" in flags else job["batch"]
    workers = 1 if "workers" in flags and dataset.features is None else 0
    if "padding" in flags:
        loader = make_loader(dataset, collate, batch_size, shuffle=not predict, seed=0, workers=workers)
    else:
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, collate_fn=collate, num_workers=workers,
                            persistent_workers=workers > 0)
    while True:
        yield from loader


def _train_step(model, device, flags: list[str]):
    import torch

    from mmlabel.device import autocast

    parameters = [p for p in model.parameters() if p.requires_grad]
    # the reference code's AdamW steps parameter by parameter; the optimised setting takes the fused kernel
    optimizer = torch.optim.AdamW(parameters, lr=2e-5, fused="fused_adamw" in flags and device.type in ("cpu", "cuda"))
    model.train()

    def step(batch):
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items() if k != "index"}
        with autocast(device, "bf16" if "bf16" in flags else "fp32"):
            loss = model(batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def _predict_step(model, device, flags: list[str]):
    import torch

    from mmlabel.device import autocast

    model.eval()
    grad_off = torch.inference_mode if "inference" in flags else torch.no_grad

    def step(batch):
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items() if k != "index"}
        with grad_off(), autocast(device, "bf16" if "bf16" in flags else "fp32"):
            model.decode(batch)

    return step
