"""The library's layout as ARCHITECTURE.md states it: packages in one order, imports running
only downwards, no import circle, short modules and functions, a docstring on every package.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from h2q_lib.core.provenance import PACKAGE_DIR, imported_modules, module_name

ROOT = PACKAGE_DIR.parent
# Low to high: a module may import its own package and the packages before it.
PACKAGE_ORDER = ("core", "data", "model", "claims", "training", "evaluation", "export",
                 "analysis", "bench", "book")
TOP_MODULES = {"", "cli", "harness"}  # h2q_lib/__init__.py, the command line, an old path
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 80


def library_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE_DIR.rglob("*.py"))}


def package_of(name: str) -> str:
    return name.split(".")[0] if "." in name or name in PACKAGE_ORDER else ""


def level(name: str) -> int:
    """A module's floor: its package's place in PACKAGE_ORDER; the top modules above all."""
    package = package_of(name)
    return PACKAGE_ORDER.index(package) if package else len(PACKAGE_ORDER)


def import_graph() -> dict[str, set[str]]:
    """Every library module and the library modules it imports, at any depth of the file
    (an import inside a function is a dependency too)."""
    return {name: imported_modules(path.read_text(encoding="utf-8")) - {name}
            for name, path in library_modules().items()}


def exemptions() -> set[str]:
    """``h2q_lib/…py`` and ``h2q_lib/…py::function`` named in ARCHITECTURE.md's section on
    what is long on purpose (each with its reason there)."""
    text = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    section = text.split("## Long on purpose", 1)[1].split("\n## ", 1)[0] if (
        "## Long on purpose" in text) else ""
    return set(re.findall(r"`(h2q_lib/[\w/]+\.py(?:::\w+)?)`", section))


def test_every_module_sits_in_a_package_of_the_order_or_on_top():
    stray = [n for n in library_modules() if package_of(n) not in (*PACKAGE_ORDER, "")
             or (package_of(n) == "" and n not in TOP_MODULES)]
    assert not stray, stray


def test_imports_run_from_higher_packages_to_lower_ones_only():
    upward = [f"{name} imports {dep}" for name, deps in import_graph().items()
              for dep in deps if level(dep) > level(name)]
    assert not upward, upward


def find_circle(graph: dict[str, set[str]]) -> list[str]:
    """One import circle of ``graph`` (its modules in order), or [] when there is none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return path[path.index(dep):] + [dep]
            if dep not in state and (circle := visit(dep)):
                return circle
        path.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state and (circle := visit(node)):
            return circle
    return []


def test_the_library_has_no_import_circle():
    assert find_circle(import_graph()) == []


def test_the_circle_finder_finds_a_circle():
    assert find_circle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_circle({"a": {"b"}, "b": set()}) == []


def test_an_upward_import_is_seen(tmp_path):
    (tmp_path / "core").mkdir()
    (tmp_path / "core" / "low.py").write_text("")
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "high.py").write_text("")
    found = imported_modules("from h2q_lib.book.high import x\nimport h2q_lib.core.low\n",
                             tmp_path)
    assert found == {"book.high", "core.low"}
    assert level("core.low") < level("book.high")


def test_no_module_is_over_the_limit_unless_architecture_says_why():
    allowed = exemptions()
    long = [f"{name}: {n} lines" for name, path in library_modules().items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
            and path.relative_to(ROOT).as_posix() not in allowed]
    assert not long, long


def test_no_function_is_over_the_limit_unless_architecture_says_why():
    allowed = exemptions()
    long = []
    for path in library_modules().values():
        rel = path.relative_to(ROOT).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES and f"{rel}::{node.name}" not in allowed:
                    long.append(f"{rel}::{node.name}: {n} lines")
    assert not long, long


@pytest.mark.parametrize("package", PACKAGE_ORDER)
def test_each_package_says_what_it_holds(package):
    doc = ast.get_docstring(ast.parse((PACKAGE_DIR / package / "__init__.py").read_text()))
    assert doc and len(doc.splitlines()) <= 3, package


def test_architecture_names_every_package_in_the_order():
    text = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    places = [text.find(f"`{package}/`") for package in PACKAGE_ORDER]
    assert -1 not in places, dict(zip(PACKAGE_ORDER, places, strict=True))
    assert places == sorted(places)


def test_architecture_names_every_module_under_its_package():
    text = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    section = text.split("## Modules, package by package", 1)[1].split("\n## ", 1)[0]
    lines = {package: next((" ".join(part.split()) for part in section.split("\n- ")
                            if part.startswith(f"`{package}/`")), "")
             for package in PACKAGE_ORDER}
    # a package's own modules; book/wording/ holds one module a chapter, named for it
    unnamed = [name for name, path in library_modules().items()
               if name.count(".") == 1 and path.name != "__init__.py"
               and f"`{name.split('.')[-1]}`" not in lines[package_of(name)]]
    assert not unnamed, unnamed


def test_the_adapters_old_path_still_imports_and_registers():
    pytest.importorskip("lm_eval")
    import h2q_lib.harness as old
    from h2q_lib.evaluation import lm_eval_adapter as new

    assert old.H2QLM is new.H2QLM and old.main is new.main
    assert old.write_wikitext_task is new.write_wikitext_task
    from lm_eval.api.registry import get_model

    assert get_model("h2q") is new.H2QLM
