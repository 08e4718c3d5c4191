"""Bybit v5 wire structs: the venue's JSON, field for field (public linear and spot streams, instruments).

Prices and sizes are decoded straight from the venue's numeric strings (strict=False); the bounds of the
annotated types reject NaN, inf and non-positive values in C, with the field's path in the error.
"""

from __future__ import annotations

import sys
from typing import Annotated, Generic, Literal, TypeVar

import msgspec

Price = Annotated[float, msgspec.Meta(gt=0, le=sys.float_info.max)]
Size = Annotated[float, msgspec.Meta(ge=0, le=sys.float_info.max)]  # book sizes: "0" deletes a level
Qty = Annotated[float, msgspec.Meta(gt=0, le=sys.float_info.max)]
Side = Literal["Buy", "Sell"]
T = TypeVar("T")


class TopicMsg(msgspec.Struct, Generic[T], frozen=True, gc=False):
    """A push of one topic: publicTrade, allLiquidation, the legacy liquidation and spot tickers have this shape."""

    topic: str
    ts: int
    data: T
    type: str = "snapshot"


class PublicTrade(msgspec.Struct, frozen=True, gc=False):
    T: int  # fill time, ms
    s: str
    S: Side  # taker side
    v: Qty  # base coin on linear USDT/USDC and spot
    p: Price
    i: str  # trade id
    BT: bool = False  # block trade
    RPI: bool = False
    seq: int = -1  # cross sequence; several messages may share it


class OrderbookData(msgspec.Struct, frozen=True, gc=False):
    s: str
    b: list[tuple[Price, Size]]  # bids, best first
    a: list[tuple[Price, Size]]  # asks, best first
    u: int  # update id: +1 per message per topic; 1 after a service restart
    seq: int = -1  # cross sequence (shared with trades); not contiguous per topic


class OrderbookMsg(msgspec.Struct, frozen=True, gc=False):
    topic: str
    type: Literal["snapshot", "delta"]
    ts: int
    data: OrderbookData
    cts: int | None = None  # matching-engine time; absent in older data


class AllLiquidation(msgspec.Struct, frozen=True, gc=False):
    T: int
    s: str
    S: Side  # POSITION side: "Buy" = a long position was liquidated
    v: Qty
    p: Price  # bankruptcy price


class LegacyLiquidation(msgspec.Struct, frozen=True, gc=False):
    """Deprecated `liquidation.{symbol}` (at most 1/s per symbol): same position-side semantics."""

    updatedTime: int
    symbol: str
    side: Side
    size: Qty
    price: Price


class LinearTicker(msgspec.Struct, frozen=True, gc=False):
    """Only the fields that feed DerivTicker; a delta omits every field that did not change."""

    symbol: str
    fundingRate: str | None = None
    nextFundingTime: str | None = None
    markPrice: str | None = None
    indexPrice: str | None = None
    openInterest: str | None = None  # documented as the sum of both sides (2026 captures: 2 x single)
    openInterestValue: str | None = None
    singleOpenInterest: str | None = None  # one side, what other venues call open interest
    singleOpenInterestValue: str | None = None


class LinearTickerMsg(msgspec.Struct, frozen=True, gc=False):
    topic: str
    type: Literal["snapshot", "delta"]
    ts: int
    data: LinearTicker
    cs: int = -1


class SpotTicker(msgspec.Struct, frozen=True, gc=False):
    symbol: str


class Control(msgspec.Struct, frozen=True, gc=False):
    """Acks and pongs: {"success":true,"op":"subscribe",...}, {"op":"pong",...}; also a topic peek."""

    topic: str | None = None
    op: str | None = None
    success: bool | None = None
    ret_msg: str = ""


class PriceFilter(msgspec.Struct, frozen=True, gc=False):
    tickSize: str = "0"


class LotSizeFilter(msgspec.Struct, frozen=True, gc=False):
    qtyStep: str = ""  # linear
    basePrecision: str = ""  # spot has no qtyStep


class InstrumentInfo(msgspec.Struct, frozen=True, gc=False):
    symbol: str
    baseCoin: str
    quoteCoin: str
    status: str = ""
    contractType: str = ""  # linear: LinearPerpetual | LinearFutures; spot: absent
    deliveryTime: str = "0"  # ms; "0" for perpetuals
    priceFilter: PriceFilter = PriceFilter()
    lotSizeFilter: LotSizeFilter = LotSizeFilter()


class InstrumentsResult(msgspec.Struct, frozen=True, gc=False):
    category: str
    items: list[InstrumentInfo] = msgspec.field(name="list")
    nextPageCursor: str | None = None


class InstrumentsAnswer(msgspec.Struct, frozen=True, gc=False):
    retCode: int
    retMsg: str = ""
    result: InstrumentsResult | None = None


trades_decoder = msgspec.json.Decoder(TopicMsg[list[PublicTrade]], strict=False)
orderbook_decoder = msgspec.json.Decoder(OrderbookMsg, strict=False)
all_liquidation_decoder = msgspec.json.Decoder(TopicMsg[list[AllLiquidation]], strict=False)
legacy_liquidation_decoder = msgspec.json.Decoder(TopicMsg[LegacyLiquidation], strict=False)
linear_ticker_decoder = msgspec.json.Decoder(LinearTickerMsg)
spot_ticker_decoder = msgspec.json.Decoder(TopicMsg[SpotTicker])
control_decoder = msgspec.json.Decoder(Control)
instruments_decoder = msgspec.json.Decoder(InstrumentsAnswer)
