"""The base of every component's options, and of the components built from them. Importing it imports no torch, so
that a component's `Config` can live where a recipe is checked without loading the component."""
import difflib
import typing
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError


class ComponentConfig(BaseModel):
    """Base of every component's `Config`: unknown options are errors, so a typo fails with its key path."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class Configured:
    """Base of a component built from its `Config`: `Component(config)` as the registry builds it, or
    `Component(**options)` from Python; either way `self.config` is the validated config. Put it first among the
    bases (`class Head(Configured, nn.Module)`): it calls the next base's `__init__` with no arguments."""

    Config: ClassVar[type[ComponentConfig]] = ComponentConfig

    def __init__(self, config: ComponentConfig | None = None, **options: Any):
        super().__init__()
        if config is not None and options:
            raise TypeError(f"{type(self).__name__}: give a config or options ({', '.join(options)}), not both")
        if config is not None and not isinstance(config, self.Config):
            raise TypeError(f"{type(self).__name__}: config is a {type(config).__name__}, not its "
                            f"{self.Config.__qualname__}")
        self.config = config if config is not None else self.Config(**options)


def error_line(error: ValidationError, model: type[BaseModel], prefix: str = "") -> str:
    """The first problem of a pydantic `ValidationError` of `model` as one line, `KEY.PATH: what is wrong`, with the
    key path under `prefix`. An unknown key (a typo under `extra="forbid"`) is `unknown key train.lrr (did you mean
    train.lr?)`, or lists the keys its section takes where none is close."""
    detail = error.errors()[0]
    loc = [str(part) for part in detail["loc"]]
    path = ".".join(part for part in (prefix, *loc) if part)
    if detail["type"] != "extra_forbidden":
        return f"{path}: {detail['msg']}"
    section = _model_at(model, loc[:-1])
    keys = list(section.model_fields) if section is not None else []
    where = ".".join(part for part in (prefix, *loc[:-1]) if part)
    close = difflib.get_close_matches(loc[-1], keys, n=1, cutoff=0.6)
    if close:
        return f"unknown key {path} (did you mean {'.'.join(part for part in (where, close[0]) if part)}?)"
    if keys:
        return f"unknown key {path} ({where or 'the top level'} takes: {', '.join(keys)})"
    return f"unknown key {path}"


def _model_at(model: type[BaseModel], loc: list[str]) -> type[BaseModel] | None:
    """The pydantic model of the section at key path `loc` inside `model` (through optional fields), or None."""
    for part in loc:
        field = model.model_fields.get(part)
        if field is None:
            return None
        candidates = [field.annotation, *typing.get_args(field.annotation)]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if model is None:
            return None
    return model
