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
* On an asset series (with `confirm_on_venues`, the default) the detail says on how many venues the
  divergence holds: `venues` = the asset's venue series (of its market kind; every kind for `all`) that
  have a bar in the pivot's window, `venues_confirming` = those with the same divergence (variant and
  direction) on their own bars at a pivot within L bars of the asset pivot. Venue series are those a rule
  runs this detector on. A venue bar arriving after the asset bar re-evaluates it (a revision).
"""

from __future__ import annotations

import dataclasses
from bisect import bisect_left
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from tapeline.signals.model import ASSET, VENUE, Finding, Point, SeriesView
from tapeline.signals.rules import register

NAME = "divergence"


class DivergenceParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    lookback: int = Field(3, ge=1, description="L: bars on each side of a pivot")
    max_distance: int = Field(60, ge=1, description="most bars between the two pivots compared")
    confirm_on_venues: bool = Field(True, description="asset series: count the venues where it holds")


def pivot_high(bars: Sequence[Point], m: int, n: int) -> bool:
    high = bars[m].high
    return all(bars[j].high <= high for j in range(m - n, m)) and all(
        bars[j].high < high for j in range(m + 1, m + n + 1)
    )


def pivot_low(bars: Sequence[Point], m: int, n: int) -> bool:
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
        self.confirm_on_venues = params.confirm_on_venues
        # a venue bar moves the confirmation of asset pivots up to L bars from it, confirmed L bars later
        self.venue_reach = 2 * params.lookback + 1 if params.confirm_on_venues else 0

    def history(self, width_ns: int) -> int:
        # the newer pivot is L back, the older one up to max_distance before it, and it needs L on its left
        return self.max_distance + 2 * self.lookback

    def evaluate(self, view: SeriesView, i: int) -> list[Finding]:
        n, bars = self.lookback, view.bars
        m = i - n
        if m - n < 0:
            return []
        found = []
        for is_high in (True, False):
            compared = self._divergence_at(bars, m, is_high)
            if compared is None:
                continue
            k, variant = compared
            finding = self._finding(bars, k, m, is_high, variant)
            if view.key.scope == ASSET and self.confirm_on_venues:
                seen, confirming = self._on_venues(view, bars[m].start_ns, is_high, variant)
                detail = {**finding.detail, "venues": float(seen), "venues_confirming": float(confirming)}
                finding = dataclasses.replace(finding, detail=detail)
            found.append(finding)
        return found

    def _divergence_at(self, bars: Sequence[Point], m: int, is_high: bool) -> tuple[int, str] | None:
        """(older pivot, variant) when bar m is a pivot diverging from the nearest earlier one, else None."""
        n = self.lookback
        if m - n < 0 or m + n >= len(bars):
            return None
        is_pivot = pivot_high if is_high else pivot_low
        if not is_pivot(bars, m, n):
            return None
        for k in range(m - 1, max(n, m - self.max_distance) - 1, -1):
            if is_pivot(bars, k, n):
                variant = _variant(bars[k], bars[m], is_high)
                return (k, variant) if variant else None
        return None

    def _on_venues(self, view: SeriesView, pivot_ns: int, is_high: bool, variant: str) -> tuple[int, int]:
        n, width = self.lookback, view.key.width_ns
        seen = confirming = 0
        for venue in view.venues():
            bars, starts = venue.bars, [b.start_ns for b in venue.bars]
            at = bisect_left(starts, pivot_ns)
            if at >= len(starts) or starts[at] != pivot_ns:
                continue
            seen += 1
            near = [c for c in range(max(0, at - n), min(len(bars), at + n + 1))
                    if abs(starts[c] - pivot_ns) <= n * width]  # fmt: skip
            if any((self._divergence_at(bars, c, is_high) or (0, ""))[1] == variant for c in near):
                confirming += 1
        return seen, confirming

    def _finding(self, bars: Sequence[Point], k: int, m: int, is_high: bool, variant: str) -> Finding:
        prev, now = bars[k], bars[m]
        price_prev, price_now = (prev.high, now.high) if is_high else (prev.low, now.low)
        volume = sum(b.volume_base for b in bars[k + 1 : m + 1])
        change = abs(now.cvd_base - prev.cvd_base)
        return Finding(
            kind=f"divergence_{variant}",
            direction="bearish" if is_high else "bullish",
            identity=f"{prev.start_ns}|{now.start_ns}",
            strength=min(1.0, change / volume) if volume else 0.0,
            detail={"price_prev": price_prev, "price_now": price_now, "cvd_prev": prev.cvd_base,
                    "cvd_now": now.cvd_base, "prev_pivot_ts_ms": prev.start_ns / 1e6, "bars_apart": float(m - k)},
            pivot_ts_ns=now.start_ns,
        )  # fmt: skip


def _variant(prev: Point, now: Point, is_high: bool) -> str:
    """regular | hidden | "" for the swing pair (prev, now) of pivot highs (is_high) or lows."""
    price_prev, price_now = (prev.high, now.high) if is_high else (prev.low, now.low)
    higher, lower = price_now > price_prev, price_now < price_prev
    cvd_up, cvd_down = now.cvd_base > prev.cvd_base, now.cvd_base < prev.cvd_base
    if is_high:
        return "regular" if higher and cvd_down else "hidden" if lower and cvd_up else ""
    return "regular" if lower and cvd_up else "hidden" if higher and cvd_down else ""


@register(NAME, DivergenceParams, Divergence.scopes)
def build(params: DivergenceParams, name: str) -> Divergence:
    return Divergence(params, name)
