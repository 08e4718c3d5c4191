"""Spot versus perp CVD disagreement (docs/DOMAIN.md "Signals"), on an asset's perp series, reading its spot
series (the sibling of the same asset and interval).

* slope_i = cvd_base_i - cvd_base_(i - `slope_bars`) (15 bars), on the perp series and on the spot bars of
  the same two windows (either spot window missing: no slope, no evaluation).
* The disagreement holds at bar i when the two slopes have opposite signs and each |slope| exceeds the
  median |slope| of its market over the `median_bars` (60) bars before i that have both slopes (at least
  median_bars / 2 of them; a median of 0 — CVD that did not move in most windows — gives no evaluation).
  It fires on entry: it holds at i and not at i-1 (where it could not be evaluated it did not hold; if the
  missing spot bar arrives later the engine evaluates again and withdraws an entry that was none).
* direction: the spot side (spot buying while perp sells -> bullish; the reverse -> bearish): spot is read
  as the real demand, perp as leverage.
* identity: the bar's start. strength = min(|perp slope| / perp median, |spot slope| / spot median) (> 1).
  detail: both slopes and both medians. The rule must select the spot series too (kinds `*`, or perp and
  spot): the engine keeps only the series some rule selects.
"""

from __future__ import annotations

import statistics
from bisect import bisect_left
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from tapeline.signals.model import ASSET, Finding, Point, SeriesView
from tapeline.signals.rules import register

NAME = "spot_perp"


class SpotPerpParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    slope_bars: int = Field(15, ge=1, description="bars of the CVD slope")
    median_bars: int = Field(60, ge=2, description="bars of the rolling median |slope|")


class SpotPerp:
    scopes = frozenset({ASSET})
    uses: frozenset[str] = frozenset()
    reads_sibling = True

    def __init__(self, params: SpotPerpParams, name: str = NAME) -> None:
        self.name = name
        self.slope_bars = params.slope_bars
        self.median_bars = params.median_bars

    def history(self, width_ns: int) -> int:
        return self.slope_bars + self.median_bars + 1

    def evaluate(self, view: SeriesView, i: int) -> list[Finding]:
        if view.key.kind != "perp":
            return []
        spot = view.sibling("spot")
        if spot is None:
            return []
        perp_bars, spot_bars = view.bars, spot.bars
        spot_starts = [b.start_ns for b in spot_bars]
        slopes = {j: self._slopes(perp_bars, spot_bars, spot_starts, j)
                  for j in range(max(0, i - self.median_bars - 1), i + 1)}  # fmt: skip
        now = self._holds(slopes, i)
        if now is None or self._holds(slopes, i - 1) is not None:
            return []
        (perp_slope, spot_slope), (perp_median, spot_median) = now
        return [Finding(kind="spot_perp_disagreement", direction="bullish" if spot_slope > 0 else "bearish",
                        identity=str(perp_bars[i].start_ns),
                        strength=min(abs(perp_slope) / perp_median, abs(spot_slope) / spot_median),
                        detail={"perp_slope": perp_slope, "spot_slope": spot_slope, "perp_median": perp_median,
                                "spot_median": spot_median})]  # fmt: skip

    def _slopes(self, perp: Sequence[Point], spot: Sequence[Point], spot_starts: list[int],
                j: int) -> tuple[float, float] | None:  # fmt: skip
        k = j - self.slope_bars
        if k < 0:
            return None
        a, b = _at(spot, spot_starts, perp[k].start_ns), _at(spot, spot_starts, perp[j].start_ns)
        if a is None or b is None:
            return None
        return perp[j].cvd_base - perp[k].cvd_base, b.cvd_base - a.cvd_base

    def _holds(self, slopes: dict[int, tuple[float, float] | None],
               i: int) -> tuple[tuple[float, float], tuple[float, float]] | None:  # fmt: skip
        now = slopes.get(i)
        if now is None:
            return None
        perp_slope, spot_slope = now
        if perp_slope * spot_slope >= 0:
            return None
        before = [s for j, s in slopes.items() if i - self.median_bars <= j < i and s is not None]
        if len(before) < self.median_bars // 2:
            return None
        perp_median = statistics.median(abs(p) for p, _ in before)
        spot_median = statistics.median(abs(s) for _, s in before)
        if perp_median <= 0 or spot_median <= 0 or abs(perp_slope) <= perp_median or abs(spot_slope) <= spot_median:
            return None
        return now, (perp_median, spot_median)


def _at(bars: Sequence[Point], starts: list[int], start: int) -> Point | None:
    k = bisect_left(starts, start)
    return bars[k] if k < len(starts) and starts[k] == start else None


@register(NAME, SpotPerpParams, SpotPerp.scopes)
def build(params: SpotPerpParams, name: str) -> SpotPerp:
    return SpotPerp(params, name)
