"""Bybit v5 public streams (linear USDT/USDC contracts and spot): wire structs, sessions, parse -> events.

One implementation, two sessions: `BybitLinearSession` (venue "bybit-linear", /v5/public/linear) and
`BybitSpotSession` ("bybit-spot", /v5/public/spot). Inverse contracts are out of scope: their sizes are USD
contracts, so the linear session refuses symbols it cannot prove are base-sized rather than mis-scale them.

Channels: publicTrade (`S` is the taker side), orderbook.{1|50|200|500|1000} (snapshot + deltas chained by
`u`), allLiquidation (`S` is the POSITION side: "Buy" = a long was liquidated = a forced sell) and tickers
(linear: a snapshot, then deltas carrying only the changed fields, merged into per-symbol state).

Book resync. Bybit has no REST snapshot for the websocket book: the only way back to a verified book is a
fresh snapshot, which the venue sends on (re)subscription. On a sequence break the session emits one
BookGap, invalidates that book and queues its topic; the connector then calls `resubscribe_frames(url)`
after each message and sends the frames it gets (an unsubscribe, then a subscribe, for the broken topics
of that connection). Deltas of a book awaiting its snapshot are dropped silently.
"""

from __future__ import annotations

import math
import sys
from abc import abstractmethod
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Literal
from urllib.parse import parse_qs, quote, urlsplit

import msgspec

from tapeline.domain.book import L2Book
from tapeline.domain.errors import BadMessage
from tapeline.domain.events import BookGap, BookUpdate, DerivTicker, Instrument, Liquidation, Trade
from tapeline.domain.instruments import split_symbol
from tapeline.venues.base import Output, RestRequest, VenueSession, WsEndpoint

VENUE = "bybit-linear"
SPOT_VENUE = "bybit-spot"
WS_BASE_URL = "wss://stream.bybit.com/v5/public/linear"
SPOT_WS_BASE_URL = "wss://stream.bybit.com/v5/public/spot"
REST_BASE_URL = "https://api.bybit.com"
INSTRUMENTS_PATH = "/v5/market/instruments-info"

MAX_ARGS_PER_FRAME = 10  # spot rejects larger subscribe requests; linear accepts more, one rule for both
MAX_TOPICS_PER_CONNECTION = 500  # one connection per session: its URL then names it unambiguously
KEEPALIVE_S = 20.0  # Bybit drops a public connection after ~10 min without traffic; docs ask for 20 s pings
KEEPALIVE_FRAME = '{"op":"ping"}'
MS = 1_000_000
NOTIONAL_DECIMALS = 10
LINEAR_QUOTES = ("USDT", "USDC")  # linear contracts are sized in base coin; anything else may be inverse
# Bybit spot quote coins (2026 instruments answer), longest first: BTCRLUSD is BTC/RLUSD, USDTUSD is USDT/USD.
SPOT_QUOTES = ("RLUSD", "XUSD", "USDT", "USDC", "USDE", "USD1", "EUR", "BTC", "BRL", "GBP", "AED", "PLN", "TRY",
               "USD", "ETH", "SOL")  # fmt: skip
