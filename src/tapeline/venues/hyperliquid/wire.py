"""Hyperliquid wire structs: the venue's JSON, field for field. Prices and sizes are decimal strings in coin
units (the decoders are non-strict, so they become floats in C); times are ms."""

from __future__ import annotations

import sys
from typing import Annotated, Generic, Literal, TypeVar

import msgspec

# Validated while decoding (in C): NaN, inf, zero and negative values fail here with the field's path.
Positive = Annotated[float, msgspec.Meta(gt=0, le=sys.float_info.max)]
T = TypeVar("T")


class ChannelMsg(msgspec.Struct, Generic[T], frozen=True, gc=False):
    """A push: {"channel": "trades" | "l2Book" | "activeAssetCtx", "data": ...}."""

    channel: str
    data: T


class WsTrade(msgspec.Struct, frozen=True, gc=False):
    coin: str
    side: Literal["B", "A"]
    px: Positive
    sz: Positive  # coin units
    time: int  # ms
    tid: int  # unique across assets
    hash: str = ""  # shared by the fills of one taker order


class WsLevel(msgspec.Struct, frozen=True, gc=False):
    px: Positive
    sz: Positive  # coin units; `n` (number of orders) is not decoded: nothing downstream keeps it


class WsBook(msgspec.Struct, frozen=True, gc=False):
    coin: str
    levels: tuple[list[WsLevel], list[WsLevel]]  # bids best first, asks best first
    time: int  # ms, block time


class PerpAssetCtx(msgspec.Struct, frozen=True, gc=False):
    funding: float | None = None  # hourly rate; may be negative
    openInterest: float | None = None  # coin units
    markPx: float | None = None
    oraclePx: float | None = None


class WsActiveAssetCtx(msgspec.Struct, frozen=True, gc=False):
    coin: str
    ctx: PerpAssetCtx


class Envelope(msgspec.Struct, frozen=True, gc=False):
    channel: str
    data: msgspec.Raw = msgspec.Raw(b"null")  # pong has no data


class AssetMeta(msgspec.Struct, frozen=True, gc=False):
    name: str
    szDecimals: int
    maxLeverage: int = 0
    onlyIsolated: bool = False
    isDelisted: bool = False


class Meta(msgspec.Struct, frozen=True, gc=False):
    universe: list[AssetMeta]


class InfoRequest(msgspec.Struct, frozen=True, gc=False):
    type: str
    coin: str | None = None


# strict=False: the venue sends numbers as strings; msgspec converts them while decoding.
trades_decoder = msgspec.json.Decoder(ChannelMsg[list[WsTrade]], strict=False)
book_decoder = msgspec.json.Decoder(ChannelMsg[WsBook], strict=False)
ctx_decoder = msgspec.json.Decoder(ChannelMsg[WsActiveAssetCtx], strict=False)
envelope_decoder = msgspec.json.Decoder(Envelope)
book_data_decoder = msgspec.json.Decoder(WsBook, strict=False)
meta_decoder = msgspec.json.Decoder(Meta)
