"""Bars and footprints of every venue's real captures equal ClickHouse SQL over the raw trades table.

The aggregators and SQL share nothing: the trades are normalized by the venue sessions, stored as
the processor stores them, and the reference is recomputed with GROUP BY over `trades`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tapeline.flow.bars import BarAggregator
from tapeline.flow.footprint import BucketPolicy, FootprintAggregator
from tapeline.io.store import BarStore
from tests.support.data import VENUE_TRADE_CAPTURES, data_files, venue_trades

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
