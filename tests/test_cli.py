"""The command line as a user runs it (in this process, through `cli.main`; `--help` in a fresh one): exit codes,
one-line errors, an entry-point plugin."""
import json
import re
import subprocess
import sys
import textwrap
import tomllib

import pytest

import mmlabel
from conftest import REPO, run_cli

PLUGIN = textwrap.dedent(
    '''
    from mmlabel import hookimpl, ComponentConfig


    class Config(ComponentConfig):
        width: int = 8


    class Tiny:
        """A tiny text encoder from an installed test plugin."""

        Config = Config

        def __init__(self, config):
            self.config = config

        def tokenize(self, words, max_tokens): ...
        def forward(self, input_ids, attention_mask): ...
        def export(self, directory): ...


    @hookimpl
    def register_text_encoders(register):
        register("cli_tiny", Tiny)
    '''
)


@pytest.fixture
def installed_plugin(tmp_path):
    """A plugin distribution found through the `mmlabel` entry-point group, as `pip install` would leave it."""
    (tmp_path / "cli_tiny_plugin.py").write_text(PLUGIN)
    dist = tmp_path / "mmlabel_cli_tiny-0.3.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mmlabel-cli-tiny\nVersion: 0.3\n")
    (dist / "entry_points.txt").write_text("[mmlabel]\ncli_tiny = cli_tiny_plugin\n")
    return {"PYTHONPATH": str(tmp_path)}


def test_the_version_printed_and_built_is_the_packages_attribute(tmp_path):
    """`mmlabel --version` prints `mmlabel.__version__`, and a distribution built from the sources takes its version
    from that same attribute: a copy of the sources whose attribute says 9.8.7 builds metadata saying 9.8.7."""
    import shutil

    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout == f"mmlabel {mmlabel.__version__}\n"
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md", "mmlabel", "recipes"):
        copy = shutil.copytree if (REPO / name).is_dir() else shutil.copy2
        copy(REPO / name, source / name, **({"ignore": shutil.ignore_patterns("__pycache__")} if copy is
                                              shutil.copytree else {}))
    init = source / "mmlabel" / "__init__.py"
    stated = f'__version__ = "{mmlabel.__version__}"'
    assert stated in init.read_text()
    init.write_text(init.read_text().replace(stated, '__version__ = "9.8.7"'))
    (tmp_path / "meta").mkdir()
    build = ("import sys; from setuptools import build_meta; "
             "print(build_meta.prepare_metadata_for_build_wheel(sys.argv[1]))")
    built = subprocess.run([sys.executable, "-c", build, str(tmp_path / "meta")], cwd=source, capture_output=True,
                           text=True)
    assert built.returncode == 0, built.stderr[-2000:]
    metadata = (tmp_path / "meta" / built.stdout.strip().splitlines()[-1] / "METADATA").read_text()
    assert "Version: 9.8.7" in metadata.splitlines()


def test_list_shows_an_installed_plugin_with_its_distribution(installed_plugin):
    result = run_cli("list", "text_encoder", env=installed_plugin)
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if "cli_tiny" in line)
    assert "text_encoder" in row and "mmlabel-cli-tiny 0.3" in row and "A tiny text encoder" in row


def test_list_of_an_unknown_kind_exits_2_with_one_line():
    result = run_cli("list", "text_encoders")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: unknown component kind 'text_encoders' (did you mean 'text_encoder'?); kinds: text_encoder, "
        "image_encoder, fusion_head, alignment_loss, dataset_reader, metric, tag_scheme, describer"
    ]


def test_plugins_prints_json_with_distribution_and_components(installed_plugin):
    result = run_cli("plugins", env=installed_plugin)
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["cli_tiny"]["distribution"] == "mmlabel-cli-tiny"
    assert rows["cli_tiny"]["version"] == "0.3"
    assert rows["cli_tiny"]["components"] == {"text_encoder": ["cli_tiny"]}
    assert all(row["builtin"] for name, row in rows.items() if name.startswith("mmlabel."))


