"""The options of the built-in text encoders: importing them imports no torch, so a recipe is checked without loading
an encoder (`mmlabel recipe check`)."""
from typing import Any, Literal

from pydantic import Field

from mmlabel.configs import ComponentConfig


class HFTextConfig(ComponentConfig):
    checkpoint: str | None = Field(None, description="hub id or local directory of the model (and, by default, of its tokenizer)")
    init: Literal["pretrained", "random"] = Field(
        "pretrained", description="`random`: the architecture from its config with random weights; no weights are read")
    model_type: str | None = Field(
        None, description="family (bert, roberta, albert, electra, ...) for init = random when no config can be read")
    config_overrides: dict[str, Any] = Field(
        {}, description="config fields to override, e.g. {hidden_size = 32, num_hidden_layers = 1} with init = random")
    tokenizer: str | None = Field(None, description="hub id or directory of the tokenizer; default: checkpoint")
    attn_implementation: str | None = Field("sdpa", description="attention kernel; sdpa falls back to eager where unsupported")
    freeze: bool = Field(False, description="keep the encoder's weights fixed")
