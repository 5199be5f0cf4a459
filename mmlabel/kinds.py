"""The component kinds, each declared once: its name, the recipe section that names it, the hook that registers it,
its contract (a `typing.Protocol` of `mmlabel.contracts`, and the optional capabilities a component may have), the
arguments the core passes when building it, and what the conformance kit builds it with and checks.

Everything that knows kinds reads `KINDS`: the registry (`mmlabel.registry`), the plugin hooks
(`mmlabel.hookspecs`), the recipe schema (`mmlabel.recipe`), the contract checks (`mmlabel.contracts`) and the kit
(`mmlabel.testing`). Adding a kind is adding a `Kind` here; a test declares one of its own with `declared(kind)`.
Importing this module imports no torch: checks and tiny options are named by import path and loaded by the kit.
"""
import importlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence

from mmlabel import contracts


@dataclass(frozen=True)
class Kind:
    """One component kind. `checks`, `kit_runtime` and the values of `tiny_options` may be import paths
    (`"package.module:attribute"`), loaded by the kit only."""

    name: str  # "fusion_head": what the registry, errors and `mmlabel list` call it
    section: str  # the recipe's key path of the component's section: "fusion_head", "data.reader"
    hook: str  # the plugin hook that registers components of the kind: "register_fusion_heads"
    plural: str  # "fusion heads", for the hook's documentation
    protocol: type  # the contract every component of the kind meets
    capabilities: tuple[type, ...] = ()  # optional contracts: a component that has one member of one has it whole
    runtime: tuple[str, ...] = ()  # keyword arguments the core passes to the factory besides the config
    module: bool = False  # a torch.nn.Module the model composes: trained, moved and saved with it
    default: dict[str, Any] | None = None  # the recipe's section when it names none; None: the section is optional
    checks: str | Sequence[tuple[str, Callable]] = ()  # the kit's conformance checks: (check name, function(subject))
    kit_runtime: str | Callable[[], dict] | None = None  # the runtime arguments the kit builds a component with
    tiny_options: Mapping[str, dict | str] = field(default_factory=dict)  # built-in name -> options that build it small

    @property
    def key(self) -> str:
        """The section's last key: `reader` for `data.reader`."""
        return self.section.rpartition(".")[2]

    @property
    def parent(self) -> str:
        """The section holding the component's section: "" for the recipe itself, `data` for `data.reader`."""
        return self.section.rpartition(".")[0]

    @property
    def factory_call(self) -> str:
        """`factory(config, text_dim=, num_tags=)`: how the core calls a factory of the kind."""
        return f"factory({', '.join(['config', *(f'{name}=' for name in self.runtime)])})"

    @property
    def hook_doc(self) -> str:
        """The hook's docstring, written from the protocol's members: the documentation cannot name a member that
        the contract does not define."""
        text = (f"Register {self.plural}: `{self.factory_call}` returns a `contracts.{self.protocol.__name__}`: "
                f"{contracts.member_list(self.protocol)}.")
        for capability in self.capabilities:
            text += (f" Optional, `contracts.{capability.__name__}`: "
                     f"{contracts.member_list(capability, own=True)}.")
        return text


def load(target: str | Any) -> Any:
    """The object an import path `"package.module:attribute"` names; anything else is returned as it is."""
    if not isinstance(target, str):
        return target
    module_name, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


KINDS: dict[str, Kind] = {kind.name: kind for kind in (
    Kind("text_encoder", "text_encoder", "register_text_encoders", "text encoders", contracts.TextEncoder,
         capabilities=(contracts.PrefixTextEncoder, contracts.ContextTextEncoder), module=True,
         default={"name": "hf", "checkpoint": "roberta-base"}, checks="mmlabel.testing.modules:TEXT_CHECKS",
         tiny_options={"hf": "mmlabel.testing.kit:tiny_hf"}),
    Kind("image_encoder", "image_encoder", "register_image_encoders", "image encoders", contracts.ImageEncoder,
         capabilities=(contracts.ImageEncoderPixels,), module=True, checks="mmlabel.testing.modules:IMAGE_CHECKS",
         tiny_options={"timm": {"model": "vit_base_patch16_224", "pretrained": False, "model_args": {
             "img_size": 32, "patch_size": 8, "depth": 1, "embed_dim": 32, "num_heads": 2}}}),
    Kind("fusion_head", "fusion_head", "register_fusion_heads", "fusion heads", contracts.FusionHead,
         capabilities=(contracts.FusionHeadAttention, contracts.PrefixFusionHead), module=True,
         runtime=("text_dim", "image_dim", "num_tags", "allowed_start", "allowed_transitions", "allowed_end"),
         default={"name": "dtca"}, checks="mmlabel.testing.modules:FUSION_CHECKS",
         kit_runtime="mmlabel.testing.kit:fusion_runtime", tiny_options={"dtca": {"heads": 2}}),
    Kind("alignment_loss", "alignment_loss", "register_alignment_losses", "alignment losses",
         contracts.AlignmentLoss, capabilities=(contracts.DeferredAlignmentLoss,), module=True,
         default={"name": "emd"}, checks="mmlabel.testing.modules:ALIGNMENT_CHECKS"),
    Kind("dataset_reader", "data.reader", "register_dataset_readers", "dataset readers", contracts.DatasetReader,
         default={"name": "jml"}, checks="mmlabel.testing.data:READER_CHECKS"),
    Kind("metric", "metric", "register_metrics", "metrics", contracts.Metric, default={"name": "mabsa"},
         checks="mmlabel.testing.data:METRIC_CHECKS"),
    Kind("tag_scheme", "data.tag_scheme", "register_tag_schemes", "tag schemes", contracts.TagScheme,
         runtime=("labels",), default={"name": "collapsed5"}, checks="mmlabel.testing.data:SCHEME_CHECKS",
         kit_runtime="mmlabel.testing.kit:scheme_runtime"),
    Kind("describer", "data.describer", "register_describers", "describers", contracts.Describer,
         checks="mmlabel.testing.describers:DESCRIBER_CHECKS",
         tiny_options={"file": "mmlabel.testing.describers:tiny_file", "hf": "mmlabel.testing.describers:tiny_hf"}),
)}
_generation = 0  # counts changes of KINDS: what is built from it (registry, recipe schema) is built again


def generation() -> int:
    """A number that changes whenever a kind is declared or withdrawn."""
    return _generation


def get_kind(name: str) -> Kind:
    """The kind `name`; an unknown one is a `ComponentError` with the close match and every kind."""
    if name not in KINDS:
        import difflib

        from mmlabel.errors import ComponentError

        close = difflib.get_close_matches(name, KINDS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ComponentError(f"unknown component kind {name!r}{hint}; kinds: {', '.join(KINDS)}")
    return KINDS[name]


@contextmanager
def declared(kind: Kind) -> Iterator[Kind]:
    """`kind` declared for the block (a test's own kind): it gets a hook, a recipe section, contract checks and the
    kit; withdrawn afterwards."""
    global _generation
    if kind.name in KINDS:
        raise ValueError(f"kind {kind.name!r} is declared already")
    KINDS[kind.name] = kind
    _generation += 1
    try:
        yield kind
    finally:
        del KINDS[kind.name]
        _generation += 1
