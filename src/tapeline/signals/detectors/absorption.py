"""Absorption (docs/DOMAIN.md "Signals"), on venue and asset series: aggression that does not move price.

* Bar i absorbs when |delta_base_i| >= `delta_multiple` (2.5) x the mean |delta_base| of the `bars` (20)
  bars before it, while its range (high - low) <= `range_ratio` (0.5) x the mean range of those same bars.
  Bars are counted as they exist in the series (no empty bars). It needs the full `bars` of history (bar i
  >= `bars`), and a mean |delta| > 0 (a series without any delta has no aggression to compare with).
* direction: delta > 0 (aggressive buyers absorbed by resting sellers) -> bearish; delta < 0 -> bullish.
* identity: the bar's start. strength = |delta_base_i| / mean |delta_base| (>= delta_multiple).
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field

from tapeline.signals.model import ASSET, VENUE, Finding, SeriesView
from tapeline.signals.rules import register

NAME = "absorption"


class AbsorptionParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    bars: int = Field(20, ge=1, description="bars before the bar that make the rolling means")
    delta_multiple: float = Field(2.5, gt=0, description="|delta| at least this many times its rolling mean")
    range_ratio: float = Field(0.5, gt=0, description="range at most this fraction of the rolling mean range")


class Absorption:
    scopes = frozenset({VENUE, ASSET})
    uses: frozenset[str] = frozenset()
    reads_sibling = False

    def __init__(self, params: AbsorptionParams, name: str = NAME) -> None:
        self.name = name
        self.bars = params.bars
        self.delta_multiple = params.delta_multiple
        self.range_ratio = params.range_ratio

    def history(self, width_ns: int) -> int:
        return self.bars

    def evaluate(self, view: SeriesView, i: int) -> list[Finding]:
        n = self.bars
        if i < n:
            return []
        bars = view.bars
        bar, before = bars[i], bars[i - n : i]
        mean_delta = math.fsum(abs(p.delta_base) for p in before) / n
        mean_range = math.fsum(p.high - p.low for p in before) / n
        delta, bar_range = bar.delta_base, bar.high - bar.low
        if (
            mean_delta <= 0
            or abs(delta) < self.delta_multiple * mean_delta
            or bar_range > self.range_ratio * mean_range
        ):
            return []
        return [
            Finding(
                kind="absorption",
                direction="bearish" if delta > 0 else "bullish",
                identity=str(bar.start_ns),
                strength=abs(delta) / mean_delta,
                detail={
                    "delta_base": delta,
                    "mean_abs_delta_base": mean_delta,
                    "range": bar_range,
                    "mean_range": mean_range,
                    "high": bar.high,
                    "low": bar.low,
                    "close": bar.close,
                },
            )
        ]


@register(NAME, AbsorptionParams, Absorption.scopes)
def build(params: AbsorptionParams, name: str) -> Absorption:
    return Absorption(params, name)
