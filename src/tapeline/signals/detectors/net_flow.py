"""Net-flow alerts over rolling time windows (docs/DOMAIN.md "Signals"), on venue and asset series.

* The net flow of a window of W seconds at bar i is the sum of `delta_quote` (buy_quote - sell_quote, USD)
  of the bars whose start s lies in (start_i - W, start_i]: the bars inside the W seconds that end with bar
  i (at 1m, the 1h window is bar i and the 59 before it when none is missing). Windows are time-based: a
  quiet stretch without bars simply adds nothing. Sums are `math.fsum`, so they do not depend on history
  outside the window. The rolling volume V is the same sum of buy_quote + sell_quote over `volume_window_s`
  (default 24h). Every window of `windows_s` is evaluated at every bar i >= 1, against bar i - 1 (the
  previous bar of the series, whatever its time):
  - `net_flow_flip`: the window's net flow changed sign from bar i-1 to bar i, both non-zero.
  - `net_flow_threshold`: |net flow| >= `threshold_usd` at bar i and < it at bar i-1 (a crossing: it fires
    once per excursion).
  - `net_flow_share`: |net flow| >= `share` x V at bar i (V > 0) and not at bar i-1; only once V covers
    its full `volume_window_s` at bar i, so a fresh series does not fire on a few minutes' "24h volume".
* Coverage: a window covers its full W seconds when the series has a bar before it (start <= start_i - W);
  otherwise it covers end_i - (start of the series' first bar). `covered_s` in detail says how much, for
  the flow window and for the volume (`volume_covered_s`). Flip and threshold are evaluated with what
  exists; only share waits for the full volume window.
* On a venue series whose instrument is not quoted in a USD-like currency (FUN-BTC) the sums are in its
  quote currency: `net_flow_threshold` (a USD amount) does not run there; flips and shares (ratios) do.
* direction: bullish when the window's net flow at bar i is positive, bearish when negative.
* identity: the window and the confirming bar's start, "<window_s>|<start_ns>".
* strength: flip: |net flow| / the window's quote volume at bar i (how one-sided the window is, in [0, 1]);
  threshold: |net flow| / threshold_usd (>= 1); share: |net flow| / V (the share itself, >= `share`).
* history: the bars of the longest window (W / width, rounded up) + 1, for bar i-1's window.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator

from tapeline.domain.assets import usd_quoted
from tapeline.signals.model import ASSET, VENUE, Finding, Point, SeriesView
from tapeline.signals.rules import register

NAME = "net_flow"
S = 1_000_000_000


class NetFlowParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    windows_s: tuple[PositiveInt, ...] = Field((3600, 86400), min_length=1, description="rolling windows, seconds")
    threshold_usd: float = Field(1_000_000.0, gt=0, description="absolute net flow that alerts (USD)")
    share: float = Field(0.10, gt=0, le=1, description="net flow as a share of the rolling volume that alerts")
    volume_window_s: PositiveInt = Field(86400, description="the rolling volume the share is taken of, seconds")

    @field_validator("windows_s")
    @classmethod
    def _distinct(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if len(set(value)) != len(value):
            raise ValueError(f"windows must be distinct, got {list(value)}")
        return value


def _start(point: Point) -> int:
    return point.start_ns


class NetFlow:
    scopes = frozenset({VENUE, ASSET})
    uses: frozenset[str] = frozenset()
    reads_sibling = False

    def __init__(self, params: NetFlowParams, name: str = NAME) -> None:
        self.name = name
        self.windows_s = params.windows_s
        self.threshold = params.threshold_usd
        self.share = params.share
        self.volume_window_s = params.volume_window_s

    def history(self, width_ns: int) -> int:
        longest = max(*self.windows_s, self.volume_window_s) * S
        return -(-longest // width_ns) + 1

    def evaluate(self, view: SeriesView, i: int) -> list[Finding]:
        if i < 1:
            return []
        bars = view.bars
        width = view.key.width_ns
        reach = max(0, i - self.history(width))
        start, end = bars[i].start_ns, bars[i].start_ns + width
        usd = view.key.scope == ASSET or usd_quoted(view.key.instrument)

        def first(at: int, seconds: int) -> int:
            """Index of the first bar of the window of bar `at`."""
            return bisect_right(bars, bars[at].start_ns - seconds * S, reach, at, key=_start)

        def covered(lo: int, seconds: int) -> float:
            return float(seconds) if lo > 0 else min(float(seconds), (end - bars[0].start_ns) / S)

        volume_lo = first(i, self.volume_window_s)
        volume_covered = covered(volume_lo, self.volume_window_s)
        volume: float | None = None  # summed when needed
        found = []
        for seconds in self.windows_s:
            lo = first(i, seconds)
            flow = math.fsum(p.delta_quote for p in bars[lo : i + 1])
            prev = math.fsum(p.delta_quote for p in bars[first(i - 1, seconds) : i])
            hits: list[tuple[str, float]] = []
            if flow and prev and (flow > 0) != (prev > 0):
                window_volume = _volume(bars, lo, i)
                hits.append(("net_flow_flip", abs(flow) / window_volume if window_volume else 0.0))
            if usd and abs(flow) >= self.threshold > abs(prev):
                hits.append(("net_flow_threshold", abs(flow) / self.threshold))
            if volume_covered >= self.volume_window_s and flow:
                if volume is None:
                    volume = _volume(bars, volume_lo, i)
                if volume > 0 and abs(flow) >= self.share * volume:
                    prev_volume = _volume(bars, first(i - 1, self.volume_window_s), i - 1)
                    if not (prev_volume > 0 and abs(prev) >= self.share * prev_volume):
                        hits.append(("net_flow_share", abs(flow) / volume))
            if not hits:
                continue
            if volume is None:
                volume = _volume(bars, volume_lo, i)
            detail = {
                "window_s": float(seconds), "net_flow_usd": flow, "prev_net_flow_usd": prev,
                "covered_s": covered(lo, seconds), "bars": float(i + 1 - lo), "volume_usd": volume,
                "volume_covered_s": volume_covered,
            }  # fmt: skip
            direction = "bullish" if flow > 0 else "bearish"
            for kind, strength in hits:
                found.append(Finding(kind, direction, f"{seconds}|{start}", strength, detail))
        return found


def _volume(bars: Sequence[Point], lo: int, i: int) -> float:
    """Quote volume of bars lo..i."""
    return math.fsum(p.buy_quote + p.sell_quote for p in bars[lo : i + 1])


@register(NAME, NetFlowParams, NetFlow.scopes)
def build(params: NetFlowParams, name: str) -> NetFlow:
    return NetFlow(params, name)
