"""What the Binance venue modules share: wire structs, trade normalization, stream batching, diff-book sync.

`binance_usdm` (USD-M futures) and `binance_spot` differ in endpoints, instrument ids and one rule: how a
depth snapshot bridges into the diff stream and how consecutive diff events chain (SCHEMAS.md §1).
Everything else is the same JSON, so it lives here once.

Speed: prices and quantities arrive as strings; the wire structs declare them `float` and the decoders
run with `strict=False`, so msgspec converts them in C while decoding. Anything the fast path rejects
(invalid JSON, unknown event, non-numeric or non-positive numbers, unusual layouts) goes through a slow
path that finds the precise reason, so the fast path never has to.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections import deque
from collections.abc import Callable, Sequence
from urllib.parse import parse_qs, urlsplit

import msgspec

from tapeline.domain.book import L2Book
from tapeline.domain.errors import BadMessage
from tapeline.domain.events import BookGap, BookUpdate, Trade
from tapeline.venues.base import Output, RestRequest, VenueSession, WsEndpoint

MS = 1_000_000
NOTIONAL_DECIMALS = 10  # price x qty picks up binary noise; no venue quotes finer
INF = math.inf
# round(x, 10) costs ~0.5 us (a correctly rounded decimal conversion), a third of a whole trade. The same
# result, cheaper: y = x * 1e10 is exact to within ulp(y)/2 <= 1/8 while y < 2**51, so when y is more
# than 3/8 away from a half-integer, x * 10**10 rounds to k = round(y) as well, and k / 1e10 (k < 2**53,
# one correctly rounded division) is the double nearest k * 10**-10, which is what round(x, 10) returns.
# Near-ties and large values take round(x, 10) itself; the result is identical either way.
_FAST_ROUND_LIMIT = 2.0**51 / 1e10


def notional(price: float, qty: float) -> float:
    """price x qty rounded to NOTIONAL_DECIMALS, bit-identical to round(price * qty, 10)."""
    n = price * qty
    if n < _FAST_ROUND_LIMIT:
        y = n * 1e10
        k = round(y)
        if -0.375 < y - k < 0.375:
            return k / 1e10
    return round(n, NOTIONAL_DECIMALS)


# ----------------------------------------------------------------------------------------- wire structs
# Field order follows the venue's JSON order (kw_only lets required fields follow defaulted ones): msgspec
# matches fields fastest when they come in declaration order. Unknown fields (X, nq, st, ps, M) are skipped.


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


class SymbolFilter(msgspec.Struct, gc=False):
    """One entry of exchangeInfo symbols[].filters (spot and futures alike)."""

    filterType: str
    tickSize: str = ""  # PRICE_FILTER
    stepSize: str = ""  # LOT_SIZE


def tick_and_lot(filters: list[SymbolFilter]) -> tuple[float, float]:
    """(tick size, lot size) from a symbol's exchangeInfo filters; 0.0 where the venue gives none."""
    by_type = {f.filterType: f for f in filters}
    tick, lot = by_type.get("PRICE_FILTER"), by_type.get("LOT_SIZE")
    return (
        float(tick.tickSize) if tick and tick.tickSize else 0.0,
        float(lot.stepSize) if lot and lot.stepSize else 0.0,
    )


class DepthSnapshot(msgspec.Struct, kw_only=True, gc=False):
    """GET /fapi/v1/depth (lastUpdateId, E, T, bids, asks) or /api/v3/depth (no E, T)."""

    lastUpdateId: int
    E: int = 0
    T: int = 0
    bids: list[tuple[float, float]]
    asks: list[tuple[float, float]]


# The same trades with prices as text: the slow path uses them to say exactly what is wrong.
class _AggTradeText(msgspec.Struct, tag="aggTrade", tag_field="e", gc=False):
    E: int
    s: str
    p: str
    q: str
    T: int
    m: bool
    f: int = 0
    l: int = 0  # noqa: E741
    a: int | None = None


class _RawTradeText(msgspec.Struct, tag="trade", tag_field="e", gc=False):
    E: int
    T: int
    s: str
    t: int
    p: str
    q: str
    m: bool


class _TradeEnvelope(msgspec.Struct, gc=False):
    data: AggTrade | RawTrade


trade_envelope_decoder = msgspec.json.Decoder(_TradeEnvelope, strict=False)
trade_bare_decoder = msgspec.json.Decoder(AggTrade | RawTrade, strict=False)
snapshot_decoder = msgspec.json.Decoder(DepthSnapshot, strict=False)
_TEXT_TRADE = _AggTradeText | _RawTradeText


