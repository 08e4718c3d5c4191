"""Bulk aggregation (`add_columns`) gives exactly, to the bit, what `add` gives for the same trades one by one."""

from __future__ import annotations

import random

import numpy as np
import pytest

from tapeline.domain.events import Trade, TradeGap
from tapeline.flow.bars import BarAggregator
from tapeline.flow.columns import TradeColumns
from tapeline.flow.footprint import BucketPolicy, FootprintAggregator
from tapeline.flow.windows import WindowedAggregator, newest_versions
from tapeline.io.capture import read_capture
from tests.support.data import data_files, venue_trades
from tests.support.venues import usdm_capture_trades

S = 1_000_000_000
INTERVALS = ["1s", "1m", "5m", "1h", "1d"]


def feed_one_by_one(agg: WindowedAggregator, batch: list[tuple[Trade | TradeGap, int]]) -> set[tuple[int, str]]:
    late = set()
    for event, position in batch:
        if type(event) is TradeGap:
            agg.add_gap(event, position)
        else:
            late |= {(position, interval) for interval in agg.add(event, position)}
    return late


def feed_columns(agg: WindowedAggregator, batch: list[tuple[Trade | TradeGap, int]]) -> set[tuple[int, str]]:
    """As the processor does: per instrument, runs of trades as columns, gaps between runs."""
    by_instrument: dict[tuple[str, str], list] = {}
    for event, position in batch:
        by_instrument.setdefault((event.venue, event.instrument), []).append((event, position))
    late = set()
    for events in by_instrument.values():
        run: list[tuple[Trade, int]] = []
        for event, position in [*events, (None, 0)]:
            if type(event) is Trade:
                run.append((event, position))
                continue
            if run:
                columns = TradeColumns.of_trades([t for t, _ in run], [p for _, p in run])
                late |= {(int(columns.position[i]), interval) for i, interval in agg.add_columns(columns)}
                run = []
            if event is not None:
                agg.add_gap(event, position)
    return late


def disordered(trades: list[Trade], disorder_s: float, seed: int) -> list[Trade]:
    rng = random.Random(seed)
    return sorted(trades, key=lambda t: t.ts_ns + rng.uniform(0, disorder_s * S))


def with_gaps(trades: list[Trade], seed: int) -> list[Trade | TradeGap]:
    """A few trade gaps spliced in, each spanning a couple of seconds before where it is reported."""
    rng = random.Random(seed)
    out: list[Trade | TradeGap] = []
    for trade in trades:
        if rng.random() < 0.0005:
            out.append(TradeGap(trade.venue, trade.symbol, trade.instrument, trade.ts_ns - 2 * S, trade.ts_ns, "test"))
        out.append(trade)
    return out


def batches(events: list, seed: int) -> list[list[tuple[Trade | TradeGap, int]]]:
    rng = random.Random(seed)
    out, i = [], 0
    while i < len(events):
        size = rng.choice([1, 2, 7, 60, 500, 3000])
        out.append([(e, position) for position, e in enumerate(events[i : i + size], start=i)])
        i += size
    return out


def bar_key(bar) -> tuple:
    return (bar.venue, bar.instrument, bar.interval, bar.start_ns, bar.final, bar.version)


def run_bars(events: list, seed: int, lateness_s: float, horizon_s: float, bulk: bool) -> tuple[list, set]:
    agg = BarAggregator(INTERVALS, int(lateness_s * S), int(horizon_s * S))
    feed = feed_columns if bulk else feed_one_by_one
    drains, late = [], set()
    for batch in batches(events, seed):
        late |= feed(agg, batch)
        drains.append(sorted(agg.drain(), key=bar_key))
    agg.flush()
    drains.append(sorted(agg.drain(), key=bar_key))
    return drains, late


def run_footprints(events: list, seed: int, lateness_s: float, horizon_s: float, bulk: bool) -> tuple[list, set]:
    agg = FootprintAggregator(["1m", "5m"], int(lateness_s * S), BucketPolicy(target_bps=0.5),
                              correction_horizon_ns=int(horizon_s * S))  # fmt: skip
    feed = feed_columns if bulk else feed_one_by_one
    drains, late = [], set()
    for batch in batches([e for e in events if type(e) is Trade], seed):
        late |= feed(agg, batch)
        levels, summaries = agg.drain()
        drains.append((sorted(levels, key=lambda lv: (*bar_key(lv), lv.price)), sorted(summaries, key=bar_key)))
    return drains, late


@pytest.mark.parametrize("disorder_s, lateness_s, horizon_s", [(0, 0, 0), (3, 1, 0), (8, 1, 300), (0.2, 0.5, 300)])
def test_bulk_bars_equal_one_by_one_on_a_real_capture(disorder_s: float, lateness_s: float, horizon_s: float) -> None:
    (capture,) = data_files("binance_usdm/trade/hftbacktest_*.gz")
    trades = usdm_capture_trades(read_capture(capture))
    events = with_gaps(disordered(trades, disorder_s, 7), 8)
    one_by_one = run_bars(events, 9, lateness_s, horizon_s, bulk=False)
    bulk = run_bars(events, 9, lateness_s, horizon_s, bulk=True)
    assert sum(len(d) for d in one_by_one[0]) > 300
    assert bulk[1] == one_by_one[1]  # the same trades are too late, for the same intervals
    assert bulk[0] == one_by_one[0]  # every drain: the same rows, versions and floats
    if disorder_s > lateness_s:
        assert one_by_one[1] or horizon_s, "the disorder should make some trades late"


