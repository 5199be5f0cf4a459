"""Hand a trained tagger on: `mmlabel export RUN OUT` writes a folder that `Tagger.load`, `mmlabel predict`,
`evaluate` and `serve` take as they take a run directory, with a model card (README.md) that says what it is;
`--push OWNER/NAME` uploads it to the Hugging Face Hub, and `Tagger.load("hf://OWNER/NAME")` loads it back.

    OUT/model.safetensors, tags.json, architecture.json, text_encoder/, image_encoder/   what rebuilds the model
    OUT/recipe.toml         the resolved recipe (a tokenizer learnt from the training words named as `"train"` again)
    OUT/run.json, metrics.json, log.jsonl, predictions-dev.jsonl, predictions-test.jsonl   the run's record
    OUT/summary.json        the mean and std over seeds, where the run was one of `train --seeds`
    OUT/environment.json    the run.json it was trained with (its `environment` among it) and the environment it was
                            exported in (`mmlabel.environment`)
    OUT/README.md           the model card: task, data, recipe, figures, training command, citation, limitations

Left out: the training checkpoint (checkpoint.pt), tracker folders and files (tensorboard/, tracking.json).
"""
import json
import shutil
import sys
from pathlib import Path

from mmlabel import atomic
from mmlabel.environment import environment
from mmlabel.errors import RunError

COPIED = ("model.safetensors", "tags.json", "architecture.json", "text_encoder", "image_encoder", "run.json",
          "metrics.json", "log.jsonl", "predictions-dev.jsonl", "predictions-test.jsonl", "curves.png")
HUB_PREFIXES = ("hf://", "hf:/")  # a command-line Path turns hf://OWNER/NAME into hf:/OWNER/NAME
TASKS = {"mabsa": "multimodal aspect-based sentiment analysis (MABSA): aspect terms and the sentiment toward each",
         "span_f1": "multimodal named-entity recognition (MNER) or another span-labelling task"}


def export_run(run_dir: str | Path, out: str | Path) -> Path:
    """Write the export of a finished run into `out` (a new or empty folder); returns `out`."""
    from mmlabel.run_dir import RunDir

    run, out = RunDir(run_dir), Path(out)
    run.check_complete()
    if not (run.path / "metrics.json").exists():
        raise RunError(f"{run.path}: the run has not finished: metrics.json is missing")
    if out.exists() and any(out.iterdir()):
        raise RunError(f"{out}: not empty; export into a new folder")
    out.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        source = run.path / name
        if source.is_dir():
            shutil.copytree(source, out / name)
        elif source.exists():
            shutil.copy2(source, out / name)
    atomic.write_text(out / "recipe.toml", _portable_recipe(run))
    seeds = seed_summary(run.path)
    if seeds is not None:
        atomic.write_json(out / "summary.json", seeds)
    atomic.write_json(out / "environment.json", {"trained_with": run.info(), "exported_with": environment()})
    atomic.write_text(out / "README.md", model_card(out, seeds))
    return out


def _portable_recipe(run) -> str:
    """The run's recipe, a tokenizer learnt into the run (an absolute path of the machine it trained on) named as
    the recipe named it, `"train"`: `mmlabel train recipe.toml` learns it again, as the run did."""
    import tomllib

    import tomli_w

    raw = tomllib.loads(run.recipe_path.read_text(encoding="utf-8"))
    tokenizer = raw.get("text_encoder", {}).get("tokenizer")
    if isinstance(tokenizer, str) and Path(tokenizer).is_absolute() and \
            Path(tokenizer).resolve() == (run.path / "tokenizer").resolve():
        raw["text_encoder"]["tokenizer"] = "train"
    return tomli_w.dumps(raw)


def seed_summary(run_path: Path) -> dict | None:
    """The mean ± std over seeds of `train --seeds` (its summary.json beside `seed-N/`), where the run is one."""
    summary = Path(run_path).resolve().parent / "summary.json"
    if not Path(run_path).resolve().name.startswith("seed-") or not summary.exists():
        return None
    return json.loads(summary.read_text(encoding="utf-8"))


