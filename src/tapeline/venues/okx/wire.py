"""OKX v5 wire structs: the venue's JSON, field for field. Every numeric field is a string on the wire;
the decoders are non-strict, so "123" decodes into int/float where a struct says so."""

from __future__ import annotations

from typing import Generic, TypeVar

import msgspec

T = TypeVar("T")


class Arg(msgspec.Struct, frozen=True, gc=False):
    channel: str
    instId: str = ""
    instType: str = ""


class ArgMsg(msgspec.Struct, Generic[T], frozen=True, gc=False):
    """A push of one channel arg: trades, liquidation-orders and the ticker channels have this shape."""

    arg: Arg
    data: list[T]


class TradeData(msgspec.Struct, frozen=True, gc=False):
    instId: str
    tradeId: str
    px: float
    sz: float
    side: str  # taker side
    ts: int  # ms


Level = tuple[str, ...]  # [px, sz, "0" (deprecated liquidated orders), numOrders], strings as received


class BookData(msgspec.Struct, frozen=True, gc=False):
    asks: list[Level]
    bids: list[Level]
    ts: int
    checksum: int = 0
    seqId: int | None = None
    prevSeqId: int | None = None


class BookMsg(msgspec.Struct, frozen=True, gc=False):
    arg: Arg
    action: str  # "snapshot" | "update"
    data: list[BookData]


class LiqDetail(msgspec.Struct, frozen=True, gc=False):
    side: str  # the forced order's side
    bkPx: float  # bankruptcy price
    sz: float  # contracts (SWAP/FUTURES)
    ts: int
    posSide: str = ""  # liquidated position: long | short | net


class LiqData(msgspec.Struct, frozen=True, gc=False):
    instId: str
    details: list[LiqDetail]
    instType: str = ""


class TickerData(msgspec.Struct, frozen=True, gc=False):
    """funding-rate, mark-price and open-interest rows; strings, since "" appears for unknown values."""

    instId: str
    fundingRate: str = ""
    fundingTime: str = ""
    markPx: str = ""
    oi: str = ""
    oiCcy: str = ""
    oiUsd: str = ""
    ts: str = ""  # absent on old funding-rate pushes


class Probe(msgspec.Struct, frozen=True, gc=False):
    """Control frames ({"event": ...}) and data frames whose keys are not in the usual order."""

    event: str | None = None
    arg: Arg | None = None
    code: str | int | None = None
    msg: str | None = None


class InstrumentWire(msgspec.Struct, frozen=True, gc=False):
    instId: str
    instType: str
    baseCcy: str = ""
    quoteCcy: str = ""
    ctVal: str = ""
    ctMult: str = ""
    ctValCcy: str = ""
    ctType: str = ""  # linear | inverse
    settleCcy: str = ""
    uly: str = ""
    instFamily: str = ""
    tickSz: str = ""
    lotSz: str = ""
    expTime: str = ""


class InstrumentsAnswer(msgspec.Struct, frozen=True, gc=False):
    code: str
    data: list[InstrumentWire] = []
    msg: str = ""


trades_decoder = msgspec.json.Decoder(ArgMsg[TradeData], strict=False)
book_decoder = msgspec.json.Decoder(BookMsg, strict=False)
liquidations_decoder = msgspec.json.Decoder(ArgMsg[LiqData], strict=False)
ticker_decoder = msgspec.json.Decoder(ArgMsg[TickerData], strict=False)
probe_decoder = msgspec.json.Decoder(Probe, strict=False)
instruments_decoder = msgspec.json.Decoder(InstrumentsAnswer)
