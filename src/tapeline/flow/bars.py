"""Event-time flow bars (OHLC, VWAP, buy/sell volume, delta, CVD): pure arithmetic, no I/O.

The same aggregator runs in the stream processor, in `tapeline bars` over capture files and in
tests. Definitions are those of docs/DOMAIN.md:

* A bar is a window [start, start + interval) aligned to UTC epoch multiples, on the venue trade time.
* The watermark of a venue-instrument is the largest trade time seen minus the allowed lateness.
  A bar is final once the watermark reaches its end; a trade for a bar that is already final
  is *late* and is handed back to the caller (counted and dead-lettered, never dropped silently).
* delta = buy - sell; CVD is the running sum of delta from the first bar seen (the anchor).
* A late trade within the correction horizon corrects its final bar, and the CVD of every later bar
  moves by its delta: all of them are emitted again at the late trade's position (a higher version).
* A trade gap (the connector lost its feed between two times) flags every bar overlapping it as
  `incomplete`: bars that exist (final ones within the horizon are emitted again) and bars opened later.
* Every emitted row carries a `version`: the source position (e.g. Kafka offset) of the trade
  after which the row was computed. Replaying the same input gives the same final rows and versions,
  so an idempotent sink (ReplacingMergeTree on version) ends with identical numbers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import partial

import numpy as np

from tapeline.domain.aggregates import Bar
from tapeline.domain.assets import asset_of_instrument
from tapeline.domain.events import Trade
from tapeline.flow.columns import TradeColumns
from tapeline.flow.oscillators import CMF_BARS, MFI_BARS, MoneyFlow
from tapeline.flow.windows import ColumnarAggregator, Series

BASE_DECIMALS = 10
QUOTE_DECIMALS = 6  # micro-units of quote: finer than any notional, coarse enough to drop noise


class _Acc:
    """Running state of one open bar."""

    cvd_end: float  # CVD at the end of the bar, once final (kept windows carry it for corrections)

    __slots__ = ("buy_base", "buy_quote", "buy_trades", "close", "close_ts", "cvd_end", "high", "incomplete", "low",
                 "max_delta", "max_price", "max_quote", "max_side", "max_ts", "min_delta", "open", "open_ts",
                 "sell_base", "sell_quote", "sell_trades")  # fmt: skip

    def __init__(self, trade: Trade) -> None:
        self.open = self.high = self.low = self.close = trade.price
        self.open_ts = self.close_ts = trade.ts_ns
        self.buy_base = self.sell_base = self.buy_quote = self.sell_quote = 0.0
        self.buy_trades = self.sell_trades = 0
        self.max_delta = -math.inf
        self.min_delta = math.inf
        self.max_quote = -math.inf  # the largest trade so far (by notional): the first trade always is one
        self.max_price, self.max_side, self.max_ts = 0.0, "", 0
        self.incomplete = False
        self.add(trade)  # the prices are set already; this adds the volume and the largest trade

    @classmethod
    def from_bar(cls, bar: Bar) -> _Acc:
        acc = cls.__new__(cls)
        acc.open, acc.high, acc.low, acc.close = bar.open, bar.high, bar.low, bar.close
        acc.open_ts, acc.close_ts = bar.first_ts_ns, bar.last_ts_ns
        acc.buy_base, acc.sell_base = bar.buy_base, bar.sell_base
        acc.buy_quote, acc.sell_quote = bar.buy_quote, bar.sell_quote
        acc.buy_trades, acc.sell_trades = bar.buy_trades, bar.sell_trades
        acc.max_delta, acc.min_delta = bar.max_delta_base, bar.min_delta_base
        acc.max_quote, acc.max_price = bar.max_trade_quote, bar.max_trade_price
        acc.max_side, acc.max_ts = bar.max_trade_side, bar.max_trade_ts_ns
        acc.cvd_end = bar.cvd_base
        acc.incomplete = bar.incomplete
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
        buy = trade.side == "buy"
        # the largest trade by notional; ties: the first to arrive
        if trade.notional_quote > self.max_quote:
            self.max_quote, self.max_price, self.max_ts = trade.notional_quote, price, trade.ts_ns
            self.max_side = "buy" if buy else "sell"
        # volume and the running delta (inline: this runs once per trade and interval)
        if buy:
            self.buy_base += trade.qty_base
            self.buy_quote += trade.notional_quote
            self.buy_trades += 1
        else:
            self.sell_base += trade.qty_base
            self.sell_quote += trade.notional_quote
            self.sell_trades += 1
        running = self.buy_base - self.sell_base
        if running > self.max_delta:
            self.max_delta = running
        if running < self.min_delta:
            self.min_delta = running

    def add_many(self, columns: TradeColumns, idx: slice | np.ndarray) -> None:
        """`add` for the trades `columns[idx]` in order, in bulk. Sums are running sums (np.cumsum adds in order,
        from the current value), so every float is the one `add` would reach."""
        ts, price, qty, buy = columns.ts[idx], columns.price[idx], columns.qty[idx], columns.buy[idx]
        notional = columns.notional[idx]
        high, low = float(price.max()), float(price.min())
        if high > self.high:
            self.high = high
        if low < self.low:
            self.low = low
        first = int(ts.argmin())  # the earliest; ties: the first to arrive
        if ts[first] < self.open_ts:
            self.open, self.open_ts = float(price[first]), int(ts[first])
        last = len(ts) - 1 - int(ts[::-1].argmax())  # the latest; ties: the last to arrive
        if ts[last] >= self.close_ts:
            self.close, self.close_ts = float(price[last]), int(ts[last])
        largest = int(notional.argmax())  # the first of the largest: the first to arrive, as in `add`
        if notional[largest] > self.max_quote:
            self.max_quote, self.max_price = float(notional[largest]), float(price[largest])
            self.max_side, self.max_ts = "buy" if buy[largest] else "sell", int(ts[largest])
        buy_base = _running(self.buy_base, np.where(buy, qty, 0.0))
        sell_base = _running(self.sell_base, np.where(buy, 0.0, qty))
        self.buy_base, self.sell_base = float(buy_base[-1]), float(sell_base[-1])
        self.buy_quote = float(_running(self.buy_quote, np.where(buy, notional, 0.0))[-1])
        self.sell_quote = float(_running(self.sell_quote, np.where(buy, 0.0, notional))[-1])
        buys = int(np.count_nonzero(buy))
        self.buy_trades += buys
        self.sell_trades += len(ts) - buys
        running = buy_base - sell_base
        self.max_delta = max(self.max_delta, float(running.max()))
        self.min_delta = min(self.min_delta, float(running.min()))

    @property
    def delta_base(self) -> float:
        return self.buy_base - self.sell_base


def _running(start: float, values: np.ndarray) -> np.ndarray:
    """start + v0, (start + v0) + v1, ...: the values a float accumulator takes, added in order."""
    return np.cumsum(np.concatenate(([start], values)))[1:]


@dataclass(eq=False)
class _Series(Series[_Acc]):
    """Bars of one (venue, instrument, interval), and the CVD at the end of its last final bar."""

    cvd_closed: float = 0.0
    asset: str = ""

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
            incomplete=acc.incomplete,
            asset=self.asset,
            max_trade_quote=acc.max_quote if acc.max_side else 0.0,
            max_trade_price=acc.max_price,
            max_trade_side=acc.max_side,
            max_trade_ts_ns=acc.max_ts,
        )


class BarAggregator(ColumnarAggregator[list[Bar], _Acc, _Series]):
    """Bars for many venue-instruments and intervals (windowing: flow/windows.py).

    Feed trades with `add`, then call `drain` to collect the rows to persist: every bar that became
    final, and the current state of every open bar of a series that changed (their CVD runs on from
    the earlier open bars, so all of them are written again). Drained rows carry CMF and MFI
    (flow/oscillators.py) of their series.
    """

    def __init__(self, intervals: Iterable[str], allowed_lateness_ns: int = 0, correction_horizon_ns: int = 0,
                 cmf_bars: int = CMF_BARS, mfi_bars: int = MFI_BARS) -> None:  # fmt: skip
        super().__init__(intervals, allowed_lateness_ns, correction_horizon_ns)
        self._final_rows: list[Bar] = []
        self.money_flow = MoneyFlow(allowed_lateness_ns + correction_horizon_ns, cmf_bars, mfi_bars)

    def restore(self, rows: Iterable[Bar]) -> None:
        """Rebuild state from persisted rows (latest version per key): each series' open bars and its
        final bars, at least the last one and those within the correction horizon.

        After this, trades at positions the rows already include are skipped, so a consumer may
        resume from any committed offset at or before the last persisted one. Older final rows among
        them (the stores gives a series' last ones) bring back the oscillators' history.
        """
        rows = sorted(rows, key=lambda b: (b.final is False, b.start_ns))
        by_series: dict[tuple[str, str, str], list[Bar]] = {}
        for bar in rows:
            by_series.setdefault((bar.venue, bar.instrument, bar.interval), []).append(bar)
        for key, series_rows in by_series.items():
            self.money_flow.restore(key, series_rows)
        for bar in rows:
            series = self._restore_window(bar.venue, bar.instrument, bar.interval, bar.start_ns, bar.final,
                                          bar.version, bar.last_ts_ns, partial(_Acc.from_bar, bar))  # fmt: skip
            if series is not None and bar.final:
                series.cvd_closed = bar.cvd_base  # finals come in start order: this ends on the last one's
        self._settle_restored()

    def drain(self) -> list[Bar]:
        """Rows to persist since the last drain: newly final bars, then changed open bars; in that order they
        set the oscillators (a corrected bar comes before the later bars it moves)."""
        rows = self._final_rows
        self._final_rows = []
        for series in self._dirty:
            rows.extend(self._open_rows(series))
        self._dirty.clear()
        apply = self.money_flow.apply
        for row in rows:
            apply((row.venue, row.instrument, row.interval), row)
        return rows

    def _open_rows(self, series: _Series) -> Iterator[Bar]:
        cvd = series.cvd_closed
        for start in sorted(series.open_bars):
            acc = series.open_bars[start]
            cvd += acc.delta_base
            yield series.row(start, acc, cvd, final=False, version=series.version)

    def _new_series(self, venue: str, instrument: str, interval: str, width_ns: int) -> _Series:
        return _Series(venue, instrument, interval, width_ns, asset=asset_of_instrument(instrument).asset)

    def _open(self, series: _Series, trade: Trade) -> _Acc:
        return _Acc(trade)

    def _emit_final_again(self, series: _Series, start: int, acc: _Acc, version: int) -> None:
        self._final_rows.append(series.row(start, acc, acc.cvd_end, final=True, version=version))

    def _finalize(self, series: _Series, start: int, acc: _Acc, version: int) -> None:
        series.cvd_closed += acc.delta_base
        acc.cvd_end = series.cvd_closed
        self._final_rows.append(series.row(start, acc, series.cvd_closed, final=True, version=version))

    def _correct(self, series: _Series, start: int, acc: _Acc, trade: Trade, created: bool, version: int) -> None:
        delta = trade.qty_base if trade.side == "buy" else -trade.qty_base
        closed = series.closed
        later = [s for s in closed if s > start]
        if created:  # its CVD continues the final bar before it (or precedes the one after it)
            before = [s for s in closed if s < start]
            if before:
                base = closed[before[-1]].cvd_end
            elif later:
                base = closed[later[0]].cvd_end - closed[later[0]].delta_base
            else:
                base = series.cvd_closed
            acc.cvd_end = base + delta
        else:
            acc.cvd_end += delta
        for s in later:
            closed[s].cvd_end += delta
        series.cvd_closed += delta  # open bars are emitted again by the drain (the series is dirty)
        for s in [start, *later]:
            self._final_rows.append(series.row(s, closed[s], closed[s].cvd_end, final=True, version=version))
