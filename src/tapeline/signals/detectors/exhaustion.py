"""Exhaustion (docs/DOMAIN.md "Signals"), on venue and asset series: price keeps extending on fading delta.

* A run is `bars` (3) consecutive bars of the series (no empty bars) in which every bar after the first
  extends price beyond the bar before it and has a strictly smaller |delta_base| than it:
  - up-exhaustion (kind `exhaustion_up`, bearish): each high > the previous high;
  - down-exhaustion (kind `exhaustion_down`, bullish): each low < the previous low.
  One bar sequence can be both (widening bars).
* It fires at the bar that completes the run, i.e. at bar i for the run i-bars+1..i, once per streak: when
  the bar before the run already continues it (a longer streak), the streak fired when it reached `bars`
  bars and its later bars add nothing.
* identity: the run's first bar start. strength = 1 - |delta_base last| / |delta_base first| (in (0, 1]).
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from tapeline.signals.model import ASSET, VENUE, Finding, Point, SeriesView
from tapeline.signals.rules import register

NAME = "exhaustion"


class ExhaustionParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    bars: int = Field(3, ge=2, description="bars in the run, the first one included")


def _step(bars: Sequence[Point], j: int, up: bool) -> bool:
    """Bar j extends price beyond bar j - 1 on a smaller |delta|."""
    now, before = bars[j], bars[j - 1]
    extends = now.high > before.high if up else now.low < before.low
    return extends and abs(now.delta_base) < abs(before.delta_base)


class Exhaustion:
    scopes = frozenset({VENUE, ASSET})
    uses: frozenset[str] = frozenset()
    reads_sibling = False

    def __init__(self, params: ExhaustionParams, name: str = NAME) -> None:
        self.name = name
        self.bars = params.bars

    def history(self, width_ns: int) -> int:
        return self.bars  # the run's bars - 1, and the bar before it (does the streak start earlier?)

    def evaluate(self, view: SeriesView, i: int) -> list[Finding]:
        first = i - self.bars + 1
        if first < 0:
            return []
        bars = view.bars
        found = []
        for up in (True, False):
            if not all(_step(bars, j, up) for j in range(first + 1, i + 1)):
                continue
            if first >= 1 and _step(bars, first, up):
                continue  # a longer streak: it fired at the bar that completed its first `bars` bars
            head, last = bars[first], bars[i]
            detail = {
                "first_bar_ts_ms": head.start_ns / 1e6, "bars": float(self.bars),
                "price_first": head.high if up else head.low, "price_last": last.high if up else last.low,
                "delta_first": head.delta_base, "delta_last": last.delta_base,
            }  # fmt: skip
            found.append(
                Finding(
                    kind="exhaustion_up" if up else "exhaustion_down",
                    direction="bearish" if up else "bullish",
                    identity=str(head.start_ns),
                    strength=1.0 - abs(last.delta_base) / abs(head.delta_base),
                    detail=detail,
                )
            )
        return found


@register(NAME, ExhaustionParams, Exhaustion.scopes)
def build(params: ExhaustionParams, name: str) -> Exhaustion:
    return Exhaustion(params, name)
