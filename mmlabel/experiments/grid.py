"""Sweep grids: axes of values, their cartesian product as cells, and each cell's stable directory name.

An axis is either a recipe key with plain values (`--grid loss.alpha=0.1,0.3`, or `"loss.alpha" = [0.1, 0.3]` in
an experiment file), or a named axis whose values are named sets of overrides changed together
(`text = {bert = {"text_encoder.checkpoint" = "bert-base-uncased"}, ...}`). A cell takes one value of every axis;
its overrides apply in axis order, so a later axis wins on a key that two axes set.
"""
import itertools
import json
import re
from dataclasses import dataclass, field
from typing import Any

from mmlabel.errors import RecipeError
from mmlabel.recipe import parse_value


@dataclass
class Choice:
    """One value of an axis: its label (in tables, figures and directory names) and the overrides it applies."""

    label: str
    overrides: dict[str, Any]


@dataclass
class Axis:
    """A swept dimension: a name (the recipe key, or the name of a set of overrides) and its choices."""

    name: str
    choices: list[Choice]

    @property
    def labels(self) -> list[str]:
        return [choice.label for choice in self.choices]


@dataclass
class Cell:
    """One point of the grid: a label per axis, and the overrides, in axis order, that make its recipe."""

    labels: dict[str, str]
    overrides: list[tuple[str, Any]] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The directory name: `axis=label` joined by `__`, stable across invocations; `base` for an empty grid."""
        if not self.labels:
            return "base"
        return "__".join(f"{_short(axis)}={_safe(label)}" for axis, label in self.labels.items())


def parse_grid_option(text: str, option: str = "--grid") -> Axis:
    """`key.path=v1,v2,...` from the command line: each value read as a TOML value, else as a string; commas
    inside brackets or quotes do not split (`model_args.depths=[1,1],[2,2]`)."""
    key, separator, values = text.partition("=")
    key = key.strip()
    if not separator or not key or " " in key:
        raise RecipeError(f"{option} {text}: expected key.path=v1,v2,...")
    pieces = _split_top_level(values, f"{option} {text}")
    if not pieces or any(not piece for piece in pieces):
        raise RecipeError(f"{option} {text}: an empty value; expected key.path=v1,v2,...")
    choices = [Choice(value_label(parse_value(piece)), {key: parse_value(piece)}) for piece in pieces]
    axis = Axis(key, choices)
    _check_unique(axis, f"{option} {text}")
    return axis


def axes_from_table(table: dict, where: str) -> list[Axis]:
    """Axes of an experiment file's grid table: a list is plain values of that key, a table is named sets."""
    axes = []
    for name, spec in table.items():
        if isinstance(spec, list) and spec:
            axis = Axis(name, [Choice(value_label(value), {name: value}) for value in spec])
        elif isinstance(spec, dict) and spec and all(isinstance(v, dict) for v in spec.values()):
            axis = Axis(name, [Choice(label, dict(overrides)) for label, overrides in spec.items()])
        else:
            raise RecipeError(f"{where}: {name}: expected a list of values or a table of named override sets")
        _check_unique(axis, f"{where}: {name}")
        axes.append(axis)
    return axes


def expand(grids: list[list[Axis]], only: dict[str, list[str]] | None = None) -> list[Cell]:
    """Every cell of every grid (cartesian product within a grid, union across grids, duplicates once), keeping
    only the labels listed in `only` for the axes it names."""
    only = only or {}
    _check_only(grids, only)
    cells: dict[str, Cell] = {}
    for axes in grids:
        kept = [Axis(a.name, [c for c in a.choices if a.name not in only or c.label in only[a.name]]) for a in axes]
        for choices in itertools.product(*(axis.choices for axis in kept)):
            cell = Cell({axis.name: choice.label for axis, choice in zip(kept, choices)},
                        [item for choice in choices for item in choice.overrides.items()])
            earlier = cells.setdefault(cell.name, cell)
            if earlier.overrides != cell.overrides:
                raise RecipeError(f"grid: two different cells share the name {cell.name!r}; rename a value")
    return list(cells.values())


def value_label(value: Any) -> str:
    """How a plain value is written in tables and names: strings as they are, everything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def _split_top_level(values: str, where: str) -> list[str]:
    pieces, depth, quote, current = [], 0, None, ""
    for char in values:
        if quote:
            quote = None if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        elif char == "," and depth == 0:
            pieces.append(current.strip())
            current = ""
            continue
        current += char
    if depth or quote:
        raise RecipeError(f"{where}: unbalanced brackets or quotes")
    return [*pieces, current.strip()] if values.strip() else []


def _check_unique(axis: Axis, where: str) -> None:
    seen = set()
    for label in axis.labels:
        if label in seen:
            raise RecipeError(f"{where}: the value {label!r} is given twice")
        seen.add(label)


def _check_only(grids: list[list[Axis]], only: dict[str, list[str]]) -> None:
    """Every axis and label that `only` names must exist somewhere in the grids."""
    known: dict[str, list[str]] = {}
    for axes in grids:
        for axis in axes:
            known.setdefault(axis.name, []).extend(label for label in axis.labels if label not in known.get(axis.name, []))
    for name, labels in only.items():
        if name not in known:
            raise RecipeError(f"--only {name}: no such axis; axes: {', '.join(known) or '(none)'}")
        unknown = [label for label in labels if label not in known[name]]
        if unknown:
            raise RecipeError(f"--only {name}={','.join(unknown)}: no such value; values: {', '.join(known[name])}")


def _short(axis: str) -> str:
    """The last part of a dotted key: `loss.alpha` -> `alpha`, enough to tell axes apart in a name."""
    return _safe(axis.rsplit(".", 1)[-1])


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", text).strip("-") or "x"
