"""Recipes: plain TOML read with tomllib into a pydantic `Recipe`, with `--set key.path=value` overrides and
every component's options checked against its registered `Config`. The component sections (`[fusion_head]`,
`[data] reader`, ...) are those `mmlabel.kinds` declares: the schema is made from that table."""
import os
import tomllib
from pathlib import Path
from typing import Any, ClassVar, Literal

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator, model_validator

from mmlabel import kinds
from mmlabel.configs import error_line
from mmlabel.errors import ComponentError, RecipeError


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    @model_validator(mode="before")
    @classmethod
    def _none_means_absent(cls, value: Any) -> Any:
        """An optional component section (`image_encoder = "none"`) given as none is left out: a text-only model."""
        if not isinstance(value, dict):
            return value
        value = dict(value)
        for kind in kinds.KINDS.values():
            given = value.get(kind.key) if kind.parent == cls.path else None
            name = given.get("name") if isinstance(given, dict) else given
            if kind.default is None and kind.key in value and name in (None, "none", ""):
                value[kind.key] = None
        return value

    path: ClassVar[str | None] = None  # the key path of a section that holds component sections


class ComponentSpec(BaseModel):
    """A component section: `name` plus that component's options, validated later against its `Config`."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())
    name: str

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class ContextSource(BaseModel):
    """`data.context`: the side file of context text per post (mmlabel.data.context)."""

    model_config = ConfigDict(extra="forbid")
    path: str = Field(description="JSON lines of {image or id, context}; relative to data.root unless absolute")
    key: Literal["image", "id"] = Field("image", description="what the file's entries are keyed by: the post's "
                                                             "photo file name, or its id")


class DataSection(Section):
    """`[data]`; its component sections (`reader`, `tag_scheme`) are added from `mmlabel.kinds`."""

    path: ClassVar[str | None] = "data"
    root: str | None = None
    images: str = "images"
    missing_image: Literal["error", "blank"] = "error"
    on_bad_example: Literal["error", "skip"] = "error"
    max_tokens: int = Field(60, gt=1)
    tokenizer: Literal["twitter", "twitter2015", "whitespace"] = Field(
        "twitter", description="how the trained tagger splits raw text (predict --text, JSONL `text`, serve) into "
                               "words: mmlabel.data.tokenize")
    synthetic: bool = Field(False, description="with no root: generate the synthetic dataset into the cache")
    context: ContextSource | None = Field(
        None, description="context text per post, read by the text encoder after the sentence (mmlabel.data.context);"
                          " a post with no entry has none")

    def root_path(self) -> Path:
        """`root`, relative to MMLABEL_DATA where that is set, else to the current directory."""
        root = Path(os.path.expanduser(self.root or "."))
        base = os.environ.get("MMLABEL_DATA")
        return root if root.is_absolute() or not base else Path(base) / root

    def root_problem(self) -> str | None:
        """Why `root` does not name a data directory here, in one line (None where it does, or where the synthetic
        dataset stands in for it): training refuses such a recipe, `recipe check` warns."""
        if self.root is None:
            return None if self.synthetic else "data.root is not set: give it in the recipe or with --set data.root=DIR"
        root = self.root_path()
        if root.is_dir():
            return None
        hint = "" if root.is_absolute() else (" (a relative data.root is read from $MMLABEL_DATA where set, else from "
                                              "the current directory; or give --set data.root=DIR)")
        return f"data.root: no such directory: {root}{hint}"

    def images_path(self) -> Path:
        """The image directory: relative to the data root unless absolute."""
        images = Path(os.path.expanduser(self.images))
        return images if images.is_absolute() else self.root_path() / images


class LossSection(Section):
    alpha: float = Field(0.6, ge=0, description="weight of the text-only tagger's loss")
    beta: float = Field(0.6, ge=0, description="weight of the token-patch alignment loss")
    crf_reduction: Literal["mean", "sum"] = Field(
        "mean", description="the CRF's negative log-likelihood over the batch: mean per sentence, or sum (the authors' "
                            "code)")
    crf_weight: float = Field(1.0, ge=0, description="weight of the CRF term (the authors' code: 0.1, with sum)")
    align_context: bool = Field(
        False, description="the alignment loss also over the context's tokens (data.context); default: over the "
                           "sentence's tokens alone")


class TrainSection(Section):
    epochs: int = Field(20, ge=1)
    patience: int = Field(3, ge=1)
    batch_size: int = Field(4, ge=1)
    grad_accum: int = Field(1, ge=1)
    lr: float = Field(2e-5, gt=0)
    head_lr: float | None = Field(
        None, gt=0, description="learning rate of everything outside the pretrained encoders (fusion head, CRF, text "
                                "head, image projection); default: lr")
    weight_decay: float = Field(0.01, ge=0)
    schedule_epochs: int | None = Field(
        None, ge=1, description="the horizon the linear schedule plans for, in epochs: warm-up is warmup_ratio of it, "
                                "then the rate decays to 0 at its end; default: epochs")
    warmup_ratio: float = Field(0.1, ge=0, le=1, description="share of the schedule's horizon spent warming up")
    grad_clip: float = Field(1.0, ge=0)
    seed: int = 1
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "fp32", description="auto: bf16 where the hardware computes it natively (GPU with bf16, CPU with AVX512-BF16 "
                            "or AMX), else fp32; the choice is printed and saved in run.json")
    device: str = "auto"
    max_steps_per_epoch: int | None = Field(None, ge=1, description="cut epochs short (smoke tests)")
    workers: int | Literal["auto"] = Field(
        "auto", description="DataLoader worker processes gathering and padding batches (and decoding photos for an "
                            "image encoder without pixel_transform); auto: 0 on a CPU, beside a GPU this process's "
                            "cores over the processes of the machine, less one, from 1 to 8 (docs/training.md)")
    threads: int | None = Field(
        None, ge=1, description="compute threads of the training process (default, or MMLABEL_THREADS: this process's "
                                "share of its cores among the mmlabel processes computing now)")
    cache_image_features: bool = Field(True, description="with a frozen image encoder, encode each image once")
    on_nonfinite: Literal["stop", "skip"] = Field(
        "stop", description="a NaN or infinite loss stops the run, or its batch is skipped and counted in the log")
    compile: bool = Field(
        False, description="compile the training loss with torch.compile (sequence lengths bucketed: the first "
                           "epoch compiles one graph per bucket, later epochs none); evaluation stays eager")
    compile_backend: Literal["inductor", "aot_eager", "eager"] = Field(
        "inductor", description="torch.compile backend: inductor (generated kernels); aot_eager and eager only trace "
                                "(for checking that the model compiles)")
    compile_bucket: int = Field(16, ge=1, description="with compile: token and word lengths padded up to a multiple "
                                                      "of this")
    log_every: int = Field(
        50, ge=1, description="read the loss back from the device every N optimiser steps (progress, callbacks' "
                              "on_log); each read makes the host wait for the device")
    checkpoint_every: int | None = Field(
        None, ge=1, description="also save a resumable checkpoint every N optimiser steps, inside epochs")
    deterministic: bool = Field(
        False, description="deterministic kernels only (GPU: slower; CPU runs are deterministic anyway)")
    effective_batch_size: int | None = Field(
        None, ge=1, description="written by mmlabel: batch_size x processes x grad_accum of the run (not read)")
    report_to: list[Literal["tensorboard", "mlflow"]] | None = Field(
        None, description="experiment trackers the run reports to: parameters, every epoch's losses, learning rates and "
                        "dev figures, the selected epoch's dev and test figures, artifacts (docs/training.md, "
                        "\"Tracking\"; needs pip install \"mmlabel[track]\")")


    @field_validator("workers", mode="before")
    @classmethod
    def _workers(cls, value: Any) -> Any:
        if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
            return value
        raise ValueError(f"expected a number of worker processes (0 or more) or \"auto\", not {value!r}")

    @model_validator(mode="after")
    def _horizon_covers_the_epochs(self) -> "TrainSection":
        if self.schedule_epochs is not None and self.schedule_epochs < self.epochs:
            raise ValueError(f"schedule_epochs ({self.schedule_epochs}) is below epochs ({self.epochs}): the epochs "
                             f"after it would train at learning rate 0; lower epochs or leave schedule_epochs out")
        return self


class OutputSection(Section):
    dir: str = "runs"


class RecipeSections(Section):
    """A whole experiment: data, the model's components, loss weights, training and output. The component sections
    (`text_encoder`, `image_encoder`, `fusion_head`, `alignment_loss`, `metric`) are added from `mmlabel.kinds`:
    `Recipe` is this class with them."""

    path: ClassVar[str | None] = ""
    data: DataSection = Field(default_factory=DataSection)
    loss: LossSection = Field(default_factory=LossSection)
    train: TrainSection = Field(default_factory=TrainSection)
    output: OutputSection = Field(default_factory=OutputSection)

    def component_specs(self) -> dict[str, tuple[str, ComponentSpec]]:
        """Key path -> (kind, component section), for every component the recipe names."""
        specs = {kind.section: (kind.name, self._section(kind.section)) for kind in kinds.KINDS.values()}
        return {path: (kind, spec) for path, (kind, spec) in specs.items() if spec is not None}

    def _section(self, path: str) -> ComponentSpec | None:
        node = self
        for part in path.split("."):
            node = getattr(node, part, None)
        return node

    def to_toml(self) -> str:
        """The recipe as TOML: data first, then the components in the order of `mmlabel.kinds`, then the rest."""
        dumped = self.model_dump(mode="json", exclude_none=True)
        first = ["data", *(kind.key for kind in kinds.KINDS.values() if not kind.parent)]
        return tomli_w.dumps({key: dumped[key] for key in [*first, *dumped] if key in dumped})


def _with_components(base: type[Section], name: str, **sections: Any) -> type:
    """`base` with a field per component section of its path: the kind's default section, or None if optional."""
    fields: dict[str, Any] = dict(sections)
    for kind in kinds.KINDS.values():
        if kind.parent == base.path:
            default = kind.default
            fields[kind.key] = ((ComponentSpec, Field(default_factory=lambda d=default: ComponentSpec(**d)))
                                if default is not None else (ComponentSpec | None, None))
    return create_model(name, __base__=base, __module__=__name__, **fields)


