"""Event-time flow bars (OHLC, VWAP, buy/sell volume, delta, CVD): pure arithmetic, no I/O.

The same aggregator runs in the stream processor, in `tapeline bars` over capture files and in
tests. Definitions are those of docs/DOMAIN.md:

* A bar is a window [start, start + interval) aligned to UTC epoch multiples, on the venue trade time.
* The watermark of a venue-instrument is the largest trade time seen minus the allowed lateness.
  A bar is final once the watermark reaches its end; a trade for a bar that is already final
  is *late* and is handed back to the caller (counted and dead-lettered, never dropped silently).
* delta = buy - sell; CVD is the running sum of delta from the first bar seen (the anchor).
* Every emitted row carries a `version`: the source position (e.g. Kafka offset) of the trade
  after which the row was computed. Replaying the same input gives the same final rows and versions,
  so an idempotent sink (ReplacingMergeTree on version) ends with identical numbers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from tapeline.config import INTERVAL_NS
from tapeline.events import Bar, Trade

BASE_DECIMALS = 10
QUOTE_DECIMALS = 6  # micro-units of quote: finer than any notional, coarse enough to drop noise


class _Acc:
    """Running state of one open bar."""

    __slots__ = ("buy_base", "buy_quote", "buy_trades", "close", "close_ts", "high", "low", "max_delta", "min_delta",
                 "open", "open_ts", "sell_base", "sell_quote", "sell_trades")  # fmt: skip

    def __init__(self, trade: Trade) -> None:
        self.open = self.high = self.low = self.close = trade.price
        self.open_ts = self.close_ts = trade.ts_ns
        self.buy_base = self.sell_base = self.buy_quote = self.sell_quote = 0.0
        self.buy_trades = self.sell_trades = 0
        self.max_delta = -math.inf
        self.min_delta = math.inf
        self._add_volume(trade)

    @classmethod
    def from_bar(cls, bar: Bar) -> _Acc:
        acc = cls.__new__(cls)
        acc.open, acc.high, acc.low, acc.close = bar.open, bar.high, bar.low, bar.close
        acc.open_ts, acc.close_ts = bar.first_ts_ns, bar.last_ts_ns
        acc.buy_base, acc.sell_base = bar.buy_base, bar.sell_base
        acc.buy_quote, acc.sell_quote = bar.buy_quote, bar.sell_quote
        acc.buy_trades, acc.sell_trades = bar.buy_trades, bar.sell_trades
        acc.max_delta, acc.min_delta = bar.max_delta_base, bar.min_delta_base
        return acc

    def add(self, trade: Trade) -> None:
        price = trade.price
        if price > self.high:
            self.high = price
        if price < self.low:
            self.low = price
        # Trades may arrive out of order inside the lateness: open/close follow trade time,
        # ties keep arrival order.
        if trade.ts_ns < self.open_ts:
            self.open, self.open_ts = price, trade.ts_ns
        if trade.ts_ns >= self.close_ts:
            self.close, self.close_ts = price, trade.ts_ns
        self._add_volume(trade)

    def _add_volume(self, trade: Trade) -> None:
        if trade.side == "buy":
            self.buy_base += trade.qty_base
            self.buy_quote += trade.notional_quote
            self.buy_trades += 1
        else:
            self.sell_base += trade.qty_base
            self.sell_quote += trade.notional_quote
            self.sell_trades += 1
        # running delta inside the bar, in arrival (venue) order: how far aggression pushed before it turned
        running = self.buy_base - self.sell_base
        if running > self.max_delta:
            self.max_delta = running
        if running < self.min_delta:
            self.min_delta = running

    @property
    def delta_base(self) -> float:
        return self.buy_base - self.sell_base


@dataclass(eq=False)  # identity hash: series are kept in a dirty set
class _Series:
    """Bars of one (venue, instrument, interval)."""

    venue: str
    instrument: str
    interval: str
    width_ns: int
    open_bars: dict[int, _Acc] = field(default_factory=dict)
    final_version: dict[int, int] = field(default_factory=dict)  # start -> version that finalized it
    cvd_closed: float = 0.0  # CVD at the end of the last final bar
    closed_until_ns: int | None = None  # end of the last final bar
    version: int = -1  # position of the last trade applied

    def row(self, start: int, acc: _Acc, cvd: float, final: bool, version: int) -> Bar:
        # Sums of decimal quantities pick up binary noise (50.874000000000045). Rounding far below any
        # venue's lot size gives users the decimal they expect, and everything derived is computed
        # from the rounded sums so that a bar restored after a restart continues bit-identically.
        buy_base, sell_base = round(acc.buy_base, BASE_DECIMALS), round(acc.sell_base, BASE_DECIMALS)
        buy_quote, sell_quote = round(acc.buy_quote, QUOTE_DECIMALS), round(acc.sell_quote, QUOTE_DECIMALS)
        volume = buy_base + sell_base
        return Bar(
            venue=self.venue,
            instrument=self.instrument,
            interval=self.interval,
            start_ns=start,
            open=acc.open,
            high=acc.high,
            low=acc.low,
            close=acc.close,
            buy_base=buy_base,
            sell_base=sell_base,
            buy_quote=buy_quote,
            sell_quote=sell_quote,
            delta_base=round(buy_base - sell_base, BASE_DECIMALS),
            delta_quote=round(buy_quote - sell_quote, QUOTE_DECIMALS),
            trades=acc.buy_trades + acc.sell_trades,
            cvd_base=round(cvd, BASE_DECIMALS),
            vwap=(buy_quote + sell_quote) / volume if volume else acc.close,
            buy_trades=acc.buy_trades,
            sell_trades=acc.sell_trades,
            first_ts_ns=acc.open_ts,
            last_ts_ns=acc.close_ts,
            buy_ratio=round(buy_base / volume, BASE_DECIMALS) if volume else 0.5,
            max_delta_base=round(acc.max_delta, BASE_DECIMALS),
            min_delta_base=round(acc.min_delta, BASE_DECIMALS),
            final=final,
            version=version,
        )


class BarAggregator:
    """Bars for many venue-instruments and intervals.

    Feed trades with `add`, then call `drain` to collect the rows to persist: every bar that became
    final, and the current state of every open bar that changed.
    """

    def __init__(self, intervals: Iterable[str], allowed_lateness_ns: int = 0) -> None:
        self.intervals = [(name, INTERVAL_NS[name]) for name in intervals]
        self.lateness_ns = allowed_lateness_ns
        self._by_instrument: dict[tuple[str, str], list[_Series]] = {}
        self._max_ts: dict[tuple[str, str], int] = {}
        self._last_seen: dict[tuple[str, str], int] = {}  # processing time of the last trade, for close_idle
        self._final_rows: list[Bar] = []
        self._dirty: set[_Series] = set()

    def add(self, trade: Trade, position: int, now_ns: int = 0) -> list[str]:
        """Apply one trade at its monotone source `position`; returns the intervals it was late for.

        `now_ns` is the processing time, used only by `close_idle`.
        """
        inst_key = (trade.venue, trade.instrument)
        self._last_seen[inst_key] = now_ns
        series_list = self._by_instrument.get(inst_key) or self._series_for(inst_key)
        max_ts = self._max_ts.get(inst_key)
        watermark = (trade.ts_ns if max_ts is None else max_ts) - self.lateness_ns
        late: list[str] = []
        ts = trade.ts_ns
        for series in series_list:
            if position <= series.version:
                continue  # applied before a restart: a replay must not count it twice
            width = series.width_ns
            start = ts - ts % width
            if start + width <= watermark or (series.closed_until_ns is not None
                                               and start < series.closed_until_ns):  # fmt: skip
                late.append(series.interval)  # that bar is final already
                continue
            acc = series.open_bars.get(start)
            if acc is None:
                series.open_bars[start] = _Acc(trade)
            else:
                acc.add(trade)
            series.version = position
            self._dirty.add(series)
        if max_ts is None or ts > max_ts:
            self._max_ts[inst_key] = ts
            for series in series_list:
                self._close_series(series, ts - self.lateness_ns, position)
        return late

    def restore(self, rows: Iterable[Bar]) -> None:
        """Rebuild state from persisted rows: each series' last final bar and its open bars.

        After this, trades at positions the rows already include are skipped, so a consumer may
        resume from any committed offset at or before the last persisted one.
        """
        widths = dict(self.intervals)
        for bar in sorted(rows, key=lambda b: (b.final is False, b.start_ns)):
            if bar.interval not in widths:
                continue
            inst_key = (bar.venue, bar.instrument)
            series_list = self._series_for(inst_key)
            series = next(s for s in series_list if s.interval == bar.interval)
            series.version = max(series.version, bar.version)
            if bar.final:
                series.cvd_closed = bar.cvd_base
                series.closed_until_ns = bar.start_ns + series.width_ns
            else:
                series.open_bars[bar.start_ns] = _Acc.from_bar(bar)
            self._max_ts[inst_key] = max(self._max_ts.get(inst_key, bar.last_ts_ns), bar.last_ts_ns)

    def close_idle(self, now_ns: int, idle_ns: int) -> None:
        """Finalize bars of instruments that received no trade for `idle_ns` of processing time.

        Their event clock cannot advance on its own, so it is taken to `now_ns - lateness - idle`.
        Gating on processing time matters: a consumer catching up on a backlog keeps receiving
        trades, and must not have bars closed under it by the wall clock.
        """
        for inst_key, series_list in self._by_instrument.items():
            if now_ns - self._last_seen.get(inst_key, now_ns) < idle_ns:
                continue
            version = max(s.version for s in series_list)
            for series in series_list:
                self._close_series(series, now_ns - self.lateness_ns - idle_ns, version)

    def touch(self, now_ns: int) -> None:
        """Mark every known instrument as just seen (e.g. at start, before the consumer catches up)."""
        for inst_key in self._by_instrument:
            self._last_seen[inst_key] = now_ns

    def flush(self) -> None:
        """Finalize every open bar (end of a finite input)."""
        for series in self._all_series():
            if series.open_bars:
                self._close_series(series, max(series.open_bars) + series.width_ns, series.version)

    def drain(self) -> list[Bar]:
        """Rows to persist since the last drain: newly final bars, then changed open bars."""
        rows = self._final_rows
        self._final_rows = []
        for series in self._dirty:
            if not series.open_bars:
                continue
            cvd = series.cvd_closed
            for start in sorted(series.open_bars):
                acc = series.open_bars[start]
                cvd += acc.delta_base
                rows.append(series.row(start, acc, cvd, final=False, version=series.version))
        self._dirty.clear()
        return rows

    def open_rows(self) -> Iterator[Bar]:
        for series in self._all_series():
            cvd = series.cvd_closed
            for start in sorted(series.open_bars):
                acc = series.open_bars[start]
                cvd += acc.delta_base
                yield series.row(start, acc, cvd, final=False, version=series.version)

    def _series_for(self, inst_key: tuple[str, str]) -> list[_Series]:
        series_list = self._by_instrument.get(inst_key)
        if series_list is None:
            series_list = self._by_instrument[inst_key] = [
                _Series(*inst_key, name, width) for name, width in self.intervals
            ]
        return series_list

    def _all_series(self) -> Iterator[_Series]:
        for series_list in self._by_instrument.values():
            yield from series_list

    def _close_series(self, series: _Series, watermark: int, version: int) -> None:
        if not series.open_bars:
            return
        for start in sorted(s for s in series.open_bars if s + series.width_ns <= watermark):
            acc = series.open_bars.pop(start)
            series.cvd_closed += acc.delta_base
            series.closed_until_ns = start + series.width_ns
            self._final_rows.append(series.row(start, acc, series.cvd_closed, final=True, version=version))
