"""The models `mmlabel bench` times, as recipe dicts with random weights of the real shapes (no download): the
default DTCA at the paper's sizes, or a user's recipe with its own components, loss and sizes; and the timing of
the alignment loss inside a step."""
import time
from pathlib import Path

TEXT_SIZES = {
    "base": {"vocab_size": 50265},  # RobertaConfig() is roberta-base: 12 layers, hidden 768
    "tiny": {"vocab_size": 50265, "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
             "intermediate_size": 128},
}
# A family's base sizes: transformers' default configs are not all base-sized (ALBERT's is xxlarge).
BASE_SIZES = {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072}
FAMILY_BASE = {"roberta": {}, "bert": BASE_SIZES, "albert": {**BASE_SIZES, "embedding_size": 128},
               "electra": {**BASE_SIZES, "embedding_size": 768}}


def default_model(workload: Path, text_size: str, image_model: str, freeze_image: bool, alignment: str) -> dict:
    """DTCA at the paper's sizes: a random RoBERTa-base (or tiny) and a random timm `image_model`."""
    return {
        "text_encoder": {"name": "hf", "init": "random", "model_type": "roberta",
                         "tokenizer": str(workload / "tokenizer"), "config_overrides": TEXT_SIZES[text_size]},
        "image_encoder": {"name": "timm", "model": image_model, "pretrained": False, "freeze": freeze_image},
        "fusion_head": {"name": "dtca", "heads": 8}, "alignment_loss": {"name": alignment},
    }


def recipe_model(recipe, workload: Path, text_size: str) -> tuple[dict, list[str]]:
    """The model sections of `recipe` (components, loss, tag scheme, metric) with random weights of the same shapes,
    and notes on what had to be chosen: an `hf` text encoder from a local folder keeps its config and tokenizer; a
    hub id (not readable offline) becomes a random model of its family at base (or `text_size = tiny`) sizes with
    the workload's tokenizer; a timm or hf_vision image encoder is built with `pretrained = false`."""
    raw = recipe.model_dump(mode="json", exclude_none=True)
    model = {key: raw[key] for key in ("text_encoder", "image_encoder", "fusion_head", "alignment_loss", "metric",
                                       "loss") if key in raw}
    model["data"] = {"tag_scheme": raw["data"]["tag_scheme"]}
    notes = []
    text = model["text_encoder"]
    if text["name"] == "hf" and text.get("init", "pretrained") == "pretrained":
        checkpoint = text.get("checkpoint")
        if checkpoint and Path(checkpoint).is_dir():
            model["text_encoder"] = {**text, "init": "random"}
        else:
            family = _family(str(checkpoint))
            sizes = TEXT_SIZES["tiny"] if text_size == "tiny" else {**FAMILY_BASE[family], "vocab_size": 50265}
            model["text_encoder"] = {"name": "hf", "init": "random", "model_type": family,
                                     "tokenizer": str(workload / "tokenizer"),
                                     "config_overrides": {**sizes, **text.get("config_overrides", {})},
                                     **{k: v for k, v in text.items() if k in ("freeze", "attn_implementation")}}
            notes.append(f"text_encoder: {checkpoint!r} is not a local folder; timed as a random {family} of "
                         f"{text_size} sizes")
    if text["name"] == "hf" and model["text_encoder"].get("tokenizer") == "train":  # learnt from the training words
        model["text_encoder"] = {**model["text_encoder"], "tokenizer": str(workload / "tokenizer")}
    image = model.get("image_encoder")
    if image and image["name"] in ("timm", "hf_vision") and image.get("pretrained", True):
        model["image_encoder"] = {**image, "pretrained": False}
    return model, notes


def with_attention(model: dict, optimised: bool) -> dict:
    """The model with the attention kernels of a setting: SDPA in the text encoder and timm's choice in the image
    encoder, or both written out (the naive setting, as in the reference code)."""
    model = {key: dict(value) if isinstance(value, dict) else value for key, value in model.items()}
    if model["text_encoder"].get("name") == "hf":
        model["text_encoder"]["attn_implementation"] = "sdpa" if optimised else "eager"
    if (model.get("image_encoder") or {}).get("name") == "timm":
        model["image_encoder"]["attention"] = "auto" if optimised else "eager"
    return model


def _family(checkpoint: str) -> str:
    name = checkpoint.lower()
    return next((family for family in ("roberta", "albert", "electra", "bert") if family in name), "roberta")


class AlignmentInputs:
    """Records the inputs of the alignment loss during the timed steps, then times the loss alone on them (forward,
    and backward in training) so that its share of a step is measured on the step's own shapes."""

    def __init__(self, model):
        self.module = getattr(model, "alignment_loss", None)
        self.calls: list[tuple] = []
        self._hook = None

    def __enter__(self) -> "AlignmentInputs":
        if self.module is not None:
            self._hook = self.module.register_forward_pre_hook(self._record)
            begin = getattr(self.module, "begin", None)
            if callable(begin):  # the model starts a deferred loss through `begin`, not `forward`
                def recorded_begin(*inputs):
                    self._record(self.module, inputs)
                    return begin(*inputs)

                self.module.begin = recorded_begin
        return self

    def __exit__(self, *exc) -> None:
        if self._hook is not None:
            self._hook.remove()
            self.module.__dict__.pop("begin", None)

    def _record(self, module, inputs) -> None:
        self.calls.append(tuple(value.detach().clone() if hasattr(value, "detach") else value for value in inputs))

    def time(self, module, train: bool, device, bf16: bool) -> float:
        """Milliseconds the recorded calls take again, one after the other, as in the steps."""
        import torch

        from mmlabel.device import autocast

        started = time.perf_counter()
        for call in self.calls:
            inputs = [value.requires_grad_(train) if torch.is_tensor(value) and value.is_floating_point() else value
                      for value in call]
            with torch.set_grad_enabled(train), autocast(device, "bf16" if bf16 else "fp32"):
                distance = module(*inputs).mean()
            if train and distance.requires_grad:  # `none` returns constant zeros: nothing to differentiate
                distance.backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return 1000 * (time.perf_counter() - started)
