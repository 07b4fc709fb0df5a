"""What produced a result: the git revision, package versions and the library's fingerprint.

``library_fingerprint`` is what the book's staleness test compares. It hashes the library's
*code*: every ``h2q_lib/**/*.py`` parsed and dumped as an abstract syntax tree with docstrings
removed, so comments, docstrings and formatting do not count, and anything that can change
what a notebook computes or prints does. Each executed notebook records it in its metadata.
"""

from __future__ import annotations

import ast
import hashlib
import json
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # h2q_lib/
PACKAGES = ("h2q-repro", "torch", "numpy", "datasets", "tiktoken", "transformers", "lm_eval",
            "papermill", "jupyter-book", "nbval")


def git_revision() -> str:
    """The commit of the checkout this package lives in (``+dirty`` if its code differs)."""
    try:
        rev = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=PACKAGE_DIR,
                             capture_output=True, text=True, timeout=10).stdout.strip()
        # "dirty" when the code that produces results differs from the commit; the executed
        # notebooks that a pipeline run is rewriting do not count. ":/" roots each path at
        # the top of the work tree, whatever folder git runs in.
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all", "--",
                                ":/h2q_lib", ":/notebooks", ":/pyproject.toml"],
                               cwd=PACKAGE_DIR, capture_output=True, text=True,
                               timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (rev or "unknown") + ("+dirty" if dirty else "")


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _code_only(source: str) -> str:
    """The module's syntax tree without docstrings, as text."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(
                    getattr(body[0], "value", None), ast.Constant) and isinstance(
                    body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree, include_attributes=False)


def module_path(name: str, package_dir: Path = PACKAGE_DIR) -> Path:
    """The file of library module ``name`` (dotted below ``h2q_lib``, e.g. ``"data.wikitext"``;
    a package's name is its ``__init__.py``)."""
    path = package_dir.joinpath(*name.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def module_name(path: Path, package_dir: Path = PACKAGE_DIR) -> str:
    """The dotted name below ``h2q_lib`` of the module in ``path`` (inverse of ``module_path``)."""
    parts = path.relative_to(package_dir).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def library_fingerprint(modules: tuple[str, ...] | None = None,
                        package_dir: Path = PACKAGE_DIR) -> str:
    """sha256 (16 hex digits) over the code of the library's modules, by dotted name.

    ``modules`` (names such as ``"evaluation.documents"``) narrows it to the code a result
    depends on; None takes every module.
    """
    h = hashlib.sha256()
    names = (sorted(module_name(p, package_dir) for p in package_dir.rglob("*.py"))
             if modules is None else sorted(modules))
    for name in names:
        h.update(name.encode() + b"\0")
        h.update(_code_only(module_path(name, package_dir).read_text(encoding="utf-8")).encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def imported_modules(source: str, package_dir: Path = PACKAGE_DIR) -> set[str]:
    """Dotted names of the ``h2q_lib`` modules that ``source`` imports.

    The library imports itself by absolute path only (``from h2q_lib.data.wikitext import
    ...`` or ``from h2q_lib.data import wikitext``), so one rule serves the library's files
    and the notebooks' cells.
    """
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and (
                node.module == "h2q_lib" or node.module.startswith("h2q_lib.")):
            base = node.module[len("h2q_lib."):] if "." in node.module else ""
            for alias in node.names:
                name = f"{base}.{alias.name}" if base else alias.name
                if module_path(name, package_dir).is_file():
                    found.add(name)
                elif base:
                    found.add(base)
        elif isinstance(node, ast.Import):
            found.update(a.name[len("h2q_lib."):] for a in node.names
                         if a.name.startswith("h2q_lib."))
    return {name for name in found if module_path(name, package_dir).is_file()}


def module_closure(roots: set[str], package_dir: Path = PACKAGE_DIR) -> tuple[str, ...]:
    """``roots`` and every library module they import, directly or not, sorted."""
    seen: set[str] = set()
    todo = [m for m in roots if module_path(m, package_dir).is_file()]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        source = module_path(name, package_dir).read_text(encoding="utf-8")
        todo += [m for m in imported_modules(source, package_dir) if m not in seen]
    return tuple(sorted(seen))


def notebook_modules(notebook_path: str | Path) -> tuple[str, ...]:
    """The library modules a notebook's code cells use, with everything they import."""
    nb = json.loads(Path(notebook_path).read_text(encoding="utf-8"))
    roots: set[str] = set()
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            source = "".join(cell["source"])
            try:
                roots |= imported_modules(source)
            except SyntaxError:  # a cell with IPython magics: no library import to find
                continue
    return module_closure(roots)


def run_provenance() -> dict:
    """Provenance for a run's ``summary.json``: revision, fingerprint, packages."""
    return {"git_revision": git_revision(), "library_fingerprint": library_fingerprint(),
            "packages": package_versions()}