def component_params(recipe) -> dict:
    """`component.<section>` = "PROVIDER:NAME" and `component.<section>.version` for every component of the recipe
    (the model card's table; the trackers' parameters)."""
    from mmlabel.plugins import plugin_info
    from mmlabel.registry import get

    params = {}
    for path, (kind, spec) in recipe.component_specs().items():
        component = get(kind, spec.name)
        info = plugin_info(component.plugin)
        params[f"component.{path}"] = f"{info.distribution}:{component.name}"
        params[f"component.{path}.version"] = info.version
    return params


# -- the model card --------------------------------------------------------------------------------------------
def model_card(folder: Path, seeds: dict | None) -> str:
    """README.md of an export: front matter for the Hub, then what the tagger is and how it was made."""
    from mmlabel.run_dir import RunDir

    run = RunDir(folder)
    recipe, metrics = run.recipe(), run.metrics()
    image = ', image="photo.jpg"' if recipe.image_encoder is not None else ""
    parts = [_front_matter(recipe), f"# {Path(folder).resolve().name}", "", _task(recipe, run), "",
             "## Use", "", "```python", "import mmlabel", "",
             f'tagger = mmlabel.Tagger.load("{folder}")  # or "hf://OWNER/NAME" once pushed',
             f'tagger.predict("look at Alice in this photo"{image})', "```", "",
             "## Results", "", *_results(metrics, seeds), "", "## Model", "", *_components(recipe), "",
             "## Training", "", *_training(recipe, metrics, seeds), "", "## Method", "", *_method(recipe), "",
             "## Limitations", "", *_limitations(recipe, run), ""]
    return "\n".join(parts)


def _front_matter(recipe) -> str:
    tags = ["mmlabel", "multimodal", "token-classification", recipe.metric.name]
    return "---\nlibrary_name: mmlabel\ntags:\n" + "".join(f"- {tag}\n" for tag in tags) + "---\n"


def _task(recipe, run) -> str:
    task = TASKS.get(recipe.metric.name, f"sequence labelling scored by the {recipe.metric.name!r} metric")
    reads = "a post's words and its photo" if recipe.image_encoder is not None else "a post's words (no photo)"
    labels = ", ".join(run.tags().get("labels", []))
    return (f"A tagger for {task}, trained with mmlabel: it reads {reads} and puts a tag on every word "
            f"(tag scheme `{recipe.data.tag_scheme.name}`; labels: {labels}).")