def _recipe(tmp_path, text_encoder_section: str):
    path = tmp_path / "r.toml"
    path.write_text(f"[text_encoder]\n{text_encoder_section}\n")
    return path


def test_recipe_check_prints_the_resolved_recipe(installed_plugin, tmp_path):
    path = _recipe(tmp_path, 'name = "cli_tiny"')
    result = run_cli("recipe", "check", str(path), "--set", "train.epochs=2", env=installed_plugin)
    assert result.returncode == 0, result.stderr
    resolved = tomllib.loads(result.stdout)
    assert resolved["text_encoder"] == {"name": "cli_tiny", "width": 8}  # the plugin's defaults filled in
    assert resolved["train"]["epochs"] == 2
    assert resolved["fusion_head"]["name"] == "dtca" and resolved["fusion_head"]["heads"] == 8  # a built-in's


def test_recipe_check_unknown_component_exits_2_listing_names_with_providers(installed_plugin, tmp_path):
    path = _recipe(tmp_path, 'name = "cli_tiyn"')
    result = run_cli("recipe", "check", str(path), env=installed_plugin)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"{path}: text_encoder.name: unknown text_encoder 'cli_tiyn'" in lines[0]
    assert "did you mean 'cli_tiny'" in lines[0]
    assert "cli_tiny (mmlabel-cli-tiny 0.3)" in lines[0]
    assert "Traceback" not in result.stderr


def test_recipe_check_misspelt_option_names_its_key_path(installed_plugin, tmp_path):
    path = _recipe(tmp_path, 'name = "cli_tiny"\nwidht = 3')
    result = run_cli("recipe", "check", str(path), env=installed_plugin)
    assert result.returncode == 2
    assert f"{path}: unknown key text_encoder.widht (did you mean text_encoder.width?)" in result.stderr


def test_debug_shows_the_traceback(tmp_path):
    result = run_cli("--debug", "recipe", "check", str(tmp_path / "missing.toml"))
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "no such recipe file" in result.stderr


def test_missing_recipe_is_one_line_exit_2(tmp_path):
    result = run_cli("recipe", "check", str(tmp_path / "missing.toml"))
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {tmp_path / 'missing.toml'}: no such recipe file"


def test_a_recipe_naming_a_known_plugin_that_is_not_loaded_exits_2_with_the_install_command(tmp_path):
    """MMLABEL_PLUGINS= loads no installed plugin, so this holds whether or not mmlabel-hf-vision is installed."""
    result = run_cli("train", "recipes/quickstart.toml", "--out", str(tmp_path / "run"),
                     "--set", "image_encoder.name=hf_vision", "--set", "image_encoder.model=clip_vision_model",
                     env={"MMLABEL_PLUGINS": ""})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: recipes/quickstart.toml (with --set image_encoder.name=hf_vision, "
        "image_encoder.model=clip_vision_model): image_encoder.name: unknown image_encoder 'hf_vision': it is provided "
        "by a plugin that is not installed; install it with `pip install ./plugins/mmlabel-hf-vision`; available: "
        "timm (mmlabel 0.1.0)"
    ]


def test_list_json_is_the_registry(installed_plugin):
    from mmlabel.registry import components

    result = run_cli("list", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [
        {"name": c.name, "qualified_name": c.qualified_name, "kind": c.kind, "provider": c.provider,
         "description": c.description, "problem": None, "shadowed_by": None}
        for c in components()
    ]
    with_plugin = json.loads(run_cli("list", "text_encoder", "--json", env=installed_plugin).stdout)
    assert {row["kind"] for row in with_plugin} == {"text_encoder"}
    assert {"name": "cli_tiny", "qualified_name": "cli_tiny:cli_tiny", "kind": "text_encoder",
            "provider": "mmlabel-cli-tiny 0.3", "description": "A tiny text encoder from an installed test plugin.",
            "problem": None, "shadowed_by": None} in with_plugin


def _options_by_command() -> dict[str, dict[str, object]]:
    """{"data stats": {"--format": click option, ...}, ...} for every command of the app."""
    import typer.main

    from mmlabel.cli import app

    found = {}

    def walk(command, path):
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, f"{path} {name}".strip())
        if not hasattr(command, "commands"):
            found[path] = {flag: option for option in command.params for flag in option.opts}

    walk(typer.main.get_command(app), "")
    return found


