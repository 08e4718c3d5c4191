"""OKX v5 public streams: trades, order books (checksum + seqId), liquidations, funding/mark/open interest.

Sans-I/O: `OkxSession` turns websocket payloads and REST answers into events (see venues/base.py).

Units (SCHEMAS.md §3, DOMAIN.md). Every numeric field is a string. `sz` is in CONTRACTS for SWAP/FUTURES
and in the base currency for SPOT. Contract value comes from GET /api/v5/public/instruments:
linear (ctType "linear", ctValCcy = base) qty_base = sz * ctVal * ctMult; inverse (ctValCcy = USD)
notional = sz * ctVal * ctMult USD and qty_base = notional / price (books: each level's own price).

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
- Book integrity: a snapshot (prevSeqId -1) resets the book; each update's prevSeqId must equal the last
  seqId (seqId may repeat on heartbeats, and may become smaller on a venue reset while prevSeqId still
  chains); CRC32 over the top 25 levels when `checksum` != 0 (always 0 from 2026-06-23). A break emits ONE
  BookGap for that instrument, invalidates that book, and queues an unsubscribe+subscribe of that one
  channel arg: the connector must send `session.resubscribe_frames()` after each on_ws/on_disconnect.
  Updates for an invalid book are dropped until the venue's new snapshot arrives.
- Only one book channel per session (books / books-l2-tbt / books50-l2-tbt): BookUpdate has no channel
  field, so two depths of one instrument would interleave. books-l2-tbt / books50-l2-tbt need a logged-in
  VIP connection on today's OKX; this session does not log in (public `books` works without).
- liquidation-orders is a per-instType firehose: only the session's symbols are emitted (all of them when
  the session has no symbols, e.g. a replay). OPTION/MARGIN instruments are out of scope: BadMessage.
"""

from __future__ import annotations

import math
import zlib
from bisect import bisect_left, insort
from collections.abc import Sequence
from functools import lru_cache
from urllib.parse import parse_qs, urlsplit

import msgspec

from tapeline.domain.book import L2Book
from tapeline.domain.errors import BadMessage
from tapeline.domain.events import BookGap, BookUpdate, DerivTicker, Instrument, Liquidation, Trade
from tapeline.venues.base import Output, RestRequest, VenueSession, WsEndpoint

VENUE = "okx"
WS_BASE_URL = "wss://ws.okx.com:8443/ws/v5"
REST_BASE_URL = "https://www.okx.com"
INSTRUMENTS_PATH = "/api/v5/public/instruments"
# /business serves the channels OKX moved there in June 2023 (candles, block trading, algo orders) and
# trades-all (OKX docs; no capture of it here was recorded with its url); the rest stays on /public.
CHANNEL_PATH = {"trades": "public", "trades-all": "business", "books": "public", "books-l2-tbt": "public",
                "books50-l2-tbt": "public", "liquidation-orders": "public", "funding-rate": "public",
                "mark-price": "public", "open-interest": "public"}  # fmt: skip
BOOK_CHANNELS = ("books", "books-l2-tbt", "books50-l2-tbt")
INST_TYPES = ("SPOT", "SWAP", "FUTURES")
# One connection per ws url: on_disconnect(url) names the connection by its url, so two connections to one
# url could not be told apart. A subscribe request must stay under 64 KB (400 args ~ 20 KB) and OKX counts
# requests (3 per second, 480 per hour per connection), so args are packed into few large frames.
ARGS_PER_FRAME = 400
KEEPALIVE_S = 25.0  # OKX closes a connection after 30 s without traffic; "ping" -> "pong"
CHECKSUM_DEPTH = 25
MAX_PENDING = 100_000  # trades/liquidations held while a contract value is unknown
MS = 1_000_000
NOTIONAL_DECIMALS = 10
INF = math.inf

# ---------------------------------------------------------------------------------------------------
# Wire structs: field names are the venue's. Decoders are non-strict so "123" decodes into int/float.


class Arg(msgspec.Struct, frozen=True, gc=False):
    channel: str
    instId: str = ""
    instType: str = ""


