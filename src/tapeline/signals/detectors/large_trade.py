"""Large trades (docs/DOMAIN.md "Signals"), on venue series (an asset bar has no single largest trade).

* The bar's largest trade (`Point.max_trade_quote`, USD; 0 = not known, e.g. a bar before Bar v6: never
  fires) is large when it is >= `threshold_usd` (1,000,000) or >= `multiple` (50) x the rolling mean trade
  size: the quote volume (buy_quote + sell_quote) of the `mean_bars` (60) bars before it, divided by their
  trades. The multiple rule needs at least one earlier bar with trades (fewer than `mean_bars` is fine).
  On an instrument not quoted in a USD-like currency (FUN-BTC) amounts are in its quote currency and only
  the multiple rule runs.
* direction: the trade's aggressor: buy -> bullish, sell -> bearish (a trade without a side never fires).
* identity: the bar's start (one largest trade per bar).
* strength = trade_usd / mean_trade_usd; when no earlier bar has trades (a fresh series, found by the
  threshold alone) mean_trade_usd is 0 in detail and strength = trade_usd / threshold_usd.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field

from tapeline.domain.assets import usd_quoted
from tapeline.signals.model import VENUE, Finding, SeriesView
from tapeline.signals.rules import register

NAME = "large_trade"


class LargeTradeParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    threshold_usd: float = Field(1_000_000.0, gt=0, description="a trade this large (USD) always alerts")
    multiple: float = Field(50.0, gt=0, description="... or this many times the rolling mean trade size")
    mean_bars: int = Field(60, ge=1, description="bars before the trade's bar that make the mean trade size")


class LargeTrade:
    scopes = frozenset({VENUE})
    uses: frozenset[str] = frozenset()
    reads_sibling = False

    def __init__(self, params: LargeTradeParams, name: str = NAME) -> None:
        self.name = name
        self.threshold = params.threshold_usd
        self.multiple = params.multiple
        self.mean_bars = params.mean_bars

    def history(self, width_ns: int) -> int:
        return self.mean_bars

    def evaluate(self, view: SeriesView, i: int) -> list[Finding]:
        bars = view.bars
        bar = bars[i]
        trade = bar.max_trade_quote
        if trade <= 0 or bar.max_trade_side not in ("buy", "sell"):
            return []
        before = bars[max(0, i - self.mean_bars) : i]
        trades = sum(p.trades for p in before)
        mean = math.fsum(p.buy_quote + p.sell_quote for p in before) / trades if trades else 0.0
        by_threshold = usd_quoted(view.key.instrument) and trade >= self.threshold
        by_multiple = mean > 0 and trade >= self.multiple * mean
        if not (by_threshold or by_multiple):
            return []
        return [
            Finding(
                kind="large_trade",
                direction="bullish" if bar.max_trade_side == "buy" else "bearish",
                identity=str(bar.start_ns),
                strength=trade / mean if mean > 0 else trade / self.threshold,
                detail={
                    "trade_usd": trade,
                    "trade_price": bar.max_trade_price,
                    "trade_ts_ms": bar.max_trade_ts_ns / 1e6,
                    "mean_trade_usd": mean,
                    "by_threshold": float(by_threshold),
                    "by_multiple": float(by_multiple),
                },
            )
        ]


@register(NAME, LargeTradeParams, LargeTrade.scopes)
def build(params: LargeTradeParams, name: str) -> LargeTrade:
    return LargeTrade(params, name)
