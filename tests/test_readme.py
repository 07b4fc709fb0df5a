"""The README's commands work as written (issue #24, item 6).

Every command of every ``bash`` and ``python`` block of README.md is checked without training
anything: ``h2q`` (and ``python -m h2q_lib.<module>``, ``torchrun ... -m h2q_lib.cli``) lines
are parsed by the project's own argument parser and their values validated as ``h2q`` would;
``make`` targets, papermill notebooks and parameters, scripts and files must exist; Python code
must compile and name what exists. A command no rule knows fails the test, so a new line in
the README gets a rule. The cheap commands (reading the committed ``runs/prefix``) also run, on
a copy of the folder.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import json
import re
import shlex
import shutil
from pathlib import Path

import pytest

from h2q_lib.cli import build_parser, main, overrides_from_args
from h2q_lib.training.profiles import PROFILES, RuntimeConfig, get_profile, split_overrides

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def commands() -> list[str]:
    """Each command of the ``bash`` blocks: continuation lines joined, comments dropped."""
    out = []
    for block in blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#\s.*$", "", line).strip()
            if line and not line.startswith("#"):
                out.append(line)
    return out


def make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([\w-]+):", text, flags=re.M))


def notebook_parameters(path: Path) -> set[str]:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    source = next("".join(c["source"]) for c in cells
                  if "parameters" in c.get("metadata", {}).get("tags", []))
    return {t.id for node in ast.parse(source).body if isinstance(node, ast.Assign)
            for t in node.targets if isinstance(t, ast.Name)}


def check_h2q(args: list[str]) -> None:
    """Parse ``h2q ARGS`` and validate its values as ``h2q`` does, without running it."""
    parsed = build_parser().parse_args(args)  # SystemExit on an unknown flag
    if parsed.command == "train":
        recipe, runtime = split_overrides(overrides_from_args(parsed))
        assert parsed.profile in PROFILES
        get_profile(parsed.profile, **recipe)
        RuntimeConfig(**runtime).validate()
    elif parsed.command == "evaluate":
        from h2q_lib.evaluation.protocols import PROTOCOLS

        assert parsed.protocol in PROTOCOLS
        assert (ROOT / parsed.checkpoint).exists() or parsed.checkpoint.startswith("runs/")
    elif parsed.command == "pipeline":
        assert parsed.profile in PROFILES
    elif parsed.command == "export":
        assert parsed.format == "hf"


def check_lm_eval(args: list[str]) -> None:
    """Parse ``lm_eval ARGS`` with lm-evaluation-harness's own command line, not running it."""
    import sys
    from unittest import mock

    cli = pytest.importorskip("lm_eval._cli.harness")
    with mock.patch.object(sys, "argv", ["lm_eval", *args]):
        parsed = cli.HarnessCLI().parse_args()  # SystemExit on an unknown flag
    assert parsed.model == "hf" and parsed.tasks
    model_args = dict(kv.split("=", 1) for kv in args[args.index("--model_args") + 1].split(","))
    assert model_args["pretrained"].startswith("exports/"), model_args


def check_harness(args: list[str]) -> None:
    harness = pytest.importorskip("h2q_lib.evaluation.lm_eval_adapter")
    assert args[args.index("--model") + 1] == harness.MODEL_NAME
    model_args = dict(kv.split("=", 1) for kv in args[args.index("--model_args") + 1].split(","))
    assert set(model_args) <= set(harness.MODEL_ARGS), model_args
    assert "--tasks" in args


def check_python_code(code: str) -> None:
    """Compiles, and every ``h2q_lib`` name it imports or calls exists."""
    tree = ast.parse(code)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("h2q_lib"):
            module = pytest.importorskip(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name), f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("h2q_lib"):
                    pytest.importorskip(alias.name)
        elif isinstance(node, ast.Dict):
            keys = {k.value for k in node.keys if isinstance(k, ast.Constant)}
            if "checkpoint" in keys:  # model_args of the h2q model
                harness = pytest.importorskip("h2q_lib.evaluation.lm_eval_adapter")
                assert keys <= set(harness.MODEL_ARGS), keys


