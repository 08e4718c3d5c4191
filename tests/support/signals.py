"""Helpers for detector tests: hand-built bars, an engine run over them, and the final bars of real captures."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from typing import Any

import pytest

from tapeline.domain.aggregates import AssetBar, Bar
from tapeline.domain.assets import asset_of_instrument, market_kind
from tapeline.domain.events import Signal
from tapeline.domain.intervals import INTERVAL_NS
from tapeline.flow.assets import AssetBarAggregator
from tapeline.flow.bars import BarAggregator
from tapeline.flow.windows import newest_versions
from tapeline.signals.engine import SignalEngine
from tapeline.signals.rules import Rules
from tests.support.data import venue_trades

T0 = 1_700_000_040_000_000_000  # a minute boundary
MINUTE = INTERVAL_NS["1m"]


def make_bar(
    i: int, *, high: float = 101.0, low: float = 99.0, close: float | None = None, buy_base: float = 1.0,
    sell_base: float = 1.0, buy_quote: float | None = None, sell_quote: float | None = None, trades: int = 2,
    cmf: float | None = None, max_trade_quote: float = 0.0, max_trade_side: str = "", max_trade_price: float = 0.0,
    instrument: str = "BTC-USDT-PERP", interval: str = "1m", start_ns: int | None = None,
) -> Bar:  # fmt: skip
    """Final bar i of a series (start T0 + i x width unless `start_ns`); deltas follow from buys and sells, and
    quote amounts default to base x 100."""
    mid = (high + low) / 2
    buy_q = buy_base * 100.0 if buy_quote is None else buy_quote
    sell_q = sell_base * 100.0 if sell_quote is None else sell_quote
    start = T0 + i * INTERVAL_NS[interval] if start_ns is None else start_ns
    return Bar(
        venue="binance-usdm", instrument=instrument, interval=interval, start_ns=start, open=mid, high=high,
        low=low, close=mid if close is None else close, buy_base=buy_base, sell_base=sell_base, buy_quote=buy_q,
        sell_quote=sell_q, delta_base=buy_base - sell_base, delta_quote=buy_q - sell_q, trades=trades, cvd_base=0.0,
        final=True, cmf=cmf, max_trade_quote=max_trade_quote, max_trade_price=max_trade_price,
        max_trade_side=max_trade_side, max_trade_ts_ns=start + 1 if max_trade_quote else 0,
    )  # fmt: skip


def engine(detector: str, params: Mapping[str, Any] | None = None, intervals: Sequence[str] = ("1m",)) -> SignalEngine:
    return SignalEngine(
        Rules.parse([{"detector": detector, "intervals": list(intervals), "params": dict(params or {})}])
    )


def run(detector: str, bars: Iterable[Bar | AssetBar], params: Mapping[str, Any] | None = None,
        intervals: Sequence[str] = ("1m",)) -> list[Signal]:  # fmt: skip
    """The records an engine with one rule of `detector` publishes for `bars`, in order."""
    return engine(detector, params, intervals).run(bars)


SeriesId = tuple[str | None, str | None, str, str, str]  # venue, instrument, asset, market kind, interval


def series_of_record(record: Signal) -> SeriesId:
    return (record.venue, record.instrument, record.asset, record.market, record.interval)


def series_of_bar(bar: Bar | AssetBar) -> SeriesId:
    if isinstance(bar, AssetBar):
        return (None, None, bar.asset, bar.kind, bar.interval)
    return (bar.venue, bar.instrument, asset_of_instrument(bar.instrument).asset, market_kind(bar.instrument),
            bar.interval)  # fmt: skip


def by_series(rows: Iterable[Bar | AssetBar]) -> dict[SeriesId, list[Bar | AssetBar]]:
    """Rows grouped by series, each in start order."""
    out: dict[SeriesId, list[Bar | AssetBar]] = {}
    for row in sorted(rows, key=lambda r: r.start_ns):
        out.setdefault(series_of_bar(row), []).append(row)
    return out


INTERVALS = ("1s", "1m")


@cache
def capture_bars(venue: str) -> tuple[list[Bar], list[AssetBar]]:
    """Final 1s and 1m bars of a venue's trade captures (newest version of each window, as `tapeline bars`
    drains them) and the asset bars made of them; skips when the captures are absent."""
    aggregator = BarAggregator(INTERVALS, 10**15)  # everything is in time: no trade left out
    for position, trade in enumerate(venue_trades(venue)):
        aggregator.add(trade, position)
    aggregator.flush()
    venue_bars = [b for b in newest_versions(aggregator.drain()) if b.final]
    assets = AssetBarAggregator(INTERVALS, 10**15)
    for position, bar in enumerate(venue_bars):
        assets.add(bar, position)
    assets.flush()
    newest: dict[tuple[str, str, str, int], AssetBar] = {}
    for row in assets.drain():  # in version order: the last row of a window is its newest
        newest[(row.asset, row.kind, row.interval, row.start_ns)] = row
    asset_bars = sorted((r for r in newest.values() if r.final),
                        key=lambda r: (r.asset, r.kind, INTERVAL_NS[r.interval], r.start_ns))  # fmt: skip
    return venue_bars, asset_bars


Expected = dict[tuple[Any, ...], tuple[float, Mapping[str, float]]]  # key -> strength, detail


def assert_matches(records: Sequence[Signal], expected: Expected, extra: tuple[str, ...] = ()) -> int:
    """Every record of a replay without corrections is a first version, and the signals are exactly the
    expected ones: keyed by (series, kind, direction, ts_ns, *detail[extra]), with the strength and the given
    detail values. Returns how many fired."""
    assert all(r.version == 1 and r.status == "active" for r in records)
    got = {(series_of_record(r), r.kind, r.direction, r.ts_ns, *(r.detail[k] for k in extra)): r for r in records}
    assert len(got) == len(records), "two records with one key"
    assert sorted(got, key=repr) == sorted(expected, key=repr)
    for key, record in got.items():
        strength, detail = expected[key]
        assert record.strength == pytest.approx(strength, rel=1e-9, abs=1e-12), key
        for name, value in detail.items():
            assert record.detail[name] == pytest.approx(value, rel=1e-9, abs=1e-9), (key, name)
    return len(got)


def bar_index(record: Signal) -> int:
    """The position of the confirming bar of a record about make_bar bars (ts_ns is that bar's end)."""
    width = INTERVAL_NS[record.interval]
    return (record.ts_ns - width - T0) // width


def fired(records: Iterable[Signal], *extra: str) -> list[tuple[Any, ...]]:
    """(kind, direction, confirming bar index, *detail[extra]) of each record, in order."""
    return [(r.kind, r.direction, bar_index(r), *(r.detail[k] for k in extra)) for r in records]


@cache
def captures_bars(venues: tuple[str, ...], intervals: tuple[str, ...]) -> tuple[list[Bar], list[AssetBar]]:
    """Like `capture_bars`, for the trade captures of several venues together (e.g. Bybit linear and spot, whose
    asset bars meet in the same windows) at any intervals."""
    aggregator = BarAggregator(intervals, 10**15)
    trades = [t for venue in venues for t in venue_trades(venue)]
    for position, trade in enumerate(trades):
        aggregator.add(trade, position)
    aggregator.flush()
    venue_bars = [b for b in newest_versions(aggregator.drain()) if b.final]
    assets = AssetBarAggregator(intervals, 10**15)
    for position, bar in enumerate(venue_bars):
        assets.add(bar, position)
    assets.flush()
    newest: dict[tuple[str, str, str, int], AssetBar] = {}
    for row in assets.drain():
        newest[(row.asset, row.kind, row.interval, row.start_ns)] = row
    return venue_bars, sorted((r for r in newest.values() if r.final), key=lambda r: r.start_ns)


def in_start_order(bars: Iterable[Bar | AssetBar], sides: Iterable[Any]) -> list[Any]:
    """Bars and side rows (liquidation, derivatives, footprint bars) by window start, each side row right after
    the bar of its window: the order a live engine mostly sees, so a replay publishes first versions only."""
    rows = [(b.start_ns, 0, b) for b in bars] + [(r.start_ns, 1, r) for r in sides]
    return [row for _start, _rank, row in sorted(rows, key=lambda r: (r[0], r[1]))]