class TradeData(msgspec.Struct, frozen=True, gc=False):
    instId: str
    tradeId: str
    px: float
    sz: float
    side: str  # taker side
    ts: int  # ms


class TradesMsg(msgspec.Struct, frozen=True, gc=False):
    arg: Arg
    data: list[TradeData]


Level = tuple[str, ...]  # [px, sz, "0" (deprecated liquidated orders), numOrders], strings as received


class BookData(msgspec.Struct, frozen=True, gc=False):
    asks: list[Level]
    bids: list[Level]
    ts: int
    checksum: int = 0
    seqId: int | None = None
    prevSeqId: int | None = None


class BookMsg(msgspec.Struct, frozen=True, gc=False):
    arg: Arg
    action: str  # "snapshot" | "update"
    data: list[BookData]


class LiqDetail(msgspec.Struct, frozen=True, gc=False):
    side: str  # the forced order's side
    bkPx: float  # bankruptcy price
    sz: float  # contracts (SWAP/FUTURES)
    ts: int
    posSide: str = ""  # liquidated position: long | short | net


class LiqData(msgspec.Struct, frozen=True, gc=False):
    instId: str
    details: list[LiqDetail]
    instType: str = ""


class LiqMsg(msgspec.Struct, frozen=True, gc=False):
    arg: Arg
    data: list[LiqData]


class TickerData(msgspec.Struct, frozen=True, gc=False):
    """funding-rate, mark-price and open-interest rows; strings, since "" appears for unknown values."""

    instId: str
    fundingRate: str = ""
    fundingTime: str = ""
    markPx: str = ""
    oi: str = ""
    oiCcy: str = ""
    oiUsd: str = ""
    ts: str = ""  # absent on old funding-rate pushes


class TickerMsg(msgspec.Struct, frozen=True, gc=False):
    arg: Arg
    data: list[TickerData]


class Probe(msgspec.Struct, frozen=True, gc=False):
    """Control frames ({"event": ...}) and data frames whose keys are not in the usual order."""

    event: str | None = None
    arg: Arg | None = None
    code: str | int | None = None
    msg: str | None = None


class InstrumentWire(msgspec.Struct, frozen=True, gc=False):
    instId: str
    instType: str
    baseCcy: str = ""
    quoteCcy: str = ""
    ctVal: str = ""
    ctMult: str = ""
    ctValCcy: str = ""
    ctType: str = ""  # linear | inverse
    settleCcy: str = ""
    uly: str = ""
    instFamily: str = ""
    tickSz: str = ""
    lotSz: str = ""
    expTime: str = ""


class InstrumentsAnswer(msgspec.Struct, frozen=True, gc=False):
    code: str
    data: list[InstrumentWire] = []
    msg: str = ""


_trades_dec = msgspec.json.Decoder(TradesMsg, strict=False)
_book_dec = msgspec.json.Decoder(BookMsg, strict=False)
_liq_dec = msgspec.json.Decoder(LiqMsg, strict=False)
_ticker_dec = msgspec.json.Decoder(TickerMsg, strict=False)
_probe_dec = msgspec.json.Decoder(Probe, strict=False)
_instruments_dec = msgspec.json.Decoder(InstrumentsAnswer)
_encode = msgspec.json.encode

_ARG_PREFIX = b'{"arg":{"channel":"'
_ARG_PREFIX_LEN = len(_ARG_PREFIX)

# ---------------------------------------------------------------------------------------------------
# Instrument ids


@lru_cache(maxsize=8192)  # bounded: instIds come from the network
def inst_type(inst_id: str) -> str:
    """SPOT / SWAP / FUTURES / OPTION from the instId's shape (OKX ids are BASE-QUOTE[-SWAP|-YYMMDD[-K-C]])."""
    parts = inst_id.split("-")
    if len(parts) == 2 and all(parts):
        return "SPOT"
    if len(parts) == 3 and parts[2] == "SWAP":
        return "SWAP"
    if len(parts) == 3 and len(parts[2]) == 6 and parts[2].isdigit():
        return "FUTURES"
    if len(parts) == 5 and parts[4] in ("C", "P"):
        return "OPTION"
    return "UNKNOWN"