def check(command: str) -> None:
    """One README command, by its first word(s); an unknown kind of command fails."""
    words = shlex.split(command)
    if "&&" in words:  # a chain: each part on its own
        parts, part = [], []
        for w in words + ["&&"]:
            if w == "&&":
                parts.append(shlex.join(part))
                part = []
            else:
                part.append(w)
        for p in parts:
            check(p)
        return
    if re.fullmatch(r"[A-Z][A-Z0-9_]*=\S*", words[0]):  # an environment setting first
        check(shlex.join(words[1:]))
        return
    head = words[0]
    if head == "taskset":  # pinned to CPUs: the command it runs is checked
        assert words[1] == "-c" and re.fullmatch(r"[\d,-]+", words[2]), command
        check(shlex.join(words[3:]))
        return
    if head == "make":
        assert words[1] in make_targets(), words[1]
        for assignment in words[2:]:
            name, value = assignment.split("=", 1)
            assert name == "PROFILE" and value in PROFILES, assignment
    elif head in (".venv/bin/h2q", "h2q"):
        check_h2q(words[1:])
    elif head == "torchrun":
        at = words.index("-m")
        assert words[at + 1] == "h2q_lib.cli"
        check_h2q(words[at + 2:])
    elif head in ("python", "python3", ".venv/bin/python") and words[1] == "-m":
        module = words[2]
        if module == "venv":
            return
        assert importlib.util.find_spec(module) is not None, module
        if module == "h2q_lib.cli":
            check_h2q(words[3:])
        elif module == "h2q_lib.evaluation.lm_eval_adapter":
            check_harness(words[3:])
        else:
            parser = getattr(importlib.import_module(module), "build_parser", None)
            if parser is not None:
                parser().parse_args(words[3:])
    elif head in ("python", "python3") and words[1] == "-c":
        check_python_code(words[2])
    elif head == ".venv/bin/pip":
        pins = re.findall(r"torch==([\d.]+)", (ROOT / "Makefile").read_text())
        assert [w for w in words if w.startswith("torch==")] == [f"torch=={pins[0]}"]
    elif head == "papermill":
        notebook, out = ROOT / words[1], words[2]
        # a chapter run by hand never writes over the committed book
        assert notebook.is_file() and out.startswith("_build/")
        params = notebook_parameters(notebook)
        given = {}
        for i, w in enumerate(words):
            if w == "-p":
                assert words[i + 1] in params, words[i + 1]
                given[words[i + 1]] = words[i + 2]
        if "overrides" in given:  # the recipe it asks for is valid (warm-up within the schedule)
            from h2q_lib.training.profiles import notebook_configs

            notebook_configs(given.get("profile", "prefix"), given["overrides"])
    elif head == "mkdir":
        assert all(w == "-p" or w.startswith("_build/") for w in words[1:]), command
    elif head == "lm_eval":
        check_lm_eval(words[1:])
    elif head.startswith("benchmarks/"):
        assert (ROOT / head).is_file(), head
    elif head in ("conda", "jupyter-book"):
        assert (ROOT / "environment.yml").is_file() and (ROOT / "book").is_dir()
    else:
        raise AssertionError(f"no rule checks this README command: {command}")


COMMANDS = commands()


def test_the_readme_has_commands():
    assert len(COMMANDS) >= 10


@pytest.mark.parametrize("command", COMMANDS)
def test_a_readme_command_parses_and_names_what_exists(command):
    check(command)


def test_the_readme_inline_commands_parse():
    """Commands quoted inline (``h2q train --extend``) name flags that exist."""
    for quoted in re.findall(r"`((?:\.venv/bin/)?h2q [^`]*)`", README):
        words = shlex.split(quoted)
        if len(words) < 2 or words[1] not in ("train", "evaluate", "bench", "pipeline"):
            continue
        parser = build_parser()
        sub = parser._subparsers._group_actions[0].choices[words[1]]
        known = {o for a in sub._actions for o in a.option_strings}
        for w in words[2:]:
            if w.startswith("--"):
                assert w.split("=")[0] in known, quoted


@pytest.mark.parametrize("language", ["python"])
def test_the_readme_python_blocks_compile_and_name_what_exists(language):
    for code in blocks(language):
        check_python_code(code)


def test_the_committed_run_is_read_by_the_readme_commands(tmp_path, data_dir, monkeypatch,
                                                          capsys):
    """``h2q train --profile prefix --run-dir runs/prefix`` and ``h2q evaluate runs/prefix``,
    run as written on a copy of the committed folder: read, never retrained or rescored."""
    monkeypatch.chdir(tmp_path)
    shutil.copytree(ROOT / "runs" / "prefix", tmp_path / "runs" / "prefix")
    monkeypatch.setenv("H2Q_DATA_DIR", str(data_dir))
    before = (tmp_path / "runs" / "prefix" / "evaluation.json").read_bytes()
    capsys.readouterr()
    assert main(["train", "--profile", "prefix", "--run-dir", "runs/prefix"]) == 0
    out = capsys.readouterr().out
    assert "its records are read, not retrained" in out
    assert main(["evaluate", "runs/prefix", "--protocol", "lm-eval"]) == 0
    out = capsys.readouterr().out
    assert "keeps no weights" in out and "bits/byte" in out and "wrote" not in out
    assert (tmp_path / "runs" / "prefix" / "evaluation.json").read_bytes() == before
