"""Canonical assets: the asset an instrument trades, and the multiplier its quantities and prices carry.

Venues list some small-priced coins as multiples: Binance and Bybit `1000PEPE` (one unit is 1,000 PEPE),
`1MBABYDOGE` (a million), Bybit `10000LADYS`, Hyperliquid `kPEPE` (a thousand). Across venues they are
one asset, so every instrument maps to (asset, multiplier m), and in asset units

    qty_asset = qty_base x m,    price_asset = price / m    (notional is unchanged).

The venues' instrument metadata names the base as listed (`1000PEPE`, `kPEPE`), never the multiplier,
so the multiplier is read from the name by the documented prefixes below; a name without one is its own
asset with m = 1. Inverse contracts need no rule here: OKX BTC-USD-SWAP already has the base BTC.
"""

from __future__ import annotations

import re
from functools import cache
from typing import NamedTuple

# A prefix is a multiplier only when an upper-case letter follows it: 1INCH stays 1INCH, 1000PEPE is PEPE.
_PREFIXES = re.compile(r"^(?:(?P<power>1000000|100000|10000|1000)|(?P<million>1M)|(?P<thousand>k))(?=[A-Z])")
MULTIPLIER_PREFIXES = {"1000": 1_000.0, "10000": 10_000.0, "100000": 100_000.0, "1000000": 1_000_000.0,
                       "1M": 1_000_000.0, "k": 1_000.0}  # fmt: skip


class AssetOf(NamedTuple):
    asset: str
    multiplier: float  # units of the asset per unit of the listed base


@cache
def asset_of(base: str) -> AssetOf:
    """The canonical asset of a listed base: 1000PEPE -> (PEPE, 1000), kPEPE -> (PEPE, 1000), BTC -> (BTC, 1)."""
    match = _PREFIXES.match(base)
    if match is None:
        return AssetOf(base, 1.0)
    return AssetOf(base[match.end() :], MULTIPLIER_PREFIXES[match.group(0)])


def asset_of_instrument(instrument: str) -> AssetOf:
    """The asset of a canonical instrument id (BASE-QUOTE-KIND): 1000PEPE-USDT-PERP -> (PEPE, 1000)."""
    return asset_of(instrument.split("-", 1)[0])


# Quotes the cross-venue view counts as USD (docs/DOMAIN.md); instruments quoted in anything else (FUN-BTC) have
# notionals in another currency and stay out of asset bars.
USD_QUOTES = frozenset({"USD", "USDT", "USDC", "BUSD", "FDUSD"})


def usd_quoted(instrument: str) -> bool:
    """Is the canonical instrument (BASE-QUOTE-KIND) quoted in a USD-like currency?"""
    parts = instrument.split("-")
    return len(parts) >= 2 and parts[1] in USD_QUOTES


def market_kind(instrument: str) -> str:
    """`spot` or `perp` for the cross-venue view; dated futures count as perp (derivatives of the asset)."""
    return "spot" if instrument.endswith("-SPOT") else "perp"
