"""The ClickHouse store: its failures reach callers as StoreError naming the table, never a driver's type."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tapeline.domain.aggregates import Bar, DerivBar, ObiBar
from tapeline.domain.errors import StoreError
from tapeline.domain.events import DerivTicker
from tapeline.flow.derivatives import DerivativesAggregator
from tapeline.flow.windows import newest_versions
from tapeline.io.store import DERIV_BAR_COLUMNS, DERIV_TICKER_COLUMNS, BarStore
from tests.support.derivs import MS, S, bybit_linear_tickers, disordered_tickers, run_derivs


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


# -- derivatives bars and tickers ------------------------------------------------------------------------------


def _deriv_bars(store: BarStore) -> list[DerivBar]:
    sql = f"SELECT {', '.join(DERIV_BAR_COLUMNS)} FROM {store.database}.deriv_bars FINAL"
    return newest_versions(DerivBar(*row) for row in store.client.query(sql).result_rows)


def _resume_through_the_store(store: BarStore, tickers: list[DerivTicker], split: int, intervals: tuple[str, ...],
                              lateness_ns: int, horizon_ns: int) -> tuple[int, int]:  # fmt: skip
    """Run up to `split`, persist, restart from `resume_derivs`, resume 2 positions early; (resumed rows, stored)."""
    agg = DerivativesAggregator(intervals, lateness_ns, horizon_ns)
    for position, ticker in enumerate(tickers[:split]):
        agg.add(ticker, position)
    store.insert_deriv_bars(agg.drain())
    stored = len(_deriv_bars(store))
    resumed = store.resume_derivs(horizon_ns)
    restarted = DerivativesAggregator(intervals, lateness_ns, horizon_ns)
    restarted.restore(resumed)
    resume = max(0, split - 2)
    for position, ticker in enumerate(tickers[resume:], resume):
        restarted.add(ticker, position)
    restarted.flush()
    store.insert_deriv_bars(restarted.drain())
    return len(resumed), stored


def test_deriv_bars_resume_where_a_restarted_aggregator_continues_bit_identically(
    store_factory: Callable[[], BarStore],
) -> None:
    """Corrections after the restart need the final bars within the horizon and the one before them (the carry of
    the oldest): `resume_derivs` returns those, and the stored rows end equal to an uninterrupted run's."""
    tickers, intervals, lateness, horizon = disordered_tickers(), ("5s", "15s", "1m"), 2 * S, 30 * S
    want = run_derivs(tickers, intervals, lateness, horizon)
    fewer = 0
    for split in range(5, len(tickers), 9):
        store = store_factory()
        resumed, stored = _resume_through_the_store(store, tickers, split, intervals, lateness, horizon)
        assert _deriv_bars(store) == want, f"split at {split}"
        fewer += resumed < stored
    assert fewer  # the resume is not simply every row


def test_a_correction_of_the_oldest_resumed_bar_measures_from_the_bar_before_it(store: BarStore) -> None:
    def oi(ts_s: int, **fields: float) -> DerivTicker:
        return DerivTicker("okx", "BTC-USDT-SWAP", "BTC-USDT-PERP", ts_s * S, ts_s * S, **fields)  # type: ignore[arg-type]

    # minutes 1 and 2 have no ticker; after the fourth ticker minutes 3 and 4 are the correctable ones
    tickers = [oi(10, open_interest_base=100.0), oi(190, open_interest_base=104.0), oi(250, open_interest_base=105.0),
               oi(310, mark_price=1.0), oi(195, open_interest_base=110.0)]  # fmt: skip
    want = run_derivs(tickers, ("1m",), S, 120 * S)
    _resume_through_the_store(store, tickers, 4, ("1m",), S, 120 * S)
    got = _deriv_bars(store)
    assert got == want
    minute3 = next(bar for bar in got if bar.start_ns == 180 * S)
    assert (minute3.oi_close, minute3.oi_delta, minute3.version) == (110.0, 10.0, 4)  # from minute 0's close


