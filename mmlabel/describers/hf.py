"""The `hf` describer: a caption of each photo by a transformers image-to-text model, through transformers' own
pipeline: BLIP (`Salesforce/blip-image-captioning-base`), GIT (`microsoft/git-base-coco`), BLIP-2, or any checkpoint
or local folder the pipeline takes (ITA captions the image with such a model; DQPSA builds on BLIP-2). The family is
registered, not the checkpoints."""
from pathlib import Path

from mmlabel.configs import Configured
from mmlabel.describers.configs import HfConfig
from mmlabel.errors import ComponentError


class HfDescriber(Configured):
    """Greedy captions of at most `max_new_tokens` tokens, after `prompt` where one is given, `batch_size` photos at
    a time."""

    Config = HfConfig

    def __init__(self, config: HfConfig | None = None, **options):
        super().__init__(config, **options)
        self.task = _task()
        self.pipeline = _load(self.task, self.config.checkpoint, _device(self.config.device))
        where = self.config.checkpoint
        if Path(where).is_dir():  # a local folder: its weights decide, wherever it lies
            where = f"{Path(where).name}@{_folder_digest(Path(where))}"
        self.signature = (f"hf:{where}:prompt={self.config.prompt}:max_new_tokens={self.config.max_new_tokens}")

    def describe(self, images: list, names: list[str]) -> list[str]:
        if not images:
            return []
        images = [image.convert("RGB") for image in images]
        options = {"batch_size": self.config.batch_size, "max_new_tokens": self.config.max_new_tokens}
        if self.task == "image-text-to-text":  # transformers 5: captioning is this task, with a (possibly empty) prompt
            outputs = self.pipeline(images=images, text=[self.config.prompt] * len(images), return_full_text=False,
                                    **options)
        else:  # transformers 4: the image-to-text task
            outputs = self.pipeline(images, prompt=self.config.prompt or None, **options)
        return [_text(output, self.config.prompt) for output in outputs]


def _text(output, prompt: str) -> str:
    """The generated text of one photo on one line, without the prompt it started from."""
    record = output[0] if isinstance(output, list) else output
    text = " ".join(str(record.get("generated_text", "")).split())
    prompt = " ".join(prompt.split())
    return text[len(prompt):].strip() if prompt and text.startswith(prompt) else text


def _task() -> str:
    from transformers.pipelines import SUPPORTED_TASKS

    return "image-to-text" if "image-to-text" in SUPPORTED_TASKS else "image-text-to-text"


def _device(device: str) -> str:
    import torch

    if device != "auto":
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def _load(task: str, checkpoint: str, device: str):
    import warnings

    from transformers import pipeline
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()  # notes about the task's new name and the generation settings
    hf_logging.disable_progress_bar()  # the weight-loading bar: `mmlabel data describe` draws its own
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pipeline(task, model=checkpoint, device=device)
    except (OSError, ValueError, TypeError, KeyError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ComponentError(f"describer 'hf': cannot load {checkpoint!r} as an {task} pipeline: {first}") from None
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _folder_digest(folder: Path) -> str:
    """A short hash of a model folder's files (names, sizes and modification times): retraining it changes it."""
    import hashlib

    entries = sorted((str(path.relative_to(folder)), path.stat().st_size, path.stat().st_mtime_ns)
                     for path in folder.rglob("*") if path.is_file())
    return hashlib.sha256(repr(entries).encode()).hexdigest()[:16]
