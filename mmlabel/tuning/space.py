"""A search space in TOML over any recipe key, for `mmlabel tune` (Optuna): each `[params."key.path"]` is a float
(optionally on a log scale or with a step), an int or a categorical, component names included; `[pruner]` and
`[sampler]` choose and set up Optuna's pruner and TPE sampler.

    [params."train.lr"]
    type = "float"
    low = 1e-4
    high = 1e-2
    log = true

    [params."fusion_head.name"]
    type = "categorical"
    choices = ["dtca", "concat", "gated"]

    [pruner]
    name = "median"        # median (default), percentile, successive_halving, hyperband or none
    n_startup_trials = 3   # the rest are the pruner's own options

    [sampler]
    seed = 1               # TPE's seed (a worker of `--jobs` adds its index)
"""
import copy
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mmlabel.errors import RecipeError

PRUNERS = {"median": "MedianPruner", "percentile": "PercentilePruner", "successive_halving": "SuccessiveHalvingPruner",
           "hyperband": "HyperbandPruner", "none": "NopPruner"}


class Param(BaseModel):
    """One recipe key's range: float (low, high, log or step), int (low, high, log or step) or categorical."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = Field(None, gt=0)
    choices: list[str | int | float | bool] | None = None

    @model_validator(mode="after")
    def _complete(self) -> "Param":
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical needs choices = [...]")
            if self.low is not None or self.high is not None:
                raise ValueError("a categorical takes choices, not low and high")
            return self
        if self.choices is not None:
            raise ValueError(f"a {self.type} takes low and high, not choices")
        if self.low is None or self.high is None or self.low >= self.high:
            raise ValueError(f"a {self.type} needs low < high")
        if self.log and (self.step is not None or self.low <= 0):
            raise ValueError("log = true needs low > 0 and no step")
        return self

    def suggest(self, trial, key: str) -> Any:
        if self.type == "categorical":
            return trial.suggest_categorical(key, self.choices)
        if self.type == "int":
            return trial.suggest_int(key, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(key, self.low, self.high, step=self.step, log=self.log)

    def corners(self) -> list:
        """The values checked against the recipe before the search starts: the ends, or every choice."""
        if self.type == "categorical":
            return list(self.choices)
        return [int(self.low), int(self.high)] if self.type == "int" else [self.low, self.high]


class PrunerSection(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: Literal["median", "percentile", "successive_halving", "hyperband", "none"] = "median"


class SamplerSection(BaseModel):
    model_config = ConfigDict(extra="allow")
    seed: int = 1


class Space(BaseModel):
    """A search space file: the parameters, the pruner and the sampler."""

    model_config = ConfigDict(extra="forbid")
    params: dict[str, Param]
    pruner: PrunerSection = PrunerSection()
    sampler: SamplerSection = SamplerSection()

    def suggest(self, trial) -> dict[str, Any]:
        """A value for every key, asked of the trial (TPE, or the values of an enqueued trial)."""
        return {key: param.suggest(trial, key) for key, param in self.params.items()}

    def make_pruner(self):
        import optuna

        return getattr(optuna.pruners, PRUNERS[self.pruner.name])(**(self.pruner.model_extra or {}))

    def make_sampler(self, worker: int = 0):
        import optuna

        return optuna.samplers.TPESampler(seed=self.sampler.seed + worker, **(self.sampler.model_extra or {}))


def load_space(path: str | Path) -> Space:
    """Read and check a space file (a path, or a built-in name such as `quickstart` for recipes/spaces/); every error
    names the file and the key."""
    path = find_space(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise RecipeError(f"{path}: {error}") from None
    try:
        space = Space(**raw)
    except ValidationError as error:
        detail = error.errors()[0]
        key = ".".join(f'"{part}"' if "." in str(part) else str(part) for part in detail["loc"])
        raise RecipeError(f"{path}: {key}: {detail['msg']}") from None
    if not space.params:
        raise RecipeError(f"{path}: params: no parameter to search")
    _check_pruner(space, path)
    return space


def find_space(path: str | Path) -> Path:
    """A path as given, else a built-in space of recipes/spaces/ by name (`quickstart`)."""
    from mmlabel.recipe_files import find_file

    beside = Path(__file__).resolve().parents[2] / "recipes" / "spaces" / f"{path}.toml"
    if not Path(path).exists() and beside.is_file():  # a checkout on PYTHONPATH before an installed mmlabel
        return beside
    return find_file(path, folder="spaces", what="search space")


def _check_pruner(space: Space, path: Path) -> None:
    try:
        space.make_pruner()
    except ImportError:
        return  # optuna missing: the command says so
    except (TypeError, ValueError) as error:
        raise RecipeError(f"{path}: pruner: {error}") from None


def check_against(space: Space, base: dict, source: str, space_path: str) -> None:
    """Every end of every range, and every choice, set alone on the base recipe, must give a valid recipe: a typo in
    a key or a component name fails before the first trial, naming the space file and the key."""
    import contextlib
    import io

    from mmlabel.recipe import recipe_from_dict, set_keys

    for key, param in space.params.items():
        for value in param.corners():
            raw = copy.deepcopy(base)
            with contextlib.redirect_stderr(io.StringIO()):  # the notes of a swapped component: said per trial
                set_keys(raw, [(key, value)], where=f"{space_path}: params.\"{key}\"")
            recipe_from_dict(raw, source=f"{source} with {key} = {value!r} from {space_path}")
