"""Hyperliquid perpetuals: endpoints, wire structs mirroring the venue's JSON, parse -> domain events.

One websocket URL for everything; each coin/channel pair is its own subscription frame
(`{"method":"subscribe","subscription":{"type":"trades","coin":"BTC"}}`), and a push looks like
`{"channel":"trades"|"l2Book"|"activeAssetCtx","data":...}`. Prices and sizes are decimal strings in
coin units; times are ms.

Choices this module makes (the venue leaves them open):
- l2Book: every push is a full snapshot with no sequence number, so integrity is "replace the whole
  book and require `time` to be non-decreasing" (equal times happen: the capture holds the same block
  twice). A push whose time goes backwards is a break: one BookGap for that coin, the push is dropped,
  and the next push resyncs. BookUpdate.first_seq = last_seq = the push's `time` in ms (the only
  ordering key the venue gives; it is a block time, not a message counter, so -1 in prev_seq).
  A lost push cannot be detected and costs nothing once the next one replaces the book.
- trades: right after subscribing the venue replays recent trades (the capture's first message holds
  30 trades up to 49 s old). They are real trades, so they are kept, but a per-coin high-water mark
  (trade time, tids at that ms) drops the ones already emitted: a reconnect's replay adds only what
  was missed instead of counting volume twice. tardis-node instead drops each coin's first message.
- activeAssetCtx has no time field: ts_ns is the receive time; funding is paid every hour, and the
  venue does not send the next funding time, so it is the next top of the hour after receipt.
  `funding` is the venue's hourly rate, stored as sent. oraclePx is the index price.
- Instrument.tick_size is the finest price step, 10**-(6 - szDecimals); the venue also limits prices
  to 5 significant figures (integers always allowed), so the real step grows with the price:
  tick_size_at(price, sz_decimals) gives it (BTC at 105055: 1.0, not the stored 0.1).
- REST is POST {REST_BASE_URL}/info with a JSON body. {"type":"meta"} fills self.instruments (no
  event: Instrument has no topic). An l2Book answer has the push's body and is taken as a snapshot,
  unless it is older than the pushed book (stale, ignored: not a broken feed). Recorded without its
  request (conn null), such an answer reaches on_ws and is recognized by its shape.
- Every connection has the same URL, so on_disconnect(url) gaps every book fed over it.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from functools import cache
from typing import Annotated, Literal
from urllib.parse import parse_qs, urlsplit

import msgspec

from tapeline.domain.book import L2Book
from tapeline.domain.errors import BadMessage
from tapeline.domain.events import BookGap, BookUpdate, DerivTicker, Instrument, Trade
from tapeline.venues.base import Output, RestRequest, VenueSession, WsEndpoint

VENUE = "hyperliquid"
WS_BASE_URL = "wss://api.hyperliquid.xyz/ws"
REST_BASE_URL = "https://api.hyperliquid.xyz"
INFO_PATH = "/info"
QUOTE = "USDC"
MAX_SUBSCRIPTIONS_PER_CONNECTION = 100  # the venue allows 1000 per IP over at most 10 connections
MAX_SUBSCRIPTIONS_PER_IP = 1000
KEEPALIVE_S = 50.0  # the venue closes a connection silent for 60 s
KEEPALIVE_FRAME = '{"method":"ping"}'
PERP_MAX_DECIMALS = 6  # price decimals allowed: 6 - szDecimals
PRICE_SIG_FIGS = 5
MS = 1_000_000
HOUR_NS = 3_600_000_000_000
NOTIONAL_DECIMALS = 10  # price x qty picks up binary noise; no venue quotes finer
SIDES = {"B": "buy", "A": "sell"}  # the aggressor: B = the taker bought, A = the taker sold

# Validated while decoding (in C): NaN, inf, zero and negative values fail here with the field's path.
Positive = Annotated[float, msgspec.Meta(gt=0, le=sys.float_info.max)]


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


class TradesMsg(msgspec.Struct, frozen=True, gc=False):
    channel: str
    data: list[WsTrade]


class BookMsg(msgspec.Struct, frozen=True, gc=False):
    channel: str
    data: WsBook


class CtxMsg(msgspec.Struct, frozen=True, gc=False):
    channel: str
    data: WsActiveAssetCtx


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
_trades_msg = msgspec.json.Decoder(TradesMsg, strict=False)
_book_msg = msgspec.json.Decoder(BookMsg, strict=False)
_ctx_msg = msgspec.json.Decoder(CtxMsg, strict=False)
_envelope = msgspec.json.Decoder(Envelope)
_book_data = msgspec.json.Decoder(WsBook, strict=False)
_meta = msgspec.json.Decoder(Meta)
_encode = msgspec.json.Encoder().encode

CONTROL_CHANNELS = frozenset({"subscriptionResponse", "pong"})


@cache
def instrument_id(coin: str) -> str:
    """BTC -> BTC-USDC-PERP. Spot pairs ("@107", "PURR/USDC") are refused: this module is perps only."""
    if not coin or coin[0] == "@" or "/" in coin:
        raise BadMessage(f"hyperliquid: {coin!r} is not a perp coin (spot pairs are out of scope)")
    return f"{coin}-{QUOTE}-PERP"  # cached: the check runs once per coin


def _power_of_ten(exponent: int) -> float:
    return float(f"1e{exponent}")  # correctly rounded, unlike 10.0 ** exponent


def tick_size_at(price: float, sz_decimals: int) -> float:
    """The venue's price step at `price`: 5 significant figures, at most 6 - szDecimals decimals,
    and integer prices always allowed."""
    if not (math.isfinite(price) and price > 0):
        raise ValueError(f"price must be positive and finite, got {price!r}")
    exponent = math.floor(math.log10(price))
    if _power_of_ten(exponent) > price:  # log10 rounding just under a power of ten
        exponent -= 1
    sig_step = _power_of_ten(min(exponent - (PRICE_SIG_FIGS - 1), 0))
    return max(sig_step, _power_of_ten(-max(PERP_MAX_DECIMALS - sz_decimals, 0)))


def parse_meta(body: bytes | str) -> list[Instrument]:
    """POST /info {"type":"meta"} -> instruments (perps, USDC-margined)."""
    try:
        meta = _meta.decode(body)
    except msgspec.DecodeError as exc:
        raise BadMessage(f"hyperliquid: malformed meta answer: {exc}") from None
    out = []
    for asset in meta.universe:
        if asset.szDecimals < 0:
            raise BadMessage(f"hyperliquid: meta: {asset.name} has szDecimals {asset.szDecimals}")
        out.append(
            Instrument(
                venue=VENUE,
                symbol=asset.name,
                instrument=instrument_id(asset.name),
                base=asset.name,  # kPEPE etc. are 1000-unit coins: the venue's unit, kept as named
                quote=QUOTE,
                kind="perp",
                tick_size=_power_of_ten(-max(PERP_MAX_DECIMALS - asset.szDecimals, 0)),
                lot_size=_power_of_ten(-asset.szDecimals),
            )
        )
    return out


def subscribe_frame(channel: str, coin: str) -> str:
    return _encode({"method": "subscribe", "subscription": {"type": channel, "coin": coin}}).decode()


def _malformed(channel: str, exc: Exception) -> BadMessage:
    if isinstance(exc, msgspec.ValidationError):
        return BadMessage(f"hyperliquid: malformed {channel} message: {exc}")
    return BadMessage(f"hyperliquid: invalid JSON: {exc}")


class HyperliquidSession(VenueSession):
    """Hyperliquid perps: trades, l2Book (full snapshots) and activeAssetCtx, on one websocket URL."""

    VENUE = VENUE
    WS_BASE_URL = WS_BASE_URL
    REST_BASE_URL = REST_BASE_URL
    CHANNELS = ("trades", "l2Book", "activeAssetCtx")

    def __init__(
        self,
        symbols: Sequence[str],
        channels: Sequence[str],
        ws_base_url: str | None = None,
        rest_base_url: str | None = None,
    ) -> None:
        super().__init__(symbols, channels, ws_base_url, rest_base_url)
        for coin in self.symbols:
            try:
                instrument_id(coin)
            except BadMessage as exc:
                raise ValueError(exc.reason) from None
        self.info_url = self.rest_base_url + INFO_PATH
        self.books: dict[str, L2Book] = {}  # by coin
        self._book_url: dict[str, str | None] = {}  # the connection that fed each book last
        self._trade_time: dict[str, int] = {}  # per coin: latest trade time emitted (ms)
        self._trade_tids: dict[str, set[int]] = {}  # per coin: tids emitted at that time
        self.duplicate_trades = 0  # replayed trades dropped (the subscription's recent-trades replay)
        # Hot channels are recognised by the first 20 characters, as the venue writes them.
        self._fast = {}
        for prefix, handler in (
            ('{"channel":"trades",', self._fast_trades),
            ('{"channel":"l2Book",', self._fast_book),
            ('{"channel":"activeAs', self._fast_ctx),  # also starts "activeAssetData": checked below
        ):
            self._fast[prefix] = self._fast[prefix.encode()] = handler

    # -- connections ------------------------------------------------------------------------------

    def endpoints(self) -> list[WsEndpoint]:
        """One connection per MAX_SUBSCRIPTIONS_PER_CONNECTION subscriptions, a coin's channels together.

        Every connection has the same URL, so on_disconnect(url) cannot tell them apart: it reports a
        gap for every book fed over that URL (each resyncs on its next push, <= ~0.5 s later).
        """
        frames = [subscribe_frame(channel, coin) for coin in self.symbols for channel in self.channels]
        if len(frames) > MAX_SUBSCRIPTIONS_PER_IP:
            raise ValueError(
                f"{VENUE}: {len(frames)} subscriptions exceed the venue's {MAX_SUBSCRIPTIONS_PER_IP} per IP"
            )
        return [
            WsEndpoint(
                url=self.ws_base_url,
                subscribe=tuple(frames[i : i + MAX_SUBSCRIPTIONS_PER_CONNECTION]),
                keepalive_s=KEEPALIVE_S,
                keepalive_frame=KEEPALIVE_FRAME,
            )
            for i in range(0, len(frames), MAX_SUBSCRIPTIONS_PER_CONNECTION)
        ]

    def startup(self) -> Output:
        return Output(requests=[self.meta_request()])

    def meta_request(self) -> RestRequest:
        return RestRequest(key="instruments", url=self.info_url, method="POST", body=b'{"type":"meta"}')

    def l2_book_request(self, coin: str) -> RestRequest:
        body = _encode({"type": "l2Book", "coin": coin})
        return RestRequest(key=f"l2Book:{coin}", url=self.info_url, method="POST", body=body)

    def rest_request_for(self, url: str) -> RestRequest | None:
        """A recorded /info call. POST bodies decide what it was, so `url` may carry the body:
        "POST /info {"type":"l2Book","coin":"DYDX"}", ".../info?type=meta", or a bare ".../info"
        (then on_rest tells the answer by its shape)."""
        at = url.find(INFO_PATH)
        while at >= 0 and url[at + len(INFO_PATH) : at + len(INFO_PATH) + 1] not in ("", "?", " "):
            at = url.find(INFO_PATH, at + 1)  # e.g. ".../cassettes/info_test/..." in a source note
        if at < 0:
            return None
        rest = url[at + len(INFO_PATH) :]
        brace = rest.find("{")
        if brace >= 0:
            try:
                raw, _ = json.JSONDecoder().raw_decode(rest, brace)
                info = msgspec.convert(raw, InfoRequest)
            except (ValueError, msgspec.ValidationError):
                return None
        elif rest.startswith("?"):
            query = {k: v[0] for k, v in parse_qs(urlsplit(rest).query).items()}
            if "type" not in query:
                return None
            info = InfoRequest(type=query["type"], coin=query.get("coin"))
        else:
            return RestRequest(key="info", url=self.info_url, method="POST")
        if info.type == "meta":
            return self.meta_request()
        if info.type == "l2Book" and info.coin:
            return self.l2_book_request(info.coin)
        return None

    def _on_rest(self, request: RestRequest, body: bytes | str, recv_ts_ns: int | None) -> Output:
        key = request.key
        if key == "info":  # a recorded call whose body was not kept: tell it by its shape
            key = "instruments" if ("universe" if isinstance(body, str) else b"universe") in body else "l2Book:"
        if key == "instruments":
            instruments = parse_meta(body)
            self.instruments.update((i.symbol, i) for i in instruments)
            return Output()  # metadata, not an event stream
        if key.startswith("l2Book:"):
            try:
                wire = _book_data.decode(body)
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                raise _malformed("l2Book (REST)", exc) from None
            coin = key.partition(":")[2]
            if coin and wire.coin != coin:
                raise BadMessage(f"hyperliquid: asked for the {coin} book, got {wire.coin}")
            return self._book(wire, recv_ts_ns, None, rest=True)
        raise BadMessage(f"hyperliquid: no handler for REST request {request.key!r}")

    def on_disconnect(self, url: str, recv_ts_ns: int) -> Output:
        out = Output()
        for coin, book in self.books.items():
            fed_by = self._book_url.get(coin)
            if book.verified and (fed_by is None or fed_by == url):
                last = book.last_seq
                book.invalidate()
                out.events.append(
                    BookGap(
                        venue=VENUE,
                        symbol=coin,
                        instrument=instrument_id(coin),
                        ts_ns=recv_ts_ns,
                        recv_ts_ns=recv_ts_ns,
                        reason=f"connection closed: {url}",
                        last_good_seq=last,
                    )
                )
        return out

    # -- messages ---------------------------------------------------------------------------------

    def _on_ws(self, payload: bytes | str, recv_ts_ns: int | None, url: str | None = None) -> Output:
        fast = self._fast.get(payload[:20])
        if fast is not None:
            return fast(payload, recv_ts_ns, url)
        return self._slow(payload, recv_ts_ns, url)

    def _slow(self, payload: bytes | str, recv_ts_ns: int | None, url: str | None) -> Output:
        try:
            env = _envelope.decode(payload)
        except msgspec.ValidationError as exc:
            try:  # a REST l2Book answer recorded without its request (conn null) is replayed as a message
                wire = _book_data.decode(payload)
            except msgspec.DecodeError:
                raise _malformed("websocket", exc) from None
            return self._book(wire, recv_ts_ns, None, rest=True)
        except msgspec.DecodeError as exc:
            raise _malformed("websocket", exc) from None
        channel = env.channel
        if channel in CONTROL_CHANNELS:
            return Output()
        # Not written the venue's usual way (e.g. spaced, or keys reordered): decode the whole message
        # again, so that errors name the same paths as on the fast path.
        try:
            if channel == "trades":
                return self._trades(_trades_msg.decode(payload).data, recv_ts_ns)
            if channel == "l2Book":
                return self._book(_book_msg.decode(payload).data, recv_ts_ns, url)
            if channel == "activeAssetCtx":
                return self._ctx(_ctx_msg.decode(payload).data, recv_ts_ns)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise _malformed(channel, exc) from None
        if channel == "error":
            raise BadMessage(f"hyperliquid: venue error: {bytes(env.data).decode(errors='replace')}")
        raise BadMessage(f"hyperliquid: unknown channel {channel!r}; known: {list(self.CHANNELS)}")

    def _fast_trades(self, payload: bytes | str, recv_ts_ns: int | None, url: str | None) -> Output:
        try:
            msg = _trades_msg.decode(payload)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise _malformed("trades", exc) from None
        return self._trades(msg.data, recv_ts_ns)

    def _fast_book(self, payload: bytes | str, recv_ts_ns: int | None, url: str | None) -> Output:
        try:
            msg = _book_msg.decode(payload)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise _malformed("l2Book", exc) from None
        return self._book(msg.data, recv_ts_ns, url)

    def _fast_ctx(self, payload: bytes | str, recv_ts_ns: int | None, url: str | None) -> Output:
        try:
            msg = _ctx_msg.decode(payload)
        except (msgspec.ValidationError, msgspec.DecodeError):
            msg = None
        if msg is None or msg.channel != "activeAssetCtx":
            return self._slow(payload, recv_ts_ns, url)  # another channel, or bad: the slow path says which
        return self._ctx(msg.data, recv_ts_ns)

    def _trades(self, wires: list[WsTrade], recv_ts_ns: int | None) -> Output:
        events = []
        last_time, last_tids = self._trade_time, self._trade_tids
        for w in wires:
            coin, t, tid = w.coin, w.time, w.tid
            seen = last_time.get(coin, -1)
            if t > seen:
                last_time[coin] = t
                last_tids[coin] = {tid}
            elif t == seen and tid not in last_tids[coin]:
                last_tids[coin].add(tid)
            else:  # replayed after (re)subscribing, already emitted
                self.duplicate_trades += 1
                continue
            price, qty = w.px, w.sz
            ts_ns = t * MS
            events.append(
                Trade(
                    venue=VENUE,
                    symbol=coin,
                    instrument=instrument_id(coin),
                    ts_ns=ts_ns,
                    recv_ts_ns=recv_ts_ns or ts_ns,  # captures without a receive time
                    price=price,
                    qty_base=qty,
                    notional_quote=round(price * qty, NOTIONAL_DECIMALS),
                    side=SIDES[w.side],
                    trade_id=str(tid),
                )
            )
        return Output(events)

    def _book(self, wire: WsBook, recv_ts_ns: int | None, url: str | None, rest: bool = False) -> Output:
        coin, t = wire.coin, wire.time
        bid_levels = {lv.px: lv.sz for lv in wire.levels[0]}
        ask_levels = {lv.px: lv.sz for lv in wire.levels[1]}
        if bid_levels and ask_levels:
            best_bid, best_ask = max(bid_levels), min(ask_levels)
            if best_bid >= best_ask:  # rejected before touching the book: the last good one stays current
                raise BadMessage(f"hyperliquid: crossed {coin} snapshot at {t}: best bid {best_bid} >= ask {best_ask}")
        book = self.books.get(coin)
        if book is None:
            book = self.books[coin] = L2Book()
        ts_ns = t * MS
        recv = recv_ts_ns or ts_ns  # captures without a receive time give None or 0
        if book.verified and t < book.last_seq:
            if rest:  # a REST answer older than the pushed book: stale, not a broken feed
                return Output()
            last = book.last_seq
            book.invalidate()
            gap = BookGap(
                venue=VENUE,
                symbol=coin,
                instrument=instrument_id(coin),
                ts_ns=ts_ns,
                recv_ts_ns=recv,
                reason=f"l2Book time went backwards: {t} after {last}",
                last_good_seq=last,
                first_bad_seq=t,
            )
            return Output([gap])
        # L2Book.snapshot's work, done once: sizes were checked positive while decoding, the crossing above,
        # and the same dicts serve the book and (as venue-ordered pairs) the event.
        book.bids, book.asks, book.last_seq, book.verified = bid_levels, ask_levels, t, True
        if not rest:
            self._book_url[coin] = url
        update = BookUpdate(
            venue=VENUE,
            symbol=coin,
            instrument=instrument_id(coin),
            ts_ns=ts_ns,
            recv_ts_ns=recv,
            is_snapshot=True,
            bids=list(bid_levels.items()),
            asks=list(ask_levels.items()),
            first_seq=t,
            last_seq=t,
        )
        return Output([update])

    def _ctx(self, wire: WsActiveAssetCtx, recv_ts_ns: int | None) -> Output:
        if not recv_ts_ns:
            raise BadMessage("hyperliquid: activeAssetCtx carries no time, and no receive time was given")
        ctx = wire.ctx
        for name in ("funding", "openInterest", "markPx", "oraclePx"):
            value = getattr(ctx, name)
            if value is not None and not math.isfinite(value):
                raise BadMessage(f"hyperliquid: activeAssetCtx {wire.coin}: {name} is {value}")
        mark, oracle, oi = ctx.markPx, ctx.oraclePx, ctx.openInterest
        if (mark is not None and mark <= 0) or (oracle is not None and oracle <= 0) or (oi is not None and oi < 0):
            raise BadMessage(
                f"hyperliquid: activeAssetCtx {wire.coin}: markPx {mark}, oraclePx {oracle} must be positive "
                f"and openInterest {oi} non-negative"
            )
        ticker = DerivTicker(
            venue=VENUE,
            symbol=wire.coin,
            instrument=instrument_id(wire.coin),
            ts_ns=recv_ts_ns,
            recv_ts_ns=recv_ts_ns,
            funding_rate=ctx.funding,
            next_funding_ts_ns=(recv_ts_ns // HOUR_NS + 1) * HOUR_NS,  # funding is paid at every top of the hour
            mark_price=mark,
            index_price=oracle,
            open_interest_base=oi,
            open_interest_usd=round(oi * mark, NOTIONAL_DECIMALS) if oi is not None and mark is not None else None,
        )
        return Output([ticker])
