"""Binance USD-M futures: endpoints, wire structs mirroring the venue's JSON, parse -> domain events.

Streams are routed by path (2026): /market carries aggTrade, markPrice, forceOrder; /public carries
depth, bookTicker and trade. A subscription on the wrong path fails silently, so the connector opens
one combined-stream connection per path.
"""

from __future__ import annotations

import math

import msgspec

from tapeline.errors import BadMessage
from tapeline.events import Trade
from tapeline.instruments import binance_usdm_instrument

VENUE = "binance-usdm"
WS_BASE_URL = "wss://fstream.binance.com"
REST_BASE_URL = "https://fapi.binance.com"
MAX_STREAMS_PER_CONNECTION = 200  # venue limit is 1024; stay well inside it
CHANNEL_PATH = {"aggTrade": "market", "markPrice": "market", "forceOrder": "market",
                "trade": "public", "depth": "public", "bookTicker": "public"}  # fmt: skip
MS = 1_000_000
NOTIONAL_DECIMALS = 10  # price x qty picks up binary noise; no venue quotes finer


class AggTrade(msgspec.Struct, tag="aggTrade", tag_field="e", gc=False):
    E: int  # event time, ms
    s: str
    p: str
    q: str
    T: int  # trade time, ms
    m: bool  # buyer is maker -> the aggressor SOLD
    f: int = 0
    l: int = 0  # noqa: E741 - the venue's field name
    a: int | None = None  # some recorded vectors omit it


class RawTrade(msgspec.Struct, tag="trade", tag_field="e", gc=False):
    E: int
    T: int
    s: str
    t: int
    p: str
    q: str
    m: bool
    X: str = "MARKET"  # MARKET, INSURANCE_FUND, ADL, ...


WireEvent = AggTrade | RawTrade


class Envelope(msgspec.Struct, gc=False):
    stream: str
    data: WireEvent


_envelope = msgspec.json.Decoder(Envelope)
_bare = msgspec.json.Decoder(WireEvent)


def stream_urls(base_url: str, symbols: list[str], channels: list[str]) -> list[str]:
    """Combined-stream URLs, one per routed path and per batch of streams."""
    by_path: dict[str, list[str]] = {}
    for channel in channels:
        if channel not in CHANNEL_PATH:
            raise ValueError(f"unknown Binance USD-M channel {channel!r}; known: {sorted(CHANNEL_PATH)}")
        path = CHANNEL_PATH[channel]
        by_path.setdefault(path, []).extend(f"{s.lower()}@{channel}" for s in symbols)
    urls = []
    for path, streams in by_path.items():
        for i in range(0, len(streams), MAX_STREAMS_PER_CONNECTION):
            batch = "/".join(streams[i : i + MAX_STREAMS_PER_CONNECTION])
            urls.append(f"{base_url.rstrip('/')}/{path}/stream?streams={batch}")
    return urls


def parse(payload: bytes | str, recv_ts_ns: int | None = None) -> list[Trade]:
    """One websocket message -> normalized events. Raises BadMessage with the reason."""
    try:
        wire = (
            _envelope.decode(payload).data if payload[:10] in (b'{"stream":', '{"stream":') else _bare.decode(payload)
        )
    except msgspec.ValidationError as exc:
        raise BadMessage(f"binance-usdm: unsupported or malformed event: {exc}") from None
    except msgspec.DecodeError as exc:
        raise BadMessage(f"binance-usdm: invalid JSON: {exc}") from None
    return [_trade(wire, recv_ts_ns)]


def _trade(wire: WireEvent, recv_ts_ns: int | None) -> Trade:
    try:
        price = float(wire.p)
        qty = float(wire.q)
    except ValueError:
        raise BadMessage(f"binance-usdm: non-numeric price {wire.p!r} or quantity {wire.q!r}") from None
    if not (math.isfinite(price) and math.isfinite(qty)) or price <= 0 or qty <= 0:
        raise BadMessage(f"binance-usdm: price {wire.p!r} and quantity {wire.q!r} must be positive and finite")
    if isinstance(wire, AggTrade):
        trade_id = str(wire.a) if wire.a is not None else f"{wire.f}-{wire.l}"
    else:
        trade_id = str(wire.t)
    return Trade(
        venue=VENUE,
        symbol=wire.s,
        instrument=binance_usdm_instrument(wire.s),
        ts_ns=wire.T * MS,
        recv_ts_ns=recv_ts_ns if recv_ts_ns is not None else wire.E * MS,
        price=price,
        qty_base=qty,
        notional_quote=round(price * qty, NOTIONAL_DECIMALS),
        side="sell" if wire.m else "buy",
        trade_id=trade_id,
    )