@pytest.mark.parametrize("disorder_s, lateness_s, horizon_s", [(0, 0, 0), (8, 1, 300), (3, 1, 0)])
def test_bulk_footprints_equal_one_by_one_on_a_real_capture(
    disorder_s: float, lateness_s: float, horizon_s: float
) -> None:
    (capture,) = data_files("binance_usdm/trade/hftbacktest_*.gz")
    trades = usdm_capture_trades(read_capture(capture))
    events = disordered(trades, disorder_s, 3)
    one_by_one = run_footprints(events, 4, lateness_s, horizon_s, bulk=False)
    bulk = run_footprints(events, 4, lateness_s, horizon_s, bulk=True)
    assert sum(len(levels) for levels, _ in one_by_one[0]) > 100
    assert bulk == one_by_one


@pytest.mark.data
@pytest.mark.parametrize("venue", ["binance-usdm", "bybit-linear", "bybit-spot", "okx", "hyperliquid"])
def test_bulk_equals_one_by_one_on_every_venue(venue: str) -> None:
    """Several instruments per batch, each venue's own price and size shapes."""
    events = disordered(venue_trades(venue), 2, 5)
    assert run_bars(events, 6, 1, 300, bulk=True) == run_bars(events, 6, 1, 300, bulk=False)
    assert run_footprints(events, 6, 1, 300, bulk=True) == run_footprints(events, 6, 1, 300, bulk=False)


def test_bulk_skips_what_a_restored_aggregator_applied() -> None:
    """A resumed consumer replays positions the restored state includes: they must not count twice."""
    trades = [Trade("v", "X", "X-PERP", int((10 + i * 0.37) * S), 0, 100.0 + i % 7, 1.0 + i % 3, 100.0,
                    "buy" if i % 3 else "sell", str(i)) for i in range(60)]  # fmt: skip
    whole = BarAggregator(["1s", "1m"], S // 2)
    feed_one_by_one(whole, list(zip(trades, range(60), strict=True)))
    whole.flush()
    first = BarAggregator(["1s", "1m"], S // 2)
    feed_columns(first, list(zip(trades[:40], range(40), strict=True)))
    written = first.drain()
    restored = BarAggregator(["1s", "1m"], S // 2)
    restored.restore(newest_versions(written))
    feed_columns(restored, list(zip(trades[25:], range(25, 60), strict=True)))  # resumes before the last write
    restored.flush()
    assert newest_versions(written + restored.drain()) == newest_versions(whole.drain())


@pytest.mark.parametrize("seed", range(8))
def test_bulk_largest_trade_equals_one_by_one_on_random_columns_with_ties(seed: int) -> None:
    """Notionals drawn from a few values, so the largest trade of a window is often tied: `add_many` picks the first
    to arrive as `add` does, also across runs, late trades and windows opened in the middle of a run."""
    rng = random.Random(seed)
    trades = []
    for i in range(3000):
        price, qty = rng.choice([(100.0, 1.0), (50.0, 2.0), (25.0, 4.0), (10.0, 1.0), (100.0, 0.5)])
        ts = int((10 + i * 0.013 + rng.uniform(0, 3 if rng.random() < 0.05 else 0.2)) * S)
        trades.append(Trade("v", "X", "X-PERP", ts, 0, price, qty, price * qty, rng.choice(["buy", "sell"]), str(i)))
    one_by_one = run_bars(trades, seed, 0.5, 300, bulk=False)
    bulk = run_bars(trades, seed, 0.5, 300, bulk=True)
    assert bulk == one_by_one
    rows = [b for drain in one_by_one[0] for b in drain]
    tied = [b for b in rows if b.max_trade_quote == 100.0]  # three (price, qty) pairs make 100
    assert len(tied) > len(rows) / 2
    assert {b.max_trade_price for b in tied} == {100.0, 50.0, 25.0}  # ties went to different trades
    assert {b.max_trade_side for b in tied} == {"buy", "sell"}


@pytest.mark.parametrize("seed", range(20))
def test_add_many_sets_the_largest_trade_as_add_does(seed: int) -> None:
    """One accumulator: `add` trade by trade against `add_many` on the same trades (a slice or an index array in
    arrival order, as the windowing passes them), every slot equal to the bit."""
    from tapeline.flow.bars import _Acc

    rng = random.Random(seed)
    n = rng.randrange(2, 200)
    trades = []
    for i in range(n):
        price, qty = rng.choice([1.5, 3.0, 0.1 + rng.random()]), rng.choice([1.0, 2.0, 0.5])
        ts, side = 10**18 + rng.randrange(10**9), rng.choice(["buy", "sell"])
        trades.append(Trade("v", "X", "X-PERP", ts, 0, price, qty, price * qty, side, str(i)))
    columns = TradeColumns.of_trades(trades, list(range(n)))
    one = _Acc(trades[0])
    for t in trades[1:]:
        one.add(t)
    sliced, indexed = _Acc(trades[0]), _Acc(trades[0])
    sliced.add_many(columns, slice(1, n))
    indexed.add_many(columns, np.arange(1, n))
    for acc in (sliced, indexed):
        assert [getattr(acc, name) for name in _Acc.__slots__ if name != "cvd_end"] == [
            getattr(one, name) for name in _Acc.__slots__ if name != "cvd_end"]  # fmt: skip
    largest = max(t.notional_quote for t in trades)
    first = next(t for t in trades if t.notional_quote == largest)
    assert (one.max_quote, one.max_price, one.max_side, one.max_ts) == (largest, first.price, first.side, first.ts_ns)
