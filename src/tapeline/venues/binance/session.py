"""Binance USD-M futures and spot sessions: endpoints, subscriptions, messages -> events (SCHEMAS.md §1).

The two markets share the JSON, so `BinanceSession` holds everything once; what differs is endpoints,
instrument ids and one book rule (book.py). Field semantics worth knowing:

- Streams are routed by path on USD-M (2026): /market carries aggTrade, markPrice, forceOrder; /public
  carries depth, bookTicker and trade. A subscription on the wrong path fails silently, so there is one
  combined-stream connection per path (and per 200 streams). Spot has one path.
- Depth: USD-M update ids are not contiguous between events, so only `pu` chaining is valid there (the
  spot rule would resync forever on 4 of the recorded pairs); spot chains U == previous u + 1.
- forceOrder: `S` is the side of the liquidation ORDER (SELL liquidates a long). The quantity is `z`, the
  accumulated filled quantity: what actually traded, and the quantity that `ap` (average fill price)
  averages over. `q` is what the engine tried to close; an IOC liquidation can expire partly filled, and
  then only `z` traded. Every real message seen is FILLED with z == q. tardis-node's current mapper also
  takes z and ap (its older snapshot in ../shared/data/_oracles still shows p). `l` (last fill) is not the
  order's volume (one vector even has l > z). `z` = 0 (nothing filled yet; never seen) falls back to `q`;
  the price is `ap` when non-zero, else the order price `p`. COIN-M payloads (`st` 2, quantities in
  contracts) are rejected rather than mis-sized.
- markPrice: funding rate `r` and next funding time `T` are None on delivery contracts (`r` "" or `T` 0;
  a USD-M quarterly sends r "0.00000000" with T 0, which is "no funding", not a zero rate).
- openInterest: REST only (GET /fapi/v1/openInterest), asked for by `startup()` (which the connector
  repeats on its refresh period) and by `poll()`. open_interest_usd = base x the latest mark price from
  the markPrice stream, None until one is known.
- Spot exchangeInfo is asked for the session's symbols only (the full list is several megabytes). No spot
  capture exists in ../shared/data: the tests use hand-built messages in the documented shape.
"""

from __future__ import annotations

import json
from abc import abstractmethod
from typing import Any, ClassVar
from urllib.parse import parse_qs, quote, urlsplit

import msgspec

from tapeline.domain.errors import BadMessage
from tapeline.domain.events import DerivTicker, Liquidation, Trade
from tapeline.venues.base import Output, RestRequest, VenueSession, WsEndpoint
from tapeline.venues.binance.book import BinanceBook
from tapeline.venues.binance.instruments import spot_instrument, spot_instruments, usdm_instrument, usdm_instruments
from tapeline.venues.binance.wire import (
    AggTrade,
    AggTradeText,
    DepthSnapshot,
    DepthUpdate,
    ForceOrder,
    MarkPriceUpdate,
    RawTrade,
    SpotEnvelope,
    SpotEvent,
    TradeText,
    UsdmEnvelope,
    UsdmEvent,
    futures_info_decoder,
    open_interest_decoder,
    snapshot_decoder,
    spot_info_decoder,
)
from tapeline.venues.common import INF, MS, decode_any, notional, number

MAX_STREAMS_PER_CONNECTION = 200  # venue limit is 1024; stay well inside it
USDM_CHANNEL_PATH = {"aggTrade": "market", "markPrice": "market", "forceOrder": "market",
                     "trade": "public", "depth": "public", "bookTicker": "public"}  # fmt: skip
USDM_CHANNEL_STREAM = {"depth": "depth@100ms", "markPrice": "markPrice@1s"}  # stream name when not the channel's
SPOT_CHANNEL_STREAM = {"trade": "trade", "aggTrade": "aggTrade", "depth": "depth@100ms"}


