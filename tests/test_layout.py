"""The house's layout, kept by tests: no import cycle among mmlabel's modules (imports inside functions count too),
prediction that does not depend on training, and modules and functions of a readable size (../shared/STYLE.md)."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mmlabel"
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 50


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imported_modules(path: Path) -> set[str]:
    """The mmlabel modules `path` imports anywhere in it: `from mmlabel.x import y` is module `mmlabel.x.y` where
    that is a module, else `mmlabel.x`."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in MODULES else node.module
                     for alias in node.names]
        else:
            continue
        found.update(name for name in names if name in MODULES)
    return found - {module_name(path)}


GRAPH = {name: imported_modules(path) for name, path in MODULES.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first = last), or None."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for child in sorted(graph.get(node, ())):
            if state.get(child) == "open":
                return stack[stack.index(child):] + [child]
            if child not in state and (cycle := visit(child)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycle_in_mmlabel():
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def depends_on(module: str) -> set[str]:
    seen, todo = set(), [module]
    while todo:
        for child in GRAPH[todo.pop()]:
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


@pytest.mark.parametrize("module", ["mmlabel.tagger", "mmlabel.run_dir", "mmlabel.evaluation", "mmlabel.model"])
def test_prediction_does_not_depend_on_training(module):
    training = sorted(name for name in depends_on(module) if name.startswith("mmlabel.training"))
    assert not training, f"{module} depends on {training}"


PREDICTION = ["mmlabel.tagger", "mmlabel.evaluation", "mmlabel.serving.app", "mmlabel.report", "mmlabel.commands.serve",
              "mmlabel.commands.report"]


def launched_modules(path: Path) -> set[str]:
    """The mmlabel modules `path` names as a string, as in `[sys.executable, "-m", "mmlabel.training.torchrun"]`."""
    return {node.value for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in MODULES}


def reached_from(module: str) -> set[str]:
    """The modules `module` imports or runs in a process (`python -m`), and theirs, and so on."""
    seen, todo = {module}, [module]
    while todo:
        name = todo.pop()
        for child in GRAPH[name] | launched_modules(MODULES[name]):
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


def test_the_training_package_holds_training_only():
    """Every module of mmlabel.training is part of training (`mmlabel train` imports it or runs it in a process),
    and prediction (the tagger, evaluation, the server, the report) needs none of them: what both need, run
    directories, batches, precision and the feature cache, lives outside it."""
    training = {name for name in MODULES if name.startswith("mmlabel.training.")}
    reached = reached_from("mmlabel.commands.train")
    assert training and training <= reached, f"not part of training: {sorted(training - reached)}"
    predicting = set().union(*(depends_on(module) | {module} for module in PREDICTION))
    assert not training & predicting, f"needed to predict: {sorted(training & predicting)}"
    shared = {"mmlabel.run_dir", "mmlabel.data.batches", "mmlabel.device", "mmlabel.feature_cache"}
    assert shared <= predicting & reached


def test_modules_are_under_500_lines():
    long = {name: n for name, path in MODULES.items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES}
    assert not long


def test_functions_are_under_50_lines():
    long = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{name}.{node.name}: {length} lines")
    assert not long