MONTHS = {m: i for i, m in enumerate(("JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                      "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1)}  # fmt: skip

# Decoded straight from the venue's numeric strings (strict=False); the bounds reject NaN, inf, <= 0 in C.
Price = Annotated[float, msgspec.Meta(gt=0, le=sys.float_info.max)]
Size = Annotated[float, msgspec.Meta(ge=0, le=sys.float_info.max)]  # book sizes: "0" deletes a level
Qty = Annotated[float, msgspec.Meta(gt=0, le=sys.float_info.max)]
Side = Literal["Buy", "Sell"]


# ---------------------------------------------------------------------------------------------- wire types
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


class PublicTradeMsg(msgspec.Struct, frozen=True, gc=False):
    topic: str
    ts: int
    data: list[PublicTrade]
    type: str = "snapshot"


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


class AllLiquidationMsg(msgspec.Struct, frozen=True, gc=False):
    topic: str
    ts: int
    data: list[AllLiquidation]
    type: str = "snapshot"


class LegacyLiquidation(msgspec.Struct, frozen=True, gc=False):
    """Deprecated `liquidation.{symbol}` (at most 1/s per symbol): same position-side semantics."""

    updatedTime: int
    symbol: str
    side: Side
    size: Qty
    price: Price


class LegacyLiquidationMsg(msgspec.Struct, frozen=True, gc=False):
    topic: str
    ts: int
    data: LegacyLiquidation
    type: str = "snapshot"


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


class SpotTickerMsg(msgspec.Struct, frozen=True, gc=False):
    topic: str
    ts: int
    data: SpotTicker


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


_trades = msgspec.json.Decoder(PublicTradeMsg, strict=False)
_orderbook = msgspec.json.Decoder(OrderbookMsg, strict=False)
_all_liquidation = msgspec.json.Decoder(AllLiquidationMsg, strict=False)
_legacy_liquidation = msgspec.json.Decoder(LegacyLiquidationMsg, strict=False)
_linear_ticker = msgspec.json.Decoder(LinearTickerMsg)
_spot_ticker = msgspec.json.Decoder(SpotTickerMsg)
_control = msgspec.json.Decoder(Control)
_instruments = msgspec.json.Decoder(InstrumentsAnswer)

_TOPIC_KEY = '"topic":"'
_TOPIC_KEY_B = b'"topic":"'
_CONTROL_OPS = frozenset(("subscribe", "unsubscribe", "ping", "pong"))


# -------------------------------------------------------------------------------------- canonical ids
def _expiry_code(ddmmmyy: str) -> str:
    """14AUG26 -> 260814 (the symbol suffix of Bybit dated futures)."""
    month = MONTHS.get(ddmmmyy[2:5])
    if len(ddmmmyy) != 7 or month is None or not (ddmmmyy[:2] + ddmmmyy[5:]).isdigit():
        raise BadMessage(f"bybit: cannot read the expiry {ddmmmyy!r}")
    return f"{ddmmmyy[5:]}{month:02d}{ddmmmyy[:2]}"


def linear_instrument(symbol: str) -> str:
    """Canonical id of a linear symbol without metadata: BTCUSDT -> BTC-USDT-PERP, BTCPERP -> BTC-USDC-PERP,
    BTCUSDT-14AUG26 -> BTC-USDT-260814, BTC-14AUG26 (USDC futures) -> BTC-USDC-260814.

    A quote other than USDT/USDC (e.g. BTCUSD) is refused: it would be an inverse contract sized in USD.
    """
    pair, _, expiry = symbol.partition("-")
    if not expiry and pair.endswith("PERP") and len(pair) > 4:
        return f"{pair[:-4]}-USDC-PERP"
    try:
        base, quote = split_symbol(pair)
    except BadMessage:
        if not expiry:
            raise BadMessage(f"bybit-linear: cannot split {symbol!r} into base and quote") from None
        base, quote = pair, "USDC"  # USDC futures are named BASE-DDMMMYY
    if quote not in LINEAR_QUOTES:
        raise BadMessage(f"bybit-linear: {symbol!r} is not a USDT/USDC linear contract (inverse is out of scope)")
    return f"{base}-{quote}-{_expiry_code(expiry) if expiry else 'PERP'}"


def spot_instrument(symbol: str) -> str:
    """BTCUSDT -> BTC-USDT-SPOT from the quote suffix; the instruments answer is authoritative when loaded."""
    for quote_coin in SPOT_QUOTES:
        if symbol.endswith(quote_coin) and len(symbol) > len(quote_coin):
            return f"{symbol[: -len(quote_coin)]}-{quote_coin}-SPOT"
    raise BadMessage(f"bybit-spot: cannot split {symbol!r} into base and quote (no instrument metadata)")


def _ms_to_yymmdd(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%y%m%d")


def _positive(text: str, what: str) -> float:
    try:
        value = float(text) if text else 0.0
    except ValueError:
        raise BadMessage(f"bybit: {what} {text!r} is not a number") from None
    return value if math.isfinite(value) and value > 0 else 0.0


# ------------------------------------------------------------------------------------------ session
class _Book:
    """One topic's book and where it comes from."""

    __slots__ = ("book", "conn", "symbol")

    def __init__(self, symbol: str, conn: str | None) -> None:
        self.book = L2Book()
        self.symbol = symbol
        self.conn = conn


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


class BybitSession(VenueSession):
    """Shared Bybit v5 implementation; use BybitLinearSession or BybitSpotSession.

    Extra API beyond VenueSession:
      - `resubscribe_frames(url=None) -> list[str]`: frames to send on connection `url` (all connections when
        None) so that books that lost integrity get a fresh snapshot; each call hands the frames out once.
      - `pending_resubscribe`: topics waiting for their resubscription to be sent.
      - `instrument_status`: the venue's status per symbol (Trading, PreLaunch, Delivering, ...).
      - `books`: the L2Book per orderbook topic (read-only use; verified books only are trustworthy).
    """

    CATEGORY: str
    REST_BASE_URL = REST_BASE_URL

    def __init__(
        self,
        symbols: Sequence[str],
        channels: Sequence[str],
        ws_base_url: str | None = None,
        rest_base_url: str | None = None,
    ) -> None:
        super().__init__(symbols, channels, ws_base_url, rest_base_url)
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
        self.books: dict[str, _Book] = {}  # by topic
        self.pending_resubscribe: dict[str, str | None] = {}  # topic -> connection url
        self._tickers: dict[str, _TickerState] = {}
        self._canonical: dict[str, str] = {}
        self._handlers = {
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
            answer = _instruments.decode(body)
        except msgspec.DecodeError as exc:  # ValidationError derives from DecodeError
            raise BadMessage(f"{self.VENUE}: instruments answer from {request.url}: {exc}") from None
        if answer.retCode != 0 or answer.result is None:
            raise BadMessage(f"{self.VENUE}: instruments request failed: retCode {answer.retCode} {answer.retMsg!r}")
        if answer.result.category != self.CATEGORY:
            raise BadMessage(f"{self.VENUE}: instruments answer is for {answer.result.category!r}, not {self.CATEGORY}")
        for info in answer.result.items:
            instrument = self._parse_instrument(info)
            if instrument is None:
                continue
            self.instruments[info.symbol] = instrument
            self.instrument_status[info.symbol] = info.status
            self._canonical[info.symbol] = instrument.instrument
        out = Output()
        cursor = answer.result.nextPageCursor
        if cursor:  # linear pages at 1000 instruments
            base = request.url.split("&cursor=", 1)[0]
            out.requests.append(RestRequest(key=request.key, url=f"{base}&cursor={quote(cursor, safe='')}"))
        return out

    @abstractmethod
    def _parse_instrument(self, info: InstrumentInfo) -> Instrument | None:
        """This category's instrument metadata, or None for an instrument out of scope."""

    @abstractmethod
    def _resolve(self, symbol: str) -> str:
        """Canonical instrument id of a symbol of this category."""

    def _instrument(self, symbol: str) -> str:
        canonical = self._canonical.get(symbol)
        if canonical is None:
            canonical = self._canonical[symbol] = self._resolve(symbol)
        return canonical

    # ---- websocket
    def _on_ws(self, payload: bytes | str, recv_ts_ns: int | None, url: str | None = None) -> Output:
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

    def _on_control(self, payload: bytes | str, recv_ts_ns: int | None, url: str | None) -> Output:
        try:
            msg = _control.decode(payload)
        except msgspec.DecodeError as exc:
            raise BadMessage(f"{self.VENUE}: invalid JSON: {exc}") from None
        if msg.topic is not None:  # a topic we could not peek at (unusual spacing): route it properly
            compact = msgspec.json.encode(msgspec.json.decode(payload))
            if _TOPIC_KEY_B not in compact:
                raise BadMessage(f"{self.VENUE}: malformed topic {msg.topic!r}")
            return self.on_ws(compact, recv_ts_ns, url)
        if msg.op in _CONTROL_OPS:
            if msg.success is False:
                raise BadMessage(f"{self.VENUE}: {msg.op} rejected by the venue: {msg.ret_msg!r}")
            return Output()
        raise BadMessage(f"{self.VENUE}: message has neither a topic nor a known op")

    def _on_trades(self, payload: bytes | str, recv_ts_ns: int | None, url: str | None) -> Output:
        msg = _trades.decode(payload)
        symbol = msg.topic[12:]  # "publicTrade."
        instrument = self._canonical.get(symbol) or self._instrument(symbol)
        venue = self.VENUE
        recv = recv_ts_ns if recv_ts_ns is not None else msg.ts * MS
        events = []
        append = events.append
        for t in msg.data:
            if t.s != symbol:
                raise BadMessage(f"{venue}: trade of {t.s!r} on topic {msg.topic!r}")
            price = t.p
            qty = t.v
            append(
                Trade(
                    venue,
                    symbol,
                    instrument,
                    t.T * MS,
                    recv,
                    price,
                    qty,
                    round(price * qty, NOTIONAL_DECIMALS),
                    "buy" if t.S == "Buy" else "sell",
                    t.i,
                )
            )
        return Output(events)

    def _on_orderbook(self, payload: bytes | str, recv_ts_ns: int | None, url: str | None) -> Output:
        msg = _orderbook.decode(payload)
        topic = msg.topic
        data = msg.data
        state = self.books.get(topic)
        if state is None:
            channel, _, symbol = topic.rpartition(".")
            if channel not in self.CHANNELS:
                raise BadMessage(f"{self.VENUE}: unknown orderbook topic {topic!r}")
            state = self.books[topic] = _Book(symbol, url or self.ws_base_url)
        elif url is not None:
            state.conn = url
        symbol = state.symbol
        if data.s != symbol:
            raise BadMessage(f"{self.VENUE}: book of {data.s!r} on topic {topic!r}")
        u = data.u
        ts = msg.ts * MS
        book = state.book
        if msg.type == "delta" and u != 1:  # u == 1: the venue's service restarted; that overwrites the book
            if not book.verified:
                if book.last_seq == -1 and topic not in self.pending_resubscribe:
                    self.pending_resubscribe[topic] = state.conn  # deltas but never a snapshot: ask for one
                return Output()
            last = book.last_seq
            recv = recv_ts_ns if recv_ts_ns is not None else ts
            if u != last + 1:
                book.invalidate()
                self.pending_resubscribe[topic] = state.conn
                reason = f"{topic}: delta u={u} does not follow u={last}"
                return Output([BookGap(self.VENUE, symbol, self._instrument(symbol), ts, recv, reason, last, u)])
            # L2Book.apply, inlined: this loop is the hot path of book maintenance
            side = book.bids
            for price, qty in data.b:
                if qty:
                    side[price] = qty
                else:
                    side.pop(price, None)
            side = book.asks
            for price, qty in data.a:
                if qty:
                    side[price] = qty
                else:
                    side.pop(price, None)
            book.last_seq = u
            instrument = self._canonical.get(symbol) or self._instrument(symbol)
            return Output([BookUpdate(self.VENUE, symbol, instrument, ts, recv, False, data.b, data.a, u, u, last)])
        _check_not_crossed(topic, data)  # before touching anything: a bad snapshot leaves the book as it was
        fresh = L2Book()
        fresh.snapshot(data.b, data.a, u)
        # level-1 books are re-pushed every 3 s unchanged, with the same u: nothing to report
        repeat = book.verified and u == book.last_seq and fresh.bids == book.bids and fresh.asks == book.asks
        state.book = fresh
        self.pending_resubscribe.pop(topic, None)  # the snapshot is what the resubscription was for
        if repeat:
            return Output()
        bids = data.b if len(fresh.bids) == len(data.b) else list(fresh.bids.items())
        asks = data.a if len(fresh.asks) == len(data.a) else list(fresh.asks.items())
        recv = recv_ts_ns if recv_ts_ns is not None else ts
        instrument = self._instrument(symbol)
        return Output([BookUpdate(self.VENUE, symbol, instrument, ts, recv, True, bids, asks, u, u, -1)])

    @abstractmethod
    def _on_ticker(self, payload: bytes | str, recv_ts_ns: int | None, url: str | None) -> Output:
        """A tickers message: linear and spot tickers differ in shape."""

    def on_disconnect(self, url: str, recv_ts_ns: int) -> Output:
        out = Output()
        for topic, state in self.books.items():
            if state.conn != url and url is not None:
                continue
            book = state.book
            self.pending_resubscribe.pop(topic, None)  # reconnecting subscribes again anyway
            if not book.verified:
                continue
            last = book.last_seq
            book.invalidate()  # keeps last_seq: only a snapshot re-verifies the book
            reason = f"{topic}: connection {url} closed"
            instrument = self._instrument(state.symbol)
            out.events.append(BookGap(self.VENUE, state.symbol, instrument, recv_ts_ns, recv_ts_ns, reason, last, -1))
        return out


class BybitLinearSession(BybitSession):
    """USDT and USDC perpetuals and dated futures (sizes in base coin)."""

    VENUE = VENUE
    WS_BASE_URL = WS_BASE_URL
    CATEGORY = "linear"
    CHANNELS = ("publicTrade", "orderbook.1", "orderbook.50", "orderbook.200", "orderbook.500", "orderbook.1000",
                "allLiquidation", "tickers")  # fmt: skip
    DEFAULT_CHANNELS = ("publicTrade", "orderbook.200", "allLiquidation", "tickers")

    def __init__(
        self,
        symbols: Sequence[str],
        channels: Sequence[str],
        ws_base_url: str | None = None,
        rest_base_url: str | None = None,
    ) -> None:
        super().__init__(symbols, channels, ws_base_url, rest_base_url)
        self._handlers["allLiquidation"] = self._on_all_liquidation
        self._handlers["liquidation"] = self._on_legacy_liquidation  # deprecated; older captures have it

    def _resolve(self, symbol: str) -> str:
        return linear_instrument(symbol)

    def _parse_instrument(self, info: InstrumentInfo) -> Instrument | None:
        if info.contractType == "LinearPerpetual":
            kind, suffix, expiry_ns = "perp", "PERP", None
        elif info.contractType == "LinearFutures":
            try:
                delivery_ms = int(info.deliveryTime)
            except ValueError:
                raise BadMessage(f"{VENUE}: {info.symbol}: deliveryTime {info.deliveryTime!r}") from None
            kind, suffix, expiry_ns = "future", _ms_to_yymmdd(delivery_ms), delivery_ms * MS
        else:
            return None  # inverse or unknown contract types: not base-sized, out of scope
        if info.quoteCoin not in LINEAR_QUOTES:
            return None
        return Instrument(
            venue=VENUE,
            symbol=info.symbol,
            instrument=f"{info.baseCoin}-{info.quoteCoin}-{suffix}",
            base=info.baseCoin,
            quote=info.quoteCoin,
            kind=kind,
            linear=True,
            contract_value=1.0,  # sizes are base coin
            tick_size=_positive(info.priceFilter.tickSize, f"{info.symbol} tickSize"),
            lot_size=_positive(info.lotSizeFilter.qtyStep, f"{info.symbol} qtyStep"),
            expiry_ns=expiry_ns,
        )

    def _on_all_liquidation(self, payload: bytes | str, recv_ts_ns: int | None, url: str | None) -> Output:
        msg = _all_liquidation.decode(payload)
        symbol = msg.topic[15:]  # "allLiquidation."
        instrument = self._instrument(symbol)
        recv = recv_ts_ns if recv_ts_ns is not None else msg.ts * MS
        events = []
        for liq in msg.data:
            if liq.s != symbol:
                raise BadMessage(f"{VENUE}: liquidation of {liq.s!r} on topic {msg.topic!r}")
            events.append(_liquidation(symbol, instrument, liq.T * MS, recv, liq.S, liq.p, liq.v))
        return Output(events)

    def _on_legacy_liquidation(self, payload: bytes | str, recv_ts_ns: int | None, url: str | None) -> Output:
        msg = _legacy_liquidation.decode(payload)
        liq = msg.data
        if msg.topic[12:] != liq.symbol:  # "liquidation."
            raise BadMessage(f"{VENUE}: liquidation of {liq.symbol!r} on topic {msg.topic!r}")
        instrument = self._instrument(liq.symbol)
        recv = recv_ts_ns if recv_ts_ns is not None else msg.ts * MS
        return Output([_liquidation(liq.symbol, instrument, liq.updatedTime * MS, recv, liq.side, liq.price, liq.size)])

    def _on_ticker(self, payload: bytes | str, recv_ts_ns: int | None, url: str | None) -> Output:
        msg = _linear_ticker.decode(payload)
        d = msg.data
        symbol = d.symbol
        if msg.topic[8:] != symbol:  # "tickers."
            raise BadMessage(f"{VENUE}: ticker of {symbol!r} on topic {msg.topic!r}")
        instrument = self._instrument(symbol)
        state = self._tickers.get(symbol)
        if state is None or msg.type == "snapshot":
            state = self._tickers[symbol] = _TickerState()
        changed = False  # deltas that only move bid1/ask1/lastPrice/volume carry nothing derivative
        if d.fundingRate:
            state.funding = _number(d.fundingRate, "fundingRate", symbol, None)
            changed = True
        if d.nextFundingTime:
            next_ms = int(_number(d.nextFundingTime, "nextFundingTime", symbol, 0.0))
            state.next_funding = next_ms * MS if next_ms > 0 else None  # "0" on dated futures
            changed = True
        if d.markPrice:
            state.mark = _number(d.markPrice, "markPrice", symbol, 0.0, strict=True)
            changed = True
        if d.indexPrice:
            state.index = _number(d.indexPrice, "indexPrice", symbol, 0.0, strict=True)
            changed = True
        if d.openInterest:
            state.oi = _number(d.openInterest, "openInterest", symbol, 0.0)
            changed = True
        if d.openInterestValue:
            state.oi_usd = _number(d.openInterestValue, "openInterestValue", symbol, 0.0)
            changed = True
        if d.singleOpenInterest:
            state.oi_single = _number(d.singleOpenInterest, "singleOpenInterest", symbol, 0.0)
            changed = True
        if d.singleOpenInterestValue:
            state.oi_usd_single = _number(d.singleOpenInterestValue, "singleOpenInterestValue", symbol, 0.0)
            changed = True
        if not changed:
            return Output()
        ts = msg.ts * MS
        return Output(
            [
                DerivTicker(
                    VENUE,
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

    VENUE = SPOT_VENUE
    WS_BASE_URL = SPOT_WS_BASE_URL
    CATEGORY = "spot"
    CHANNELS = ("publicTrade", "orderbook.1", "orderbook.50", "orderbook.200", "orderbook.1000", "tickers")
    DEFAULT_CHANNELS = ("publicTrade", "orderbook.200")

    def _resolve(self, symbol: str) -> str:
        return spot_instrument(symbol)

    def _parse_instrument(self, info: InstrumentInfo) -> Instrument | None:
        return Instrument(
            venue=SPOT_VENUE,
            symbol=info.symbol,
            instrument=f"{info.baseCoin}-{info.quoteCoin}-SPOT",
            base=info.baseCoin,
            quote=info.quoteCoin,
            kind="spot",
            tick_size=_positive(info.priceFilter.tickSize, f"{info.symbol} tickSize"),
            lot_size=_positive(info.lotSizeFilter.basePrecision, f"{info.symbol} basePrecision"),
        )

    def _on_ticker(self, payload: bytes | str, recv_ts_ns: int | None, url: str | None) -> Output:
        msg = _spot_ticker.decode(payload)
        if msg.topic[8:] != msg.data.symbol:
            raise BadMessage(f"{SPOT_VENUE}: ticker of {msg.data.symbol!r} on topic {msg.topic!r}")
        return Output()


# ------------------------------------------------------------------------------------------ helpers
def _frames(op: str, topics: Sequence[str]) -> list[str]:
    return [
        msgspec.json.encode({"op": op, "args": list(topics[i : i + MAX_ARGS_PER_FRAME])}).decode()
        for i in range(0, len(topics), MAX_ARGS_PER_FRAME)
    ]


def _liquidation(
    symbol: str, instrument: str, ts_ns: int, recv: int, side: str, price: float, qty: float
) -> Liquidation:
    long = side == "Buy"  # Bybit names the liquidated POSITION's side
    return Liquidation(
        VENUE,
        symbol,
        instrument,
        ts_ns,
        recv,
        "long" if long else "short",
        "sell" if long else "buy",
        price,
        qty,
        round(price * qty, NOTIONAL_DECIMALS),
    )


def _check_not_crossed(topic: str, data: OrderbookData) -> None:
    best_bid = max((p for p, q in data.b if q > 0), default=None)
    best_ask = min((p for p, q in data.a if q > 0), default=None)
    if best_bid is not None and best_ask is not None and best_bid >= best_ask:
        raise BadMessage(f"{topic}: crossed snapshot u={data.u}: best bid {best_bid} >= best ask {best_ask}")


def _number(text: str, field: str, symbol: str, minimum: float | None, strict: bool = False) -> float:
    """A ticker field: finite, and >= minimum (> minimum when strict); minimum None allows any sign."""
    try:
        value = float(text)
    except ValueError:
        raise BadMessage(f"{VENUE}: tickers.{symbol} {field}={text!r} is not a number") from None
    if not math.isfinite(value) or (minimum is not None and (value <= minimum if strict else value < minimum)):
        raise BadMessage(f"{VENUE}: tickers.{symbol} {field}={text!r} is out of range")
    return value
