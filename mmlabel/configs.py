"""The base of every component's options, and of the components built from them. Importing it imports no torch, so
that a component's `Config` can live where a recipe is checked without loading the component."""
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict


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
