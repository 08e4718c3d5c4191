"""Recorded market data in ../shared/data (never copied into the project)."""

from __future__ import annotations

from pathlib import Path

import pytest

DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def data_files(pattern: str) -> list[Path]:
    """Files under ../shared/data matching `pattern`; skips the test with the reason when absent."""
    if not DATA_DIR.is_dir():
        pytest.skip(f"recorded market data not found at {DATA_DIR} (clone ../shared beside the project)")
    files = sorted(DATA_DIR.glob(pattern))
    if not files:
        pytest.skip(f"no files match {pattern} under {DATA_DIR}")
    return files