def batched_stream_urls(base_url: str, by_path: dict[str, list[str]], max_streams: int) -> list[str]:
    """Combined-stream URLs `<base>/<path>/stream?streams=a/b/...`, at most `max_streams` per URL."""
    urls = []
    base = base_url.rstrip("/")
    for path, streams in by_path.items():
        prefix = f"{base}/{path}/stream" if path else f"{base}/stream"
        for i in range(0, len(streams), max_streams):
            urls.append(f"{prefix}?streams={'/'.join(streams[i : i + max_streams])}")
    return urls


def usdm_stream_urls(base_url: str, symbols: list[str], channels: list[str]) -> list[str]:
    """USD-M combined-stream URLs, one per routed path and per batch of streams."""
    by_path: dict[str, list[str]] = {}
    for channel in channels:
        if channel not in USDM_CHANNEL_PATH:
            raise ValueError(f"unknown Binance USD-M channel {channel!r}; known: {sorted(USDM_CHANNEL_PATH)}")
        stream = USDM_CHANNEL_STREAM.get(channel, channel)
        by_path.setdefault(USDM_CHANNEL_PATH[channel], []).extend(f"{s.lower()}@{stream}" for s in symbols)
    return batched_stream_urls(base_url, by_path, MAX_STREAMS_PER_CONNECTION)


def spot_stream_urls(base_url: str, symbols: list[str], channels: list[str]) -> list[str]:
    """Spot combined-stream URLs `<base>/stream?streams=...`, in batches of MAX_STREAMS_PER_CONNECTION."""
    streams: list[str] = []
    for channel in channels:
        if channel not in SPOT_CHANNEL_STREAM:
            raise ValueError(f"unknown Binance spot channel {channel!r}; known: {sorted(SPOT_CHANNEL_STREAM)}")
        streams.extend(f"{s.lower()}@{SPOT_CHANNEL_STREAM[channel]}" for s in symbols)
    return batched_stream_urls(base_url, {"": streams}, MAX_STREAMS_PER_CONNECTION)


def trade_id(wire: AggTrade | RawTrade) -> str:
    if isinstance(wire, RawTrade):
        return str(wire.t)
    return str(wire.a) if wire.a is not None else f"{wire.f}-{wire.l}"  # some recorded vectors lack `a`


