"""Binance spot: endpoints, wire structs mirroring the venue's JSON, parse -> domain events.

Same shape as `binance_usdm`: a trade-only `parse()` / `stream_urls()` for the connector, and
`BinanceSpotSession` (venues/base.py) for trades and local books. The JSON is the USD-M JSON without the
futures fields (no `pu`, no `T` on depth, no REST `E`/`T`), so the structs and the book machinery are
shared (`_binance.py`); what differs is here:

- Endpoints: wss://stream.binance.com:9443/stream?streams=... (no path routing), REST https://api.binance.com.
- Instruments: BASE-QUOTE-SPOT (e.g. BTC-USDT-SPOT); exchangeInfo metadata refines base/quote once loaded.
- Depth sync, the SPOT rule (not the futures one): snapshot GET /api/v3/depth?symbol=S&limit=1000; drop
  events with u <= lastUpdateId; the first event must have U <= lastUpdateId + 1 <= u; then each event's
  U must be the previous u + 1 (spot update ids are contiguous; futures ones are not).

No spot capture exists in ../shared/data: the tests use hand-built messages in the documented shape.
"""

from __future__ import annotations

import json
from functools import cache
from urllib.parse import quote

import msgspec

from tapeline.domain.events import Instrument
from tapeline.domain.instruments import split_symbol
from tapeline.venues._binance import (
    AggTrade,
    BinanceSession,
    DepthUpdate,
    RawTrade,
    SymbolFilter,
    batched_stream_urls,
    decode_rest,
    make_trade_parser,
    tick_and_lot,
)
from tapeline.venues.base import Output, RestRequest

__all__ = ["VENUE", "BinanceSpotSession", "parse", "parse_exchange_info", "spot_instrument", "stream_urls"]

VENUE = "binance-spot"
WS_BASE_URL = "wss://stream.binance.com:9443"
REST_BASE_URL = "https://api.binance.com"
MAX_STREAMS_PER_CONNECTION = 200  # venue limit is 1024; stay well inside it
CHANNEL_STREAM = {"trade": "trade", "aggTrade": "aggTrade", "depth": "depth@100ms"}


@cache
def spot_instrument(symbol: str) -> str:
    """BTCUSDT -> BTC-USDT-SPOT (from the quote suffix, until exchangeInfo says otherwise)."""
    base, quote_asset = split_symbol(symbol.upper())
    return f"{base}-{quote_asset}-SPOT"


class SpotSymbol(msgspec.Struct, kw_only=True, gc=False):
    symbol: str
    status: str = ""
    baseAsset: str
    quoteAsset: str
    filters: list[SymbolFilter] = []


class ExchangeInfo(msgspec.Struct, gc=False):
    """GET /api/v3/exchangeInfo (only what Tapeline reads)."""

    symbols: list[SpotSymbol]


WireEvent = AggTrade | RawTrade | DepthUpdate


class Envelope(msgspec.Struct, gc=False):
    data: WireEvent


_exchange_info = msgspec.json.Decoder(ExchangeInfo)

parse = make_trade_parser(VENUE, spot_instrument)


def stream_urls(base_url: str, symbols: list[str], channels: list[str]) -> list[str]:
    """Combined-stream URLs `<base>/stream?streams=...`, in batches of MAX_STREAMS_PER_CONNECTION."""
    streams = []
    for channel in channels:
        if channel not in CHANNEL_STREAM:
            raise ValueError(f"unknown Binance spot channel {channel!r}; known: {sorted(CHANNEL_STREAM)}")
        streams.extend(f"{s.lower()}@{CHANNEL_STREAM[channel]}" for s in symbols)
    return batched_stream_urls(base_url, {"": streams}, MAX_STREAMS_PER_CONNECTION)


class BinanceSpotSession(BinanceSession):
    """Binance spot: trades and local books (spot sync rule), instrument metadata."""

    VENUE = VENUE
    WS_BASE_URL = WS_BASE_URL
    REST_BASE_URL = REST_BASE_URL
    CHANNELS = ("trade", "aggTrade", "depth")
    DEFAULT_CHANNELS = ("trade", "depth")  # one trade channel: both describe the same executions
    FUTURES = False
    DEPTH_PATH = "/api/v3/depth"
    INSTRUMENTS_PATH = "/api/v3/exchangeInfo"
    WIRE_TYPE = WireEvent
    _envelope = msgspec.json.Decoder(Envelope, strict=False)
    _bare = msgspec.json.Decoder(WireEvent, strict=False)

    def stream_urls(self, channels: list[str]) -> list[str]:
        return stream_urls(self.ws_base_url, self.symbols, channels)

    def default_instrument(self, symbol: str) -> str:
        return spot_instrument(symbol)

    def instruments_request(self) -> RestRequest:
        """exchangeInfo for the session's symbols only (the full spot list is several megabytes)."""
        url = f"{self.rest_base_url}{self.INSTRUMENTS_PATH}"
        if self.symbols:
            url += "?symbols=" + quote(json.dumps(self.symbols, separators=(",", ":")))
        return RestRequest("instruments", url)

    def _rest_other(self, kind: str, symbol: str, request: RestRequest, body: bytes | str, recv_ts_ns: int) -> Output:
        if kind == "instruments":
            for instrument in parse_exchange_info(decode_rest(VENUE, _exchange_info, body, request)):
                self.instruments[instrument.symbol] = instrument
                self._ids[instrument.symbol] = instrument.instrument
            return Output()
        return super()._rest_other(kind, symbol, request, body, recv_ts_ns)


def parse_exchange_info(info: ExchangeInfo) -> list[Instrument]:
    """exchangeInfo symbols -> Instrument metadata (canonical ids from baseAsset/quoteAsset)."""
    out = []
    for s in info.symbols:
        tick_size, lot_size = tick_and_lot(s.filters)
        out.append(
            Instrument(
                venue=VENUE,
                symbol=s.symbol,
                instrument=f"{s.baseAsset}-{s.quoteAsset}-SPOT",
                base=s.baseAsset,
                quote=s.quoteAsset,
                kind="spot",
                tick_size=tick_size,
                lot_size=lot_size,
            )
        )
    return out