def make_trade_parser(venue: str, instrument_of: Callable[[str], str]) -> Callable[..., list[Trade]]:
    """A venue's `parse(payload, recv_ts_ns=None) -> [Trade]` for aggTrade/trade messages (bare or combined)."""
    ids: dict[str, tuple[str, str]] = {}
    env_decode, bare_decode = trade_envelope_decoder.decode, trade_bare_decoder.decode

    def parse(payload: bytes | str, recv_ts_ns: int | None = None) -> list[Trade]:
        """One websocket message -> normalized events. Raises BadMessage with the reason."""
        try:  # the combined-stream envelope first: live connections always use it
            w = env_decode(payload).data
        except msgspec.DecodeError:
            try:
                w = bare_decode(payload)
            except msgspec.DecodeError:
                return [slow_trade(venue, payload, recv_ts_ns, instrument_of)]
        p = w.p
        q = w.q
        n = p * q  # the notional, inlined from notional()
        if p > 0.0 and q > 0.0 and n < _FAST_ROUND_LIMIT:  # also excludes NaN and inf
            y = n * 1e10
            k = round(y)
            n = k / 1e10 if -0.375 < y - k < 0.375 else round(n, NOTIONAL_DECIMALS)
        elif 0.0 < p < INF and 0.0 < q < INF:
            n = round(n, NOTIONAL_DECIMALS)
        else:
            return [slow_trade(venue, payload, recv_ts_ns, instrument_of)]  # raises with the reason
        known = ids.get(w.s)  # (symbol, instrument): reusing the cached symbol lets the decoded copy go
        if known is None:
            known = ids[w.s] = (w.s, instrument_of(w.s))
        tid = str(w.t) if type(w) is RawTrade else (str(w.a) if w.a is not None else f"{w.f}-{w.l}")
        return [
            Trade(
                venue,
                known[0],
                known[1],
                w.T * 1_000_000,  # MS, as a constant
                recv_ts_ns if recv_ts_ns is not None else w.E * 1_000_000,
                p,
                q,
                n,
                "sell" if w.m else "buy",
                tid,
            )
        ]

    return parse


def trade_event(venue: str, instrument: str, w: AggTrade | RawTrade, recv_ts_ns: int | None) -> Trade:
    """A decoded wire trade -> Trade (the sessions' path; numbers were checked by the caller)."""
    p, q = w.p, w.q
    tid = str(w.t) if type(w) is RawTrade else (str(w.a) if w.a is not None else f"{w.f}-{w.l}")
    return Trade(
        venue,
        w.s,
        instrument,
        w.T * MS,
        recv_ts_ns if recv_ts_ns is not None else w.E * MS,
        p,
        q,
        notional(p, q),
        "sell" if w.m else "buy",
        tid,
    )


def decode_generic(venue: str, payload: bytes | str) -> object:
    try:
        return msgspec.json.decode(payload)
    except msgspec.DecodeError as exc:
        raise BadMessage(f"{venue}: invalid JSON: {exc}") from None


def slow_trade(venue: str, payload: bytes | str, recv_ts_ns: int | None, instrument_of: Callable[[str], str]) -> Trade:
    """The trade the fast path could not take, or BadMessage saying why (invalid JSON, schema, numbers)."""
    msg = decode_generic(venue, payload)
    data = msg.get("data", msg) if isinstance(msg, dict) else msg
    return trade_from_data(venue, data, recv_ts_ns, instrument_of)


def trade_from_data(venue: str, data: object, recv_ts_ns: int | None, instrument_of: Callable[[str], str]) -> Trade:
    try:
        wire = msgspec.convert(data, _TEXT_TRADE)
    except msgspec.ValidationError as exc:
        raise BadMessage(f"{venue}: unsupported or malformed event: {exc}") from None
    try:
        price = float(wire.p)
        qty = float(wire.q)
    except ValueError:
        raise BadMessage(f"{venue}: non-numeric price {wire.p!r} or quantity {wire.q!r}") from None
    if not (0.0 < price < INF and 0.0 < qty < INF):
        raise BadMessage(f"{venue}: price {wire.p!r} and quantity {wire.q!r} must be positive and finite")
    if isinstance(wire, _AggTradeText):
        typed: AggTrade | RawTrade = AggTrade(E=wire.E, a=wire.a, s=wire.s, p=price, q=qty, f=wire.f, l=wire.l,
                                              T=wire.T, m=wire.m)  # fmt: skip
    else:
        typed = RawTrade(E=wire.E, T=wire.T, s=wire.s, t=wire.t, p=price, q=qty, m=wire.m)
    return trade_event(venue, instrument_of(wire.s), typed, recv_ts_ns)


