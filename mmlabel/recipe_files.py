"""Recipe and experiment files found by path or by built-in name: `mmlabel train quickstart`, `mmlabel recipe check
dtca`, `mmlabel reproduce encoder-swap`.

The repository's `recipes/` folder is the one copy of the built-in recipes (`recipes/*.toml`) and experiment files
(`recipes/experiments/*.toml`). It is installed as the package `mmlabel.recipes` (setup.py maps that package onto
the folder), so a wheel, an sdist and an editable install all carry it, and it is found with importlib.resources. A
checkout used without installing (on PYTHONPATH) reads the folder beside the `mmlabel` package.
"""
import difflib
from importlib import resources
from pathlib import Path

from mmlabel.errors import RecipeError

EXPERIMENTS = "experiments"


def builtin_folder(folder: str = "") -> Path:
    """The folder of the built-in recipes (`folder=""`) or of the experiment files (`folder="experiments"`)."""
    try:
        root = resources.files("mmlabel.recipes")
    except ModuleNotFoundError:  # a source checkout on PYTHONPATH, not installed
        root = Path(__file__).resolve().parents[1] / "recipes"
    # pip unpacks a wheel into files, so the package data are plain files (not inside a zip archive)
    return Path(str(root)) / folder if folder else Path(str(root))


def builtin_names(folder: str = "") -> list[str]:
    """The names of the built-in recipes (or experiment files): the stems of the folder's .toml files."""
    return sorted(path.stem for path in builtin_folder(folder).glob("*.toml"))


def find_file(name: str | Path, folder: str = "", what: str = "recipe", base: Path | None = None) -> Path:
    """The file a command-line argument names: a path that exists (relative to `base`, default the current
    directory), else a built-in name of `folder` (`quickstart`, or `encoder-swap` with `folder="experiments"`).
    A missing path (one ending in .toml or holding a folder) is `PATH: no such WHAT file`; a missing name lists
    the built-in names."""
    path = Path(name)
    if base is not None and not path.is_absolute():
        path = base / path
    if path.is_file():
        return path
    text = str(name)
    if text.endswith(".toml") or "/" in text or "\\" in text:
        raise RecipeError(f"{path}: no such {what} file")
    candidate = builtin_folder(folder) / f"{text}.toml"
    if candidate.is_file():
        return candidate
    names = builtin_names(folder)
    close = difflib.get_close_matches(text, names, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise RecipeError(f"no {what} {text!r}: not a file, nor a built-in {what}; {hint}built-in {what}s: "
                      f"{', '.join(names)} (or give the path of a .toml file)")
