"""Liquidation flow per bar: long and short liquidated volume (base and USD) and counts. Pure, no I/O.

Liquidations arrive on their own topic with their own offsets, so they are aggregated apart from the
trade bars (whose versions are trade positions) and joined to them by (venue, instrument, interval,
start) in ClickHouse (`bars_with_liquidations`). Windows, watermark, lateness, versions, replay skipping
and restore follow flow/bars.py. Venue liquidation feeds are snapshots (Binance: the latest order per
symbol per second; OKX: one per contract per second), so these numbers are lower bounds.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from tapeline.config import INTERVAL_NS
from tapeline.events import Liquidation
from tapeline.flow.bars import BASE_DECIMALS, QUOTE_DECIMALS


class LiquidationBar(msgspec.Struct, gc=False):
    venue: str
    instrument: str
    interval: str
    start_ns: int
    long_base: float  # volume of liquidated longs (forced sells)
    short_base: float  # volume of liquidated shorts (forced buys)
    long_usd: float
    short_usd: float
    long_count: int
    short_count: int
    final: bool = False
    version: int = 0


class _Series:
    __slots__ = ("closed_until_ns", "interval", "open_bars", "version", "width_ns")

    def __init__(self, interval: str) -> None:
        self.interval = interval
        self.width_ns = INTERVAL_NS[interval]
        self.open_bars: dict[int, list[float]] = {}  # start -> [long_base, short_base, long_usd, short_usd, nl, ns]
        self.closed_until_ns: int | None = None
        self.version = -1


class LiquidationAggregator:
    def __init__(self, intervals: Iterable[str], allowed_lateness_ns: int = 0) -> None:
        self.intervals = list(intervals)
        self.lateness_ns = allowed_lateness_ns
        self._series: dict[tuple[str, str], list[_Series]] = {}
        self._max_ts: dict[tuple[str, str], int] = {}
        self._rows: dict[tuple[str, str, str, int], LiquidationBar] = {}  # pending rows, newest state per bar
        self._last_seen: dict[tuple[str, str], int] = {}  # processing time of the last event, for close_idle

    def add(self, event: Liquidation, position: int, now_ns: int = 0) -> list[str]:
        """Apply one liquidation at its source `position`; returns the intervals it was late for."""
        key = (event.venue, event.instrument)
        self._last_seen[key] = now_ns
        series_list = self._series.get(key) or self._series.setdefault(key, [_Series(i) for i in self.intervals])
        watermark = self._max_ts.get(key, event.ts_ns) - self.lateness_ns
        late = []
        for series in series_list:
            if position <= series.version:
                continue  # applied before a restart
            start = event.ts_ns - event.ts_ns % series.width_ns
            if start + series.width_ns <= watermark or (
                series.closed_until_ns is not None and start < series.closed_until_ns
            ):
                late.append(series.interval)
                continue
            acc = series.open_bars.setdefault(start, [0.0, 0.0, 0.0, 0.0, 0, 0])
            side = 0 if event.position_side == "long" else 1
            acc[side] += event.qty_base
            acc[2 + side] += event.notional_quote
            acc[4 + side] += 1
            series.version = position
            self._stage(key, series, start, acc, final=False, version=position)
        if event.ts_ns > self._max_ts.get(key, event.ts_ns - 1):
            self._max_ts[key] = event.ts_ns
            self._close(key, event.ts_ns - self.lateness_ns, position)
        return late

    def close_idle(self, now_ns: int, idle_ns: int) -> None:
        """Close windows of instruments quiet for `idle_ns` of processing time (liquidations are sparse)."""
        for key, series_list in self._series.items():
            if now_ns - self._last_seen.get(key, now_ns) >= idle_ns:
                self._close(key, now_ns - self.lateness_ns - idle_ns, max(s.version for s in series_list))

    def touch(self, now_ns: int) -> None:
        for key in self._series:
            self._last_seen[key] = now_ns

    def flush(self) -> None:
        for key, series_list in self._series.items():
            for series in series_list:
                if series.open_bars:
                    self._close_series(key, series, max(series.open_bars) + series.width_ns, series.version)

    def drain(self) -> list[LiquidationBar]:
        rows = list(self._rows.values())
        self._rows.clear()
        return rows

    def restore(self, rows: Iterable[LiquidationBar]) -> None:
        """Open bars and each series' last final bar (newest version of each), as persisted."""
        for bar in sorted(rows, key=lambda b: b.start_ns):
            key = (bar.venue, bar.instrument)
            series_list = self._series.setdefault(key, [_Series(i) for i in self.intervals])
            series = next((s for s in series_list if s.interval == bar.interval), None)
            if series is None:
                continue
            series.version = max(series.version, bar.version)
            if bar.final:
                end = bar.start_ns + series.width_ns
                series.closed_until_ns = max(series.closed_until_ns or end, end)
            else:
                series.open_bars[bar.start_ns] = [bar.long_base, bar.short_base, bar.long_usd, bar.short_usd,
                                                  bar.long_count, bar.short_count]  # fmt: skip
            # bars keep no event times: the watermark resumes from the newest bar's start (a little lenient)
            self._max_ts[key] = max(self._max_ts.get(key, bar.start_ns), bar.start_ns)

    def _close(self, key: tuple[str, str], watermark: int, version: int) -> None:
        for series in self._series.get(key, ()):
            self._close_series(key, series, watermark, version)

    def _close_series(self, key: tuple[str, str], series: _Series, watermark: int, version: int) -> None:
        for start in sorted(s for s in series.open_bars if s + series.width_ns <= watermark):
            acc = series.open_bars.pop(start)
            series.closed_until_ns = start + series.width_ns
            self._stage(key, series, start, acc, final=True, version=version)

    def _stage(self, key: tuple[str, str], series: _Series, start: int, acc: list, final: bool, version: int) -> None:
        self._rows[(*key, series.interval, start)] = LiquidationBar(
            key[0], key[1], series.interval, start,
            round(acc[0], BASE_DECIMALS), round(acc[1], BASE_DECIMALS),
            round(acc[2], QUOTE_DECIMALS), round(acc[3], QUOTE_DECIMALS),
            int(acc[4]), int(acc[5]), final, version,
        )  # fmt: skip
