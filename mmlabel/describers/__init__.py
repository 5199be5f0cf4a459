"""Built-in describers (image -> text), registered like any plugin's: `file`, `ocr` and `hf`.

A describer's `describe(images, names)` turns a batch of photos into one line of text each; `mmlabel data describe`
runs one over every photo of a dataset once and caches the texts as a side file (`mmlabel.data.side_file`)
that the context channel reads. Registration imports no torch, transformers or pytesseract: the classes load when a
describer is built, their options (`mmlabel.describers.configs`) alone when a recipe is checked."""
from mmlabel.hookspecs import hookimpl
from mmlabel.registry import lazy

# name -> (class in mmlabel.describers, its Config in mmlabel.describers.configs, description)
DESCRIBERS = {
    "file": ("file:FileDescriber", "FileConfig",
             "the texts of a side file (JSONL {image, context}), looked up by photo name: published captions or OCR"),
    "ocr": ("ocr:OcrDescriber", "OcrConfig", "the words a photo shows, read by Tesseract (pytesseract; Debian's "
                                             "tesseract-ocr)"),
    "hf": ("hf:HfDescriber", "HfConfig",
           "a caption by a transformers image-to-text model (BLIP, GIT, BLIP-2, ...): a hub name or a local folder"),
}


@hookimpl
def register_describers(register) -> None:
    for name, (target, config, description) in DESCRIBERS.items():
        register(name, lazy(f"mmlabel.describers.{target}", description,
                            config=f"mmlabel.describers.configs:{config}"))
