"""Derivatives bars: funding, mark, index, basis and open-interest OHLC per window, from DerivTicker events.

Pure, no I/O. Definitions are docs/DOMAIN.md "Derivatives bars"; windows, watermark, lateness, correction
horizon, replay skipping and idle closing are flow/windows.py's, on the ticker's venue time (`ts_ns`).

* A window keeps only what its own tickers said (`_Window`): per field the last value, and the OHLC of
  the open interest in base units and in USD. "First" and "last" inside a window follow arrival (source
  position) order, as the sessions merge a venue's messages; which window a ticker belongs to follows its
  venue time. A ticker's None fields say nothing, so merging field by field is keeping the last value.
* A row is the window over the previous bar's row (`_row`): a field none of the window's tickers carried
  is the previous bar's (and named in `carried`), and oi_delta is measured from the previous bar's close.
  So a window's row depends on the bar before it:
  - open rows are chained from the last final row at every drain (all open rows of a series that took
    an event are emitted again);
  - a late ticker within the correction horizon re-emits its window, final, at the ticker's position, and
    every later kept final window whose row changes with it (its oi_delta, values it carried), at the
    same position; the open rows follow in the next drain.
* Restore: a row says which fields it carried and its newest ticker time, so a restarted aggregator
  rebuilds each window's own state and its watermark exactly and continues bit-identically.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

import msgspec

from tapeline.domain.aggregates import DerivBar
from tapeline.domain.events import DerivTicker
from tapeline.flow.bars import BASE_DECIMALS
from tapeline.flow.windows import Series, WindowedAggregator

USD_DECIMALS = 10  # a USD open interest the aggregator derives (base x mark) is rounded as venue notionals are

Ohlc = tuple[float, float, float, float]
T = TypeVar("T")


def _ohlc_add(ohlc: Ohlc | None, value: float) -> Ohlc:
    if ohlc is None:
        return (value, value, value, value)
    open_, high, low, _ = ohlc
    return (open_, max(high, value), min(low, value), value)


class _Window:
    """What the tickers of one window said themselves (None: none of them carried it)."""

    __slots__ = ("carry_in", "funding", "incomplete", "index", "last_ts", "mark", "next_funding", "oi", "row",
                 "updates", "usd")  # fmt: skip

    def __init__(self, last_ts: int) -> None:
        self.incomplete = False  # the windowing's trade-gap flag; ticker feeds report none
        self.updates = 0
        self.last_ts = last_ts  # newest ticker time (restores the watermark)
        self.funding: float | None = None
        self.next_funding: int | None = None
        self.mark: float | None = None
        self.index: float | None = None
        self.oi: Ohlc | None = None  # open interest in base units
        self.usd: Ohlc | None = None  # open interest in USD
        self.row: DerivBar | None = None  # a final window's current row
        self.carry_in: DerivBar | None = None  # the previous bar's row when this one was last computed final

    @classmethod
    def of(cls, bar: DerivBar, carry_in: DerivBar | None) -> _Window:
        """A persisted row's window: its own values are those it did not carry."""
        window = cls(bar.last_ts_ns)
        window.updates = bar.updates
        carried = set(bar.carried)
        window.funding = None if "funding_rate" in carried else bar.funding_rate
        window.next_funding = None if "next_funding_ts_ns" in carried else bar.next_funding_ts_ns
        window.mark = None if "mark_price" in carried else bar.mark_price
        window.index = None if "index_price" in carried else bar.index_price
        if "open_interest_base" not in carried:
            window.oi = _own(bar.oi_open, bar.oi_high, bar.oi_low, bar.oi_close)
        if "open_interest_usd" not in carried:
            window.usd = _own(bar.oi_open_usd, bar.oi_high_usd, bar.oi_low_usd, bar.oi_close_usd)
        if bar.final:
            window.row, window.carry_in = bar, carry_in
        return window

    def add(self, ticker: DerivTicker) -> None:
        self.updates += 1
        if ticker.ts_ns > self.last_ts:
            self.last_ts = ticker.ts_ns
        if ticker.funding_rate is not None:
            self.funding = ticker.funding_rate
        if ticker.next_funding_ts_ns is not None:
            self.next_funding = ticker.next_funding_ts_ns
        if ticker.mark_price is not None:
            self.mark = ticker.mark_price
        if ticker.index_price is not None:
            self.index = ticker.index_price
        base, usd = ticker.open_interest_base, ticker.open_interest_usd
        if base is not None:
            self.oi = _ohlc_add(self.oi, base)
            if usd is None and ticker.mark_price is not None:  # the venue gave no USD value: price it at its mark
                usd = round(base * ticker.mark_price, USD_DECIMALS)
        if usd is not None:
            self.usd = _ohlc_add(self.usd, usd)


