"""A run directory: everything a run writes, and everything `Tagger.load` needs to rebuild the model from it.

    recipe.toml               the resolved recipe (enough to rebuild the model)
    tags.json                 the tag scheme: name, options, labels, tags (what rebuilds it)
    text_encoder/, image_encoder/   what each encoder's `export` wrote: tokenizer, architecture, transform
    architecture.json         the options that rebuild each encoder from those folders, with no download
    model.safetensors         the dev-selected weights
    checkpoint.pt             the last epoch's full training state, for --resume
    log.jsonl                 one JSON line per epoch
    metrics.json              {"dev": {...}, "test": {...}, "best_epoch": n}
    predictions-{dev,test}.jsonl
    run.json                  the mmlabel version, the run's status, and the host and pid that last started it

`train --seeds 1,2,3 --out runs/qs` writes a run into each of runs/qs/seed-1, seed-2, seed-3 and their summary into
runs/qs/summary.json: `seed_runs` finds them.
"""
import json
import os
import re
import socket
import tomllib
from pathlib import Path

import torch

from mmlabel import __version__
from mmlabel.errors import RunError
from mmlabel import atomic

FORMAT_VERSION = 1


class RunDir:
    """The files of one run, each written atomically."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    recipe_path = property(lambda self: self.path / "recipe.toml")
    tags_path = property(lambda self: self.path / "tags.json")
    architecture_path = property(lambda self: self.path / "architecture.json")
    model_path = property(lambda self: self.path / "model.safetensors")
    checkpoint_path = property(lambda self: self.path / "checkpoint.pt")
    log_path = property(lambda self: self.path / "log.jsonl")
    metrics_path = property(lambda self: self.path / "metrics.json")
    info_path = property(lambda self: self.path / "run.json")

    # -- starting ------------------------------------------------------------------------------------------
    def start(self, recipe_toml: str, resume: bool) -> None:
        """Claim the directory for a run of this recipe; a directory holding another run is an error."""
        if self.recipe_path.exists():
            if resume and comparable(self.recipe_path.read_text(encoding="utf-8")) != comparable(recipe_toml):
                raise RunError(f"{self.path}: --resume with a recipe that differs from the run's recipe.toml")
            if not resume:
                raise RunError(f"{self.path}: the output directory already holds a run "
                               "(pass --resume to continue it, or choose another --out)")
        elif self.path.exists() and any(self.path.iterdir()) and not resume:
            raise RunError(f"{self.path}: the output directory is not empty and holds no mmlabel run")
        self.path.mkdir(parents=True, exist_ok=True)
        atomic.remove_temporaries(self.path)  # left by a run killed while writing
        atomic.write_text(self.recipe_path, recipe_toml)
        self.set_status("running", host=socket.gethostname(), pid=os.getpid())  # for `mmlabel sweep-status`

    def set_status(self, status: str, **facts) -> None:
        """run.json: the mmlabel version, the run format, the status and what the run chose (`precision`), kept
        from the last write where not given."""
        kept = self.info()
        facts = {key: value for key, value in kept.items() if key not in ("mmlabel", "format", "status")} | facts
        atomic.write_json(self.info_path, {"mmlabel": __version__, "format": FORMAT_VERSION, "status": status, **facts})

    def info(self) -> dict:
        try:
            return json.loads(self.info_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return {}

    # -- writing -------------------------------------------------------------------------------------------
    def save_tags(self, scheme_name: str, labels: list[str], tags: list[str], options: dict | None = None) -> None:
        tags_json = {"scheme": scheme_name, "options": options or {}, "labels": labels, "tags": tags}
        atomic.write_json(self.tags_path, tags_json)

    def save_architecture(self, architecture: dict) -> None:
        """The options that rebuild each encoder from what its `export` wrote into the run (see `export_architecture`
        in mmlabel.training.runner), with paths inside the run stored relative to it."""
        relative = {key: {k: _relative(self.path, v) for k, v in options.items()} for key, options in architecture.items()}
        atomic.write_json(self.architecture_path, relative)

    def save_model(self, model: torch.nn.Module) -> None:
        from safetensors.torch import save_model

        with atomic.atomic_path(self.model_path) as temporary:
            save_model(model, str(temporary))

    def save_weights(self, weights: dict[str, torch.Tensor]) -> None:
        """The dev-selected weights from a state dict on the host (a copy that training no longer changes)."""
        from safetensors.torch import save_file

        with atomic.atomic_path(self.model_path) as temporary:
            save_file({name: tensor.contiguous() for name, tensor in weights.items()}, str(temporary))

    def load_model_weights(self, model: torch.nn.Module) -> None:
        from safetensors.torch import load_file

        weights = load_file(str(self.model_path), device=str(next(model.parameters()).device))
        model.load_state_dict(without_pooler(weights, model), strict=True)

    def save_checkpoint(self, checkpoint: dict) -> None:
        with atomic.atomic_path(self.checkpoint_path) as temporary:
            torch.save(checkpoint, temporary)

    def load_checkpoint(self) -> dict:
        try:
            return torch.load(self.checkpoint_path, map_location="cpu", weights_only=False)
        except Exception as error:  # written atomically, so only a file damaged from outside gets here
            raise RunError(f"{self.checkpoint_path}: cannot read the checkpoint ({type(error).__name__}: {error}); "
                           "start the run again without --resume in a new --out") from None

    def log(self, record: dict) -> None:
        with open(self.log_path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    def keep_log_until(self, epoch: int) -> None:
        """Drop the log records after `epoch` (a resumed run writes them again) and a line torn by a kill."""
        if not self.log_path.exists():
            return
        kept = []
        for line in self.log_path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and record.get("epoch", 0) <= epoch:
                kept.append(line)
        atomic.write_text(self.log_path, "".join(f"{line}\n" for line in kept))

    def save_metrics(self, metrics: dict) -> None:
        atomic.write_json(self.metrics_path, metrics)
        self.set_status("finished")

    def save_predictions(self, split: str, examples: list, predictions: list) -> None:
        from mmlabel.data.example import Example
        from mmlabel.registry import build

        predicted = [Example(e.id, e.tokens, e.image, spans) for e, spans in zip(examples, predictions)]
        path = self.path / f"predictions-{split}.jsonl"
        with atomic.atomic_path(path) as temporary:
            build("dataset_reader", "mmlabel:jsonl").write(predicted, temporary)

    # -- reading -------------------------------------------------------------------------------------------
    def check_complete(self) -> None:
        """A one-line error for a directory that is not a finished run of a compatible version."""
        if not self.path.is_dir():
            raise RunError(f"{self.path}: no such run directory")
        seeds = seed_runs(self.path)
        if seeds:
            raise RunError(f"{self.path} holds the runs of `train --seeds`, one per seed: give one of "
                           f"{', '.join(str(run) for run in seeds)}")
        for required in (self.recipe_path, self.tags_path, self.architecture_path, self.model_path, self.info_path):
            if not required.exists():
                raise RunError(f"{self.path}: incomplete run: {required.name} is missing")
        info = json.loads(self.info_path.read_text(encoding="utf-8"))
        if info.get("format") != FORMAT_VERSION:
            raise RunError(f"{self.path}: run format {info.get('format')} written by mmlabel {info.get('mmlabel')} "
                           f"cannot be read by mmlabel {__version__} (format {FORMAT_VERSION})")

    def recipe(self):
        """The run's recipe, each component named by the qualified name run.json recorded (runs before it recorded
        them: as recipe.toml names them); a component whose distribution is not installed is a one-line error."""
        from mmlabel.recipe import recipe_from_dict, set_key

        raw = tomllib.loads(self.recipe_path.read_text(encoding="utf-8"))
        for path, name in self._pinned_names().items():
            set_key(raw, f"{path}.name", name, where=str(self.info_path))
        return recipe_from_dict(raw, source=str(self.recipe_path))

    def _pinned_names(self) -> dict[str, str]:
        """Recipe key path -> the qualified name run.json recorded, checked to be installed."""
        from mmlabel.errors import ComponentError
        from mmlabel.kinds import KINDS
        from mmlabel.registry import pinned_name

        kinds = {kind.section: kind.name for kind in KINDS.values()}
        recorded = self.info().get("components", {})
        try:
            return {path: pinned_name(kinds[path], record) for path, record in recorded.items() if path in kinds}
        except ComponentError as error:
            raise RunError(f"{self.path}: {error}") from None

    def architecture(self) -> dict:
        """Each encoder's options as its `export` returned them, with paths inside the run made absolute."""
        architecture = json.loads(self.architecture_path.read_text(encoding="utf-8"))
        return {key: {k: _absolute(self.path, v) for k, v in options.items()} for key, options in architecture.items()}

    def tags(self) -> dict:
        """The saved tag scheme: `scheme` (its registered name, qualified where run.json recorded it), `options`,
        `labels`, `tags`."""
        tags = json.loads(self.tags_path.read_text(encoding="utf-8"))
        pinned = self._pinned_names().get("data.tag_scheme", "")
        if pinned.rpartition(":")[2] == tags["scheme"].rpartition(":")[2]:  # the scheme run.json recorded
            tags["scheme"] = pinned
        return tags

    def metrics(self) -> dict:
        if not self.metrics_path.exists():
            raise RunError(f"{self.path}: the run has not finished: metrics.json is missing")
        return json.loads(self.metrics_path.read_text(encoding="utf-8"))