def _results(metrics: dict, seeds: dict | None) -> list[str]:
    """This model's dev and test figures, and the mean ± std over seeds where several ran."""
    keys = [key for key in ("precision", "recall", "f1") if key in metrics.get("dev", {})]
    lines = ["| split | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    for split in ("dev", "test"):
        if split in metrics:
            lines.append(f"| {split} (this model) | " + " | ".join(f"{metrics[split][k]:.2f}" for k in keys) + " |")
    if seeds:
        for split in ("dev", "test"):
            lines.append(f"| {split} (mean ± std, {len(seeds['seeds'])} seeds) | " + " | ".join(
                f"{seeds[split][k]['mean']:.2f} ± {seeds[split][k]['std']:.2f}" for k in keys) + " |")
    lines += ["", f"The epoch was chosen on dev (epoch {metrics.get('best_epoch')} of {metrics.get('epochs')}); the "
                  "test split was evaluated once, with that model."]
    return lines


def _components(recipe) -> list[str]:
    named = component_params(recipe)
    lines = ["| part | component | version | options |", "|---|---|---|---|"]
    for path, (_, spec) in recipe.component_specs().items():
        options = ", ".join(f"{key}={value}" for key, value in spec.options.items()
                            if key != "tokenizer" and value is not None)
        lines.append(f"| {path} | `{named[f'component.{path}']}` | {named[f'component.{path}.version']} | "
                     f"{options or '-'} |")
    return lines


def _training(recipe, metrics: dict, seeds: dict | None) -> list[str]:
    train, data = recipe.train, recipe.data
    command = "mmlabel train recipe.toml" + (f" --seeds {','.join(map(str, seeds['seeds']))}" if seeds else "")
    return [f"Data: `{data.root or 'the synthetic dataset'}` read with `{data.reader.name}`, photos from "
            f"`{data.images}`.", "",
            f"The exact command, with this folder's resolved `recipe.toml` (seed {train.seed}):", "", "```bash",
            command, "```", "",
            f"lr {train.lr:g}, {train.epochs} epochs at most (patience {train.patience}), batch size "
            f"{train.batch_size} (effective {train.effective_batch_size}), precision {train.precision}, loss "
            f"weights alpha {recipe.loss.alpha:g}, beta {recipe.loss.beta:g}; the versions are in environment.json."]


def _method(recipe) -> list[str]:
    """The fusion head's and the alignment loss's own description, with the paper their modules cite."""
    lines = []
    for path in ("fusion_head", "alignment_loss"):
        kind, spec = recipe.component_specs()[path]
        text = _module_docstring(kind, spec.name)
        if text:
            lines += [f"- `{path}` = `{spec.name}`: {text}"]
    return lines or ["-"]


def _module_docstring(kind: str, name: str) -> str:
    """The first paragraph of the docstring of the module that defines a component (where mmlabel cites papers)."""
    from mmlabel.registry import get

    factory = get(kind, name).factory
    factory = factory.load() if hasattr(factory, "load") else factory
    module = sys.modules.get(getattr(factory, "__module__", ""))
    text = (getattr(module, "__doc__", None) or "").strip().split("\n\n")[0]
    return " ".join(text.split())


def _limitations(recipe, run) -> list[str]:
    """What a user must know before relying on it: no photos, blanked photos, the data it saw."""
    lines = []
    if recipe.image_encoder is None:
        lines.append("- Text only: trained and predicting without photos.")
    else:
        counts = _image_counts(run)
        blank, checked = counts.get("blank", 0), counts.get("checked", 0)
        if checked and blank >= checked:
            lines.append(f"- Trained without photos: every one of the {checked} photos was missing or unreadable and "
                         "replaced by a blank image (data.missing_image = \"blank\"); its image branch learnt "
                         "nothing from photos.")
        elif blank:
            lines.append(f"- {blank} of {checked} photos were missing or unreadable and replaced by blank images "
                         "during training.")
    lines.append("- Scored only on the dev and test splits of its training data; other sources of posts may differ.")
    return lines


def _image_counts(run) -> dict:
    if not run.log_path.exists():
        return {}
    records = [json.loads(line) for line in run.log_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return records[-1].get("images", {}) if records else {}


# -- the Hub ---------------------------------------------------------------------------------------------------
def resolve_source(source: str | Path) -> Path:
    """A run directory or export as a local folder: `hf://OWNER/NAME[@REVISION]` through
    `huggingface_hub.snapshot_download` (its cache; with HF_HUB_OFFLINE=1 the cache alone), else the path itself."""
    text = str(source)
    prefix = next((prefix for prefix in HUB_PREFIXES if text.startswith(prefix)), None)
    if prefix is None:
        return Path(source)
    repo_id, _, revision = text[len(prefix):].partition("@")
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise RunError(f"{text}: loading from the Hugging Face Hub needs huggingface_hub: pip install "
                       "huggingface_hub") from None
    try:
        return Path(snapshot_download(repo_id=repo_id, revision=revision or None, repo_type="model"))
    except Exception as error:  # noqa: BLE001 - offline and not cached, no such repository, no network
        reason = (str(error).strip().splitlines() or [""])[0]
        raise RunError(f"{text}: cannot get it from the Hugging Face Hub ({type(error).__name__}: {reason})") from None


def push(folder: Path, repo_id: str, private: bool = False) -> str:
    """Upload an export to the Hub as the model repository `repo_id` (created if need be); returns its URL."""
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    commit = api.upload_folder(repo_id=repo_id, folder_path=str(folder), repo_type="model",
                               commit_message=f"mmlabel export of {Path(folder).name}")
    return getattr(commit, "commit_url", None) or f"https://huggingface.co/{repo_id}"
