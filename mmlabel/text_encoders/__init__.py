"""Built-in text encoders. Registration imports no torch: the classes load when a component is built, and their
options (`mmlabel.text_encoders.configs`) load alone when a recipe is checked."""
from mmlabel.hookspecs import hookimpl
from mmlabel.registry import lazy


@hookimpl
def register_text_encoders(register):
    register("hf", lazy("mmlabel.text_encoders.hf:HFTextEncoder",
                        "Hugging Face AutoModel encoder (BERT, RoBERTa, ALBERT, ELECTRA) by hub id or local directory",
                        config="mmlabel.text_encoders.configs:HFTextConfig"))
