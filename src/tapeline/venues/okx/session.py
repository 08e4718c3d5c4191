"""OKX v5 public streams: trades, order books (checksum + seqId), liquidations, funding/mark/open interest.

Sans-I/O: `OkxSession` turns websocket payloads and REST answers into events (see venues/base.py); units
and contract values are instruments.py's, the book rule book.py's.

Decisions (documented here because callers depend on them):
- Contract value unknown (the instruments answer for that instType has not arrived yet): trades and
  liquidations are HELD (bounded, `MAX_PENDING`) and emitted by the `on_rest` call that brings the
  instrument; books are maintained and verified as usual but emit nothing until then, and that `on_rest`
  emits one `is_snapshot=True` BookUpdate of the current book. Contracts never reach a base-unit field.
  A derivative absent from an instruments answer that did arrive, or a full buffer, raises BadMessage
  ("... contract value unknown ...").
- DerivTicker: funding-rate, mark-price and open-interest are MERGED per instrument; every emitted ticker
  carries everything known so far (None only for what never arrived); `ts_ns` is the time of the message
  that triggered it. `next_funding_ts_ns` is `fundingTime`: the settlement at which `fundingRate` is
  charged (`nextFundingTime` is the one after). Open interest in base is `oiCcy`; USD is `oiUsd`.
- A book break emits ONE BookGap for that instrument, invalidates that book, and queues an
  unsubscribe+subscribe of that one channel arg: the connector must send `session.resubscribe_frames()`
  after each on_ws/on_disconnect. Updates for an invalid book are dropped until the venue's new snapshot.
- Only one book channel per session (books / books-l2-tbt / books50-l2-tbt): BookUpdate has no channel
  field, so two depths of one instrument would interleave. books-l2-tbt / books50-l2-tbt need a logged-in
  VIP connection on today's OKX; this session does not log in (public `books` works without).
- liquidation-orders is a per-instType firehose: only the session's symbols are emitted (all of them when
  the session has no symbols, e.g. a replay). OPTION/MARGIN instruments are out of scope: BadMessage.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import msgspec

from tapeline.domain.errors import BadMessage
from tapeline.domain.events import BookGap, BookUpdate, DerivTicker, Event, Liquidation, Trade
from tapeline.venues.base import Output, RestRequest, VenueSession, WsEndpoint
from tapeline.venues.common import INF, MS, decode, notional, number, optional_number
from tapeline.venues.okx.book import OkxBook
from tapeline.venues.okx.instruments import INST_TYPES, VENUE, inst_type, okx_instrument, parse_instrument
from tapeline.venues.okx.wire import (
    Arg,
    BookData,
    LiqData,
    LiqDetail,
    TradeData,
    book_decoder,
    instruments_decoder,
    liquidations_decoder,
    probe_decoder,
    ticker_decoder,
    trades_decoder,
)

WS_BASE_URL = "wss://ws.okx.com:8443/ws/v5"
REST_BASE_URL = "https://www.okx.com"
INSTRUMENTS_PATH = "/api/v5/public/instruments"
# /business serves the channels OKX moved there in June 2023 (candles, block trading, algo orders) and
# trades-all (OKX docs; no capture of it here was recorded with its url); the rest stays on /public.
CHANNEL_PATH = {"trades": "public", "trades-all": "business", "books": "public", "books-l2-tbt": "public",
                "books50-l2-tbt": "public", "liquidation-orders": "public", "funding-rate": "public",
                "mark-price": "public", "open-interest": "public"}  # fmt: skip
BOOK_CHANNELS = ("books", "books-l2-tbt", "books50-l2-tbt")
# One connection per ws url: on_disconnect(url) names the connection by its url, so two connections to one
# url could not be told apart. A subscribe request must stay under 64 KB (400 args ~ 20 KB) and OKX counts
# requests (3 per second, 480 per hour per connection), so args are packed into few large frames.
ARGS_PER_FRAME = 400
KEEPALIVE_S = 25.0  # OKX closes a connection after 30 s without traffic; "ping" -> "pong"
MAX_PENDING = 100_000  # trades/liquidations held while a contract value is unknown
_encode = msgspec.json.encode
_ARG_PREFIX = b'{"arg":{"channel":"'
_ARG_PREFIX_LEN = len(_ARG_PREFIX)


@dataclass
class _Ticker:
    """What an instrument's ticker channels said last: every DerivTicker carries all of it."""

    funding: float | None = None
    next_funding: int | None = None
    mark: float | None = None
    oi_base: float | None = None
    oi_usd: float | None = None