def _own(open_: float | None, high: float | None, low: float | None, close: float | None) -> Ohlc:
    if open_ is None or high is None or low is None or close is None:
        raise ValueError("a bar with its own open interest must have all four of its OHLC values")
    return (open_, high, low, close)


@dataclass(eq=False)
class _Series(Series[_Window]):
    """Windows of one (venue, instrument, interval), and the row of its last final window (the next one's carry)."""

    last_final: DerivBar | None = None


class DerivativesAggregator(WindowedAggregator[DerivTicker, list[DerivBar], _Window, _Series]):
    """Derivatives bars for many venue-instruments and intervals (windowing: flow/windows.py)."""

    def __init__(self, intervals: Iterable[str], allowed_lateness_ns: int = 0, correction_horizon_ns: int = 0) -> None:
        super().__init__(intervals, allowed_lateness_ns, correction_horizon_ns)
        self._final_rows: list[DerivBar] = []

    def drain(self) -> list[DerivBar]:
        """Rows to persist since the last drain: final rows (new and corrected), then every open row of each
        series that took an event (they chain from the rows before them, so any of them may have changed)."""
        rows = self._final_rows
        self._final_rows = []
        for series in self._dirty:
            rows.extend(self._open_rows(series))
        self._dirty.clear()
        return rows

    def restore(self, rows: Iterable[DerivBar]) -> None:
        """Rebuild state from persisted rows (newest version of each): open bars, and final ones from each series'
        last back past the correction horizon (the one before the oldest correctable bar is its carry)."""
        before: dict[tuple[str, str, str], DerivBar] = {}  # per series, the last final row restored so far
        for bar in sorted(rows, key=lambda b: b.start_ns):
            key = (bar.venue, bar.instrument, bar.interval)
            window = partial(_Window.of, bar, before.get(key))
            series = self._restore_window(bar.venue, bar.instrument, bar.interval, bar.start_ns, bar.final,
                                          bar.version, bar.last_ts_ns, window)  # fmt: skip
            if series is not None and bar.final:
                series.last_final = before[key] = bar
        self._settle_restored()

    def _open_rows(self, series: _Series) -> Iterator[DerivBar]:
        prev = series.last_final
        for start in sorted(series.open_bars):
            prev = _row(series, start, series.open_bars[start], prev, False, series.version)
            yield prev

    def _new_series(self, venue: str, instrument: str, interval: str, width_ns: int) -> _Series:
        return _Series(venue, instrument, interval, width_ns)

    def _open(self, series: _Series, event: DerivTicker) -> _Window:
        window = _Window(event.ts_ns)
        window.add(event)
        return window

    def _finalize(self, series: _Series, start: int, acc: _Window, version: int) -> None:
        # windows close in start order, so the last final row is this window's previous bar
        acc.carry_in = series.last_final
        acc.row = series.last_final = _row(series, start, acc, acc.carry_in, True, version)
        self._final_rows.append(acc.row)

    def _emit_final_again(self, series: _Series, start: int, acc: _Window, version: int) -> None:
        if acc.row is not None:  # a flagged window (trade gaps do not reach tickers): same values, newer version
            acc.row = msgspec.structs.replace(acc.row, version=version)
            self._final_rows.append(acc.row)

    def _correct(self, series: _Series, start: int, acc: _Window, event: DerivTicker, created: bool,
                 version: int) -> None:  # fmt: skip
        """A late ticker changed the final window at `start`: emit it again, and every later kept final window
        whose row changes with it, at `version`; then the series' last final row is the newest kept one's."""
        closed = series.closed  # final windows within the horizon, in start order (`start` among them)
        if created:  # a window that had no ticker: its previous bar is the one before it
            acc.carry_in = _carry_before(series, start)
        prev = acc.carry_in
        for s in [s for s in closed if s >= start]:
            window = closed[s]
            window.carry_in = prev
            row = _row(series, s, window, prev, True, version)
            if s == start or window.row is None or _differs(row, window.row):
                window.row = row
                self._final_rows.append(row)
            prev = window.row
        newest = closed[next(reversed(closed))].row
        if newest is not None and (series.last_final is None or newest.start_ns >= series.last_final.start_ns):
            series.last_final = newest  # the open rows chain from it in the next drain (the series is dirty)


