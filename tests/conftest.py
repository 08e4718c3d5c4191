"""Shared fixtures.

Embedded ClickHouse (chdb) opens one data directory per process, so the whole test session shares
one directory and isolates tests by database instead: use `store_factory` / `store`, never a chdb
path of your own.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tapeline.config import ClickHouseSettings
from tapeline.io.store import BarStore


@pytest.fixture(scope="session")
def chdb_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's one embedded ClickHouse data directory."""
    return tmp_path_factory.mktemp("chdb")


@pytest.fixture(scope="session")
def store_factory(chdb_path: Path) -> Callable[[], BarStore]:
    """`make_store()` -> a BarStore on a fresh, migrated database in the session's chdb directory."""

    def make_store() -> BarStore:
        database = f"t_{uuid.uuid4().hex[:16]}"
        return BarStore.open(ClickHouseSettings(dsn=f"chdb://{chdb_path}", database=database))

    return make_store


@pytest.fixture
def store(store_factory: Callable[[], BarStore]) -> BarStore:
    """A BarStore on its own empty database, per test."""
    return store_factory()
