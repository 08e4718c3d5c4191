"""Liquidation spikes and sweep-and-reclaim (docs/DOMAIN.md "Signals"), on venue series (reads the
liquidation bars).

* Liquidated USD of bar i = long_usd + short_usd of the liquidation bar of its window (none: 0).
* `liquidation_spike`: it is >= `spike_multiple` (5) x its mean over the `mean_bars` (60) bars before (bars
  of the series, missing liquidation rows count 0), with at least mean_bars / 2 of them; when that mean is 0
  a value >= `min_usd` (100,000) counts. direction: mostly longs liquidated (long_usd > short_usd: forced
  sells) -> bearish, else (mostly shorts, or a tie) -> bullish. strength = value / mean (value / min_usd when
  the mean is 0). detail: long_usd, short_usd, mean_usd.
* `liquidation_sweep_reclaim`: a spike bar s of long liquidations whose low is below the previous pivot low
  (the nearest bar p < s - L, L = 3, whose low is <= the L bars on its left and < the L on its right, so it
  was confirmed before s; at most `pivot_bars` (60) back), then, within `reclaim_bars` (3) bars after s,
  the first bar that closes back above that pivot low with delta_base > 0 (aggressive buying against the
  forced selling) -> bullish, at that bar. Short-liquidation spikes mirror it (a high above the previous
  pivot high, a close back below it with delta < 0) -> bearish. Once per spike (a later reclaiming bar of
  the same spike does not fire again; two spikes reclaimed by one bar are two signals). identity: the
  spike's start; pivot_ts_ns: the pivot's start. strength = the spike's value / mean, as for the spike.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from tapeline.signals.detectors.divergence import pivot_high, pivot_low
from tapeline.signals.model import LIQUIDATIONS, VENUE, Finding, LiquidationPoint, Point, SeriesView
from tapeline.signals.rules import register

NAME = "liquidations"
LOOKBACK = 3  # pivot lookback of the sweep


class LiquidationParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    spike_multiple: float = Field(5.0, gt=0, description="liquidated USD this many times its rolling mean")
    mean_bars: int = Field(60, ge=2, description="bars of the rolling mean")
    min_usd: float = Field(100_000.0, gt=0, description="a spike when the mean is 0")
    reclaim_bars: int = Field(3, ge=1, description="bars after the spike for the close back inside")
    pivot_bars: int = Field(60, ge=1, description="how far back the swept pivot may be")


class Liquidations:
    scopes = frozenset({VENUE})
    uses = frozenset({LIQUIDATIONS})
    reads_sibling = False

    def __init__(self, params: LiquidationParams, name: str = NAME) -> None:
        self.name = name
        self.p = params

    def history(self, width_ns: int) -> int:
        return self.p.reclaim_bars + max(self.p.mean_bars, self.p.pivot_bars + 2 * LOOKBACK + 1)

    @staticmethod
    def _liq(view: SeriesView, i: int) -> LiquidationPoint | None:
        row = view.side(LIQUIDATIONS).get(view.bars[i].start_ns)
        return row if isinstance(row, LiquidationPoint) else None

    def _spike(self, view: SeriesView, i: int) -> tuple[LiquidationPoint, float, float] | None:
        """(the liquidations of bar i, strength, mean) when bar i is a spike."""
        row = self._liq(view, i)
        if row is None or row.usd <= 0 or 2 * i < self.p.mean_bars:  # fewer than mean_bars / 2 bars before
            return None
        before = [self._liq(view, j) for j in range(max(0, i - self.p.mean_bars), i)]
        mean = math.fsum(r.usd for r in before if r is not None) / len(before)
        if mean > 0:
            return (row, row.usd / mean, mean) if row.usd >= self.p.spike_multiple * mean else None
        return (row, row.usd / self.p.min_usd, mean) if row.usd >= self.p.min_usd else None

    def evaluate(self, view: SeriesView, i: int) -> list[Finding]:
        found = []
        spike = self._spike(view, i)
        start = view.bars[i].start_ns
        if spike is not None:
            row, strength, mean = spike
            found.append(Finding(kind="liquidation_spike", direction="bearish" if row.long_usd > row.short_usd
                                 else "bullish", identity=str(start), strength=strength,
                                 detail={"long_usd": row.long_usd, "short_usd": row.short_usd,
                                         "mean_usd": mean}))  # fmt: skip
        return found + self._reclaims(view, i)

    def _reclaims(self, view: SeriesView, i: int) -> list[Finding]:
        """One finding per spike of the last `reclaim_bars` bars that bar i is the first to reclaim."""
        bars = view.bars
        found = []
        for s in range(i - 1, max(-1, i - 1 - self.p.reclaim_bars), -1):
            spike = self._spike(view, s)
            if spike is None:
                continue
            row, strength, _mean = spike
            longs = row.long_usd > row.short_usd
            pivot = _previous_pivot(bars, s, longs, self.p.pivot_bars)
            if pivot is None:
                continue
            level, pivot_start = pivot
            swept = bars[s].low < level if longs else bars[s].high > level
            if not swept:
                continue
            for j in range(s + 1, i + 1):  # the first bar that reclaims, and only it
                if _reclaims(bars[j], level, longs):
                    if j == i:
                        found.append(Finding(
                            kind="liquidation_sweep_reclaim", direction="bullish" if longs else "bearish",
                            identity=str(bars[s].start_ns), strength=strength, pivot_ts_ns=pivot_start,
                            detail={"level": level, "spike_ts_ms": bars[s].start_ns / 1e6, "spike_usd": row.usd,
                                    "close": bars[i].close, "delta_base": bars[i].delta_base},
                        ))  # fmt: skip
                    break
        return found


def _previous_pivot(bars: Sequence[Point], s: int, low: bool, reach: int) -> tuple[float, int] | None:
    """(price, start) of the nearest pivot low (or high) confirmed before bar s, at most `reach` bars back."""
    n = LOOKBACK
    for p in range(s - n - 1, max(n, s - reach) - 1, -1):
        if low and pivot_low(bars, p, n):
            return bars[p].low, bars[p].start_ns
        if not low and pivot_high(bars, p, n):
            return bars[p].high, bars[p].start_ns
    return None


def _reclaims(bar: Point, level: float, longs: bool) -> bool:
    return bar.close > level and bar.delta_base > 0 if longs else bar.close < level and bar.delta_base < 0


@register(NAME, LiquidationParams, Liquidations.scopes)
def build(params: LiquidationParams, name: str) -> Liquidations:
    return Liquidations(params, name)
