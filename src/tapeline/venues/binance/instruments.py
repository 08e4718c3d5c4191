"""Binance instrument ids and metadata: canonical ids from symbols, and the exchangeInfo answers.

Until exchangeInfo arrives, a symbol's id comes from its quote suffix (BTCUSDT -> BTC-USDT-PERP on USD-M,
BTC-USDT-SPOT on spot); the metadata's baseAsset/quoteAsset win once loaded.

USD-M exchangeInfo: no capture of it exists in ../shared/data; the parser follows the documented shape
(symbols[].{symbol, pair, contractType, deliveryDate, baseAsset, quoteAsset, filters[PRICE_FILTER
tickSize, LOT_SIZE stepSize]}); perpetuals carry deliveryDate 4133404800000 (year 2100), not an expiry.
Delivery contracts (contractType CURRENT_QUARTER etc., symbol BTCUSDT_250627) become BTC-USDT-250627 with
their deliveryDate as expiry; everything else (PERPETUAL, TRADIFI_PERPETUAL, ...) is a perpetual.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache

from tapeline.domain.events import Instrument
from tapeline.domain.instruments import split_symbol
from tapeline.venues.binance.wire import FuturesExchangeInfo, SpotExchangeInfo, SymbolFilter
from tapeline.venues.common import MS, listing, step_size

USDM, SPOT = "binance-usdm", "binance-spot"
PERPETUAL_DELIVERY_MS = 4133404800000  # deliveryDate of every perpetual (2100-12-25)
FUTURE_CONTRACT_TYPES = frozenset({"CURRENT_MONTH", "NEXT_MONTH", "CURRENT_QUARTER", "NEXT_QUARTER",
                                   "CURRENT_QUARTER_DELIVERING", "NEXT_QUARTER_DELIVERING"})  # fmt: skip


@cache
def usdm_instrument(symbol: str) -> str:
    """BTCUSDT -> BTC-USDT-PERP; BTCUSDT_250627 (delivery) -> BTC-USDT-250627."""
    pair, _, expiry = symbol.upper().partition("_")
    base, quote = split_symbol(pair)
    return f"{base}-{quote}-{expiry or 'PERP'}"


@cache
def spot_instrument(symbol: str) -> str:
    """BTCUSDT -> BTC-USDT-SPOT."""
    base, quote = split_symbol(symbol.upper())
    return f"{base}-{quote}-SPOT"


def tick_and_lot(filters: list[SymbolFilter]) -> tuple[float, float]:
    """(tick size, lot size) from a symbol's exchangeInfo filters; 0.0 where the venue gives none."""
    by_type = {f.filterType: f for f in filters}
    tick, lot = by_type.get("PRICE_FILTER"), by_type.get("LOT_SIZE")
    where = "binance: exchangeInfo filters"
    return (
        step_size(tick.tickSize, "tickSize", where) if tick else 0.0,
        step_size(lot.stepSize, "stepSize", where) if lot else 0.0,
    )


def usdm_instruments(info: FuturesExchangeInfo) -> list[Instrument]:
    """USD-M exchangeInfo symbols -> Instrument metadata."""
    out = []
    for s in info.symbols:
        code = s.symbol.partition("_")[2]
        dated = 0 < s.deliveryDate < PERPETUAL_DELIVERY_MS
        future = s.contractType in FUTURE_CONTRACT_TYPES or (not s.contractType and code.isdigit() and dated)
        if future and not (len(code) == 6 and code.isdigit()):
            code = datetime.fromtimestamp(s.deliveryDate / 1000, UTC).strftime("%y%m%d")
        tick_size, lot_size = tick_and_lot(s.filters)
        kind, code = ("future", code) if future else ("perp", "PERP")
        out.append(listing(USDM, s.symbol, s.baseAsset, s.quoteAsset, kind, code, linear=True, contract_value=1.0,
                           tick_size=tick_size, lot_size=lot_size,  # USD-M: sized in the base asset
                           expiry_ns=s.deliveryDate * MS if future and dated else None))  # fmt: skip
    return out


def spot_instruments(info: SpotExchangeInfo) -> list[Instrument]:
    """Spot exchangeInfo symbols -> Instrument metadata."""
    out = []
    for s in info.symbols:
        tick_size, lot_size = tick_and_lot(s.filters)
        out.append(listing(SPOT, s.symbol, s.baseAsset, s.quoteAsset, "spot", "SPOT", tick_size=tick_size,
                           lot_size=lot_size))  # fmt: skip
    return out