class OkxSession(VenueSession[OkxBook]):
    """OKX v5 public market data for SPOT, SWAP and FUTURES instIds (e.g. BTC-USDT, BTC-USDT-SWAP, BTC-USD-220527).

    Public API beyond VenueSession: `resubscribe_frames()` (frames to send after a book break),
    `books` (instId -> OkxBook), counters `checksums_verified`, `seq_checked`, `gaps`, `dropped_unsynced`.
    """

    VENUE = VENUE
    WS_BASE_URL = WS_BASE_URL
    REST_BASE_URL = REST_BASE_URL
    CHANNELS = tuple(CHANNEL_PATH)
    # `books` is public; the tick-by-tick books need a logged-in VIP connection
    DEFAULT_CHANNELS = ("trades", "books", "liquidation-orders", "funding-rate", "mark-price", "open-interest")

    def _symbol(self, symbol: str) -> str:
        return symbol.upper()

    def _derive_instrument(self, symbol: str) -> str:
        return okx_instrument(symbol)

    def _setup(self) -> None:
        book_channels = [c for c in self.channels if c in BOOK_CHANNELS]
        if len(book_channels) > 1:
            raise ValueError(f"okx: subscribe one book channel per session, not {book_channels}")
        unsupported = [s for s in self.symbols if inst_type(s) not in INST_TYPES]
        if unsupported:
            raise ValueError(f"okx: unsupported instIds {unsupported}; SPOT (BTC-USDT), SWAP, FUTURES only")
        self._symbol_set = frozenset(self.symbols)
        self._contracts: dict[str, tuple[str, float, bool]] = {}  # instId -> (canonical, mult, inverse)
        self._answered: set[str] = set()  # instTypes whose instruments answer arrived
        self._pending: dict[str, list[tuple[TradeData | LiqData, int]]] = {}  # instId -> [(wire row, recv_ts_ns)]
        self._pending_count = 0
        self._tickers: dict[str, _Ticker] = {}  # merged funding-rate, mark-price and open-interest per instId
        self._resubscribe: dict[str, dict[str, Arg]] = {}  # ws url -> {instId: arg}
        self.checksums_verified = 0
        self.seq_checked = 0
        self.dropped_unsynced = 0  # book updates that arrived while the book waited for a snapshot
        self._handlers = {
            b"trades": self._on_trades,
            b"trades-all": self._on_trades,
            b"books": self._on_book,
            b"books-l2-tbt": self._on_book,
            b"books50-l2-tbt": self._on_book,
            b"liquidation-orders": self._on_liquidations,
            b"funding-rate": self._on_ticker,
            b"mark-price": self._on_ticker,
            b"open-interest": self._on_ticker,
        }

    # -- connections ---------------------------------------------------------------------------------

    def url_for(self, channel: str) -> str:
        return f"{self.ws_base_url}/{CHANNEL_PATH[channel]}"

    def subscription_args(self) -> dict[str, list[dict[str, str]]]:
        """ws url -> channel args, in subscription order."""
        by_url: dict[str, list[dict[str, str]]] = {}
        for channel in self.channels:
            args = by_url.setdefault(self.url_for(channel), [])
            if channel == "liquidation-orders":
                types = sorted({inst_type(s) for s in self.symbols} - {"SPOT"})
                args.extend({"channel": channel, "instType": t} for t in types)
            else:
                args.extend({"channel": channel, "instId": s} for s in self.symbols)
        return {url: args for url, args in by_url.items() if args}

    def endpoints(self) -> list[WsEndpoint]:
        endpoints = []
        for url, args in self.subscription_args().items():
            frames = tuple(
                _encode({"op": "subscribe", "args": args[i : i + ARGS_PER_FRAME]}).decode()
                for i in range(0, len(args), ARGS_PER_FRAME)
            )
            endpoints.append(WsEndpoint(url, frames, keepalive_s=KEEPALIVE_S, keepalive_frame="ping"))
        return endpoints

    def resubscribe_frames(self, url: str | None = None) -> list[str]:
        """Text frames to send on connection `url` (None: every connection) for books that broke since the last call.

        Each broken book's channel arg is unsubscribed and subscribed again, so OKX sends a fresh snapshot.
        Call after every on_ws(); the frames handed out are consumed.
        """
        frames = []
        for conn in [url] if url is not None else list(self._resubscribe):
            args = [msgspec.structs.asdict(a) for a in self._resubscribe.pop(conn, {}).values()]
            for arg in args:
                if not arg["instType"]:
                    del arg["instType"]
            for i in range(0, len(args), ARGS_PER_FRAME):
                batch = args[i : i + ARGS_PER_FRAME]
                frames.append(_encode({"op": "unsubscribe", "args": batch}).decode())
                frames.append(_encode({"op": "subscribe", "args": batch}).decode())
        return frames

    def on_disconnect(self, url: str, recv_ts_ns: int) -> Output:
        out = super().on_disconnect(url, recv_ts_ns)
        self._resubscribe.pop(url, None)  # the reconnect subscribes everything again
        return out

    @property
    def gaps(self) -> int:
        """Book gaps so far, over all instruments."""
        return sum(book.gaps for book in self.books.values())

    # -- instruments ---------------------------------------------------------------------------------

    def startup(self) -> Output:
        types = [t for t in INST_TYPES if any(inst_type(s) == t for s in self.symbols)]
        return Output(requests=[self._instruments_request(t) for t in types])

    def _instruments_request(self, kind: str) -> RestRequest:
        return RestRequest(f"instruments:{kind}", f"{self.rest_base_url}{INSTRUMENTS_PATH}?instType={kind}")

    def rest_request_for(self, url: str) -> RestRequest | None:
        parts = urlsplit(url)
        if not parts.path.endswith(INSTRUMENTS_PATH):
            return None
        kind = parse_qs(parts.query).get("instType", [""])[0]
        return RestRequest(f"instruments:{kind}", url) if kind in INST_TYPES else None

    def _on_rest(self, request: RestRequest, body: bytes | str, recv_ts_ns: int) -> Output:
        if not request.key.startswith("instruments:"):
            raise BadMessage(f"okx: no handler for REST request {request.key!r}")
        try:
            answer = instruments_decoder.decode(body)
        except msgspec.DecodeError as exc:
            raise BadMessage(f"okx: malformed instruments answer for {request.url}: {exc}") from None
        if answer.code != "0":
            raise BadMessage(f"okx: instruments request {request.url} failed: code {answer.code} {answer.msg}")
        for wire in answer.data:
            parsed = parse_instrument(wire)
            if parsed is None:
                continue
            instrument, mult, inverse = parsed
            self.instruments[wire.instId] = instrument
            self._contracts[wire.instId] = (instrument.instrument, mult, inverse)
        self._answered.add(request.key.partition(":")[2])
        return self._release(recv_ts_ns)

    def _release(self, recv_ts_ns: int) -> Output:
        """Emit what waited for a contract value that is known now."""
        events: list[Event] = []
        for book in self.books.values():
            contract = self._contracts.get(book.symbol)
            if book.mult is None and contract is not None:
                book.set_contract(*contract)
                if book.verified:  # consumers have seen nothing of this book yet: start with all of it
                    bids, asks = book.base_levels()
                    events.append(self._book_update(book, True, bids, asks, book.levels.last_seq, -1, recv_ts_ns))
        for inst_id in [i for i in self._pending if self._contracts.get(i) is not None]:
            rows = self._pending.pop(inst_id)
            self._pending_count -= len(rows)
            for row, recv in rows:
                if isinstance(row, TradeData):
                    events.append(self._trade(row, recv))
                else:
                    events.extend(self._liquidations(row, recv))
        return Output.of(events, "instrument metadata")

    def _contract(self, inst_id: str) -> tuple[str, float, bool] | None:
        """(canonical, units per contract, inverse); None while unknown; BadMessage when it cannot be known."""
        try:
            return self._contracts[inst_id]
        except KeyError:
            pass
        kind = inst_type(inst_id)
        if kind == "SPOT":  # sz is already in base; no metadata needed
            contract = self._contracts[inst_id] = (okx_instrument(inst_id), 1.0, False)
            return contract
        if kind not in INST_TYPES:
            okx_instrument(inst_id)  # raises the unsupported-instrument BadMessage
        if kind in self._answered:
            raise BadMessage(f"okx: contract value unknown for {inst_id}: not in the {kind} instruments answer")
        return None

    def _hold(self, inst_id: str, row: TradeData | LiqData, recv_ts_ns: int) -> None:
        if self._pending_count >= MAX_PENDING:
            raise BadMessage(f"okx: contract value unknown for {inst_id} (no instruments answer yet); buffer full")
        self._pending.setdefault(inst_id, []).append((row, recv_ts_ns))
        self._pending_count += 1

    # -- websocket -----------------------------------------------------------------------------------

    def _on_ws(self, message: bytes | str, recv_ts_ns: int, url: str | None = None) -> Output:
        payload = message.encode() if isinstance(message, str) else message
        if payload.startswith(_ARG_PREFIX):  # the venue's key order: route on the channel name, decode once
            end = payload.find(b'"', _ARG_PREFIX_LEN)
            handler = self._handlers.get(payload[_ARG_PREFIX_LEN:end])
            if handler is not None:
                return handler(payload, recv_ts_ns, url)
        if payload == b"pong":
            return Output(ignored="control frame")
        try:
            probe = probe_decoder.decode(payload)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise BadMessage(f"okx: not a v5 message ({exc}): {payload[:80]!r}") from None
        if probe.event is not None:
            if probe.event == "error":
                raise BadMessage(f"okx: error event code {probe.code}: {probe.msg}")
            if probe.event in ("subscribe", "unsubscribe", "login", "notice", "channel-conn-count"):
                return Output(ignored="control frame")
            raise BadMessage(f"okx: unknown event {probe.event!r}")
        if probe.arg is None:
            raise BadMessage(f"okx: message without arg or event: {payload[:80]!r}")
        handler = self._handlers.get(probe.arg.channel.encode())
        if handler is None:
            raise BadMessage(f"okx: unknown channel {probe.arg.channel!r}")
        return handler(payload, recv_ts_ns, url)

    # trades / trades-all

    def _on_trades(self, payload: bytes, recv_ts_ns: int, url: str | None) -> Output:
        msg = decode(trades_decoder, payload, VENUE, "trades message")
        events: list[Event] = []
        for row in msg.data:
            if self._contract(row.instId) is None:
                _check_trade(row)  # held rows are valid, so releasing them cannot fail
                self._hold(row.instId, row, recv_ts_ns)
            else:
                events.append(self._trade(row, recv_ts_ns))
        return Output.of(events, "held until the contract value is known" if msg.data else "no rows in the message")

    def _trade(self, row: TradeData, recv_ts_ns: int) -> Trade:
        canonical, mult, inverse = self._contracts[row.instId]
        _check_trade(row)
        price, sz, side = row.px, row.sz, row.side
        qty = sz * mult / price if inverse else sz * mult
        return Trade(VENUE, row.instId, canonical, row.ts * MS, recv_ts_ns, price, qty,
                     notional(price, qty), side, row.tradeId)  # fmt: skip

    # books

    def _on_book(self, payload: bytes, recv_ts_ns: int, url: str | None) -> Output:
        msg = decode(book_decoder, payload, VENUE, "book message")
        arg = msg.arg
        inst_id = arg.instId
        book = self.books.get(inst_id)
        if book is None:
            contract = self._contract(inst_id)
            book = self.books[inst_id] = OkxBook(inst_id, okx_instrument(inst_id), arg.channel)
            if contract is not None:
                book.set_contract(*contract)
        elif book.channel != arg.channel:
            raise BadMessage(f"okx: {arg.channel} for {inst_id} while its book follows {book.channel}")
        if url is not None:
            book.url = url
        action = msg.action
        events: list[Event] = []
        for data in msg.data:
            if action == "snapshot":
                self._snapshot(book, data, recv_ts_ns, events)
            elif action == "update":
                if book.verified:
                    self._update(book, data, recv_ts_ns, events)
                else:
                    self.dropped_unsynced += 1
            else:
                raise BadMessage(f"okx: {arg.channel} {inst_id}: unknown action {action!r}")
        if events:
            return Output(events)
        if not msg.data:
            return Output(ignored="no rows in the message")
        if not book.verified:
            return Output(ignored="update for a book awaiting its snapshot")
        return Output(
            ignored="book kept until the contract value is known" if book.mult is None else "keep-alive update"
        )

    def _snapshot(self, book: OkxBook, data: BookData, recv_ts_ns: int, events: list[Event]) -> None:
        where = f"{book.channel} {book.symbol} snapshot ts {data.ts}"
        try:
            book.load(data, where)
        except BadMessage:
            self._queue_resubscribe(book)
            raise
        if data.checksum and book.checksum() != data.checksum & 0xFFFFFFFF:
            reason = f"checksum mismatch on snapshot ts {data.ts}"
            events.append(self._gap(book, reason, data.seqId, data.ts * MS, recv_ts_ns))
            return
        self.checksums_verified += data.checksum != 0
        if book.mult is not None:
            bids, asks = book.base_levels()
            events.append(self._book_update(book, True, bids, asks, book.levels.last_seq, -1, recv_ts_ns))

    def _update(self, book: OkxBook, data: BookData, recv_ts_ns: int, events: list[Event]) -> None:
        seq = data.seqId
        if seq is not None and book.levels.last_seq >= 0:
            if data.prevSeqId != book.levels.last_seq:
                reason = f"prevSeqId {data.prevSeqId} != last seqId {book.levels.last_seq}"
                events.append(self._gap(book, reason, seq, data.ts * MS, recv_ts_ns))
                return
            self.seq_checked += 1
        bids, asks = book.apply_update(data, (book.channel, book.symbol, data.ts))
        checksum = data.checksum
        if checksum:
            if book.checksum() != checksum & 0xFFFFFFFF:
                events.append(self._gap(book, f"checksum mismatch at ts {data.ts}", seq, data.ts * MS, recv_ts_ns))
                return
            self.checksums_verified += 1
        prev = book.levels.last_seq
        if seq is not None:
            book.levels.last_seq = seq
        book.ts_ns = ts_ns = data.ts * MS
        if bids is not None and asks is not None and (bids or asks):  # None: contract unknown; empty: keep-alive
            prev_seq = prev if data.prevSeqId is None else data.prevSeqId
            events.append(BookUpdate(VENUE, book.symbol, book.instrument, ts_ns, recv_ts_ns, False, bids, asks,
                                     book.levels.last_seq, book.levels.last_seq, prev_seq))  # fmt: skip

    def _book_update(self, book: OkxBook, is_snapshot: bool, bids: list[tuple[float, float]],
                     asks: list[tuple[float, float]], seq: int, prev_seq: int,
                     recv_ts_ns: int) -> BookUpdate:  # fmt: skip
        return BookUpdate(VENUE, book.symbol, book.instrument, book.ts_ns, recv_ts_ns, is_snapshot, bids, asks,
                          seq, seq, prev_seq)  # fmt: skip

    def _gap(self, book: OkxBook, reason: str, first_bad: int | None, ts_ns: int, recv_ts_ns: int) -> BookGap:
        """A break in the book: the gap, a forgotten seqId, and a resubscription to get a fresh snapshot."""
        gap = book.gap(f"{book.channel}: {reason}", ts_ns, recv_ts_ns, -1 if first_bad is None else first_bad)
        book.levels.last_seq = -1
        self._queue_resubscribe(book)
        return gap

    def _queue_resubscribe(self, book: OkxBook) -> None:
        url = book.url or self.url_for(book.channel)
        self._resubscribe.setdefault(url, {})[book.symbol] = Arg(book.channel, book.symbol)

    # liquidation-orders

    def _on_liquidations(self, payload: bytes, recv_ts_ns: int, url: str | None) -> Output:
        msg = decode(liquidations_decoder, payload, VENUE, "liquidation-orders message")
        events: list[Event] = []
        skipped = "no rows in the message"
        for row in msg.data:
            if self._symbol_set and row.instId not in self._symbol_set:  # a per-instType firehose
                skipped = "liquidation of an instrument the session does not follow"
                continue
            if self._contract(row.instId) is None:
                for d in row.details:
                    _liquidation_sides(row.instId, d)  # held rows are valid, so releasing them cannot fail
                self._hold(row.instId, row, recv_ts_ns)
                skipped = "held until the contract value is known"
            else:
                events.extend(self._liquidations(row, recv_ts_ns))
        return Output.of(events, skipped)

    def _liquidations(self, row: LiqData, recv_ts_ns: int) -> list[Liquidation]:
        canonical, mult, inverse = self._contracts[row.instId]
        out = []
        for d in row.details:
            position = _liquidation_sides(row.instId, d)
            price, sz = d.bkPx, d.sz
            qty = sz * mult / price if inverse else sz * mult
            out.append(Liquidation(VENUE, row.instId, canonical, d.ts * MS, recv_ts_ns, position, d.side, price,
                                   qty, notional(price, qty)))  # fmt: skip
        return out

    # funding-rate / mark-price / open-interest -> merged DerivTicker

    def _on_ticker(self, payload: bytes, recv_ts_ns: int, url: str | None) -> Output:
        msg = decode(ticker_decoder, payload, VENUE, "ticker message")
        channel = msg.arg.channel
        events: list[Event] = []
        for row in msg.data:
            inst_id = row.instId or msg.arg.instId
            canonical = okx_instrument(inst_id)
            where = f"{VENUE}: {channel} {inst_id}"
            state = self._tickers.get(inst_id) or self._tickers.setdefault(inst_id, _Ticker())
            if channel == "funding-rate":
                if row.fundingRate:
                    state.funding = optional_number(row.fundingRate, "fundingRate", where)
                when = optional_number(row.fundingTime, "fundingTime", where)
                state.next_funding = int(when) * MS if when else state.next_funding
            elif channel == "mark-price":
                state.mark = number(row.markPx, "markPx", where, above=0)
            else:
                oi = optional_number(row.oi, "oi", where, at_least=0)
                oi_ccy = optional_number(row.oiCcy, "oiCcy", where, at_least=0)
                oi_usd = optional_number(row.oiUsd, "oiUsd", where, at_least=0)
                contract = self._contracts.get(inst_id)
                if oi_ccy is None and oi is not None and contract is not None and not contract[2]:
                    oi_ccy = oi * contract[1]  # linear: contracts x base per contract
                if oi_usd is None and oi is not None and contract is not None and contract[2]:
                    oi_usd = oi * contract[1]  # inverse: contracts x USD per contract
                state.oi_base = oi_ccy if oi_ccy is not None else state.oi_base
                state.oi_usd = oi_usd if oi_usd is not None else state.oi_usd
            ts = optional_number(row.ts, "ts", where)
            events.append(
                DerivTicker(
                    venue=VENUE,
                    symbol=inst_id,
                    instrument=canonical,
                    ts_ns=int(ts) * MS if ts else recv_ts_ns,
                    recv_ts_ns=recv_ts_ns,
                    funding_rate=state.funding,
                    next_funding_ts_ns=state.next_funding,
                    mark_price=state.mark,
                    open_interest_base=state.oi_base,
                    open_interest_usd=state.oi_usd,
                )
            )
        return Output.of(events)