class BinanceSession(VenueSession[BinanceBook]):
    """What both Binance sessions do alike: trades, diff-depth books, endpoints, disconnects, replay URLs.

    A subclass sets the class attributes and handles its other events in `_other` / `_rest_other`.
    """

    FUTURES: ClassVar[bool]  # which depth rule (BinanceBook)
    DEPTH_PATH: ClassVar[str]  # REST path of the depth snapshot
    INSTRUMENTS_PATH: ClassVar[str]  # REST path of the instrument metadata
    REST_CHANNELS: ClassVar[tuple[str, ...]] = ()  # channels served by REST polling, not streams
    WIRE_TYPE: ClassVar[Any]  # the union the slow path converts into
    MAX_LIFETIME_S = 24 * 3600 - 10 * 60  # the venue drops a connection at 24 h: reconnect before it does
    DEPTH_LIMIT = 1000
    MAX_BUFFER = 10_000  # depth events kept per symbol while a snapshot is pending
    _envelope: ClassVar[msgspec.json.Decoder[Any]]  # {"stream", "data": WIRE_TYPE}, strict=False
    _bare: ClassVar[msgspec.json.Decoder[Any]]  # WIRE_TYPE, strict=False

    def _symbol(self, symbol: str) -> str:
        return symbol.upper()

    def _setup(self) -> None:
        self._depth_urls: dict[str, str] = {}  # symbol -> the endpoint URL carrying its depth stream
        for endpoint in self.endpoints():
            for stream in parse_qs(urlsplit(endpoint.url).query).get("streams", [""])[0].split("/"):
                if "@depth" in stream:
                    self._depth_urls[stream.split("@", 1)[0].upper()] = endpoint.url

    # -- what a subclass provides ---------------------------------------------------------------------

    @abstractmethod
    def stream_urls(self, channels: list[str]) -> list[str]:
        """Combined-stream URLs for these channels of this session's symbols."""

    @abstractmethod
    def _load_instruments(self, request: RestRequest, body: bytes | str) -> None:
        """Instrument metadata from the exchangeInfo answer into `instruments` and the canonical ids."""

    def _other(self, data: object, recv_ts_ns: int) -> Output:
        raise BadMessage(f"{self.VENUE}: unsupported event {type(data).__name__}")

    def _rest_other(self, kind: str, request: RestRequest, body: bytes | str, recv_ts_ns: int) -> Output:
        raise BadMessage(f"{self.VENUE}: no such request {request.key!r}")

    def _request_for_other(self, path: str, symbol: str) -> RestRequest | None:
        return None

    def instruments_request(self) -> RestRequest:
        return RestRequest("instruments", f"{self.rest_base_url}{self.INSTRUMENTS_PATH}")

    # -- endpoints and requests -----------------------------------------------------------------------

    def endpoints(self) -> list[WsEndpoint]:
        channels = [c for c in self.channels if c not in self.REST_CHANNELS]
        urls = self.stream_urls(channels) if channels and self.symbols else []
        return [WsEndpoint(url, max_lifetime_s=self.MAX_LIFETIME_S) for url in urls]

    def startup(self) -> Output:
        return Output(requests=[self.instruments_request()])

    def rest_request_for(self, url: str) -> RestRequest | None:
        parts = urlsplit(url)
        symbol = parse_qs(parts.query).get("symbol", [""])[0].upper()
        if parts.path.endswith(self.DEPTH_PATH) and symbol:
            return self.book(symbol).request
        if parts.path.endswith(self.INSTRUMENTS_PATH):
            return self.instruments_request()
        return self._request_for_other(parts.path, symbol)

    def book(self, symbol: str) -> BinanceBook:
        """The depth state of `symbol` (created on first use: a replay may carry symbols it was not given)."""
        book = self.books.get(symbol)
        if book is None:
            url = f"{self.rest_base_url}{self.DEPTH_PATH}?symbol={symbol}&limit={self.DEPTH_LIMIT}"
            book = self.books[symbol] = BinanceBook(
                self.VENUE, symbol, self.instrument(symbol), RestRequest(f"depth:{symbol}", url),
                self._depth_urls.get(symbol), futures=self.FUTURES, max_buffer=self.MAX_BUFFER,
            )  # fmt: skip
        return book

    # -- websocket ------------------------------------------------------------------------------------

    def _on_ws(self, payload: bytes | str, recv_ts_ns: int, url: str | None) -> Output:
        try:  # the combined-stream envelope first: live connections always use it
            data = self._envelope.decode(payload).data
        except msgspec.DecodeError:
            try:
                data = self._bare.decode(payload)
            except msgspec.DecodeError:
                return self._slow_ws(payload, recv_ts_ns, url)
        kind = type(data)
        if kind is AggTrade or kind is RawTrade:
            p = data.p
            q = data.q
            if not (0.0 < p < INF and 0.0 < q < INF):
                return self._slow_ws(payload, recv_ts_ns, url)  # raises with the reason
            s = data.s
            return Output(
                [
                    Trade(
                        self.VENUE,
                        s,
                        self._canonical.get(s) or self.instrument(s),
                        data.T * MS,
                        recv_ts_ns,
                        p,
                        q,
                        notional(p, q),
                        "sell" if data.m else "buy",
                        trade_id(data),
                    )
                ],
                [],
            )
        return self._dispatch(data, recv_ts_ns, url)

    def _dispatch(self, data: object, recv_ts_ns: int, url: str | None) -> Output:
        if type(data) is DepthUpdate:
            book = self.books.get(data.s) or self.book(data.s)
            if url is not None:
                book.url = url
            out = Output([], [])
            book.on_event(data, recv_ts_ns, out)
            return out
        return self._other(data, recv_ts_ns)

    def _slow_ws(self, payload: bytes | str, recv_ts_ns: int, url: str | None) -> Output:
        """What the fast decoders refused: control frames, venue errors, unusual layouts, or the reason."""
        msg = decode_any(payload, self.VENUE)
        if isinstance(msg, dict):
            if "result" in msg and "id" in msg:
                return Output(ignored="subscription ack")
            if "error" in msg:
                raise BadMessage(f"{self.VENUE}: venue error: {msg['error']}")
            data = msg.get("data", msg)
        else:
            data = msg
        if isinstance(data, dict) and data.get("e") in ("aggTrade", "trade"):
            return Output([self._trade_from_text(data, recv_ts_ns)], [])  # or the reason
        if isinstance(data, dict) and "lastUpdateId" in data:
            return self._recorded_snapshot(msg, data, recv_ts_ns)
        try:
            wire = msgspec.convert(data, self.WIRE_TYPE, strict=False)
        except msgspec.ValidationError as exc:
            raise BadMessage(f"{self.VENUE}: unsupported or malformed event: {exc}") from None
        return self._dispatch(wire, recv_ts_ns, url)

    def _trade_from_text(self, data: dict[str, Any], recv_ts_ns: int) -> Trade:
        """A trade the fast path refused, or BadMessage saying exactly what is wrong with it."""
        try:
            wire = msgspec.convert(data, TradeText)
        except msgspec.ValidationError as exc:
            raise BadMessage(f"{self.VENUE}: unsupported or malformed event: {exc}") from None
        where = f"{self.VENUE}: {data.get('e')} {wire.s}"
        price = number(wire.p, "price", where, above=0)
        qty = number(wire.q, "quantity", where, above=0)
        typed: AggTrade | RawTrade
        if isinstance(wire, AggTradeText):
            typed = AggTrade(E=wire.E, a=wire.a, s=wire.s, p=price, q=qty, f=wire.f, l=wire.l, T=wire.T, m=wire.m)
        else:
            typed = RawTrade(E=wire.E, T=wire.T, s=wire.s, t=wire.t, p=price, q=qty, m=wire.m)
        return Trade(self.VENUE, typed.s, self.instrument(typed.s), typed.T * MS,
                     recv_ts_ns if recv_ts_ns is not None else typed.E * MS, price, qty, notional(price, qty),
                     "sell" if typed.m else "buy", trade_id(typed))  # fmt: skip

    def _recorded_snapshot(self, msg: dict[str, Any], data: dict[str, Any], recv_ts_ns: int) -> Output:
        """A depth snapshot recorded without its request URL (hftbacktest; tardis' `<s>@depthSnapshot`).

        The symbol comes from the stream name when there is one, else it must be the session's only symbol.
        """
        stream = msg.get("stream", "")
        symbol = stream.split("@", 1)[0].upper() if isinstance(stream, str) and "@" in stream else ""
        if not symbol and len(self.symbols) == 1:
            symbol = self.symbols[0]
        if not symbol:
            raise BadMessage(f"{self.VENUE}: a depth snapshot without a symbol (session symbols: {self.symbols})")
        try:
            snap = msgspec.convert(data, DepthSnapshot, strict=False)
        except msgspec.ValidationError as exc:
            raise BadMessage(f"{self.VENUE}: malformed depth snapshot: {exc}") from None
        out = Output()
        self.book(symbol).on_snapshot(snap, recv_ts_ns, out)
        return out

    # -- REST and connections -------------------------------------------------------------------------

    def _on_rest(self, request: RestRequest, body: bytes | str, recv_ts_ns: int) -> Output:
        kind, _, symbol = request.key.partition(":")
        if kind == "depth":
            out = Output()
            snapshot = decode_rest(self.VENUE, snapshot_decoder, body, request)
            self.book(symbol).on_snapshot(snapshot, recv_ts_ns, out)
            return out
        if kind == "instruments":
            self._load_instruments(request, body)
            return Output(ignored="instrument metadata")
        return self._rest_other(kind, request, body, recv_ts_ns)

    def on_rest_error(self, request: RestRequest, reason: str, recv_ts_ns: int) -> Output:
        """A snapshot request failed for good: the book's next event asks again."""
        kind, _, symbol = request.key.partition(":")
        if kind == "depth" and symbol in self.books:
            self.books[symbol].failed()
        return Output()