@lru_cache(maxsize=8192)
def okx_instrument(inst_id: str) -> str:
    """BTC-USDT-SWAP -> BTC-USDT-PERP, BTC-USD-220527 -> BTC-USD-220527, BTC-USDT -> BTC-USDT-SPOT."""
    kind = inst_type(inst_id)
    parts = inst_id.split("-")
    if kind == "SPOT":
        return f"{inst_id}-SPOT"
    if kind == "SWAP":
        return f"{parts[0]}-{parts[1]}-PERP"
    if kind == "FUTURES":
        return inst_id
    raise BadMessage(f"okx: unsupported instrument {inst_id!r} ({kind}); only SPOT, SWAP and FUTURES are handled")


def _num(text: str, field: str, where: str) -> float | None:
    """An optional numeric string ("" -> None); NaN/inf -> BadMessage."""
    if text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        raise BadMessage(f"okx: {field}={text!r} is not a number in {where}") from None
    if not math.isfinite(value):
        raise BadMessage(f"okx: {field}={text!r} is not finite in {where}")
    return value


def parse_instrument(wire: InstrumentWire) -> tuple[Instrument, float, bool] | None:
    """One instruments row -> (Instrument, base-or-USD units per contract, inverse); None when out of scope."""
    kind = {"SPOT": "spot", "SWAP": "perp", "FUTURES": "future"}.get(wire.instType)
    if kind is None or inst_type(wire.instId) != wire.instType:
        return None
    where = f"instrument {wire.instId}"
    if kind == "spot":
        base, quote = wire.baseCcy, wire.quoteCcy
        if not (base and quote):
            base, quote = wire.instId.split("-")
        mult, inverse = 1.0, False
    else:
        family = wire.instFamily or wire.uly  # e.g. BTC-USDT (linear) or BTC-USD (inverse)
        base, _, quote = (family or wire.instId).partition("-")
        quote = quote.split("-")[0]
        ct_val = _num(wire.ctVal, "ctVal", where)
        ct_mult = _num(wire.ctMult, "ctMult", where) or 1.0
        if ct_val is None or ct_val <= 0 or ct_mult <= 0:
            return None  # not tradable yet (no contract value); its messages stay unconvertible
        mult = ct_val * ct_mult
        inverse = wire.ctType == "inverse" or (wire.ctType == "" and wire.ctValCcy == quote)
    expiry = _num(wire.expTime, "expTime", where)
    if kind == "spot":
        canonical = f"{base}-{quote}-SPOT"
    elif kind == "perp":
        canonical = f"{base}-{quote}-PERP"
    else:
        canonical = f"{base}-{quote}-{wire.instId.rsplit('-', 1)[1]}"
    instrument = Instrument(
        venue=VENUE,
        symbol=wire.instId,
        instrument=canonical,
        base=base,
        quote=quote,
        kind=kind,
        linear=not inverse,
        contract_value=mult,
        tick_size=_num(wire.tickSz, "tickSz", where) or 0.0,
        lot_size=_num(wire.lotSz, "lotSz", where) or 0.0,
        expiry_ns=int(expiry) * MS if expiry else None,
    )
    return instrument, mult, inverse


# ---------------------------------------------------------------------------------------------------
# Book: L2Book (price -> qty_base) plus what the checksum needs: per side the level strings keyed by a
# sort key (bids negated, so both sides ascend best-first) and a sorted list of those keys kept with
# bisect. An update touches only its own levels; the checksum reads the first 25 keys of each side.


def _bad_level(level: Level, where: str | tuple) -> BadMessage:
    if isinstance(where, tuple):  # (channel, instId, ts): formatted only when needed
        where = "{} {} update ts {}".format(*where)
    return BadMessage(f"okx: bad book level {list(level)!r} in {where}: price must be > 0, size >= 0, finite")


