"""Extreme funding (docs/DOMAIN.md "Signals"), on venue series of perpetuals (reads the derivatives bars).

* The funding rate of bar i is the derivatives bar of the same window (`funding_rate`, the last value at or
  before the window end), compared per 8h: rate x 8 / the venue's funding period in hours.
* `funding_extreme` fires on entry: |rate per 8h| >= `threshold` (0.0005, i.e. 0.05%) at bar i, and below it
  at bar i-1 (both bars need a funding rate: a first sight is not an entry).
* direction: positive funding (longs pay: crowded longs) -> bearish; negative -> bullish.
* identity: the bar's start. strength = |rate per 8h| / threshold (>= 1).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from tapeline.signals.model import DERIVS, VENUE, DerivPoint, Finding, SeriesView
from tapeline.signals.rules import register

NAME = "funding"


class FundingParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    threshold: float = Field(0.0005, gt=0, description="|funding rate| per 8h that is extreme (0.0005 = 0.05%)")


def rate_8h(view: SeriesView, i: int) -> float | None:
    row = view.side(DERIVS).get(view.bars[i].start_ns)
    if not isinstance(row, DerivPoint) or row.funding_rate is None:
        return None
    return row.funding_rate * 8.0 / row.funding_interval_h


class Funding:
    scopes = frozenset({VENUE})
    uses = frozenset({DERIVS})
    reads_sibling = False

    def __init__(self, params: FundingParams, name: str = NAME) -> None:
        self.name = name
        self.threshold = params.threshold

    def history(self, width_ns: int) -> int:
        return 1

    def evaluate(self, view: SeriesView, i: int) -> list[Finding]:
        if i < 1:
            return []
        now, before = rate_8h(view, i), rate_8h(view, i - 1)
        if now is None or before is None or abs(now) < self.threshold or abs(before) >= self.threshold:
            return []
        return [Finding(kind="funding_extreme", direction="bearish" if now > 0 else "bullish",
                        identity=str(view.bars[i].start_ns), strength=abs(now) / self.threshold,
                        detail={"rate_8h": now, "prev_rate_8h": before, "threshold": self.threshold})]  # fmt: skip


@register(NAME, FundingParams, Funding.scopes)
def build(params: FundingParams, name: str) -> Funding:
    return Funding(params, name)
