"""Where the project's files are, whether running from a checkout or an installed wheel."""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent.parent  # meaningful in a checkout (src layout)


def run_dir() -> Path:
    """Run state (broker data, embedded ClickHouse): `.run/` of the checkout, else of the working directory."""
    base = REPO_ROOT if (REPO_ROOT / "pyproject.toml").is_file() else Path.cwd()
    return base / ".run"


def schemas_dir() -> Path:
    """`schemas/` of the checkout, or the copy packed into the wheel as `tapeline/_schemas`."""
    packaged = PACKAGE_DIR / "_schemas"
    return packaged if packaged.is_dir() else REPO_ROOT / "schemas"