@pytest.mark.data
def test_real_deriv_bars_and_tickers_round_trip(store: BarStore) -> None:
    tickers = bybit_linear_tickers()
    _resume_through_the_store(store, tickers, len(tickers) // 2, ("1s", "5s"), 500 * MS, 2 * S)
    assert _deriv_bars(store) == run_derivs(tickers, ("1s", "5s"), 500 * MS, 2 * S)
    store.insert_deriv_tickers(tickers)
    store.insert_deriv_tickers(tickers[10:30])  # a replay replaces itself
    sql = f"SELECT {', '.join(DERIV_TICKER_COLUMNS)} FROM {store.database}.deriv_tickers FINAL"
    stored = [DerivTicker(*row) for row in store.client.query(sql).result_rows]
    key = lambda t: (t.venue, t.instrument, t.ts_ns, t.recv_ts_ns)  # noqa: E731
    assert sorted(stored, key=key) == sorted(tickers, key=key) and len({key(t) for t in tickers}) == len(tickers)


def test_deriv_reads_and_writes_fail_as_store_errors(store: BarStore) -> None:
    store.client.command(f"DROP TABLE {store.database}.deriv_bars")
    with pytest.raises(StoreError, match=rf"reading {store.database}\.deriv_bars failed"):
        store.resume_derivs(0)
    with pytest.raises(StoreError, match=rf"writing {store.database}\.deriv_bars failed"):
        store.insert_deriv_bars(run_derivs(disordered_tickers(n=5), ("1m",), S))
    store.client.command(f"DROP TABLE {store.database}.deriv_tickers")
    with pytest.raises(StoreError, match=rf"writing {store.database}\.deriv_tickers failed"):
        store.insert_deriv_tickers(disordered_tickers(n=1))


BAND_COLUMNS = [f"bps{b}_{s}" for b in (10, 25, 50) for s in ("bid_mean", "ask_mean", "bid_last", "ask_last")]


def _obi(instrument: str, start_ns: int, version: int, quantities: list[float | None]) -> ObiBar:
    measures = [0.125, -0.25, -0.5, 0.75] * 7
    return ObiBar("binance-usdm", instrument, "1m", start_ns, *measures, 60 * 10**9, False, 12, True, version,
                  **dict(zip(BAND_COLUMNS, quantities, strict=True)))  # fmt: skip


def test_obi_band_quantities_are_written_read_and_resumed(store: BarStore) -> None:
    """ObiBar v2's band quantities (migration 011) round-trip through obi_bars, get_obi, resume_obi, obi_latest."""
    first = _obi("BTC-USDT-PERP", 0, 4, [151.590291, 132.129919, 151.389, 130.111, 0.0, 1e-12, 0.0, None,
                                         2.5e9, 1377.927, None, None])  # fmt: skip
    second = _obi("BTC-USDT-PERP", 60 * 10**9, 9, [0.1, 0.2, 0.30000000000000004, 3.0, 4.0, 5.0, 6.0, 7.0,
                                                   8.0, 9.0, 10.0, 11.0])  # fmt: skip
    store.insert_obi([first, second])
    assert store.get_obi("binance-usdm", "BTC-USDT-PERP", "1m", 0, 10**12, 10) == [first, second]
    assert store.resume_obi() == [second]  # each series' last final bar, quantities included
    # a row written before migration 011 (no band columns) reads back with them unset
    store.client.command(
        f"INSERT INTO {store.database}.obi_bars (venue, instrument, interval, start_ns, verified_ns, incomplete, "
        "updates, final, version) VALUES ('binance-usdm', 'ETH-USDT-PERP', '1m', 0, 0, true, 0, true, 3)"
    )
    (legacy,) = store.get_obi("binance-usdm", "ETH-USDT-PERP", "1m", 0, 1, 10)
    assert [getattr(legacy, name) for name in BAND_COLUMNS] == [None] * 12 and legacy.version == 3
    # the analysts' view was recreated: it shows the new columns, in the row's order
    view = store.client.query(f"DESCRIBE TABLE {store.database}.obi_latest").result_rows
    assert [r[0] for r in view][-13:] == [*BAND_COLUMNS, "start"]
    sql = f"SELECT {', '.join(BAND_COLUMNS)} FROM {store.database}.obi_latest WHERE start_ns = 0 AND version = 4"
    assert list(store.client.query(sql).result_rows[0]) == [getattr(first, name) for name in BAND_COLUMNS]