def _apply(levels, keys, txt, base, out, neg, mult, inverse, where):  # hot path: plain arguments, no packing
    """Apply absolute-size levels to one side. Returns True when its top 25 may have changed."""
    top = False
    for level in levels:
        ps = level[0]
        ss = level[1]
        try:
            px = float(ps)
            sz = float(ss)
        except (ValueError, IndexError):
            raise _bad_level(level, where) from None
        if not (0.0 < px < INF and 0.0 <= sz < INF):  # also rejects NaN
            raise _bad_level(level, where)
        key = -px if neg else px
        if not top and (len(keys) < 25 or key <= keys[24]):  # at or above the 25th level before the change
            top = True
        if sz == 0.0:
            if key in txt:
                del txt[key]
                del keys[bisect_left(keys, key)]
                if out is not None:
                    del base[px]
            if out is not None:
                out.append((px, 0.0))
        else:
            if key not in txt:
                insort(keys, key)
            txt[key] = f"{ps}:{ss}"
            if out is not None:
                qty = sz * mult / px if inverse else sz * mult
                base[px] = qty
                out.append((px, qty))
    return top


class OkxBook(L2Book):
    """One instrument's book. `bids`/`asks` (L2Book: price -> qty_base) are kept once the contract value is known.

    For the checksum each side also keeps the level strings as received ("px:sz") keyed by a sort key
    (bids: -price, so both sides ascend best first) and the sorted list of those keys (bisect), plus the
    top-25 strings per side, rebuilt only when an update reaches into them.
    """

    __slots__ = ("ask_keys", "ask_top", "ask_txt", "bid_keys", "bid_top", "bid_txt", "canonical", "channel", "crc",
                 "inst_id", "inverse", "mult", "ts_ns", "url")  # fmt: skip

    def __init__(self, inst_id: str, channel: str) -> None:
        super().__init__()
        self.inst_id = inst_id
        self.canonical = okx_instrument(inst_id)
        self.channel = channel
        self.url: str | None = None  # the connection that feeds it
        self.bid_keys: list[float] = []
        self.ask_keys: list[float] = []
        self.bid_txt: dict[float, str] = {}
        self.ask_txt: dict[float, str] = {}
        self.bid_top: list[str] | None = None  # None: rebuild from the keys
        self.ask_top: list[str] | None = None
        self.crc: int | None = None  # unsigned CRC32 of the current top 25; None: recompute
        self.mult: float | None = None  # base (or USD, inverse) units per contract; None: not known yet
        self.inverse = False
        self.ts_ns = 0

    # L2Book's float-level API would bypass the strings the checksum needs.
    def snapshot(self, bids, asks, seq: int = -1) -> None:  # type: ignore[override]
        raise TypeError("OkxBook is driven by load()/update() with the venue's strings")

    def apply(self, bids, asks, seq: int = -1) -> None:  # type: ignore[override]
        raise TypeError("OkxBook is driven by load()/update() with the venue's strings")

    def invalidate(self) -> None:
        super().invalidate()
        self.bid_keys.clear()
        self.ask_keys.clear()
        self.bid_txt.clear()
        self.ask_txt.clear()
        self.bid_top = self.ask_top = self.crc = None

    def load(self, data: BookData, where: str) -> None:
        """Replace the book with a snapshot; a crossed or malformed snapshot raises BadMessage."""
        self.invalidate()
        mult, inverse = self.mult, self.inverse
        sides = []
        for levels, neg in ((data.bids, True), (data.asks, False)):
            txt: dict[float, str] = {}
            base: dict[float, float] = {}
            for level in levels:
                ps = level[0]
                ss = level[1]
                try:
                    px = float(ps)
                    sz = float(ss)
                except (ValueError, IndexError):
                    raise _bad_level(level, where) from None
                if not (0.0 < px < INF and 0.0 <= sz < INF):
                    raise _bad_level(level, where)
                if sz > 0.0:
                    txt[-px if neg else px] = f"{ps}:{ss}"
                    if mult is not None:
                        base[px] = sz * mult / px if inverse else sz * mult
            sides.append((txt, sorted(txt), base))
        (self.bid_txt, self.bid_keys, self.bids), (self.ask_txt, self.ask_keys, self.asks) = sides
        if self.bid_keys and self.ask_keys and -self.bid_keys[0] >= self.ask_keys[0]:
            best_bid, best_ask = -self.bid_keys[0], self.ask_keys[0]
            self.invalidate()
            raise BadMessage(f"okx: crossed snapshot in {where}: best bid {best_bid} >= best ask {best_ask}")
        self.last_seq = -1 if data.seqId is None else data.seqId
        self.ts_ns = data.ts * MS
        self.verified = True

    def update(self, data: BookData, where: str | tuple) -> tuple[list | None, list | None]:
        """Apply an update's levels; returns them in base units (None while the contract value is unknown)."""
        mult, inverse = self.mult, self.inverse
        bids_out = asks_out = None
        if mult is not None:
            bids_out, asks_out = [], []
        if data.bids and _apply(
            data.bids, self.bid_keys, self.bid_txt, self.bids, bids_out, True, mult, inverse, where
        ):
            self.bid_top = self.crc = None
        if data.asks and _apply(
            data.asks, self.ask_keys, self.ask_txt, self.asks, asks_out, False, mult, inverse, where
        ):
            self.ask_top = self.crc = None
        return bids_out, asks_out

    def set_contract(self, mult: float, inverse: bool) -> None:
        """The contract value became known: base-unit levels from the strings."""
        self.mult, self.inverse = mult, inverse
        for txt, side in ((self.bid_txt, "bids"), (self.ask_txt, "asks")):
            levels = {}
            for key, text in txt.items():
                px = abs(key)
                sz = float(text[text.index(":") + 1 :])
                levels[px] = sz * mult / px if inverse else sz * mult
            setattr(self, side, levels)

    def checksum(self) -> int:
        """Unsigned CRC32 of bid1px:bid1sz:ask1px:ask1sz:... over the top 25 (one side alone past the other)."""
        crc = self.crc
        if crc is None:
            b = self.bid_top
            if b is None:
                txt = self.bid_txt
                b = self.bid_top = [txt[k] for k in self.bid_keys[:CHECKSUM_DEPTH]]
            a = self.ask_top
            if a is None:
                txt = self.ask_txt
                a = self.ask_top = [txt[k] for k in self.ask_keys[:CHECKSUM_DEPTH]]
            nb, na = len(b), len(a)
            if nb == na:
                parts = b + a
                parts[0::2] = b
                parts[1::2] = a
            else:
                n = min(nb, na)
                parts = b + a
                parts[0 : 2 * n : 2] = b[:n]
                parts[1 : 2 * n : 2] = a[:n]
                parts[2 * n :] = b[n:] if nb > n else a[n:]
            crc = self.crc = zlib.crc32(":".join(parts).encode())
        return crc

    def levels(self) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        """The whole book in base units, best first."""
        bids, asks = self.bids, self.asks
        return [(-k, bids[-k]) for k in self.bid_keys], [(k, asks[k]) for k in self.ask_keys]