# -------------------------------------------------------------------------------------------- streams


def batched_stream_urls(base_url: str, by_path: dict[str, list[str]], max_streams: int) -> list[str]:
    """Combined-stream URLs `<base>/<path>/stream?streams=a/b/...`, at most `max_streams` per URL."""
    urls = []
    base = base_url.rstrip("/")
    for path, streams in by_path.items():
        prefix = f"{base}/{path}/stream" if path else f"{base}/stream"
        for i in range(0, len(streams), max_streams):
            urls.append(f"{prefix}?streams={'/'.join(streams[i : i + max_streams])}")
    return urls


# ------------------------------------------------------------------------------------------ diff books

IDLE, PENDING, BRIDGING, LIVE = "idle", "pending", "bridging", "live"


class DiffBook:
    """One symbol's local book from a REST snapshot plus the diff-depth stream, with Binance's sync rules.

    States: IDLE (no snapshot asked for) -> PENDING (snapshot requested, events buffered) -> BRIDGING
    (snapshot loaded, waiting for the event that spans its lastUpdateId) -> LIVE (verified; each event
    must chain onto the previous one). A broken chain emits BookGap, invalidates the book, asks for a new
    snapshot and buffers from the breaking event on. Rules (`futures`):

    - USD-M: drop u < lastUpdateId; the first event must have U <= lastUpdateId <= u; then pu == previous u.
    - Spot:  drop u <= lastUpdateId; the first event must have U <= lastUpdateId + 1 <= u; then U == previous u + 1.

    The snapshot is emitted (as a BookUpdate with is_snapshot) only once an event bridges it, followed by
    that event; so every BookUpdate a consumer sees belongs to a verified book.
    """

    __slots__ = ("book", "buffer", "dropped", "futures", "gaps", "instrument", "last_u", "max_buffer",
                 "request", "snap_id", "snap_recv_ts_ns", "snap_ts_ns", "snapshots", "state", "symbol", "url",
                 "venue")  # fmt: skip

    def __init__(
        self, venue: str, symbol: str, instrument: str, request: RestRequest, *, futures: bool, max_buffer: int
    ) -> None:
        self.venue = venue
        self.symbol = symbol
        self.instrument = instrument
        self.request = request  # the snapshot request for this symbol
        self.futures = futures
        self.max_buffer = max_buffer
        self.book = L2Book()
        self.state = IDLE
        self.buffer: deque[tuple[DepthUpdate, int]] = deque(maxlen=max_buffer)
        self.last_u = -1
        self.snap_id = -1
        self.snap_ts_ns = 0
        self.snap_recv_ts_ns = 0
        self.url: str | None = None  # the connection that fed the last event
        self.dropped = 0  # events older than the snapshot
        self.gaps = 0
        self.snapshots = 0  # snapshots loaded

    # -- stream events -------------------------------------------------------------------------------

    def on_event(self, ev: DepthUpdate, recv_ts_ns: int, out: Output) -> None:
        if self.state == LIVE:
            if (ev.pu == self.last_u) if self.futures else (self.last_u + 1 == ev.U):
                self.book.apply(ev.b, ev.a, ev.u)
                self.last_u = ev.u
                out.events.append(self._delta(ev, recv_ts_ns))
                return
            self._gap(ev, recv_ts_ns, out)
        elif self.state == BRIDGING:
            self._bridge(ev, recv_ts_ns, out)
        elif self.state == PENDING:
            self.buffer.append((ev, recv_ts_ns))
        else:  # IDLE: the first event after start or a disconnect
            self.state = PENDING
            self.buffer.clear()
            self.buffer.append((ev, recv_ts_ns))
            out.requests.append(self.request)

    def _delta(self, ev: DepthUpdate, recv_ts_ns: int) -> BookUpdate:
        return BookUpdate(self.venue, self.symbol, self.instrument, (ev.T or ev.E) * MS, recv_ts_ns, False,
                          ev.b, ev.a, ev.U, ev.u, ev.pu)  # fmt: skip

    def _gap(self, ev: DepthUpdate, recv_ts_ns: int, out: Output) -> None:
        if self.futures:
            reason = f"pu {ev.pu} != previous u {self.last_u}"
        else:
            reason = f"U {ev.U} != previous u {self.last_u} + 1"
        out.events.append(
            BookGap(
                self.venue, self.symbol, self.instrument, (ev.T or ev.E) * MS, recv_ts_ns, reason, self.last_u, ev.U
            )
        )
        self.gaps += 1
        self.book.invalidate()
        self.state = PENDING
        self.buffer.clear()
        self.buffer.append((ev, recv_ts_ns))  # newer than the break: it may bridge the next snapshot
        out.requests.append(self.request)

    def _bridge(self, ev: DepthUpdate, recv_ts_ns: int, out: Output) -> None:
        lid = self.snap_id
        if (ev.u < lid) if self.futures else (ev.u <= lid):
            self.dropped += 1  # already in the snapshot
            return
        # Not stale, so u reaches lastUpdateId (+1 on spot); if U does too, this event bridges the snapshot.
        if ev.U <= (lid if self.futures else lid + 1):  # noqa: SIM300 - ruff takes the venue's `U` for a constant
            book = self.book  # still exactly the snapshot: events before the bridge were only dropped
            out.events.append(
                BookUpdate(
                    self.venue,
                    self.symbol,
                    self.instrument,
                    self.snap_ts_ns,
                    self.snap_recv_ts_ns,
                    True,
                    list(book.bids.items()),
                    list(book.asks.items()),
                    -1,
                    lid,
                    -1,
                )
            )
            self.book.apply(ev.b, ev.a, ev.u)
            self.book.verified = True
            self.last_u = ev.u
            self.state = LIVE
            out.events.append(self._delta(ev, recv_ts_ns))
            return
        # The stream is already past the snapshot (events between them are lost): ask for a newer one.
        self.book.invalidate()
        self.state = PENDING
        self.buffer.clear()
        self.buffer.append((ev, recv_ts_ns))
        out.requests.append(self.request)

    # -- snapshots and connections ---------------------------------------------------------------------

    def on_snapshot(self, snap: DepthSnapshot, recv_ts_ns: int, out: Output) -> None:
        if self.state == LIVE:
            return  # an answer to an older request; the book is verified already
        try:
            self.book.snapshot(snap.bids, snap.asks, snap.lastUpdateId)
        except BadMessage as exc:
            self.state = IDLE  # the next event asks for a new snapshot
            self.buffer.clear()
            raise BadMessage(f"{self.venue}: {self.symbol} depth snapshot: {exc.reason}") from None
        self.book.verified = False  # not until an event bridges it
        self.snapshots += 1
        self.snap_id = snap.lastUpdateId
        self.snap_ts_ns = (snap.T or snap.E) * MS or recv_ts_ns
        self.snap_recv_ts_ns = recv_ts_ns
        self.state = BRIDGING
        buffered = list(self.buffer)
        self.buffer.clear()
        for ev, ts in buffered:
            self.on_event(ev, ts, out)

    def failed(self) -> None:
        """The snapshot request failed: forget the buffer; the next event asks again."""
        if self.state == PENDING:
            self.state = IDLE
            self.buffer.clear()

    def disconnect(self, recv_ts_ns: int, reason: str, out: Output) -> None:
        """The feeding connection dropped: a verified book reports a gap; the next event resyncs."""
        if self.state == LIVE:
            out.events.append(
                BookGap(self.venue, self.symbol, self.instrument, recv_ts_ns, recv_ts_ns, reason, self.last_u, -1)
            )
            self.gaps += 1
        self.book.invalidate()
        self.buffer.clear()
        self.state = IDLE


