"""Price/CVD divergence on swing pivots (docs/DOMAIN.md "Signals"), on venue and asset series.

* Bars are counted as they exist in the series (no empty bars: a quiet stretch is skipped, not counted).
* Pivot high at m: bar m's high is >= every high of the L bars on its left and > every high of the L bars
  on its right (in a run of equal highs the last bar is the pivot). Pivot lows mirror this. A pivot is
  known when bar m + L is final: evaluated at i, the candidate is m = i - L, and the signal's `ts_ns` is
  the end of bar i, `pivot_ts_ns` the start of bar m.
* The pivot is compared with the nearest earlier pivot of the same type if it is at most `max_distance`
  bars before: highs: price higher and CVD lower -> regular bearish; price lower and CVD higher -> hidden
  bearish. Lows: price lower and CVD higher -> regular bullish; price higher and CVD lower -> hidden
  bullish. CVD is the bar's `cvd_base`. Equal values never signal.
* strength = |CVD change between the pivots| / volume traded from the older pivot to the newer one
  (base units): how much of the flow in between disagreed with price, in [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from tapeline.signals.model import ASSET, VENUE, Finding, Point, SeriesView
from tapeline.signals.rules import register

NAME = "divergence"


class DivergenceParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    lookback: int = Field(3, ge=1, description="L: bars on each side of a pivot")
    max_distance: int = Field(60, ge=1, description="most bars between the two pivots compared")


def _pivot_high(bars: Sequence[Point], m: int, n: int) -> bool:
    high = bars[m].high
    return all(bars[j].high <= high for j in range(m - n, m)) and all(
        bars[j].high < high for j in range(m + 1, m + n + 1)
    )


def _pivot_low(bars: Sequence[Point], m: int, n: int) -> bool:
    low = bars[m].low
    return all(bars[j].low >= low for j in range(m - n, m)) and all(bars[j].low > low for j in range(m + 1, m + n + 1))


class Divergence:
    scopes = frozenset({VENUE, ASSET})
    uses: frozenset[str] = frozenset()
    reads_sibling = False

    def __init__(self, params: DivergenceParams, name: str = NAME) -> None:
        self.name = name
        self.lookback = params.lookback
        self.max_distance = params.max_distance

    def history(self, width_ns: int) -> int:
        # the newer pivot is L back, the older one up to max_distance before it, and it needs L on its left
        return self.max_distance + 2 * self.lookback

    def evaluate(self, view: SeriesView, i: int) -> list[Finding]:
        n, bars = self.lookback, view.bars
        m = i - n
        if m - n < 0:
            return []
        found = []
        for is_high, is_pivot in ((True, _pivot_high), (False, _pivot_low)):
            if not is_pivot(bars, m, n):
                continue
            for k in range(m - 1, max(n, m - self.max_distance) - 1, -1):
                if is_pivot(bars, k, n):
                    finding = self._compare(bars, k, m, is_high)
                    if finding is not None:
                        found.append(finding)
                    break
        return found

    def _compare(self, bars: Sequence[Point], k: int, m: int, is_high: bool) -> Finding | None:
        prev, now = bars[k], bars[m]
        price_prev, price_now = (prev.high, now.high) if is_high else (prev.low, now.low)
        higher, lower = price_now > price_prev, price_now < price_prev
        cvd_up, cvd_down = now.cvd_base > prev.cvd_base, now.cvd_base < prev.cvd_base
        if is_high:
            direction = "bearish"
            variant = "regular" if higher and cvd_down else "hidden" if lower and cvd_up else None
        else:
            direction = "bullish"
            variant = "regular" if lower and cvd_up else "hidden" if higher and cvd_down else None
        if variant is None:
            return None
        volume = sum(b.volume_base for b in bars[k + 1 : m + 1])
        change = abs(now.cvd_base - prev.cvd_base)
        return Finding(
            kind=f"divergence_{variant}",
            direction=direction,
            identity=f"{prev.start_ns}|{now.start_ns}",
            strength=min(1.0, change / volume) if volume else 0.0,
            detail={"price_prev": price_prev, "price_now": price_now, "cvd_prev": prev.cvd_base,
                    "cvd_now": now.cvd_base, "prev_pivot_ts_ms": prev.start_ns / 1e6, "bars_apart": float(m - k)},
            pivot_ts_ns=now.start_ns,
        )  # fmt: skip


@register(NAME, DivergenceParams, Divergence.scopes)
def build(params: DivergenceParams, name: str) -> Divergence:
    return Divergence(params, name)