# ---------------------------------------------------------------------------------------------------


class OkxSession(VenueSession):
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

    def __init__(
        self,
        symbols: Sequence[str],
        channels: Sequence[str],
        ws_base_url: str | None = None,
        rest_base_url: str | None = None,
    ) -> None:
        super().__init__([s.upper() for s in symbols], channels, ws_base_url, rest_base_url)
        book_channels = [c for c in self.channels if c in BOOK_CHANNELS]
        if len(book_channels) > 1:
            raise ValueError(f"okx: subscribe one book channel per session, not {book_channels}")
        unsupported = [s for s in self.symbols if inst_type(s) not in INST_TYPES]
        if unsupported:
            raise ValueError(f"okx: unsupported instIds {unsupported}; SPOT (BTC-USDT), SWAP, FUTURES only")
        self._symbol_set = frozenset(self.symbols)
        self.books: dict[str, OkxBook] = {}
        self._contracts: dict[str, tuple[str, float, bool]] = {}  # instId -> (canonical, mult, inverse)
        self._answered: set[str] = set()  # instTypes whose instruments answer arrived
        self._pending: dict[str, list[tuple[msgspec.Struct, int]]] = {}  # instId -> [(wire row, recv_ts_ns)]
        self._pending_count = 0
        self._tickers: dict[str, list] = {}  # instId -> [rate, next_ts, mark, oi_base, oi_usd]
        self._resubscribe: dict[str, dict[str, Arg]] = {}  # ws url -> {instId: arg}
        self.checksums_verified = 0
        self.seq_checked = 0
        self.gaps = 0
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
        events = []
        for book in self.books.values():
            if book.verified and (book.url is None or book.url == url):
                events.append(
                    self._gap(book, f"connection {url} closed", -1, recv_ts_ns, recv_ts_ns, resubscribe=False)
                )
        self._resubscribe.pop(url, None)  # the reconnect subscribes everything again
        return Output(events)

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
            answer = _instruments_dec.decode(body)
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
        events: list[msgspec.Struct] = []
        for book in self.books.values():
            contract = self._contracts.get(book.inst_id)
            if book.mult is None and contract is not None:
                book.canonical = contract[0]
                book.set_contract(contract[1], contract[2])
                if book.verified:  # consumers have seen nothing of this book yet: start with all of it
                    bids, asks = book.levels()
                    events.append(self._book_update(book, True, bids, asks, book.last_seq, -1, recv_ts_ns))
        for inst_id in [i for i in self._pending if self._contracts.get(i) is not None]:
            rows = self._pending.pop(inst_id)
            self._pending_count -= len(rows)
            for row, recv in rows:
                if isinstance(row, TradeData):
                    events.append(self._trade(row, recv))
                else:
                    events.extend(self._liquidations(row, recv))
        return Output(events)

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

    def _hold(self, inst_id: str, row: msgspec.Struct, recv_ts_ns: int) -> None:
        if self._pending_count >= MAX_PENDING:
            raise BadMessage(f"okx: contract value unknown for {inst_id} (no instruments answer yet); buffer full")
        self._pending.setdefault(inst_id, []).append((row, recv_ts_ns))
        self._pending_count += 1

    # -- websocket -----------------------------------------------------------------------------------

    def _on_ws(self, payload: bytes | str, recv_ts_ns: int, url: str | None = None) -> Output:
        if type(payload) is str:
            payload = payload.encode()
        if payload.startswith(_ARG_PREFIX):  # the venue's key order: route on the channel name, decode once
            end = payload.find(b'"', _ARG_PREFIX_LEN)
            handler = self._handlers.get(payload[_ARG_PREFIX_LEN:end])
            if handler is not None:
                return handler(payload, recv_ts_ns, url)
        if payload == b"pong":
            return Output()
        try:
            probe = _probe_dec.decode(payload)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise BadMessage(f"okx: not a v5 message ({exc}): {payload[:80]!r}") from None
        if probe.event is not None:
            if probe.event == "error":
                raise BadMessage(f"okx: error event code {probe.code}: {probe.msg}")
            if probe.event in ("subscribe", "unsubscribe", "login", "notice", "channel-conn-count"):
                return Output()
            raise BadMessage(f"okx: unknown event {probe.event!r}")
        if probe.arg is None:
            raise BadMessage(f"okx: message without arg or event: {payload[:80]!r}")
        handler = self._handlers.get(probe.arg.channel.encode())
        if handler is None:
            raise BadMessage(f"okx: unknown channel {probe.arg.channel!r}")
        return handler(payload, recv_ts_ns, url)

    # trades / trades-all

    def _on_trades(self, payload: bytes, recv_ts_ns: int, url: str | None) -> Output:
        msg = _decode(_trades_dec, payload, "trades")
        events = []
        for row in msg.data:
            if self._contract(row.instId) is None:
                _check_trade(row)  # held rows are valid, so releasing them cannot fail
                self._hold(row.instId, row, recv_ts_ns)
            else:
                events.append(self._trade(row, recv_ts_ns))
        return Output(events)

    def _trade(self, row: TradeData, recv_ts_ns: int) -> Trade:
        canonical, mult, inverse = self._contracts[row.instId]
        _check_trade(row)
        price, sz, side = row.px, row.sz, row.side
        qty = sz * mult / price if inverse else sz * mult
        return Trade(VENUE, row.instId, canonical, row.ts * MS, recv_ts_ns, price, qty,
                     round(price * qty, NOTIONAL_DECIMALS), side, row.tradeId)  # fmt: skip

    # books

    def _on_book(self, payload: bytes, recv_ts_ns: int, url: str | None) -> Output:
        msg = _decode(_book_dec, payload, "book")
        arg = msg.arg
        inst_id = arg.instId
        book = self.books.get(inst_id)
        if book is None:
            contract = self._contract(inst_id)
            book = self.books[inst_id] = OkxBook(inst_id, arg.channel)
            if contract is not None:
                book.canonical = contract[0]
                book.set_contract(contract[1], contract[2])
        elif book.channel != arg.channel:
            raise BadMessage(f"okx: {arg.channel} for {inst_id} while its book follows {book.channel}")
        if url is not None:
            book.url = url
        action = msg.action
        events: list[msgspec.Struct] = []
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
        return Output(events)

    def _snapshot(self, book: OkxBook, data: BookData, recv_ts_ns: int, events: list) -> None:
        where = f"{book.channel} {book.inst_id} snapshot ts {data.ts}"
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
            bids, asks = book.levels()
            events.append(self._book_update(book, True, bids, asks, book.last_seq, -1, recv_ts_ns))

    def _update(self, book: OkxBook, data: BookData, recv_ts_ns: int, events: list) -> None:
        seq = data.seqId
        if seq is not None and book.last_seq >= 0:
            if data.prevSeqId != book.last_seq:
                reason = f"prevSeqId {data.prevSeqId} != last seqId {book.last_seq}"
                events.append(self._gap(book, reason, seq, data.ts * MS, recv_ts_ns))
                return
            self.seq_checked += 1
        bids, asks = book.update(data, (book.channel, book.inst_id, data.ts))
        checksum = data.checksum
        if checksum:
            if book.checksum() != checksum & 0xFFFFFFFF:
                events.append(self._gap(book, f"checksum mismatch at ts {data.ts}", seq, data.ts * MS, recv_ts_ns))
                return
            self.checksums_verified += 1
        prev = book.last_seq
        if seq is not None:
            book.last_seq = seq
        book.ts_ns = ts_ns = data.ts * MS
        if bids or asks:  # None: contract value unknown; empty: a keep-alive
            prev_seq = prev if data.prevSeqId is None else data.prevSeqId
            events.append(BookUpdate(VENUE, book.inst_id, book.canonical, ts_ns, recv_ts_ns, False, bids, asks,
                                     book.last_seq, book.last_seq, prev_seq))  # fmt: skip

    def _book_update(self, book, is_snapshot, bids, asks, seq, prev_seq, recv_ts_ns) -> BookUpdate:
        return BookUpdate(VENUE, book.inst_id, book.canonical, book.ts_ns, recv_ts_ns, is_snapshot, bids, asks,
                          seq, seq, prev_seq)  # fmt: skip

    def _gap(
        self, book: OkxBook, reason: str, first_bad: int | None, ts_ns: int, recv_ts_ns: int, resubscribe: bool = True
    ) -> BookGap:
        gap = BookGap(
            venue=VENUE,
            symbol=book.inst_id,
            instrument=book.canonical,
            ts_ns=ts_ns,
            recv_ts_ns=recv_ts_ns,
            reason=f"{book.channel}: {reason}",
            last_good_seq=book.last_seq,
            first_bad_seq=-1 if first_bad is None else first_bad,
        )
        book.invalidate()
        book.last_seq = -1
        self.gaps += 1
        if resubscribe:
            self._queue_resubscribe(book)
        return gap

    def _queue_resubscribe(self, book: OkxBook) -> None:
        url = book.url or self.url_for(book.channel)
        self._resubscribe.setdefault(url, {})[book.inst_id] = Arg(book.channel, book.inst_id)

    # liquidation-orders

    def _on_liquidations(self, payload: bytes, recv_ts_ns: int, url: str | None) -> Output:
        msg = _decode(_liq_dec, payload, "liquidation-orders")
        events: list[msgspec.Struct] = []
        for row in msg.data:
            if self._symbol_set and row.instId not in self._symbol_set:  # a per-instType firehose
                continue
            if self._contract(row.instId) is None:
                for d in row.details:
                    _liquidation_sides(row.instId, d)  # held rows are valid, so releasing them cannot fail
                self._hold(row.instId, row, recv_ts_ns)
            else:
                events.extend(self._liquidations(row, recv_ts_ns))
        return Output(events)

    def _liquidations(self, row: LiqData, recv_ts_ns: int) -> list[Liquidation]:
        canonical, mult, inverse = self._contracts[row.instId]
        out = []
        for d in row.details:
            position = _liquidation_sides(row.instId, d)
            price, sz = d.bkPx, d.sz
            qty = sz * mult / price if inverse else sz * mult
            out.append(Liquidation(VENUE, row.instId, canonical, d.ts * MS, recv_ts_ns, position, d.side, price,
                                   qty, round(price * qty, NOTIONAL_DECIMALS)))  # fmt: skip
        return out

    # funding-rate / mark-price / open-interest -> merged DerivTicker

    def _on_ticker(self, payload: bytes, recv_ts_ns: int, url: str | None) -> Output:
        msg = _decode(_ticker_dec, payload, "ticker")
        channel = msg.arg.channel
        events = []
        for row in msg.data:
            inst_id = row.instId or msg.arg.instId
            canonical = okx_instrument(inst_id)
            where = f"{channel} {inst_id}"
            state = self._tickers.setdefault(inst_id, [None] * 5)
            if channel == "funding-rate":
                state[0] = _num(row.fundingRate, "fundingRate", where) if row.fundingRate else state[0]
                when = _num(row.fundingTime, "fundingTime", where)
                state[1] = int(when) * MS if when else state[1]
            elif channel == "mark-price":
                mark = _num(row.markPx, "markPx", where)
                if mark is None or mark <= 0:
                    raise BadMessage(f"okx: markPx {row.markPx!r} must be > 0 in {where}")
                state[2] = mark
            else:
                values = [_num(v, f, where) for v, f in ((row.oi, "oi"), (row.oiCcy, "oiCcy"), (row.oiUsd, "oiUsd"))]
                if any(v is not None and v < 0 for v in values):
                    raise BadMessage(f"okx: negative open interest in {where}")
                oi, oi_ccy, oi_usd = values
                contract = self._contracts.get(inst_id)
                if oi_ccy is None and oi is not None and contract is not None and not contract[2]:
                    oi_ccy = oi * contract[1]  # linear: contracts x base per contract
                if oi_usd is None and oi is not None and contract is not None and contract[2]:
                    oi_usd = oi * contract[1]  # inverse: contracts x USD per contract
                state[3] = oi_ccy if oi_ccy is not None else state[3]
                state[4] = oi_usd if oi_usd is not None else state[4]
            ts = _num(row.ts, "ts", where)
            events.append(
                DerivTicker(
                    venue=VENUE,
                    symbol=inst_id,
                    instrument=canonical,
                    ts_ns=int(ts) * MS if ts else recv_ts_ns,
                    recv_ts_ns=recv_ts_ns,
                    funding_rate=state[0],
                    next_funding_ts_ns=state[1],
                    mark_price=state[2],
                    open_interest_base=state[3],
                    open_interest_usd=state[4],
                )
            )
        return Output(events)


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


def _decode(decoder: msgspec.json.Decoder, payload: bytes, what: str):
    try:
        return decoder.decode(payload)
    except msgspec.ValidationError as exc:
        raise BadMessage(f"okx: malformed {what} message: {exc}") from None
    except msgspec.DecodeError as exc:
        raise BadMessage(f"okx: invalid JSON in {what} message: {exc}") from None
