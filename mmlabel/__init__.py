"""mmlabel: multimodal sequence labeling (a post's words and its image in, a tag per word out) from swappable,
plugin-provided components. Importing it is cheap: torch and friends load only when a component is built."""
from mmlabel.hookspecs import hookimpl

__version__ = "0.1.0"
__all__ = [
    "ComponentConfig", "ComponentError", "Configured", "MMLabelWarning", "Post", "Prediction", "Tagger", "WordCRF",
    "build", "components", "gather_words", "get", "get_plugin_manager", "hookimpl", "lazy", "load_recipe",
]

_LAZY = {
    "ComponentConfig": "mmlabel.configs",
    "Configured": "mmlabel.configs",
    "ComponentError": "mmlabel.errors",
    "build": "mmlabel.registry",
    "components": "mmlabel.registry",
    "get": "mmlabel.registry",
    "lazy": "mmlabel.registry",
    "get_plugin_manager": "mmlabel.plugins",
    "WordCRF": "mmlabel.fusion.crf",
    "gather_words": "mmlabel.fusion.crf",
    "load_recipe": "mmlabel.recipe",
    "Recipe": "mmlabel.recipe",
    "Tagger": "mmlabel.tagger",
    "Post": "mmlabel.tagger",
    "Prediction": "mmlabel.tagger",
    "MMLabelWarning": "mmlabel.log",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mmlabel' has no attribute {name!r}")