class BinanceUsdmSession(BinanceSession):
    """Binance USD-M: trades, local books, liquidations, mark/funding/open interest, instruments.

    `startup()` asks for exchangeInfo and open interest (calling it again refreshes both); `poll()` asks
    for open interest alone, for a caller that wants it more often (POLL_INTERVAL_S). Depth books resync
    themselves: their snapshot requests come back in `Output.requests`.
    """

    VENUE = "binance-usdm"
    WS_BASE_URL = "wss://fstream.binance.com"
    REST_BASE_URL = "https://fapi.binance.com"
    CHANNELS = ("aggTrade", "trade", "depth", "forceOrder", "markPrice", "openInterest")
    # aggTrade, not also trade: both describe the same executions and would count volume twice
    DEFAULT_CHANNELS = ("aggTrade", "depth", "forceOrder", "markPrice", "openInterest")
    REST_CHANNELS = ("openInterest",)
    FUTURES = True
    DEPTH_PATH = "/fapi/v1/depth"
    INSTRUMENTS_PATH = "/fapi/v1/exchangeInfo"
    OPEN_INTEREST_PATH = "/fapi/v1/openInterest"
    WIRE_TYPE = UsdmEvent
    POLL_INTERVAL_S = 60.0
    _envelope = msgspec.json.Decoder(UsdmEnvelope, strict=False)
    _bare = msgspec.json.Decoder(UsdmEvent, strict=False)

    def _setup(self) -> None:
        super()._setup()
        self.marks: dict[str, float] = {}  # latest mark price per symbol, for open interest in USD

    def stream_urls(self, channels: list[str]) -> list[str]:
        return usdm_stream_urls(self.ws_base_url, self.symbols, channels)

    def _derive_instrument(self, symbol: str) -> str:
        return usdm_instrument(symbol)

    def startup(self) -> Output:
        return super().startup().extend(self.poll())

    def poll(self) -> Output:
        """Periodic requests (open interest), every POLL_INTERVAL_S."""
        if "openInterest" not in self.channels:
            return Output()
        return Output(requests=[self._oi_request(s) for s in self.symbols])

    def _oi_request(self, symbol: str) -> RestRequest:
        return RestRequest(f"openInterest:{symbol}", f"{self.rest_base_url}{self.OPEN_INTEREST_PATH}?symbol={symbol}")

    def _request_for_other(self, path: str, symbol: str) -> RestRequest | None:
        return self._oi_request(symbol) if path.endswith(self.OPEN_INTEREST_PATH) and symbol else None

    def _load_instruments(self, request: RestRequest, body: bytes | str) -> None:
        for instrument in usdm_instruments(decode_rest(self.VENUE, futures_info_decoder, body, request)):
            self._learn(instrument)

    # -- events other than trades and depth -------------------------------------------------------------

    def _other(self, data: object, recv_ts_ns: int) -> Output:
        if type(data) is MarkPriceUpdate:
            return Output([self._ticker(data, recv_ts_ns)], [])
        if type(data) is ForceOrder:
            return Output([self._liquidation(data, recv_ts_ns)], [])
        if type(data) is list:
            return Output([self._ticker(m, recv_ts_ns) for m in data], [], "" if data else "empty markPrice array")
        return super()._other(data, recv_ts_ns)

    def _ticker(self, m: MarkPriceUpdate, recv_ts_ns: int) -> DerivTicker:
        where = f"{self.VENUE}: markPrice {m.s}"
        mark = number(m.p, "mark price", where, above=0)
        index = number(m.i, "index price", where) if m.i else None
        funding = number(m.r, "funding rate", where) if m.r and m.T else None  # delivery contracts: no funding
        self.marks[m.s] = mark
        return DerivTicker(
            self.VENUE, m.s, self.instrument(m.s), m.E * MS, recv_ts_ns,
            funding_rate=funding, next_funding_ts_ns=m.T * MS if m.T else None, mark_price=mark, index_price=index,
        )  # fmt: skip

    def _liquidation(self, fo: ForceOrder, recv_ts_ns: int) -> Liquidation:
        o = fo.o
        where = f"{self.VENUE}: forceOrder {o.s}"
        if o.st == 2:
            raise BadMessage(f"{where}: a COIN-M order (st=2, sized in contracts) on the USD-M session")
        if o.S not in ("SELL", "BUY"):
            raise BadMessage(f"{where}: side {o.S!r} is neither BUY nor SELL")
        filled, avg = number(o.z, "filled quantity", where), number(o.ap, "average price", where)
        qty = filled if filled > 0 else number(o.q, "quantity", where)
        price = avg if avg > 0 else number(o.p, "price", where)
        if not (qty > 0 and price > 0):
            raise BadMessage(f"{where}: quantity {o.z!r}/{o.q!r}, price {o.ap!r}/{o.p!r} must be positive")
        sell = o.S == "SELL"
        return Liquidation(
            self.VENUE, o.s, self.instrument(o.s), o.T * MS, recv_ts_ns,
            position_side="long" if sell else "short", order_side="sell" if sell else "buy",
            price=price, qty_base=qty, notional_quote=notional(price, qty),
        )  # fmt: skip

    def _rest_other(self, kind: str, request: RestRequest, body: bytes | str, recv_ts_ns: int) -> Output:
        if kind == "openInterest":
            oi = decode_rest(self.VENUE, open_interest_decoder, body, request)
            base = number(oi.openInterest, "open interest", f"{self.VENUE}: openInterest {oi.symbol}", at_least=0)
            mark = self.marks.get(oi.symbol)
            ticker = DerivTicker(
                self.VENUE, oi.symbol, self.instrument(oi.symbol), oi.time * MS or recv_ts_ns, recv_ts_ns,
                open_interest_base=base, open_interest_usd=notional(base, mark) if mark is not None else None,
            )  # fmt: skip
            return Output([ticker], [])
        return super()._rest_other(kind, request, body, recv_ts_ns)


