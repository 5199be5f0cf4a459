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
import pickle
import re
import socket
import tomllib
import warnings
from collections import OrderedDict
from pathlib import Path

import torch

from mmlabel import __version__
from mmlabel.errors import RunError
from mmlabel import atomic

FORMAT_VERSION = 1
# Set to 1 for a --resume of a checkpoint you trust that a safe load refuses (one written before mmlabel stored its
# RNG states as tensors): it is then unpickled in full. Never needed for a checkpoint this version wrote.
TRUST_VARIABLE = "MMLABEL_TRUST_CHECKPOINTS"
# What a checkpoint may hold besides tensors (exactly these types: NumPy's float64 is a float subclass that a safe load
# refuses).
PLAIN_TYPES = (int, float, str, bool, type(None))


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
        """`checkpoint`: tensors and plain values only (`check_loadable`), which `load_checkpoint` reads safely."""
        check_loadable(checkpoint)
        with atomic.atomic_path(self.checkpoint_path) as temporary:
            torch.save(checkpoint, temporary)

    def load_checkpoint(self) -> dict:
        """The checkpoint, unpickled with `weights_only=True`: tensors and plain values, never an object whose
        unpickling runs code, so that a run directory received from someone else can be resumed. A checkpoint that
        needs more is refused with one line; under MMLABEL_TRUST_CHECKPOINTS=1 it is unpickled in full, with a
        warning."""
        path = self.checkpoint_path
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "Detected pickle protocol")  # a plain pickle's, refused below
                return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as error:
            if "Weights only load failed" not in str(error):
                raise RunError(_unreadable(path, error)) from None
        except Exception as error:  # written atomically, so only a file damaged from outside gets here
            raise RunError(_unreadable(path, error)) from None
        needs = _unsafe_globals(path)
        if os.environ.get(TRUST_VARIABLE) != "1":
            raise RunError(f"{path}: refused: it needs {needs} to load, beyond the tensors and plain values of an "
                           "mmlabel checkpoint, and unpickling those can run code (an earlier mmlabel's checkpoint, or "
                           f"not mmlabel's); if you trust where it came from, resume with {TRUST_VARIABLE}=1, else "
                           "start the run again without --resume in a new --out")
        warnings.warn(f"{path}: unpickled in full, trusting its {needs} ({TRUST_VARIABLE}=1)", stacklevel=2)
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except Exception as error:
            raise RunError(_unreadable(path, error)) from None

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

        predicted = [Example(e.id, e.tokens, e.image, spans, context=e.context) for e, spans in zip(examples, predictions)]
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
    recipe.get("train", {}).pop("report_to", None)  # where the run reports to changes nothing it computes
    recipe.get("data", {}).pop("tokenizer", None)  # splits raw text at prediction only; runs before it had none
    for path in (kind.section for kind in KINDS.values()):
        *parents, key = path.split(".")
        section = recipe
        for parent in parents:
            section = section.get(parent, {})
        if isinstance(section.get(key), str):
            section[key] = {"name": section[key]}
    return recipe


def check_loadable(value, where: str = "checkpoint") -> None:
    """Raise TypeError naming the first value inside `value` that `torch.load(weights_only=True)` would refuse: only
    dicts, lists and tuples of tensors and `PLAIN_TYPES` pass, so that no checkpoint is written that a resume
    cannot read."""
    if isinstance(value, torch.Tensor) or type(value) in PLAIN_TYPES:
        return
    if type(value) in (dict, OrderedDict):  # a module's state_dict is an OrderedDict
        for key, item in value.items():
            if type(key) not in PLAIN_TYPES:
                raise TypeError(f"{where}: a key of type {type(key).__qualname__}, which a safe load refuses")
            check_loadable(item, f"{where}[{key!r}]")
    elif type(value) in (list, tuple):
        for index, item in enumerate(value):
            check_loadable(item, f"{where}[{index}]")
    else:
        raise TypeError(f"{where}: {type(value).__module__}.{type(value).__qualname__}, which a safe load refuses; "
                        "store tensors and plain values")


def _unsafe_globals(path: Path) -> str:
    """The globals a pickled checkpoint names beyond what a safe load allows, read without unpickling it."""
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # not torch.save's zip format: a plain pickle
        names = []
    return ", ".join(sorted(names)) if names else "objects other than tensors and plain values"


def _unreadable(path: Path, error: Exception) -> str:
    reason = (str(error).strip().splitlines() or [""])[0]  # one line: torch's messages run over several
    return (f"{path}: cannot read the checkpoint ({type(error).__name__}: {reason}); "
            "start the run again without --resume in a new --out")


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
