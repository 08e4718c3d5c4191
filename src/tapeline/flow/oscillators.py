"""Money-flow oscillators of bar series: CMF(n) and MFI(n), set on bar rows as they are drained. Pure, no I/O.

Definitions (docs/DOMAIN.md "Money-flow oscillators"), over the n most recent bars of a series up to and
including the bar (a window without trades has no bar and does not count):

* CMF: MFM = ((C - L) - (H - C)) / (H - L), 0 when H = L; CMF = sum(MFM x V) / sum(V). Null until n bars exist.
* MFI: TP = (H + L + C) / 3, raw flow = TP x V; a bar's flow is positive when its TP is above the previous
  bar's, negative when below (neither when equal); MFI = 100 - 100 / (1 + positive / negative), 100 when
  negative is 0. It needs n changes of TP, so n + 1 bars; null until then.

A bar's value depends on the bars before it, so the oscillator keeps each series' recent bars: the latest
row of every bar that can still change (open, or final within the correction horizon) and the n before the
oldest of them. Rows are applied in the order they are drained: a corrected bar is emitted again before the
later bars that the correction moves (their CVD moves too), so those are recomputed with it. The sums run
oldest to newest over the same floats, so a restored series (`restore` with the persisted rows) gives the
same values to the bit.
"""

from __future__ import annotations

from bisect import bisect_right, insort
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from tapeline.domain.intervals import INTERVAL_NS

CMF_BARS = 21
MFI_BARS = 14


class OhlcvRow(Protocol):
    """A bar row the oscillators read and annotate (venue bars and asset bars)."""

    interval: str
    start_ns: int
    high: float
    low: float
    close: float
    buy_base: float
    sell_base: float
    cmf: float | None
    mfi: float | None


@dataclass(slots=True)
class _Point:
    """What the oscillators need of one bar."""

    flow_volume: float  # MFM x V
    volume: float
    typical: float  # TP
    raw_flow: float  # TP x V


def _point(row: OhlcvRow) -> _Point:
    high, low, close = row.high, row.low, row.close
    volume = row.buy_base + row.sell_base
    mfm = ((close - low) - (high - close)) / (high - low) if high != low else 0.0
    typical = (high + low + close) / 3
    return _Point(mfm * volume, volume, typical, typical * volume)


@dataclass(eq=False)
class _History:
    starts: list[int] = field(default_factory=list)  # ascending
    points: dict[int, _Point] = field(default_factory=dict)


class MoneyFlow:
    """CMF(cmf_bars) and MFI(mfi_bars) of many series, keyed by whatever names a series (e.g. venue, instrument,
    interval). `horizon_ns` is how far behind a series' newest bar a bar may still change (allowed lateness
    plus correction horizon): older bars are kept only as the n before them. None: the caller says what it
    no longer changes (`forget`)."""

    def __init__(self, horizon_ns: int | None, cmf_bars: int = CMF_BARS, mfi_bars: int = MFI_BARS) -> None:
        if cmf_bars < 1 or mfi_bars < 1:
            raise ValueError(f"oscillator lengths must be at least 1 (cmf {cmf_bars}, mfi {mfi_bars})")
        self.horizon_ns = horizon_ns
        self.cmf_bars = cmf_bars
        self.mfi_bars = mfi_bars
        self._keep = max(cmf_bars, mfi_bars + 1)
        self._series: dict[Hashable, _History] = {}

    def apply(self, key: Hashable, row: OhlcvRow) -> None:
        """Record `row` (the newest state of its bar) and set its `cmf` and `mfi`."""
        history = self._series.get(key)
        if history is None:
            history = self._series[key] = _History()
        self._record(history, row)
        row.cmf, row.mfi = self._values(history, row.start_ns)
        self._trim(history, INTERVAL_NS[row.interval])

    def restore(self, key: Hashable, rows: Iterable[OhlcvRow]) -> None:
        """Persisted rows of a series (latest version of each bar, any order) back into its history."""
        history = self._series.setdefault(key, _History())
        width = 0
        for row in rows:
            self._record(history, row)
            width = INTERVAL_NS[row.interval]
        if width:
            self._trim(history, width)

    @staticmethod
    def _record(history: _History, row: OhlcvRow) -> None:
        start = row.start_ns
        if start not in history.points:
            if not history.starts or start > history.starts[-1]:
                history.starts.append(start)
            else:
                insort(history.starts, start)
        history.points[start] = _point(row)

    def _values(self, history: _History, start: int) -> tuple[float | None, float | None]:
        end = bisect_right(history.starts, start)  # bars up to and including this one
        starts, points = history.starts, history.points
        cmf = mfi = None
        if end >= self.cmf_bars:
            flow = volume = 0.0
            for s in starts[end - self.cmf_bars : end]:
                point = points[s]
                flow += point.flow_volume
                volume += point.volume
            cmf = flow / volume if volume else 0.0
        if end >= self.mfi_bars + 1:
            positive = negative = 0.0
            window = starts[end - self.mfi_bars - 1 : end]
            previous = points[window[0]].typical
            for s in window[1:]:
                point = points[s]
                if point.typical > previous:
                    positive += point.raw_flow
                elif point.typical < previous:
                    negative += point.raw_flow
                previous = point.typical
            mfi = 100.0 if negative == 0 else 100.0 - 100.0 / (1.0 + positive / negative)
        return cmf, mfi

    def forget(self, key: Hashable, oldest_changeable: int) -> None:
        """The caller's bars before `oldest_changeable` (a start) no longer change: keep only the n before it."""
        history = self._series.get(key)
        if history is not None:
            self._drop_before(history, bisect_right(history.starts, oldest_changeable - 1))

    def _trim(self, history: _History, width_ns: int) -> None:
        """Forget bars that no later bar needs: those before the `_keep` preceding the oldest changeable bar."""
        if self.horizon_ns is None or len(history.starts) <= self._keep:
            return
        self._drop_before(history, bisect_right(history.starts, history.starts[-1] - self.horizon_ns - 2 * width_ns))

    def _drop_before(self, history: _History, changeable: int) -> None:
        """Drop all but the `_keep` bars before index `changeable` (the oldest bar that may still change)."""
        starts = history.starts
        drop = changeable - self._keep
        if drop > 0:
            for s in starts[:drop]:
                del history.points[s]
            del starts[:drop]