# ------------------------------------------------------------------------------------------- sessions


class BinanceSession(VenueSession):
    """What both Binance sessions do alike: trades, diff-depth books, endpoints, disconnects, replay URLs.

    A subclass sets the class attributes and handles its other events in `_other` / `_rest_other`.
    """

    FUTURES: bool  # which depth rule (DiffBook)
    DEPTH_PATH: str  # REST path of the depth snapshot
    INSTRUMENTS_PATH: str  # REST path of the instrument metadata
    REST_CHANNELS: tuple[str, ...] = ()  # channels served by REST polling, not streams
    WIRE_TYPE: object  # the union the slow path converts into
    MAX_LIFETIME_S = 24 * 3600 - 10 * 60  # the venue drops a connection at 24 h: reconnect before it does
    DEPTH_LIMIT = 1000
    _envelope: msgspec.json.Decoder  # {"stream", "data": WIRE_TYPE}, strict=False
    _bare: msgspec.json.Decoder  # WIRE_TYPE, strict=False

    def __init__(
        self,
        symbols: Sequence[str],
        channels: Sequence[str],
        ws_base_url: str | None = None,
        rest_base_url: str | None = None,
        *,
        depth_limit: int | None = None,
        max_buffer: int = 10_000,
    ) -> None:
        super().__init__([s.upper() for s in symbols], channels, ws_base_url, rest_base_url)
        self.depth_limit = depth_limit or self.DEPTH_LIMIT
        self.max_buffer = max_buffer  # depth events kept per symbol while a snapshot is pending
        self.books: dict[str, DiffBook] = {}
        self._ids: dict[str, str] = {}  # symbol -> canonical instrument id (metadata wins once loaded)
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
    def default_instrument(self, symbol: str) -> str:
        """The canonical id of a symbol before instrument metadata is known."""

    def _other(self, data: object, recv_ts_ns: int) -> Output:
        raise BadMessage(f"{self.VENUE}: unsupported event {type(data).__name__}")

    def _rest_other(self, kind: str, symbol: str, request: RestRequest, body: bytes | str, recv_ts_ns: int) -> Output:
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

    def book(self, symbol: str) -> DiffBook:
        """The depth state of `symbol` (created on first use: a replay may carry symbols it was not given)."""
        book = self.books.get(symbol)
        if book is None:
            url = f"{self.rest_base_url}{self.DEPTH_PATH}?symbol={symbol}&limit={self.depth_limit}"
            book = DiffBook(
                self.VENUE,
                symbol,
                self.instrument(symbol),
                RestRequest(f"depth:{symbol}", url),
                futures=self.FUTURES,
                max_buffer=self.max_buffer,
            )
            self.books[symbol] = book
        return book

    def instrument(self, symbol: str) -> str:
        instrument = self._ids.get(symbol)
        if instrument is None:
            instrument = self._ids[symbol] = self.default_instrument(symbol)
        return instrument

    # -- websocket ------------------------------------------------------------------------------------

    def _on_ws(self, payload: bytes | str, recv_ts_ns: int, url: str | None = None) -> Output:
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
            tid = str(data.t) if kind is RawTrade else (str(data.a) if data.a is not None else f"{data.f}-{data.l}")
            return Output(
                [
                    Trade(
                        self.VENUE,
                        s,
                        self._ids.get(s) or self.instrument(s),
                        data.T * MS,
                        recv_ts_ns,
                        p,
                        q,
                        notional(p, q),
                        "sell" if data.m else "buy",
                        tid,
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
        msg = decode_generic(self.VENUE, payload)
        if isinstance(msg, dict):
            if "result" in msg and "id" in msg:
                return Output()  # subscription ack
            if "error" in msg:
                raise BadMessage(f"{self.VENUE}: venue error: {msg['error']}")
            data = msg.get("data", msg)
        else:
            data = msg
        if isinstance(data, dict) and data.get("e") in ("aggTrade", "trade"):
            return Output([trade_from_data(self.VENUE, data, recv_ts_ns, self.instrument)], [])  # or the reason
        if isinstance(data, dict) and "lastUpdateId" in data:
            return self._recorded_snapshot(msg, data, recv_ts_ns)
        try:
            wire = msgspec.convert(data, self.WIRE_TYPE, strict=False)
        except msgspec.ValidationError as exc:
            raise BadMessage(f"{self.VENUE}: unsupported or malformed event: {exc}") from None
        return self._dispatch(wire, recv_ts_ns, url)

    def _recorded_snapshot(self, msg: dict, data: dict, recv_ts_ns: int) -> Output:
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
            self.book(symbol).on_snapshot(decode_rest(self.VENUE, snapshot_decoder, body, request), recv_ts_ns, out)
            return out
        return self._rest_other(kind, symbol, request, body, recv_ts_ns)

    def on_rest_error(self, request: RestRequest, reason: str, recv_ts_ns: int) -> Output:
        """A snapshot request failed for good: the book's next event asks again."""
        kind, _, symbol = request.key.partition(":")
        if kind == "depth" and symbol in self.books:
            self.books[symbol].failed()
        return Output()

    def on_disconnect(self, url: str, recv_ts_ns: int) -> Output:
        out = Output()
        for symbol, book in self.books.items():
            if book.url == url or (book.url is None and self._depth_urls.get(symbol) == url):
                book.disconnect(recv_ts_ns, f"connection closed: {url}", out)
        return out


def decode_rest(venue: str, decoder: msgspec.json.Decoder, body: bytes | str, request: RestRequest):
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


def number(venue: str, what: str, text: str) -> float:
    """A finite float from the venue's text, or BadMessage naming the field."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise BadMessage(f"{venue}: non-numeric {what} {text!r}") from None
    if not -INF < value < INF:
        raise BadMessage(f"{venue}: {what} {text!r} is not finite")
    return value
