"""Experiment files (`recipes/experiments/*.toml`, shipped as package data: see `mmlabel.recipe_files`): a saved
sweep, the base recipe, its grid, seeds and figure, with a `[tiny]` table that reruns the same experiment with tiny
random encoders on the synthetic data.

    description = "..."               what the experiment reproduces
    recipe = "../dtca.toml"           the base recipe: a path relative to this file, or a built-in name ("dtca")
    seeds = [1, 2, 3]
    set = ["train.epochs=20"]         --set overrides of the base recipe (optional)
    only = {dataset = ["twitter2015"]}   the values run by default on some axes (--only replaces it)
    [grid]                            axes shared by every cell: a list of values of a recipe key, or a table
    text = {bert = {"text_encoder.checkpoint" = "bert-base-uncased"}, ...}   of named sets of overrides
    [[grids]]                         optional alternatives, each combined with [grid]; the cells are their union
    "loss.alpha" = [0.1, 0.3]
    [figure]                          see mmlabel.experiments.figures
    [tiny]                            replaces recipe, seeds, set, only where given; tiny.axes.NAME replaces axis NAME

String values may contain `{data_root}`, replaced by `--data-root`.
"""
import copy
from dataclasses import dataclass
from pathlib import Path

from mmlabel.errors import RecipeError
from mmlabel.experiments.grid import Axis, axes_from_table
from mmlabel.recipe import read_raw
from mmlabel.recipe_files import EXPERIMENTS, find_file

FIELDS = {"description", "recipe", "seeds", "set", "only", "grid", "grids", "figure", "tiny"}
TINY_FIELDS = {"recipe", "seeds", "set", "only", "axes"}


@dataclass
class Experiment:
    """A loaded experiment file, with `--tiny` and `--data-root` already applied."""

    name: str
    description: str
    recipe: Path
    seeds: list[int]
    sets: list[str]
    only: dict[str, list[str]]
    grids: list[list[Axis]]
    figure: dict


def find_experiment(name: str) -> Path:
    """A built-in experiment's name (encoder-swap, ablation, alpha-beta) or the path of an experiment file."""
    return find_file(name, EXPERIMENTS, what="experiment")


def load_experiment(name: str, tiny: bool = False, data_root: Path | None = None) -> Experiment:
    """Read the experiment file, apply its `[tiny]` table where asked, and fill in `{data_root}`."""
    path = find_experiment(name)
    raw = read_raw(path)
    _check_fields(raw, FIELDS, str(path))
    if tiny:
        raw = _tiny(raw, path)
    raw = _fill_data_root(raw, data_root, str(path))
    grids = _grids(raw, str(path))
    return Experiment(
        name=path.stem, description=raw.get("description", ""),
        recipe=find_file(raw["recipe"], base=path.parent).resolve(),
        seeds=[int(seed) for seed in raw.get("seeds", [1])], sets=list(raw.get("set", [])),
        only={axis: [str(v) for v in values] for axis, values in raw.get("only", {}).items()},
        grids=grids, figure=raw.get("figure", {"kind": "bars"}),
    )


def _tiny(raw: dict, path: Path) -> dict:
    """The experiment with its `[tiny]` table applied: top-level fields replaced, named axes swapped."""
    tiny = raw.get("tiny")
    if tiny is None:
        raise RecipeError(f"{path}: this experiment has no [tiny] table")
    _check_fields(tiny, TINY_FIELDS, f"{path}: tiny")
    result = copy.deepcopy(raw)
    result.update({key: value for key, value in tiny.items() if key != "axes"})
    for name, axis in tiny.get("axes", {}).items():
        tables = [result.get("grid", {})] + result.get("grids", [])
        if not any(name in table for table in tables):
            raise RecipeError(f"{path}: tiny.axes.{name}: no axis {name!r} in the grid")
        for table in tables:
            if name in table:
                table[name] = axis
    return result


def _grids(raw: dict, where: str) -> list[list[Axis]]:
    if "recipe" not in raw:
        raise RecipeError(f"{where}: recipe: the base recipe is missing")
    shared = axes_from_table(raw.get("grid", {}), f"{where}: grid")
    alternatives = [axes_from_table(table, f"{where}: grids") for table in raw.get("grids", [])]
    return [shared + axes for axes in alternatives] if alternatives else [shared]


def _fill_data_root(value, data_root: Path | None, where: str):
    """Replace `{data_root}` in every string; an experiment that needs it without --data-root is an error."""
    if isinstance(value, dict):
        return {key: _fill_data_root(item, data_root, where) for key, item in value.items()}
    if isinstance(value, list):
        return [_fill_data_root(item, data_root, where) for item in value]
    if isinstance(value, str) and "{data_root}" in value:
        if data_root is None:
            raise RecipeError(f"{where}: this experiment reads the benchmark data: give --data-root "
                              "(or --tiny for the synthetic data)")
        return value.replace("{data_root}", str(Path(data_root).expanduser().resolve()))
    return value


def _check_fields(table: dict, allowed: set, where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise RecipeError(f"{where}: unknown key {unknown[0]!r}; keys: {', '.join(sorted(allowed))}")
