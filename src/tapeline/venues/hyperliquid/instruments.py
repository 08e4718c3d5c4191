"""Hyperliquid instrument ids and metadata: perp coins (BTC -> BTC-USDC-PERP) and the {"type":"meta"} answer.

Instrument.tick_size is the finest price step, 10**-(6 - szDecimals); the venue also limits prices to 5
significant figures (integers always allowed), so the real step grows with the price: `tick_size_at`
gives it (BTC at 105055: 1.0, not the stored 0.1).
"""

from __future__ import annotations

import math
from functools import cache

from tapeline.domain.errors import BadMessage
from tapeline.domain.events import Instrument
from tapeline.venues.common import decode, listing
from tapeline.venues.hyperliquid.wire import meta_decoder

VENUE = "hyperliquid"
QUOTE = "USDC"
PERP_MAX_DECIMALS = 6  # price decimals allowed: 6 - szDecimals
PRICE_SIG_FIGS = 5


@cache
def instrument_id(coin: str) -> str:
    """BTC -> BTC-USDC-PERP. Spot pairs ("@107", "PURR/USDC") are refused: this module is perps only."""
    if not coin or coin[0] == "@" or "/" in coin:
        raise BadMessage(f"hyperliquid: {coin!r} is not a perp coin (spot pairs are out of scope)")
    return f"{coin}-{QUOTE}-PERP"  # cached: the check runs once per coin


def _power_of_ten(exponent: int) -> float:
    return float(f"1e{exponent}")  # correctly rounded, unlike 10.0 ** exponent


def tick_size_at(price: float, sz_decimals: int) -> float:
    """The venue's price step at `price`: 5 significant figures, at most 6 - szDecimals decimals,
    and integer prices always allowed."""
    if not (math.isfinite(price) and price > 0):
        raise ValueError(f"price must be positive and finite, got {price!r}")
    exponent = math.floor(math.log10(price))
    if _power_of_ten(exponent) > price:  # log10 rounding just under a power of ten
        exponent -= 1
    sig_step = _power_of_ten(min(exponent - (PRICE_SIG_FIGS - 1), 0))
    return max(sig_step, _power_of_ten(-max(PERP_MAX_DECIMALS - sz_decimals, 0)))


def parse_meta(body: bytes | str) -> list[Instrument]:
    """POST /info {"type":"meta"} -> instruments (perps, USDC-margined)."""
    meta = decode(meta_decoder, body, VENUE, "meta answer")
    out = []
    for asset in meta.universe:
        if asset.szDecimals < 0:
            raise BadMessage(f"hyperliquid: meta: {asset.name} has szDecimals {asset.szDecimals}")
        instrument_id(asset.name)  # refuses what is not a perp coin
        out.append(
            # kPEPE etc. are 1000-unit coins: the venue's unit, kept as named (as instrument_id names them)
            listing(VENUE, asset.name, asset.name, QUOTE, "perp", "PERP",
                    tick_size=_power_of_ten(-max(PERP_MAX_DECIMALS - asset.szDecimals, 0)),
                    lot_size=_power_of_ten(-asset.szDecimals))
        )  # fmt: skip
    return out
