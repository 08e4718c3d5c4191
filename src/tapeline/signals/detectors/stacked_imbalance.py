"""Stacked imbalances (docs/DOMAIN.md "Footprint bar"), on venue series (reads the footprint bars).

* The footprint of bar i lists its runs of >= 3 consecutive buckets with diagonal imbalances of one
  direction (flow/footprint.py). Each run with at least `min_levels` (3) buckets, levels = (high - low) /
  bucket + 1, is a `stacked_imbalance` signal: buy runs (offers lifted through several levels) -> bullish,
  sell runs -> bearish. A bar without a footprint row (not computed at this interval) gives none.
* detail: the run's low and high bucket, levels, the bar's POC; `below_poc` = 1 when the run lies wholly
  below the POC bucket (high < POC: for a buy run, buyers stepping in under value), `above_poc` = 1 when
  wholly above it (low > POC: for a sell run, sellers leaning on the bar from above); and `beyond_poc` = 1
  for a buy run above / a sell run below (aggression away from value, in its own direction).
* identity: the bar's start, direction and the run's low. strength = levels.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from tapeline.signals.model import FOOTPRINTS, VENUE, Finding, FootprintPoint, SeriesView
from tapeline.signals.rules import register

NAME = "stacked_imbalance"


class StackedImbalanceParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    min_levels: int = Field(3, ge=3, description="buckets a run needs (footprints list runs of >= 3)")


class StackedImbalance:
    scopes = frozenset({VENUE})
    uses = frozenset({FOOTPRINTS})
    reads_sibling = False

    def __init__(self, params: StackedImbalanceParams, name: str = NAME) -> None:
        self.name = name
        self.min_levels = params.min_levels

    def history(self, width_ns: int) -> int:
        return 0

    def evaluate(self, view: SeriesView, i: int) -> list[Finding]:
        start = view.bars[i].start_ns
        footprint = view.side(FOOTPRINTS).get(start)
        if not isinstance(footprint, FootprintPoint) or footprint.bucket_size <= 0:
            return []
        found = []
        runs = zip(footprint.stacked_directions, footprint.stacked_lows, footprint.stacked_highs, strict=True)
        for direction, low, high in runs:
            levels = round((high - low) / footprint.bucket_size) + 1
            if levels < self.min_levels:
                continue
            beyond = low > footprint.poc if direction == "buy" else high < footprint.poc
            found.append(Finding(kind="stacked_imbalance", direction="bullish" if direction == "buy" else "bearish",
                                 identity=f"{start}|{direction}|{low!r}", strength=float(levels),
                                 detail={"low": low, "high": high, "levels": float(levels), "poc": footprint.poc,
                                         "beyond_poc": float(beyond), "below_poc": float(high < footprint.poc),
                                         "above_poc": float(low > footprint.poc)}))  # fmt: skip
        return found


@register(NAME, StackedImbalanceParams, StackedImbalance.scopes)
def build(params: StackedImbalanceParams, name: str) -> StackedImbalance:
    return StackedImbalance(params, name)
