"""Chaikin Money Flow levels (docs/DOMAIN.md "Signals"), on venue and asset series.

Reads the bar's CMF (`Point.cmf`, CMF(21) of the series up to the bar; None until 21 bars exist) and
compares bar i with bar i-1 (the previous bar of the series); both must have a CMF.
* `cmf_cross`: the zero-line cross: CMF < 0 at bar i-1 and > 0 at bar i (bullish), or > 0 then < 0
  (bearish). A touch of exactly 0 is no cross (both values must be non-zero, of opposite signs).
* `cmf_extreme`: entry beyond the extreme level (default +/-0.20, DOMAIN's usual levels): CMF >= +extreme
  at bar i and < +extreme at bar i-1 -> bullish (strong buying pressure); CMF <= -extreme at bar i and
  > -extreme at bar i-1 -> bearish. It fires on entry only, once per excursion.
* identity: the bar's start. strength = |CMF at bar i| (in [0, 1]).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from tapeline.signals.model import ASSET, VENUE, Finding, SeriesView
from tapeline.signals.rules import register

NAME = "cmf"


class CmfParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    extreme: float = Field(0.20, gt=0, lt=1, description="|CMF| level whose entry alerts")


class Cmf:
    scopes = frozenset({VENUE, ASSET})
    uses: frozenset[str] = frozenset()
    reads_sibling = False

    def __init__(self, params: CmfParams, name: str = NAME) -> None:
        self.name = name
        self.extreme = params.extreme

    def history(self, width_ns: int) -> int:
        return 1

    def evaluate(self, view: SeriesView, i: int) -> list[Finding]:
        if i < 1:
            return []
        bars = view.bars
        now, prev = bars[i].cmf, bars[i - 1].cmf
        if now is None or prev is None:
            return []
        found = []
        identity = str(bars[i].start_ns)
        detail = {"cmf": now, "prev_cmf": prev, "extreme": self.extreme}
        if (prev < 0 < now) or (prev > 0 > now):
            found.append(Finding("cmf_cross", "bullish" if now > 0 else "bearish", identity, abs(now), detail))
        level = self.extreme
        if now >= level > prev:
            found.append(Finding("cmf_extreme", "bullish", identity, abs(now), detail))
        elif now <= -level < prev:
            found.append(Finding("cmf_extreme", "bearish", identity, abs(now), detail))
        return found


@register(NAME, CmfParams, Cmf.scopes)
def build(params: CmfParams, name: str) -> Cmf:
    return Cmf(params, name)