def _check_trade(row: TradeData) -> None:
    if not (0.0 < row.px < INF and 0.0 < row.sz < INF):
        raise BadMessage(f"okx: trade {row.tradeId} on {row.instId}: px {row.px} and sz {row.sz} must be > 0, finite")
    if row.side != "buy" and row.side != "sell":
        raise BadMessage(f"okx: trade {row.tradeId} on {row.instId}: side {row.side!r}")


def _liquidation_sides(inst_id: str, d: LiqDetail) -> str:
    """The liquidated position's side; validates price, size and side consistency."""
    if not (0.0 < d.bkPx < INF and 0.0 < d.sz < INF):
        raise BadMessage(f"okx: liquidation on {inst_id}: bkPx {d.bkPx} and sz {d.sz} must be > 0, finite")
    if d.side != "buy" and d.side != "sell":
        raise BadMessage(f"okx: liquidation on {inst_id}: side {d.side!r}")
    implied = "long" if d.side == "sell" else "short"  # a long position is closed by a forced sell
    if d.posSide == "net" or d.posSide == "":  # net mode (one-way): the order side tells
        return implied
    if d.posSide != implied:
        raise BadMessage(f"okx: liquidation on {inst_id}: posSide {d.posSide!r} with order side {d.side!r}")
    return implied
