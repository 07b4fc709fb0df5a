"""What produced a result: the git revision, package versions and the library's fingerprint.

``library_fingerprint`` is what the book's staleness test compares. It hashes the library's
*code*: every ``h2q_lib/*.py`` parsed and dumped as an abstract syntax tree with docstrings
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

PACKAGE_DIR = Path(__file__).resolve().parent
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


def library_fingerprint(modules: tuple[str, ...] | None = None,
                        package_dir: Path = PACKAGE_DIR) -> str:
    """sha256 (16 hex digits) over the code of the library's modules, by file name.

    ``modules`` (names such as ``"evaluate"``) narrows it to the code a result depends on;
    None takes every module.
    """
    h = hashlib.sha256()
    paths = (sorted(package_dir.glob("*.py")) if modules is None
             else [package_dir / f"{m}.py" for m in sorted(modules)])
    for path in paths:
        h.update(path.name.encode() + b"\0")
        h.update(_code_only(path.read_text(encoding="utf-8")).encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def _imported_modules(source: str, package_relative: bool) -> set[str]:
    """Names of ``h2q_lib`` modules that ``source`` imports (absolutely or, inside the
    package, relatively)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if package_relative and node.level == 1:
                found.update([mod.split(".")[0]] if mod else [a.name for a in node.names])
            elif node.level == 0 and mod == "h2q_lib":
                found.update(a.name for a in node.names)
            elif node.level == 0 and mod.startswith("h2q_lib."):
                found.add(mod.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names
                         if a.name.startswith("h2q_lib."))
    return found


def module_closure(roots: set[str], package_dir: Path = PACKAGE_DIR) -> tuple[str, ...]:
    """``roots`` and every library module they import, directly or not, sorted."""
    seen: set[str] = set()
    todo = [m for m in roots if (package_dir / f"{m}.py").is_file()]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        source = (package_dir / f"{name}.py").read_text(encoding="utf-8")
        todo += [m for m in _imported_modules(source, package_relative=True)
                 if (package_dir / f"{m}.py").is_file() and m not in seen]
    return tuple(sorted(seen))


def notebook_modules(notebook_path: str | Path) -> tuple[str, ...]:
    """The library modules a notebook's code cells use, with everything they import."""
    nb = json.loads(Path(notebook_path).read_text(encoding="utf-8"))
    roots: set[str] = set()
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            source = "".join(cell["source"])
            try:
                roots |= _imported_modules(source, package_relative=False)
            except SyntaxError:  # a cell with IPython magics: no library import to find
                continue
    return module_closure(roots)


def run_provenance() -> dict:
    """Provenance for a run's ``summary.json``: revision, fingerprint, packages."""
    return {"git_revision": git_revision(), "library_fingerprint": library_fingerprint(),
            "packages": package_versions()}
