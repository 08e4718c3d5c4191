"""The folder layout is the dependency direction: import-linter holds the code to pyproject's contracts."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.data import REPO_ROOT

REPO = REPO_ROOT


def _lint_imports(cwd: Path, pythonpath: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    code = "import sys, importlinter.cli as c; sys.exit(c.lint_imports(no_cache=True, no_logo=True))"
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True)


def test_the_package_keeps_its_layers() -> None:
    done = _lint_imports(REPO, REPO / "src")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_a_pure_layer_importing_settings_breaks_a_contract(tmp_path: Path) -> None:
    """The check can fail: the same contracts over a copy whose bar arithmetic reads the settings."""
    shutil.copytree(REPO / "src", tmp_path / "src", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("services", "tools"):
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    bars = tmp_path / "src" / "tapeline" / "flow" / "bars.py"
    bars.write_text(bars.read_text() + "\nfrom tapeline.config import Settings  # noqa\n")
    done = _lint_imports(tmp_path, tmp_path / "src")
    assert done.returncode != 0
    assert "tapeline.flow.bars -> tapeline.config" in done.stdout, done.stdout
