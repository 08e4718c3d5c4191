"""Hyperliquid perpetuals: endpoints, subscriptions, messages -> events (book rule: book.py).

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
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import msgspec

from tapeline.domain.errors import BadMessage
from tapeline.domain.events import BookUpdate, DerivTicker, Event, Trade
from tapeline.venues.base import Output, RestRequest, VenueSession, WsEndpoint
from tapeline.venues.common import MS, decode, notional
from tapeline.venues.hyperliquid.book import HyperliquidBook
from tapeline.venues.hyperliquid.instruments import VENUE, instrument_id, parse_meta
from tapeline.venues.hyperliquid.wire import (
    InfoRequest,
    WsActiveAssetCtx,
    WsBook,
    WsTrade,
    book_data_decoder,
    book_decoder,
    ctx_decoder,
    envelope_decoder,
    trades_decoder,
)

WS_BASE_URL = "wss://api.hyperliquid.xyz/ws"
REST_BASE_URL = "https://api.hyperliquid.xyz"
INFO_PATH = "/info"
MAX_SUBSCRIPTIONS_PER_CONNECTION = 100  # the venue allows 1000 per IP over at most 10 connections
MAX_SUBSCRIPTIONS_PER_IP = 1000
KEEPALIVE_S = 50.0  # the venue closes a connection silent for 60 s
KEEPALIVE_FRAME = '{"method":"ping"}'
HOUR_NS = 3_600_000_000_000
SIDES = {"B": "buy", "A": "sell"}  # the aggressor: B = the taker bought, A = the taker sold
CONTROL_CHANNELS = frozenset({"subscriptionResponse", "pong"})
_encode = msgspec.json.Encoder().encode

Handler = Callable[[bytes | str, int, str | None], Output]


def subscribe_frame(channel: str, coin: str) -> str:
    return _encode({"method": "subscribe", "subscription": {"type": channel, "coin": coin}}).decode()


class HyperliquidSession(VenueSession[HyperliquidBook]):
    """Hyperliquid perps: trades, l2Book (full snapshots) and activeAssetCtx, on one websocket URL."""

    VENUE = VENUE
    WS_BASE_URL = WS_BASE_URL
    REST_BASE_URL = REST_BASE_URL
    CHANNELS = ("trades", "l2Book", "activeAssetCtx")

    def _derive_instrument(self, symbol: str) -> str:
        return instrument_id(symbol)

    def _setup(self) -> None:
        for coin in self.symbols:
            try:
                instrument_id(coin)
            except BadMessage as exc:
                raise ValueError(exc.reason) from None
        self.info_url = self.rest_base_url + INFO_PATH
        self._trade_time: dict[str, int] = {}  # per coin: latest trade time emitted (ms)
        self._trade_tids: dict[str, set[int]] = {}  # per coin: tids emitted at that time
        self.duplicate_trades = 0  # replayed trades dropped (the subscription's recent-trades replay)
        # Hot channels are recognised by the first 20 characters, as the venue writes them.
        self._fast: dict[bytes | str, Handler] = {}
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

    def _on_rest(self, request: RestRequest, body: bytes | str, recv_ts_ns: int) -> Output:
        key = request.key
        if key == "info":  # a recorded call whose body was not kept: tell it by its shape
            universe = "universe" in body if isinstance(body, str) else b"universe" in body
            key = "instruments" if universe else "l2Book:"
        if key == "instruments":
            for instrument in parse_meta(body):
                self._learn(instrument)
            return Output(ignored="instrument metadata")
        if key.startswith("l2Book:"):
            wire = decode(book_data_decoder, body, VENUE, "l2Book answer")
            coin = key.partition(":")[2]
            if coin and wire.coin != coin:
                raise BadMessage(f"hyperliquid: asked for the {coin} book, got {wire.coin}")
            return self._book(wire, recv_ts_ns, None, rest=True)
        raise BadMessage(f"hyperliquid: no handler for REST request {request.key!r}")

    # -- messages ---------------------------------------------------------------------------------

    def _on_ws(self, payload: bytes | str, recv_ts_ns: int, url: str | None = None) -> Output:
        fast = self._fast.get(payload[:20])
        if fast is not None:
            return fast(payload, recv_ts_ns, url)
        return self._slow(payload, recv_ts_ns, url)

    def _slow(self, payload: bytes | str, recv_ts_ns: int, url: str | None) -> Output:
        try:
            env = envelope_decoder.decode(payload)
        except msgspec.ValidationError as exc:
            try:  # a REST l2Book answer recorded without its request (conn null) is replayed as a message
                wire = book_data_decoder.decode(payload)
            except msgspec.DecodeError:
                raise BadMessage(f"{VENUE}: malformed websocket message: {exc}") from None
            return self._book(wire, recv_ts_ns, None, rest=True)
        except msgspec.DecodeError as exc:
            raise BadMessage(f"{VENUE}: invalid JSON: {exc}") from None
        channel = env.channel
        if channel in CONTROL_CHANNELS:
            return Output(ignored="control frame")
        # Not written the venue's usual way (e.g. spaced, or keys reordered): decode the whole message
        # again, so that errors name the same paths as on the fast path.
        if channel == "trades":
            return self._fast_trades(payload, recv_ts_ns, url)
        if channel == "l2Book":
            return self._fast_book(payload, recv_ts_ns, url)
        if channel == "activeAssetCtx":
            return self._ctx(decode(ctx_decoder, payload, VENUE, "activeAssetCtx message").data, recv_ts_ns)
        if channel == "error":
            raise BadMessage(f"hyperliquid: venue error: {bytes(env.data).decode(errors='replace')}")
        raise BadMessage(f"hyperliquid: unknown channel {channel!r}; known: {list(self.CHANNELS)}")

    def _fast_trades(self, payload: bytes | str, recv_ts_ns: int, url: str | None) -> Output:
        return self._trades(decode(trades_decoder, payload, VENUE, "trades message").data, recv_ts_ns)

    def _fast_book(self, payload: bytes | str, recv_ts_ns: int, url: str | None) -> Output:
        return self._book(decode(book_decoder, payload, VENUE, "l2Book message").data, recv_ts_ns, url)

    def _fast_ctx(self, payload: bytes | str, recv_ts_ns: int, url: str | None) -> Output:
        try:
            msg = ctx_decoder.decode(payload)
        except (msgspec.ValidationError, msgspec.DecodeError):
            msg = None
        if msg is None or msg.channel != "activeAssetCtx":
            return self._slow(payload, recv_ts_ns, url)  # another channel, or bad: the slow path says which
        return self._ctx(msg.data, recv_ts_ns)

    def _trades(self, wires: list[WsTrade], recv_ts_ns: int) -> Output:
        events: list[Event] = []
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
                    notional_quote=notional(price, qty),
                    side=SIDES[w.side],
                    trade_id=str(tid),
                )
            )
        return Output.of(
            events, "trades replayed after subscribing, emitted already" if wires else "no rows in the message"
        )

    def _book(self, wire: WsBook, recv_ts_ns: int, url: str | None, rest: bool = False) -> Output:
        book = self.books.get(wire.coin)
        if book is None:
            book = self.books[wire.coin] = HyperliquidBook(VENUE, wire.coin, instrument_id(wire.coin))
        event = book.on_push(wire, recv_ts_ns, rest)
        if event is None:
            return Output(ignored="REST book older than the pushed one")
        if not rest and type(event) is BookUpdate:
            book.url = url  # the connection that fed it last
        return Output([event])

    def _ctx(self, wire: WsActiveAssetCtx, recv_ts_ns: int) -> Output:
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
            open_interest_usd=notional(oi, mark) if oi is not None and mark is not None else None,
        )
        return Output([ticker])
