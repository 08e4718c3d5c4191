"""Binance wire structs: the venue's JSON, field for field (USD-M futures and spot share most of it).

Speed: prices and quantities arrive as strings; the trade and depth structs declare them `float` and
the decoders run with `strict=False`, so msgspec converts them in C while decoding. Anything the fast
path rejects (invalid JSON, unknown event, non-numeric or non-positive numbers, unusual layouts) goes
through a slow path that finds the precise reason (the `*Text` structs keep the numbers as text).

Field order follows the venue's JSON order (kw_only lets required fields follow defaulted ones): msgspec
matches fields fastest when they come in declaration order. Unknown fields (X, nq, st, ps, M) are skipped.
"""

from __future__ import annotations

import msgspec


class AggTrade(msgspec.Struct, tag="aggTrade", tag_field="e", kw_only=True, gc=False):
    E: int  # event time, ms
    a: int | None = None  # aggregate trade id; some recorded vectors omit it
    s: str
    p: float
    q: float
    f: int = 0  # first / last raw trade id aggregated
    l: int = 0  # noqa: E741 - the venue's field name
    T: int  # trade time, ms
    m: bool  # buyer is maker -> the aggressor SOLD


class RawTrade(msgspec.Struct, tag="trade", tag_field="e", kw_only=True, gc=False):
    E: int
    T: int
    s: str
    t: int
    p: float
    q: float
    m: bool


class DepthUpdate(msgspec.Struct, tag="depthUpdate", tag_field="e", kw_only=True, gc=False):
    E: int
    T: int = 0  # transaction time (USD-M only)
    s: str
    U: int  # first / final update id in this event
    u: int
    pu: int = -1  # final update id of the previous event (USD-M only)
    b: list[tuple[float, float]]  # absolute quantities; 0 removes the level
    a: list[tuple[float, float]]


class DepthSnapshot(msgspec.Struct, kw_only=True, gc=False):
    """GET /fapi/v1/depth (lastUpdateId, E, T, bids, asks) or /api/v3/depth (no E, T)."""

    lastUpdateId: int
    E: int = 0
    T: int = 0
    bids: list[tuple[float, float]]
    asks: list[tuple[float, float]]


# The same trades with prices as text: the slow path uses them to say exactly what is wrong.
class AggTradeText(msgspec.Struct, tag="aggTrade", tag_field="e", gc=False):
    E: int
    s: str
    p: str
    q: str
    T: int
    m: bool
    f: int = 0
    l: int = 0  # noqa: E741
    a: int | None = None


class RawTradeText(msgspec.Struct, tag="trade", tag_field="e", gc=False):
    E: int
    T: int
    s: str
    t: int
    p: str
    q: str
    m: bool


TradeText = AggTradeText | RawTradeText


# ------------------------------------------------------------------------------------- USD-M only


class ForceOrderOrder(msgspec.Struct, kw_only=True, gc=False):
    s: str
    S: str  # side of the liquidation ORDER: SELL closes a long
    o: str = ""  # order type (LIMIT)
    f: str = ""  # time in force (IOC)
    q: str  # original quantity
    p: str  # order price
    ap: str = "0"  # average fill price
    X: str = ""  # order status (FILLED)
    l: str = "0"  # noqa: E741 - last filled quantity
    z: str = "0"  # accumulated filled quantity
    T: int  # trade time, ms
    st: int = 1  # 1 USD-M, 2 COIN-M (seen in 2026 payloads)


class ForceOrder(msgspec.Struct, tag="forceOrder", tag_field="e", kw_only=True, gc=False):
    E: int
    o: ForceOrderOrder


class MarkPriceUpdate(msgspec.Struct, tag="markPriceUpdate", tag_field="e", kw_only=True, gc=False):
    E: int
    s: str
    p: str  # mark price
    i: str = ""  # index price (absent in 2019 payloads)
    r: str = ""  # funding rate; "" on delivery contracts
    T: int = 0  # next funding time, ms; 0 on delivery contracts


class OpenInterest(msgspec.Struct, gc=False):
    """GET /fapi/v1/openInterest?symbol=S"""

    symbol: str
    openInterest: str
    time: int = 0


# ------------------------------------------------------------------------------------ exchangeInfo


class SymbolFilter(msgspec.Struct, gc=False):
    """One entry of exchangeInfo symbols[].filters (spot and futures alike)."""

    filterType: str
    tickSize: str = ""  # PRICE_FILTER
    stepSize: str = ""  # LOT_SIZE


class FuturesSymbol(msgspec.Struct, kw_only=True, gc=False):
    symbol: str
    pair: str = ""
    contractType: str = ""
    deliveryDate: int = 0
    status: str = ""
    baseAsset: str
    quoteAsset: str
    marginAsset: str = ""
    filters: list[SymbolFilter] = []


class FuturesExchangeInfo(msgspec.Struct, gc=False):
    """GET /fapi/v1/exchangeInfo (only what Tapeline reads)."""

    symbols: list[FuturesSymbol]


class SpotSymbol(msgspec.Struct, kw_only=True, gc=False):
    symbol: str
    status: str = ""
    baseAsset: str
    quoteAsset: str
    filters: list[SymbolFilter] = []


class SpotExchangeInfo(msgspec.Struct, gc=False):
    """GET /api/v3/exchangeInfo (only what Tapeline reads)."""

    symbols: list[SpotSymbol]


# ------------------------------------------------------------------------- what each market streams

UsdmEvent = AggTrade | RawTrade | DepthUpdate | ForceOrder | MarkPriceUpdate | list[MarkPriceUpdate]
SpotEvent = AggTrade | RawTrade | DepthUpdate


class UsdmEnvelope(msgspec.Struct, gc=False):
    data: UsdmEvent  # a list for !markPrice@arr


class SpotEnvelope(msgspec.Struct, gc=False):
    data: SpotEvent


snapshot_decoder = msgspec.json.Decoder(DepthSnapshot, strict=False)
open_interest_decoder = msgspec.json.Decoder(OpenInterest)
futures_info_decoder = msgspec.json.Decoder(FuturesExchangeInfo)
spot_info_decoder = msgspec.json.Decoder(SpotExchangeInfo)
