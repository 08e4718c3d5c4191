"""Open-interest / price regimes (docs/DOMAIN.md "Signals"), on venue series (reads the derivatives bars).

* Over `window` bars (15): price change = close_i / close_(i-window) - 1 and OI change = oi_close_i /
  oi_close_(i-window) - 1, with oi_close from the derivatives bars of those windows (a missing one: no
  regime). When both are beyond +/-`threshold` (0.5%) they name the regime:
  - price up, OI up: `oi_new_longs` (new money behind the rally) -> bullish;
  - price up, OI down: `oi_short_covering` (a rally on shorts closing, not on new buyers) -> bearish;
  - price down, OI up: `oi_new_shorts` (new money behind the fall) -> bearish;
  - price down, OI down: `oi_long_liquidation` (longs closing or liquidated: the fall spends itself, read
    as capitulation) -> bullish.
* It fires when the regime is entered: bar i has a regime that bar i-1 did not have (none, or another).
* identity: the bar's start. strength = min(|price change|, |OI change|) / threshold (>= 1).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from tapeline.signals.model import DERIVS, VENUE, DerivPoint, Finding, SeriesView
from tapeline.signals.rules import register

NAME = "oi_regime"
REGIMES = {(1, 1): ("oi_new_longs", "bullish"), (1, -1): ("oi_short_covering", "bearish"),
           (-1, 1): ("oi_new_shorts", "bearish"), (-1, -1): ("oi_long_liquidation", "bullish")}  # fmt: skip


class OiRegimeParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    window: int = Field(15, ge=1, description="bars over which price and OI change are measured")
    threshold: float = Field(0.005, gt=0, description="both changes beyond +/- this fraction name a regime")


class OiRegime:
    scopes = frozenset({VENUE})
    uses = frozenset({DERIVS})
    reads_sibling = False

    def __init__(self, params: OiRegimeParams, name: str = NAME) -> None:
        self.name = name
        self.window = params.window
        self.threshold = params.threshold

    def history(self, width_ns: int) -> int:
        return self.window + 1

    def _changes(self, view: SeriesView, i: int) -> tuple[float, float] | None:
        if i - self.window < 0:
            return None
        bars, derivs = view.bars, view.side(DERIVS)
        now, then = derivs.get(bars[i].start_ns), derivs.get(bars[i - self.window].start_ns)
        if not isinstance(now, DerivPoint) or not isinstance(then, DerivPoint):
            return None
        if not now.oi_close or not then.oi_close or not bars[i - self.window].close:
            return None
        return bars[i].close / bars[i - self.window].close - 1, now.oi_close / then.oi_close - 1

    def _regime(self, changes: tuple[float, float] | None) -> tuple[int, int] | None:
        if changes is None:
            return None
        price, oi = changes
        if abs(price) < self.threshold or abs(oi) < self.threshold:
            return None
        return (1 if price > 0 else -1, 1 if oi > 0 else -1)

    def evaluate(self, view: SeriesView, i: int) -> list[Finding]:
        changes = self._changes(view, i)
        regime = self._regime(changes)
        if regime is None or changes is None or (i > 0 and self._regime(self._changes(view, i - 1)) == regime):
            return []
        kind, direction = REGIMES[regime]
        price, oi = changes
        return [Finding(kind=kind, direction=direction, identity=str(view.bars[i].start_ns),
                        strength=min(abs(price), abs(oi)) / self.threshold,
                        detail={"price_change": price, "oi_change": oi,
                                "window_bars": float(self.window)})]  # fmt: skip


@register(NAME, OiRegimeParams, OiRegime.scopes)
def build(params: OiRegimeParams, name: str) -> OiRegime:
    return OiRegime(params, name)
