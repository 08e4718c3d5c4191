"""Price/CVD divergence on swing pivots: pure arithmetic, no I/O.

Definitions (docs/DOMAIN.md, "Signals"), for one series (venue, instrument, interval):

* Bars are counted as they exist in the series: the bar aggregator emits no empty bars, so a quiet
  stretch is skipped, not counted. "L bars" and "max_distance bars" are positions in that sequence.
* Pivot high at position i: among the 2L+1 bars i-L..i+L, bar i's ``high`` is >= every high on its
  left and > every high on its right. Ties are thereby broken deterministically: in a run of equal
  highs the *last* bar is the pivot (the swing is dated at its final touch) and exactly one bar of
  the run qualifies. Pivot lows mirror this (<= left, < right). One bar can be both (outside bar).
* A pivot is only known when bar i+L arrives, so it is confirmed L bars late; the signal carries the
  pivot bar's start (``pivot_ts_ns``) and the confirming bar's start (``confirmed_ts_ns``).
* Each new pivot high is compared with the previous pivot high, if at most ``max_distance`` bars
  apart: price higher & CVD lower -> regular bearish; price lower & CVD higher -> hidden bearish.
  Lows: price lower & CVD higher -> regular bullish; price higher & CVD lower -> hidden bullish.
  CVD is the bar's ``cvd_base`` (running sum at the end of the pivot bar). Equal values never signal.
* Only final bars count. A bar whose start is <= the last accepted start is ignored: that makes a
  re-delivery after a restart harmless, and it also means a correction of an already-seen bar does
  not re-trigger detection (final bars are only re-sent by replays, with identical numbers).
"""

from __future__ import annotations

import hashlib
from collections import deque
from typing import NamedTuple

from tapeline.domain.aggregates import Bar
from tapeline.domain.events import Signal

KIND = "divergence"

SeriesKey = tuple[str, str, str]  # (venue, instrument, interval)


class Pivot(NamedTuple):
    position: int  # in the series, for max_distance
    start_ns: int
    price: float  # high for a pivot high, low for a pivot low
    cvd: float


class _Point(NamedTuple):
    start_ns: int
    high: float
    low: float
    cvd: float


def warmup_bars(lookback: int, max_distance: int) -> int:
    """Bars of history a fresh detector needs to emit exactly what a long-running one would.

    A signal confirmed at position k >= s (s: first bar after the history) compares pivot k-L with a
    previous pivot at >= k-L-max_distance, which itself needs L bars on its left to be found.
    """
    return max_distance + 2 * lookback


def signal_id(
    venue: str, instrument: str, interval: str, variant: str, direction: str, pivot_ts_ns: int, prev_pivot_ts_ns: int
) -> str:
    """Deterministic id: a replay of the same bars yields the same ids, so consumers can de-duplicate."""
    key = "|".join((KIND, venue, instrument, interval, variant, direction, str(pivot_ts_ns), str(prev_pivot_ts_ns)))
    return hashlib.sha1(key.encode()).hexdigest()


def series_key(bar: Bar) -> SeriesKey:
    return (bar.venue, bar.instrument, bar.interval)


class DivergenceDetector:
    """Divergences of ONE series, fed its final bars in start order. Memory: 2L+1 bars + 2 pivots."""

    def __init__(self, lookback: int = 3, max_distance: int = 60) -> None:
        if lookback < 1:
            raise ValueError(f"lookback must be >= 1, got {lookback}")
        if max_distance < 1:
            raise ValueError(f"max_distance must be >= 1, got {max_distance}")
        self.lookback = lookback
        self.max_distance = max_distance
        self._window: deque[_Point] = deque(maxlen=2 * lookback + 1)
        self._count = 0  # bars accepted so far
        self._last_start_ns: int | None = None
        self.last_high: Pivot | None = None
        self.last_low: Pivot | None = None

    @property
    def bars_seen(self) -> int:
        return self._count

    def update(self, bar: Bar) -> list[Signal]:
        """Accept the next bar; return the signals whose newer pivot it confirms (0, 1 or 2)."""
        if not bar.final:
            return []
        if self._last_start_ns is not None and bar.start_ns <= self._last_start_ns:
            return []
        self._last_start_ns = bar.start_ns
        self._window.append(_Point(bar.start_ns, bar.high, bar.low, bar.cvd_base))
        self._count += 1
        if len(self._window) < 2 * self.lookback + 1:
            return []

        n = self.lookback
        window = self._window
        mid = window[n]
        index = self._count - 1 - n
        signals: list[Signal] = []
        if all(window[j].high <= mid.high for j in range(n)) and all(
            window[j].high < mid.high for j in range(n + 1, 2 * n + 1)
        ):
            pivot = Pivot(index, mid.start_ns, mid.high, mid.cvd)
            found = self._compare(self.last_high, pivot, bar, is_high=True)
            if found:
                signals.append(found)
            self.last_high = pivot
        if all(window[j].low >= mid.low for j in range(n)) and all(
            window[j].low > mid.low for j in range(n + 1, 2 * n + 1)
        ):
            pivot = Pivot(index, mid.start_ns, mid.low, mid.cvd)
            found = self._compare(self.last_low, pivot, bar, is_high=False)
            if found:
                signals.append(found)
            self.last_low = pivot
        return signals

    def _compare(self, prev: Pivot | None, now: Pivot, confirming: Bar, *, is_high: bool) -> Signal | None:
        if prev is None or now.position - prev.position > self.max_distance:
            return None
        higher_price, lower_price = now.price > prev.price, now.price < prev.price
        higher_cvd, lower_cvd = now.cvd > prev.cvd, now.cvd < prev.cvd
        if is_high:
            direction = "bearish"
            variant = "regular" if higher_price and lower_cvd else "hidden" if lower_price and higher_cvd else None
        else:
            direction = "bullish"
            variant = "regular" if lower_price and higher_cvd else "hidden" if higher_price and lower_cvd else None
        if variant is None:
            return None
        venue, instrument, interval = series_key(confirming)
        return Signal(
            signal_id=signal_id(venue, instrument, interval, variant, direction, now.start_ns, prev.start_ns),
            kind=KIND,
            variant=variant,
            direction=direction,
            venue=venue,
            instrument=instrument,
            interval=interval,
            pivot_ts_ns=now.start_ns,
            prev_pivot_ts_ns=prev.start_ns,
            confirmed_ts_ns=confirming.start_ns,
            price_prev=prev.price,
            price_now=now.price,
            cvd_prev=prev.cvd,
            cvd_now=now.cvd,
        )


class SeriesDetectors:
    """One DivergenceDetector per (venue, instrument, interval), created on the series' first final bar."""

    def __init__(self, lookback: int = 3, max_distance: int = 60) -> None:
        self.lookback = lookback
        self.max_distance = max_distance
        self._detectors: dict[SeriesKey, DivergenceDetector] = {}

    def update(self, bar: Bar) -> list[Signal]:
        if not bar.final:  # no detector for a series that has only open bars so far
            return []
        key = series_key(bar)
        detector = self._detectors.get(key)
        if detector is None:
            detector = self._detectors[key] = DivergenceDetector(self.lookback, self.max_distance)
        return detector.update(bar)

    def get(self, key: SeriesKey) -> DivergenceDetector | None:
        return self._detectors.get(key)

    def drop(self, key: SeriesKey) -> None:
        """Forget a series (its partition moved elsewhere; a later warm-up rebuilds it from scratch)."""
        self._detectors.pop(key, None)

    def __len__(self) -> int:
        return len(self._detectors)