def _carry_before(series: _Series, start: int) -> DerivBar | None:
    """The row of the bar before `start` (a window that had none): the kept final window before it, else the
    previous bar of the kept one after it (its carry skipped this empty window), else the last final row."""
    starts = list(series.closed)
    earlier = [s for s in starts if s < start]
    if earlier:
        return series.closed[earlier[-1]].row
    later = [s for s in starts if s > start]
    if later:
        return series.closed[later[0]].carry_in
    last = series.last_final
    return last if last is not None and last.start_ns < start else None


def _differs(row: DerivBar, old: DerivBar) -> bool:
    return msgspec.structs.replace(row, version=old.version) != old


def _pick(own: T | None, previous: T | None, name: str, carried: list[str]) -> T | None:
    """The window's own value, else the previous bar's (and `name` is carried)."""
    if own is not None:
        return own
    carried.append(name)
    return previous


def _row(series: _Series, start: int, acc: _Window, prev: DerivBar | None, final: bool, version: int) -> DerivBar:
    """The row of a window: its own values over the previous bar's row `prev` (None: the series' first bar)."""
    carried: list[str] = []
    funding = _pick(acc.funding, None if prev is None else prev.funding_rate, "funding_rate", carried)
    next_funding = _pick(
        acc.next_funding, None if prev is None else prev.next_funding_ts_ns, "next_funding_ts_ns", carried
    )
    mark = _pick(acc.mark, None if prev is None else prev.mark_price, "mark_price", carried)
    index = _pick(acc.index, None if prev is None else prev.index_price, "index_price", carried)
    basis = (mark - index) / index if mark is not None and index else None
    prev_oi = None if prev is None else prev.oi_close
    oi: tuple[float | None, float | None, float | None, float | None]
    if acc.oi is not None:
        oi = acc.oi
        # the change of the close; the series' first bar with open interest measures from its own open
        oi_delta: float | None = round(acc.oi[3] - (acc.oi[0] if prev_oi is None else prev_oi), BASE_DECIMALS)
    else:
        carried.append("open_interest_base")
        oi = (prev_oi, prev_oi, prev_oi, prev_oi)
        oi_delta = None if prev_oi is None else 0.0
    usd: tuple[float | None, float | None, float | None, float | None]
    if acc.usd is not None:
        usd = acc.usd
    else:
        carried.append("open_interest_usd")
        prev_usd = None if prev is None else prev.oi_close_usd
        usd = (prev_usd, prev_usd, prev_usd, prev_usd)
    return DerivBar(
        series.venue, series.instrument, series.interval, start, funding, mark, index, basis, *oi, oi_delta, *usd,
        next_funding, acc.updates, final, version, acc.last_ts, carried,
    )  # fmt: skip
