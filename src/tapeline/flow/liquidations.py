"""Liquidation flow per bar: long and short liquidated volume (base and USD) and counts. Pure, no I/O.

Liquidations arrive on their own topic with their own offsets, so they are aggregated apart from the
trade bars (whose versions are trade positions) and joined to them by (venue, instrument, interval,
start) in ClickHouse (`bars_with_liquidations`). Windows, watermark, lateness, versions, replay
skipping and idle closing are flow/windows.py's, as for bars. Venue liquidation feeds are snapshots
(Binance: the latest order per symbol per second; OKX: one per contract per second), so these numbers
are lower bounds.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial

from tapeline.domain.aggregates import LiquidationBar
from tapeline.domain.events import Liquidation
from tapeline.flow.bars import BASE_DECIMALS, QUOTE_DECIMALS
from tapeline.flow.windows import Series, WindowedAggregator


class _Window:
    """Liquidations of one open window: per position side (0 long, 1 short) base volume, USD, count."""

    __slots__ = ("base", "count", "incomplete", "usd")

    def __init__(self) -> None:
        self.incomplete = False  # the windowing's flag for trade gaps; liquidation feeds report none
        self.base = [0.0, 0.0]
        self.usd = [0.0, 0.0]
        self.count = [0, 0]

    @classmethod
    def of(cls, bar: LiquidationBar) -> _Window:
        window = cls()
        window.base = [bar.long_base, bar.short_base]
        window.usd = [bar.long_usd, bar.short_usd]
        window.count = [bar.long_count, bar.short_count]
        return window

    def add(self, event: Liquidation) -> None:
        side = 0 if event.position_side == "long" else 1
        self.base[side] += event.qty_base
        self.usd[side] += event.notional_quote
        self.count[side] += 1


class LiquidationAggregator(WindowedAggregator[Liquidation, list[LiquidationBar], _Window, Series[_Window]]):
    """Liquidation bars for many venue-instruments and intervals (windowing: flow/windows.py)."""

    TRACK_CHANGED = True

    def __init__(self, intervals: Iterable[str], allowed_lateness_ns: int = 0, correction_horizon_ns: int = 0) -> None:
        super().__init__(intervals, allowed_lateness_ns, correction_horizon_ns)
        self._final_rows: list[LiquidationBar] = []

    def drain(self) -> list[LiquidationBar]:
        """Rows to persist since the last drain: newly final bars, then open bars that changed."""
        rows = self._final_rows
        self._final_rows = []
        for series in self._dirty:
            for start in sorted(series.changed):
                acc = series.open_bars.get(start)
                if acc is not None:  # else it became final and is among the final rows already
                    rows.append(_row(series, start, acc, False, series.version))
            series.changed.clear()
        self._dirty.clear()
        return rows

    def restore(self, rows: Iterable[LiquidationBar]) -> None:
        """Open bars and final ones (the last, and those within the correction horizon), newest version of each."""
        for bar in sorted(rows, key=lambda b: b.start_ns):
            # bars keep no event times: the watermark resumes from the newest bar's start (a little lenient,
            # so a restarted worker may still correct a bar the old one would have called too old)
            self._restore_window(bar.venue, bar.instrument, bar.interval, bar.start_ns, bar.final, bar.version,
                                 bar.start_ns, partial(_Window.of, bar))  # fmt: skip
        self._settle_restored()

    def _new_series(self, venue: str, instrument: str, interval: str, width_ns: int) -> Series[_Window]:
        return Series(venue, instrument, interval, width_ns)

    def _open(self, series: Series[_Window], event: Liquidation) -> _Window:
        acc = _Window()
        acc.add(event)
        return acc

    def _finalize(self, series: Series[_Window], start: int, acc: _Window, version: int) -> None:
        self._final_rows.append(_row(series, start, acc, True, version))


def _row(series: Series[_Window], start: int, acc: _Window, final: bool, version: int) -> LiquidationBar:
    (long_base, short_base), (long_usd, short_usd) = acc.base, acc.usd
    return LiquidationBar(
        series.venue, series.instrument, series.interval, start,
        round(long_base, BASE_DECIMALS), round(short_base, BASE_DECIMALS),
        round(long_usd, QUOTE_DECIMALS), round(short_usd, QUOTE_DECIMALS),
        acc.count[0], acc.count[1], final, version,
    )  # fmt: skip