def _help(option) -> str:
    return option.__metadata__[0].help


def test_a_shared_option_means_the_same_thing_in_every_command():
    from mmlabel.commands import options

    commands = _options_by_command()
    reading = {name for name, flags in commands.items() if "--format" in flags}
    assert reading == {"score", "evaluate", "bench", "data stats", "data convert"}  # every command that reads data
    for name in reading:
        assert commands[name]["--format"] is commands[name]["-f"]
        assert commands[name]["--format"].help == options.FORMAT_HELP, name
    with_json = {name for name, flags in commands.items() if "--json" in flags}
    assert with_json >= {"list", "train", "evaluate", "predict", "score", "bench", "data stats"}
    for shared, flag in ((options.JsonOption, "--json"), (options.SetOption, "--set"), (options.SplitOption, "--split"),
                          (options.DeviceOption, "--device")):
        users = [name for name, flags in commands.items() if flag in flags]
        assert len(users) >= 2, flag
        assert {commands[name][flag].help for name in users} == {_help(shared)}, flag
    assert {name for name, flags in commands.items() if "--images" in flags} == {"evaluate", "predict", "data prepare",
                                                                               "data verify", "data describe"}


def test_help_of_every_command_imports_no_torch():
    code = (
        "import sys\n"
        "from mmlabel.cli import main\n"
        "for args in sys.argv[1:]:\n"
        "    try:\n"
        "        main([*args.split(), '--help'])\n"
        "    except SystemExit as exit_:\n"
        "        assert exit_.code == 0, (args, exit_.code)\n"
        "print(sorted(m for m in ('torch', 'transformers', 'timm', 'geomloss') if m in sys.modules))\n"
    )
    commands = ["", *_options_by_command()]
    result = subprocess.run([sys.executable, "-c", code, *commands], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "[]"


def test_the_vocabulary_table_in_the_docs_lists_the_commands_of_each_shared_option():
    import re

    text = (REPO / "docs" / "training.md").read_text()
    table = text.split("## The command line's vocabulary")[1].split("\n## ")[0]
    commands = _options_by_command()
    rows = [line.split(" | ") for line in table.splitlines() if line.startswith("| `-")]
    assert len(rows) == 6
    for row in rows:
        flag = re.match(r"\| `(--[a-z]+)", row[0]).group(1)
        documented = {name.strip() for name in re.findall(r"`([a-z][a-z ]*)", row[2]) if name.strip() in commands}
        assert documented == {name for name, flags in commands.items() if flag in flags}, flag


def test_help_shows_human_metavars_not_type_names():
    """typer shows `<bool>`, `<list[str]>`, `<int range>` and `{recipe}`; the help shows what click users know: a
    flag without a metavar, PATH, INTEGER, the option's name for text, an argument's name in capitals."""
    type_names = re.compile(r"<(bool|str|int|float|path|list\[[^\]]*\]|int range|float range|Path|file|dir)>|\{[a-z_]+\}")
    for command in ["", *_options_by_command()]:
        result = run_cli(*command.split(), "--help")
        assert result.returncode == 0, (command, result.stderr)
        assert not type_names.search(result.stdout), (command, type_names.search(result.stdout).group(0))
    train = run_cli("train", "--help").stdout
    assert "Usage: mmlabel train [OPTIONS] RECIPE" in train
    rows = {line.split()[1]: line.split()[2] for line in train.splitlines() if line.startswith("│ --")}
    assert rows["--set"] == "KEY=VALUE" and rows["--seeds"] == "SEEDS" and rows["--out"] == "PATH"
    assert rows["--nproc"] == "INTEGER" and rows["--json"] == "Print" and rows["--help"] == "Show"  # flags: none
    assert "Usage: mmlabel report [OPTIONS] RUNS..." in run_cli("report", "--help").stdout