_SEED_FOLDER = re.compile(r"seed-(\d+)")


def seed_runs(path: str | Path) -> list[Path]:
    """The `seed-N` runs that `train --seeds` wrote into `path`, in the order of their seeds; [] where `path` is a run
    itself or holds no such folder."""
    path = Path(path)
    if not path.is_dir() or (path / "recipe.toml").exists():
        return []
    found = [(int(match.group(1)), child) for child in path.iterdir()
             if (match := _SEED_FOLDER.fullmatch(child.name)) and (child / "recipe.toml").exists()]
    return [child for _, child in sorted(found)]


def with_seed_runs(paths: list[str | Path]) -> list[Path]:
    """`paths` with each folder of `train --seeds` replaced by its seed runs (`seed_runs`)."""
    return [run for path in paths for run in (seed_runs(path) or [Path(path)])]


def comparable(recipe_toml: str) -> dict:
    """What `--resume` (and a sweep reusing a finished run) compares: the recipe without `train.effective_batch_size`, which follows the number of
    processes (a run written by N processes resumes with M), with a component section given by name alone
    (`tag_scheme = "bio"`, as runs saved before tag schemes were components have it) read as `{name = "bio"}`, and
    without `data.tokenizer`, which training does not read."""
    from mmlabel.kinds import KINDS

    recipe = tomllib.loads(recipe_toml)
    recipe.get("train", {}).pop("effective_batch_size", None)
    recipe.get("data", {}).pop("tokenizer", None)  # splits raw text at prediction only; runs before it had none
    for path in (kind.section for kind in KINDS.values()):
        *parents, key = path.split(".")
        section = recipe
        for parent in parents:
            section = section.get(parent, {})
        if isinstance(section.get(key), str):
            section[key] = {"name": section[key]}
    return recipe


def _absolute(run_path: Path, value):
    """Paths inside the run are stored relative to it (the run directory can be moved); made absolute on load."""
    if isinstance(value, str) and value.startswith("./"):
        return str(run_path / value[2:])
    return value


def _relative(run_path: Path, value):
    if isinstance(value, str) and Path(value).is_absolute() and Path(value).is_relative_to(run_path.resolve()):
        return "./" + str(Path(value).relative_to(run_path.resolve()))
    return value


def without_pooler(state: dict, model: torch.nn.Module) -> dict:
    """`state` without the text encoder pooler's weights where `model` has none: runs saved before mmlabel dropped
    the unused pooler (mmlabel/text_encoders/hf.py) load into today's model."""
    own = model.state_dict()
    return {key: value for key, value in state.items() if key in own or ".pooler." not in key}