class BinanceSpotSession(BinanceSession):
    """Binance spot: trades and local books (spot sync rule), instrument metadata."""

    VENUE = "binance-spot"
    WS_BASE_URL = "wss://stream.binance.com:9443"
    REST_BASE_URL = "https://api.binance.com"
    CHANNELS = ("trade", "aggTrade", "depth")
    DEFAULT_CHANNELS = ("trade", "depth")  # one trade channel: both describe the same executions
    FUTURES = False
    DEPTH_PATH = "/api/v3/depth"
    INSTRUMENTS_PATH = "/api/v3/exchangeInfo"
    WIRE_TYPE = SpotEvent
    _envelope = msgspec.json.Decoder(SpotEnvelope, strict=False)
    _bare = msgspec.json.Decoder(SpotEvent, strict=False)

    def stream_urls(self, channels: list[str]) -> list[str]:
        return spot_stream_urls(self.ws_base_url, self.symbols, channels)

    def _derive_instrument(self, symbol: str) -> str:
        return spot_instrument(symbol)

    def instruments_request(self) -> RestRequest:
        """exchangeInfo for the session's symbols only (the full spot list is several megabytes)."""
        url = f"{self.rest_base_url}{self.INSTRUMENTS_PATH}"
        if self.symbols:
            url += "?symbols=" + quote(json.dumps(self.symbols, separators=(",", ":")))
        return RestRequest("instruments", url)

    def _load_instruments(self, request: RestRequest, body: bytes | str) -> None:
        for instrument in spot_instruments(decode_rest(self.VENUE, spot_info_decoder, body, request)):
            self._learn(instrument)


def decode_rest(venue: str, decoder: msgspec.json.Decoder[Any], body: bytes | str, request: RestRequest) -> Any:
    """A REST answer, or BadMessage with the venue's own error ({"code", "msg"}) when it sent one."""
    try:
        return decoder.decode(body)
    except msgspec.DecodeError as exc:
        try:
            err = msgspec.json.decode(body)
        except msgspec.DecodeError:
            err = None
        if isinstance(err, dict) and "code" in err and "msg" in err:
            raise BadMessage(f"{venue}: {request.url} answered error {err['code']}: {err['msg']}") from None
        raise BadMessage(f"{venue}: unexpected answer to {request.url}: {exc}") from None
