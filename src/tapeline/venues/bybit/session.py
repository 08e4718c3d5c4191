"""Bybit v5 public streams (linear USDT/USDC contracts and spot): endpoints, subscriptions, messages -> events.

One implementation, two sessions: `BybitLinearSession` (venue "bybit-linear", /v5/public/linear) and
`BybitSpotSession` ("bybit-spot", /v5/public/spot).

Channels: publicTrade (`S` is the taker side), orderbook.{1|50|200|500|1000} (snapshot + deltas chained by
`u`, book.py), allLiquidation (`S` is the POSITION side: "Buy" = a long was liquidated = a forced sell) and
tickers (linear: a snapshot, then deltas carrying only the changed fields, merged into per-symbol state).

Book resync. On a sequence break the session emits one BookGap, invalidates that book and queues its
topic; the connector then calls `resubscribe_frames(url)` after each message and sends the frames it gets
(an unsubscribe, then a subscribe, for the broken topics of that connection). Deltas of a book awaiting
its snapshot are dropped silently.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Sequence
from urllib.parse import parse_qs, quote, urlsplit

import msgspec

from tapeline.domain.errors import BadMessage
from tapeline.domain.events import BookUpdate, DerivTicker, Event, Instrument, Liquidation, Trade
from tapeline.venues.base import Output, RestRequest, VenueSession, WsEndpoint
from tapeline.venues.bybit.book import BybitBook
from tapeline.venues.bybit.instruments import (
    LINEAR,
    SPOT,
    linear_instrument,
    linear_metadata,
    spot_instrument,
    spot_metadata,
)
from tapeline.venues.bybit.wire import (
    InstrumentInfo,
    all_liquidation_decoder,
    control_decoder,
    instruments_decoder,
    legacy_liquidation_decoder,
    linear_ticker_decoder,
    orderbook_decoder,
    spot_ticker_decoder,
    trades_decoder,
)
from tapeline.venues.common import MS, notional, number

REST_BASE_URL = "https://api.bybit.com"
INSTRUMENTS_PATH = "/v5/market/instruments-info"
MAX_ARGS_PER_FRAME = 10  # spot rejects larger subscribe requests; linear accepts more, one rule for both
MAX_TOPICS_PER_CONNECTION = 500  # one connection per session: its URL then names it unambiguously
KEEPALIVE_S = 20.0  # Bybit drops a public connection after ~10 min without traffic; docs ask for 20 s pings
KEEPALIVE_FRAME = '{"op":"ping"}'
_TOPIC_KEY = '"topic":"'
_TOPIC_KEY_B = b'"topic":"'
_CONTROL_OPS = frozenset(("subscribe", "unsubscribe", "ping", "pong"))

Handler = Callable[[bytes | str, int, str | None], Output]
# ticker fields merged into _TickerState: (venue field, attribute, bounds)
_TICKER_NUMBERS: tuple[tuple[str, str, dict[str, float]], ...] = (
    ("fundingRate", "funding", {}),
    ("markPrice", "mark", {"above": 0}),
    ("indexPrice", "index", {"above": 0}),
    ("openInterest", "oi", {"at_least": 0}),
    ("openInterestValue", "oi_usd", {"at_least": 0}),
    ("singleOpenInterest", "oi_single", {"at_least": 0}),
    ("singleOpenInterestValue", "oi_usd_single", {"at_least": 0}),
)


class _TickerState:
    __slots__ = ("funding", "index", "mark", "next_funding", "oi", "oi_single", "oi_usd", "oi_usd_single")

    def __init__(self) -> None:
        self.funding: float | None = None
        self.next_funding: int | None = None
        self.mark: float | None = None
        self.index: float | None = None
        self.oi: float | None = None
        self.oi_usd: float | None = None
        self.oi_single: float | None = None
        self.oi_usd_single: float | None = None


class BybitSession(VenueSession[BybitBook]):
    """Shared Bybit v5 implementation; use BybitLinearSession or BybitSpotSession.

    Extra API beyond VenueSession:
      - `resubscribe_frames(url=None) -> list[str]`: frames to send on connection `url` (all connections when
        None) so that books that lost integrity get a fresh snapshot; each call hands the frames out once.
      - `pending_resubscribe`: topics waiting for their resubscription to be sent.
      - `instrument_status`: the venue's status per symbol (Trading, PreLaunch, Delivering, ...).
      - `books`: the BybitBook per orderbook topic (read-only use; verified books only are trustworthy).
    """

    CATEGORY: str
    REST_BASE_URL = REST_BASE_URL
    ID_RULE: Callable[[str], str]  # a symbol's canonical id before metadata says it
    METADATA: Callable[[InstrumentInfo], Instrument | None]  # an instruments row; None: out of scope

    def _setup(self) -> None:
        depths = [c for c in self.channels if c.startswith("orderbook.")]
        if len(depths) > 1:
            # BookUpdate carries no depth: two books of one instrument would interleave into nonsense.
            raise ValueError(f"{self.VENUE}: subscribe one orderbook depth per session, not {depths}")
        self.topics = [f"{c}.{s}" for s in self.symbols for c in self.channels]
        if len(self.topics) > MAX_TOPICS_PER_CONNECTION:
            raise ValueError(
                f"{self.VENUE}: {len(self.topics)} topics exceed {MAX_TOPICS_PER_CONNECTION} per connection; "
                "split the symbols over several sessions"
            )
        self.instrument_status: dict[str, str] = {}
        self.pending_resubscribe: dict[str, str | None] = {}  # topic -> connection url
        self._tickers: dict[str, _TickerState] = {}
        self._handlers: dict[str, Handler] = {
            "publicTrade": self._on_trades,
            "orderbook": self._on_orderbook,
            "tickers": self._on_ticker,
        }

    # ---- wiring
    def endpoints(self) -> list[WsEndpoint]:
        return [
            WsEndpoint(
                url=self.ws_base_url,
                subscribe=tuple(_frames("subscribe", self.topics)),
                keepalive_s=KEEPALIVE_S,
                keepalive_frame=KEEPALIVE_FRAME,
            )
        ]

    def startup(self) -> Output:
        url = f"{self.rest_base_url}{INSTRUMENTS_PATH}?category={self.CATEGORY}&limit=1000"
        return Output(requests=[RestRequest(key=f"instruments:{self.CATEGORY}", url=url)])

    def rest_request_for(self, url: str) -> RestRequest | None:
        parts = urlsplit(url)
        if not parts.path.endswith(INSTRUMENTS_PATH):
            return None
        if parse_qs(parts.query).get("category") != [self.CATEGORY]:
            return None
        return RestRequest(key=f"instruments:{self.CATEGORY}", url=url)

    def resubscribe_frames(self, url: str | None = None) -> list[str]:
        """Unsubscribe + subscribe frames for the broken books of connection `url` (None: every connection).

        Bybit answers a subscription with a fresh snapshot, which re-verifies the book. The frames are handed
        out once; call this after every on_ws/on_disconnect and send what it returns on that connection.
        """
        if not self.pending_resubscribe:
            return []
        topics = [t for t, conn in self.pending_resubscribe.items() if url is None or conn is None or conn == url]
        for topic in topics:
            del self.pending_resubscribe[topic]
        return _frames("unsubscribe", topics) + _frames("subscribe", topics)

    # ---- instruments
    def _on_rest(self, request: RestRequest, body: bytes | str, recv_ts_ns: int) -> Output:
        if not request.key.startswith("instruments"):
            raise BadMessage(f"{self.VENUE}: no handler for REST request {request.key!r}")
        try:
            answer = instruments_decoder.decode(body)
        except msgspec.DecodeError as exc:  # ValidationError derives from DecodeError
            raise BadMessage(f"{self.VENUE}: instruments answer from {request.url}: {exc}") from None
        if answer.retCode != 0 or answer.result is None:
            raise BadMessage(f"{self.VENUE}: instruments request failed: retCode {answer.retCode} {answer.retMsg!r}")
        if answer.result.category != self.CATEGORY:
            raise BadMessage(f"{self.VENUE}: instruments answer is for {answer.result.category!r}, not {self.CATEGORY}")
        for info in answer.result.items:
            instrument = type(self).METADATA(info)
            if instrument is None:
                continue
            self._learn(instrument)
            self.instrument_status[info.symbol] = info.status
        for book in self.books.values():  # books created before the answer name the instrument it gives
            book.instrument = self.instrument(book.symbol)
        out = Output()
        cursor = answer.result.nextPageCursor
        if cursor:  # linear pages at 1000 instruments
            base = request.url.split("&cursor=", 1)[0]
            out.requests.append(RestRequest(key=request.key, url=f"{base}&cursor={quote(cursor, safe='')}"))
        out.ignored = "instrument metadata"
        return out

    def _derive_instrument(self, symbol: str) -> str:
        return type(self).ID_RULE(symbol)

    # ---- websocket
    def _on_ws(self, payload: bytes | str, recv_ts_ns: int, url: str | None) -> Output:
        # Route on the topic prefix without a full parse; every channel then has its own typed decoder.
        if isinstance(payload, str):
            start = payload.find(_TOPIC_KEY)
            if start >= 0:
                start += 9
                channel = payload[start : payload.find(".", start)]
        else:
            start = payload.find(_TOPIC_KEY_B)
            if start >= 0:
                start += 9
                channel = payload[start : payload.find(b".", start)].decode("ascii", "replace")
        if start < 0:
            return self._on_control(payload, recv_ts_ns, url)
        handler = self._handlers.get(channel)
        if handler is None:
            raise BadMessage(f"{self.VENUE}: unknown topic channel {channel!r}")
        try:
            return handler(payload, recv_ts_ns, url)
        except msgspec.ValidationError as exc:
            raise BadMessage(f"{self.VENUE}: {channel} message: {exc}") from None
        except msgspec.DecodeError as exc:
            raise BadMessage(f"{self.VENUE}: invalid JSON in a {channel} message: {exc}") from None

    def _on_control(self, payload: bytes | str, recv_ts_ns: int, url: str | None) -> Output:
        try:
            msg = control_decoder.decode(payload)
        except msgspec.DecodeError as exc:
            raise BadMessage(f"{self.VENUE}: invalid JSON: {exc}") from None
        if msg.topic is not None:  # a topic we could not peek at (unusual spacing): route it properly
            compact = msgspec.json.encode(msgspec.json.decode(payload))
            if _TOPIC_KEY_B not in compact:
                raise BadMessage(f"{self.VENUE}: malformed topic {msg.topic!r}")
            return self._on_ws(compact, recv_ts_ns, url)
        if msg.op in _CONTROL_OPS:
            if msg.success is False:
                raise BadMessage(f"{self.VENUE}: {msg.op} rejected by the venue: {msg.ret_msg!r}")
            return Output(ignored="control frame")
        raise BadMessage(f"{self.VENUE}: message has neither a topic nor a known op")

    def _on_trades(self, payload: bytes | str, recv_ts_ns: int, url: str | None) -> Output:
        msg = trades_decoder.decode(payload)
        symbol = msg.topic[12:]  # "publicTrade."
        instrument = self._canonical.get(symbol) or self.instrument(symbol)
        venue = self.VENUE
        recv = recv_ts_ns if recv_ts_ns is not None else msg.ts * MS
        events: list[Event] = []
        append = events.append
        for t in msg.data:
            if t.s != symbol:
                raise BadMessage(f"{venue}: trade of {t.s!r} on topic {msg.topic!r}")
            price = t.p
            qty = t.v
            append(Trade(venue, symbol, instrument, t.T * MS, recv, price, qty, notional(price, qty),
                         "buy" if t.S == "Buy" else "sell", t.i))  # fmt: skip
        return Output.of(events)

    def _on_orderbook(self, payload: bytes | str, recv_ts_ns: int, url: str | None) -> Output:
        msg = orderbook_decoder.decode(payload)
        topic = msg.topic
        data = msg.data
        book = self.books.get(topic)
        if book is None:
            channel, _, symbol = topic.rpartition(".")
            if channel not in self.CHANNELS:
                raise BadMessage(f"{self.VENUE}: unknown orderbook topic {topic!r}")
            book = self.books[topic] = BybitBook(self.VENUE, symbol, self.instrument(symbol), topic,
                                                 url or self.ws_base_url)  # fmt: skip
        elif url is not None:
            book.url = url
        if data.s != book.symbol:
            raise BadMessage(f"{self.VENUE}: book of {data.s!r} on topic {topic!r}")
        ts = msg.ts * MS
        recv = recv_ts_ns if recv_ts_ns is not None else ts
        if msg.type == "delta" and data.u != 1:  # u == 1: the venue's service restarted; that overwrites the book
            if not book.levels.verified:
                if book.levels.last_seq == -1 and topic not in self.pending_resubscribe:
                    self.pending_resubscribe[topic] = book.url  # deltas but never a snapshot: ask for one
                return Output(ignored="delta for a book awaiting its snapshot")
            event = book.on_delta(data, ts, recv)
            if type(event) is not BookUpdate:
                self.pending_resubscribe[topic] = book.url
            return Output([event])
        update = book.on_snapshot(data, ts, recv)  # raises (book untouched) on a crossed snapshot
        self.pending_resubscribe.pop(topic, None)  # the snapshot is what the resubscription was for
        return Output.of([update] if update is not None else [], "unchanged repeat of the snapshot")

    @abstractmethod
    def _on_ticker(self, payload: bytes | str, recv_ts_ns: int, url: str | None) -> Output:
        """A tickers message: linear and spot tickers differ in shape."""

    def on_disconnect(self, url: str, recv_ts_ns: int) -> Output:
        for topic, book in self.books.items():
            if book.fed_by(url):
                self.pending_resubscribe.pop(topic, None)  # reconnecting subscribes again anyway
        return super().on_disconnect(url, recv_ts_ns)


class BybitLinearSession(BybitSession):
    """USDT and USDC perpetuals and dated futures (sizes in base coin)."""

    VENUE = LINEAR
    WS_BASE_URL = "wss://stream.bybit.com/v5/public/linear"
    CATEGORY = "linear"
    CHANNELS = ("publicTrade", "orderbook.1", "orderbook.50", "orderbook.200", "orderbook.500", "orderbook.1000",
                "allLiquidation", "tickers")  # fmt: skip
    DEFAULT_CHANNELS = ("publicTrade", "orderbook.200", "allLiquidation", "tickers")
    ID_RULE = staticmethod(linear_instrument)
    METADATA = staticmethod(linear_metadata)

    def _setup(self) -> None:
        super()._setup()
        self._handlers["allLiquidation"] = self._on_all_liquidation
        self._handlers["liquidation"] = self._on_legacy_liquidation  # deprecated; older captures have it

    def _on_all_liquidation(self, payload: bytes | str, recv_ts_ns: int, url: str | None) -> Output:
        msg = all_liquidation_decoder.decode(payload)
        symbol = msg.topic[15:]  # "allLiquidation."
        instrument = self.instrument(symbol)
        recv = recv_ts_ns if recv_ts_ns is not None else msg.ts * MS
        events: list[Event] = []
        for liq in msg.data:
            if liq.s != symbol:
                raise BadMessage(f"{self.VENUE}: liquidation of {liq.s!r} on topic {msg.topic!r}")
            events.append(_liquidation(symbol, instrument, liq.T * MS, recv, liq.S, liq.p, liq.v))
        return Output.of(events)

    def _on_legacy_liquidation(self, payload: bytes | str, recv_ts_ns: int, url: str | None) -> Output:
        msg = legacy_liquidation_decoder.decode(payload)
        liq = msg.data
        if msg.topic[12:] != liq.symbol:  # "liquidation."
            raise BadMessage(f"{self.VENUE}: liquidation of {liq.symbol!r} on topic {msg.topic!r}")
        instrument = self.instrument(liq.symbol)
        recv = recv_ts_ns if recv_ts_ns is not None else msg.ts * MS
        return Output([_liquidation(liq.symbol, instrument, liq.updatedTime * MS, recv, liq.side, liq.price, liq.size)])

    def _on_ticker(self, payload: bytes | str, recv_ts_ns: int, url: str | None) -> Output:
        msg = linear_ticker_decoder.decode(payload)
        d = msg.data
        symbol = d.symbol
        if msg.topic[8:] != symbol:  # "tickers."
            raise BadMessage(f"{self.VENUE}: ticker of {symbol!r} on topic {msg.topic!r}")
        instrument = self.instrument(symbol)
        state = self._tickers.get(symbol)
        if state is None or msg.type == "snapshot":
            state = self._tickers[symbol] = _TickerState()
        where = f"{self.VENUE}: tickers.{symbol}"
        changed = False  # deltas that only move bid1/ask1/lastPrice/volume carry nothing derivative
        if d.nextFundingTime:
            next_ms = int(number(d.nextFundingTime, "nextFundingTime", where, at_least=0))
            state.next_funding = next_ms * MS if next_ms > 0 else None  # "0" on dated futures
            changed = True
        for field, attr, bounds in _TICKER_NUMBERS:
            text = getattr(d, field)
            if text:
                setattr(state, attr, number(text, field, where, **bounds))
                changed = True
        if not changed:
            return Output(ignored="ticker without derivatives fields")
        ts = msg.ts * MS
        return Output(
            [
                DerivTicker(
                    self.VENUE,
                    symbol,
                    instrument,
                    ts,
                    recv_ts_ns if recv_ts_ns is not None else ts,
                    funding_rate=state.funding,
                    next_funding_ts_ns=state.next_funding,
                    mark_price=state.mark,
                    index_price=state.index,
                    # one side, comparable with other venues; the older feed only had openInterest
                    open_interest_base=state.oi_single if state.oi_single is not None else state.oi,
                    open_interest_usd=state.oi_usd_single if state.oi_usd_single is not None else state.oi_usd,
                )
            ]
        )


class BybitSpotSession(BybitSession):
    """Spot pairs. Spot tickers carry no derivatives fields, so they produce no events."""

    VENUE = SPOT
    WS_BASE_URL = "wss://stream.bybit.com/v5/public/spot"
    CATEGORY = "spot"
    CHANNELS = ("publicTrade", "orderbook.1", "orderbook.50", "orderbook.200", "orderbook.1000", "tickers")
    DEFAULT_CHANNELS = ("publicTrade", "orderbook.200")
    ID_RULE = staticmethod(spot_instrument)
    METADATA = staticmethod(spot_metadata)

    def _on_ticker(self, payload: bytes | str, recv_ts_ns: int, url: str | None) -> Output:
        msg = spot_ticker_decoder.decode(payload)
        if msg.topic[8:] != msg.data.symbol:
            raise BadMessage(f"{self.VENUE}: ticker of {msg.data.symbol!r} on topic {msg.topic!r}")
        return Output(ignored="spot ticker (no derivatives fields)")


def _frames(op: str, topics: Sequence[str]) -> list[str]:
    return [
        msgspec.json.encode({"op": op, "args": list(topics[i : i + MAX_ARGS_PER_FRAME])}).decode()
        for i in range(0, len(topics), MAX_ARGS_PER_FRAME)
    ]


def _liquidation(symbol: str, instrument: str, ts_ns: int, recv: int, side: str, price: float,
                 qty: float) -> Liquidation:  # fmt: skip
    long = side == "Buy"  # Bybit names the liquidated POSITION's side
    return Liquidation(LINEAR, symbol, instrument, ts_ns, recv, "long" if long else "short", "sell" if long else "buy",
                       price, qty, notional(price, qty))  # fmt: skip
