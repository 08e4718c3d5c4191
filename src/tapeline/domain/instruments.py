"""Canonical instrument ids: BASE-QUOTE-KIND, e.g. BTC-USDT-PERP, BTC-USDT-SPOT, BTC-USDT-250627."""

from __future__ import annotations

from functools import cache

from tapeline.domain.errors import BadMessage

# Longest first, so that "FDUSD" wins over "USD".
KNOWN_QUOTES = ("FDUSD", "USDT", "USDC", "BUSD", "TUSD", "USD", "BTC", "ETH", "BNB", "EUR", "TRY")


@cache
def split_symbol(symbol: str) -> tuple[str, str]:
    """BTCUSDT -> (BTC, USDT), from the quote suffix (instrument metadata refines this later)."""
    for quote in KNOWN_QUOTES:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)], quote
    raise BadMessage(f"cannot split symbol {symbol!r} into base and quote")


def base_asset(instrument: str) -> str:
    return instrument.split("-", 1)[0]
