"""The ClickHouse store: its failures reach callers as StoreError naming the table, never a driver's type."""

from __future__ import annotations

import pytest

from tapeline.domain.aggregates import Bar
from tapeline.domain.errors import StoreError
from tapeline.io.store import BarStore


def _bar() -> Bar:
    return Bar("binance-usdm", "BTC-USDT-PERP", "1m", 0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 1, 1.0)


def test_a_failed_read_or_write_is_a_store_error_naming_the_table(store: BarStore) -> None:
    store.insert_bars([_bar()])
    assert store.get_bars("binance-usdm", "BTC-USDT-PERP", "1m", 0, 1, 10) == [_bar()]
    store.client.command(f"DROP TABLE {store.database}.bars")  # the footprint_levels view does not depend on it
    with pytest.raises(StoreError, match=rf"reading {store.database}\.bars failed: .*UNKNOWN_TABLE"):
        store.get_bars("binance-usdm", "BTC-USDT-PERP", "1m", 0, 1, 10)
    with pytest.raises(StoreError, match=rf"writing {store.database}\.bars failed"):
        store.insert_bars([_bar()])
    with pytest.raises(StoreError, match="reading"):
        store.instruments()


def test_a_migration_failure_is_a_store_error(store: BarStore) -> None:
    from tapeline.io.store import migrate

    store.client.command(f"DROP TABLE {store.database}.schema_migrations")
    store.client.command(f"CREATE TABLE {store.database}.schema_migrations (x UInt8) ENGINE = Memory")
    with pytest.raises(StoreError, match=f"cannot read the applied migrations of {store.database}"):
        migrate(store.client, store.database)