def recipe_schema() -> type[RecipeSections]:
    """The `Recipe` class for the kinds declared now (made again when a kind is declared or withdrawn)."""
    global _schema
    if _schema[0] != kinds.generation():
        data = _with_components(DataSection, "DataSection")
        recipe = _with_components(RecipeSections, "Recipe", data=(data, Field(default_factory=data)))
        _schema = (kinds.generation(), recipe)
    return _schema[1]


_schema: tuple[int, type] = (-1, RecipeSections)
Recipe = recipe_schema()


def load_recipe(path: str | Path, overrides: list[str] = (), resolve: bool = True) -> Recipe:
    """Read, override and validate a recipe (a path, or a built-in name such as `quickstart`); every error names
    the file and the key path."""
    return recipe_from_dict(read_raw(path), overrides, source=str(path), resolve=resolve)


def read_raw(path: str | Path) -> dict:
    """The parsed TOML of a recipe (or experiment) file, unvalidated: a path, or a built-in name (see
    `recipe_files.find_file`); a missing or malformed file is a RecipeError."""
    from mmlabel.recipe_files import find_file

    path = find_file(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecipeError(f"{path}: no such recipe file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise RecipeError(f"{path}: {error}") from None


def recipe_from_dict(raw: dict, overrides: list[str] = (), source: str = "<recipe>", resolve: bool = True) -> Recipe:
    """Validate a recipe given as a dict (the parsed TOML), after applying `key.path=value` overrides. An override
    that swaps a component by name drops the file's options that the new component does not define (with `resolve`;
    see `drop_swapped_options`)."""
    from_file = _component_sections(raw)
    for override in overrides:
        apply_override(raw, override)
    if overrides and resolve:
        drop_swapped_options(raw, from_file, [override.partition("=")[0].strip() for override in overrides], source)
    if overrides:
        source = f"{source} (with --set {', '.join(overrides)})"
    schema = recipe_schema()
    try:
        recipe = schema(**raw)
    except ValidationError as error:
        raise RecipeError(f"{source}: {error_line(error, schema)}") from None
    if resolve:
        try:
            resolve_components(recipe)
        except ComponentError as error:
            raise RecipeError(f"{source}: {error}") from None
    return recipe


def drop_swapped_options(raw: dict, from_file: dict[str, tuple[str, set[str]]], keys: list[str], source: str) -> None:
    """Swapping a component by name (`--set fusion_head.name=gated`) keeps the file's options that the new
    component's `Config` defines and drops the others, with a note (a warning, `mmlabel.log.MMLabelNote`). Options
    given with `--set` are never dropped (a misspelt one still fails), and a section replaced whole
    (`--set 'fusion_head={...}'`) keeps nothing from the file anyway. `from_file`: path -> (name, option keys)
    before the overrides; `keys`: the keys the overrides set."""
    from mmlabel.log import MMLabelNote, warn
    from mmlabel.registry import get

    for path, kind in sorted(component_sections().items()):  # notes in key order, whatever the kinds' order
        if path not in from_file or any(key == path or path.startswith(key + ".") for key in keys):
            continue  # not in the file, or replaced whole
        set_here = {key[len(path) + 1:].split(".")[0] for key in keys if key.startswith(path + ".")}
        section = _component_sections(raw).get(path)
        file_name, file_options = from_file[path]
        if "name" not in set_here or section is None or section[0] == file_name:
            continue
        try:
            config_class = get(kind, section[0]).config_class
        except ComponentError:
            continue  # resolve_components reports the unknown name
        if config_class is None:
            continue
        dropped = sorted((file_options & section[1]) - set_here - set(config_class.model_fields))
        node = _lookup(raw, path)
        for option in dropped:
            del node[option]
        if dropped:
            paths = ", ".join(f"{path}.{option}" for option in dropped)
            warn(f"{source}: --set {path}.name={section[0]} drops {paths} from the file "
                 f"({kind} {section[0]!r} does not define {'it' if len(dropped) == 1 else 'them'})", MMLabelNote)


def _component_sections(raw: dict) -> dict[str, tuple[str, set[str]]]:
    """Key path -> (name, option keys) of each component section present in a raw recipe."""
    sections = {}
    for path in component_sections():
        node = _lookup(raw, path)
        if isinstance(node, str):
            sections[path] = (node, set())
        elif isinstance(node, dict):
            sections[path] = (node.get("name"), set(node) - {"name"})
    return sections


def _lookup(raw: dict, path: str) -> Any:
    node = raw
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def apply_override(raw: dict, override: str) -> None:
    """Set `key.path=value` in the raw recipe; the value is read as a TOML value where it parses, else as a string."""
    key, separator, text = override.partition("=")
    if not separator or not key.strip():
        raise RecipeError(f"--set {override}: expected key.path=value")
    set_key(raw, key.strip(), parse_value(text), where=f"--set {override}")


def parse_value(text: str) -> Any:
    """A command-line value: read as a TOML value where it parses (`0.1`, `true`, `[1, 2]`), else as a string."""
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text


def set_keys(raw: dict, items: list[tuple[str, Any]], where: str) -> None:
    """Set each dotted key of the raw recipe to its value, like `--set`: a component swapped by name keeps only
    the file's options it defines (`drop_swapped_options`). A sweep's cells are built this way."""
    from_file = _component_sections(raw)
    for key, value in items:
        set_key(raw, key, value, where)
    drop_swapped_options(raw, from_file, [key for key, _ in items], where)


def set_key(raw: dict, key: str, value: Any, where: str) -> None:
    """Set the dotted `key` of the raw recipe to `value`, creating sections on the way; `where` names the source
    of the change in errors."""
    parts = key.split(".")
    node = raw
    for depth, part in enumerate(parts[:-1]):
        child = node.get(part)
        if isinstance(child, str) and part in {kind.key for kind in kinds.KINDS.values()}:
            child = {"name": child}  # `reader = "jml"` shorthand, now given an option
        if child is None:
            child = {}
        if not isinstance(child, dict):
            raise RecipeError(f"{where}: {'.'.join(parts[:depth + 1])} is not a section")
        node[part] = child
        node = child
    node[parts[-1]] = value


def component_sections() -> dict[str, str]:
    """Key path -> component kind of every component section of a recipe."""
    return {kind.section: kind.name for kind in kinds.KINDS.values()}


def resolve_components(recipe: Recipe) -> None:
    """Check every component name and its options against the registry, filling in each option's default."""
    from mmlabel.registry import get

    for path, (kind, spec) in recipe.component_specs().items():
        try:
            component = get(kind, spec.name)
        except ComponentError as error:
            raise ComponentError(f"{path}.name: {error}") from None
        config = component.validate(spec.options, where=path)
        options = config.model_dump(mode="json")
        for key, value in options.items():
            setattr(spec, key, value)
