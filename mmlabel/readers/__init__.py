"""The built-in dataset readers, registered like any plugin's: `jml`, `tsv`, `conll`, `jsonl` and `json`.

Each reader has `find_splits(root) -> {"train"|"dev"|"test": Path}`, `read(path, on_bad_example="error") ->
list[Example]` (skipped records in `reader.skipped`) and `write(examples, path)`. Build one as any component:
`mmlabel.build("dataset_reader", {"name": "conll", "tag_column": 1})`."""
from mmlabel.hookspecs import hookimpl
from mmlabel.registry import lazy

READERS = {
    "jml": ("mmlabel.readers.jml:JmlReader", "Twitter MABSA .txt: four lines per aspect (sentence with $T$, aspect, sentiment, image)."),
    "tsv": ("mmlabel.readers.tsv:TsvReader", "Twitter MABSA .tsv: index, label 0/1/2, image id, sentence with $T$, aspect."),
    "conll": ("mmlabel.readers.conll:ConllReader", "CoNLL Twitter files: IMGID line, token<TAB>tag lines (MABSA or NER)."),
    "jsonl": ("mmlabel.readers.jsonl:JsonlReader", "JSON lines {id, tokens, image, spans}; also the prediction format."),
    "json": ("mmlabel.readers.aspect_json:AspectJsonReader",
             "VLP-MABSA/AoM/DQPSA JSON: a list of {words, image_id, aspects: [{from, to, polarity, term}]} per split."),
}


@hookimpl
def register_dataset_readers(register) -> None:
    for name, (target, description) in READERS.items():
        register(name, lazy(target, description))
