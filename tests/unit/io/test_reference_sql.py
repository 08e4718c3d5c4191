"""Bars and footprints of every venue's real captures equal ClickHouse SQL over the raw trades table.

The aggregators and SQL share nothing: the trades are normalized by the venue sessions, stored as
the processor stores them, and the reference is recomputed with GROUP BY over `trades`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tapeline.domain.aggregates import AssetBar
from tapeline.flow.assets import AssetBarAggregator
from tapeline.flow.bars import BarAggregator
from tapeline.flow.footprint import BucketPolicy, FootprintAggregator
from tapeline.flow.windows import newest_versions
from tapeline.io.store import BarStore
from tests.support.data import VENUE_TRADE_CAPTURES, data_files, venue_trades
from tests.support.oscillators import reference as oscillator_reference

BUCKET_BPS = 2.0
LATE_ENOUGH = 10**15  # no trade is late: the reference has no notion of lateness


@pytest.mark.data
@pytest.mark.parametrize("venue", list(VENUE_TRADE_CAPTURES))
def test_bars_and_footprints_equal_sql_over_raw_trades(venue: str, store_factory: Callable[[], BarStore]) -> None:
    trades = venue_trades(venue)
    assert len(trades) >= 15, venue
    store = store_factory()
    store.insert_trades(trades)
    bars = BarAggregator(["1s", "1m"], LATE_ENOUGH)
    prints = FootprintAggregator(["1m"], LATE_ENOUGH, BucketPolicy(target_bps=BUCKET_BPS))
    for position, trade in enumerate(trades):
        assert not bars.add(trade, position)
        prints.add(trade, position)
    bars.flush()
    prints.flush()
    rows = bars.drain()
    levels, _ = prints.drain()
    db = store.database

    for interval, width in (("1s", 10**9), ("1m", 60 * 10**9)):
        sql = f"""
            SELECT venue, instrument, intDiv(ts_ns, {width}) * {width} AS start, count(), countIf(side = 'buy'),
                   sumIf(qty_base, side = 'buy'), sumIf(qty_base, side = 'sell'),
                   sumIf(notional_quote, side = 'buy'), sumIf(notional_quote, side = 'sell'),
                   max(price), min(price), min(ts_ns), max(ts_ns)
            FROM {db}.trades FINAL GROUP BY venue, instrument, start ORDER BY venue, instrument, start"""
        reference = store.client.query(sql).result_rows
        ours = sorted((b for b in rows if b.interval == interval), key=lambda b: (b.venue, b.instrument, b.start_ns))
        assert len(ours) == len(reference), interval
        for bar, ref in zip(ours, reference, strict=True):
            v, inst, start, n, n_buy, buy, sell, buy_q, sell_q, high, low, first_ts, last_ts = ref
            assert (bar.venue, bar.instrument, bar.start_ns) == (v, inst, start)
            assert (bar.trades, bar.buy_trades) == (n, n_buy)
            assert bar.buy_base == pytest.approx(buy, rel=1e-12, abs=1e-9)
            assert bar.sell_base == pytest.approx(sell, rel=1e-12, abs=1e-9)
            assert bar.buy_quote == pytest.approx(buy_q, rel=1e-12, abs=1e-5)
            assert bar.sell_quote == pytest.approx(sell_q, rel=1e-12, abs=1e-5)
            assert (bar.high, bar.low, bar.first_ts_ns, bar.last_ts_ns) == (high, low, first_ts, last_ts)
        # open/close are a price of the first/last trade time (several trades can share a millisecond)
        at_time = dict(
            ((v, i, t), set(p))
            for v, i, t, p in store.client.query(
                f"SELECT venue, instrument, ts_ns, groupUniqArray(price) FROM {db}.trades FINAL "
                "GROUP BY venue, instrument, ts_ns"
            ).result_rows
        )
        for bar in ours:
            assert bar.open in at_time[(bar.venue, bar.instrument, bar.first_ts_ns)]
            assert bar.close in at_time[(bar.venue, bar.instrument, bar.last_ts_ns)]

    buckets = {(lv.venue, lv.instrument): lv.bucket_size for lv in levels}
    cases = " ".join(f"WHEN venue = '{v}' AND instrument = '{i}' THEN {b}" for (v, i), b in buckets.items())
    sql = f"""
        SELECT venue, instrument, intDiv(ts_ns, 60000000000) * 60000000000 AS start,
               floor(price / (CASE {cases} END) + 1e-9) AS bucket_index,
               sumIf(qty_base, side = 'buy'), sumIf(qty_base, side = 'sell'),
               countIf(side = 'buy'), countIf(side = 'sell')
        FROM {db}.trades FINAL GROUP BY venue, instrument, start, bucket_index
        ORDER BY venue, instrument, start, bucket_index"""
    reference = store.client.query(sql).result_rows
    ours = sorted(levels, key=lambda lv: (lv.venue, lv.instrument, lv.start_ns, lv.price))
    assert len(ours) == len(reference)
    for level, (v, inst, start, index, buy, sell, n_buy, n_sell) in zip(ours, reference, strict=True):
        assert (level.venue, level.instrument, level.start_ns) == (v, inst, start)
        assert level.price == pytest.approx(index * level.bucket_size, rel=1e-12)
        assert level.buy_base == pytest.approx(buy, rel=1e-12, abs=1e-9)
        assert level.sell_base == pytest.approx(sell, rel=1e-12, abs=1e-9)
        assert (level.buy_trades, level.sell_trades) == (n_buy, n_sell)


def test_capture_patterns_exist() -> None:
    for patterns in VENUE_TRADE_CAPTURES.values():
        for pattern in patterns:
            assert data_files(pattern), pattern
    assert Path(__file__).exists()


# The asset and multiplier of a listed base, written again in SQL from docs/DOMAIN.md (not from domain/assets.py).
_MULTIPLIER_SQL = """multiIf(match(listed, '^1000000[A-Z]'), 1000000, match(listed, '^100000[A-Z]'), 100000,
    match(listed, '^10000[A-Z]'), 10000, match(listed, '^1000[A-Z]'), 1000, match(listed, '^1M[A-Z]'), 1000000,
    match(listed, '^k[A-Z]'), 1000, 1)"""
_PREFIX_SQL = """multiIf(match(listed, '^1000000[A-Z]'), 7, match(listed, '^100000[A-Z]'), 6,
    match(listed, '^10000[A-Z]'), 5, match(listed, '^1000[A-Z]'), 4, match(listed, '^1M[A-Z]'), 2,
    match(listed, '^k[A-Z]'), 1, 0)"""


@pytest.mark.data
def test_asset_bars_equal_sql_over_the_stored_venue_bars(store_factory: Callable[[], BarStore]) -> None:
    """Every venue's captures together: asset bars equal GROUP BY asset over the stored venue bars (USD-quoted
    instruments, asset units, volume-weighted open/close, CVD from the first window and per UTC day)."""
    trades = [t for venue in VENUE_TRADE_CAPTURES for t in venue_trades(venue)]
    bars = BarAggregator(["1m", "1h"], LATE_ENOUGH)
    for position, trade in enumerate(trades):
        bars.add(trade, position)
    bars.flush()
    venue_bars = newest_versions(bars.drain())
    store = store_factory()
    store.insert_bars(venue_bars)
    assets = AssetBarAggregator(["1m", "1h"], LATE_ENOUGH)
    for position, bar in enumerate(venue_bars):
        assets.add(bar, position)
    assets.flush()
    newest: dict[tuple[str, str, str, int], AssetBar] = {}
    for row in assets.drain():
        newest[(row.asset, row.kind, row.interval, row.start_ns)] = row
    db = store.database
    sql = f"""
        SELECT asset, kind, interval, start_ns, buy, sell, buy_q, sell_q, n, high, low, open, close, venues,
               sum(buy - sell) OVER (PARTITION BY asset, kind, interval ORDER BY start_ns) AS cvd,
               sum(buy - sell) OVER (PARTITION BY asset, kind, interval, intDiv(start_ns, 86400000000000)
                                     ORDER BY start_ns) AS cvd_daily
        FROM (
            SELECT asset, kind, interval, start_ns,
                   sum(buy_base * m) AS buy, sum(sell_base * m) AS sell, sum(buy_quote) AS buy_q,
                   sum(sell_quote) AS sell_q, sum(trades) AS n, max(high / m) AS high, min(low / m) AS low,
                   sum(open / m * (buy_base + sell_base) * m) / sum((buy_base + sell_base) * m) AS open,
                   sum(close / m * (buy_base + sell_base) * m) / sum((buy_base + sell_base) * m) AS close,
                   arraySort(groupUniqArray(venue)) AS venues
            FROM (
                SELECT *, splitByChar('-', instrument)[1] AS listed, {_MULTIPLIER_SQL} AS m,
                       substring(listed, {_PREFIX_SQL} + 1) AS asset,
                       arrayJoin([if(endsWith(instrument, '-SPOT'), 'spot', 'perp'), 'all']) AS kind
                FROM {db}.bars FINAL
                WHERE splitByChar('-', instrument)[2] IN ('USD', 'USDT', 'USDC', 'BUSD', 'FDUSD')
            )
            GROUP BY asset, kind, interval, start_ns
        )
        ORDER BY asset, kind, interval, start_ns"""
    reference = store.client.query(sql).result_rows
    assert len(reference) == len(newest) > 100
    kinds = {(asset, kind) for asset, kind, *_ in reference}
    assert {("BTC", "all"), ("BTC", "perp"), ("BTC", "spot"), ("ETH", "spot")} <= kinds
    mixed = 0
    for (
        asset,
        kind,
        interval,
        start,
        buy,
        sell,
        buy_q,
        sell_q,
        n,
        high,
        low,
        open_,
        close,
        venues,
        cvd,
        daily,
    ) in reference:
        row = newest[(asset, kind, interval, start)]
        assert row.final and not row.incomplete
        got = (row.buy_base, row.sell_base, row.buy_quote, row.sell_quote, row.open, row.close, row.cvd_base,
               row.cvd_daily_base)  # fmt: skip
        want = (buy, sell, buy_q, sell_q, open_, close, cvd, daily)
        assert got == pytest.approx(want, rel=1e-9, abs=1e-6), (asset, kind, interval, start)
        assert (row.trades, row.high, row.low, row.venues) == (n, high, low, venues)
        mixed += len(venues) > 1
    assert mixed > 0  # bybit linear + spot share windows of BTC and ETH in kind `all`
    # CMF/MFI of every asset series (the short lengths: the captures are short), by the definitions
    short = AssetBarAggregator(["1m", "1h"], LATE_ENOUGH, cmf_bars=3, mfi_bars=2)
    for position, bar in enumerate(venue_bars):
        short.add(bar, position)
    short.flush()
    latest = {(r.asset, r.kind, r.interval, r.start_ns): r for r in short.drain()}  # drains are in version order
    series: dict[tuple[str, str, str], list[AssetBar]] = {}
    for row in sorted(latest.values(), key=lambda r: r.start_ns):
        series.setdefault((row.asset, row.kind, row.interval), []).append(row)
    checked = 0
    for rows in series.values():
        for row, (cmf, mfi) in zip(rows, oscillator_reference(rows, 3, 2), strict=True):
            assert (row.cmf is None, row.mfi is None) == (cmf is None, mfi is None)
            if cmf is not None and mfi is not None:
                assert (row.cmf, row.mfi) == pytest.approx((cmf, mfi), rel=1e-9, abs=1e-12)
                checked += 1
    assert checked > 10
