"""The shape every venue module has: a sans-I/O session that turns venue messages into events.

A session never touches the network. The connector (live) or the replayer (captures) feeds it
websocket payloads and REST answers, and performs the REST requests it asks for. So the same code
runs live, over recorded captures, and in tests:

    session = BinanceUsdmSession(symbols=["BTCUSDT"], channels=["aggTrade", "depth"])
    out = session.startup()                       # REST requests (instrument metadata)
    out = session.on_rest(request, body, now)     # -> events + more requests
    out = session.on_ws(payload, now, url)        # -> events (+ e.g. a depth snapshot request)
    out = session.on_disconnect(url, now)         # books fed by that connection report a gap

A venue module implements `_on_ws` / `_on_rest`; the public `on_ws` / `on_rest` around them turn every
failure to parse or apply a message into BadMessage(reason), whatever raised it (a decoder's RecursionError
on a deeply nested frame, invalid UTF-8, a bug), so a caller has exactly one exception to route to the
dead-letter topic. Control frames (subscription acks, pongs) return an empty Output.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import msgspec

from tapeline.domain.book import L2Book, Level
from tapeline.domain.errors import BadMessage
from tapeline.domain.events import BookGap, BookUpdate, Event, Instrument


@dataclass(frozen=True)
class RestRequest:
    """A REST call a session needs. `key` names what it is for, e.g. "depth:BTCUSDT" or "instruments"."""

    key: str
    url: str
    method: str = "GET"
    body: bytes | None = None  # JSON body for POST (Hyperliquid /info)


@dataclass(frozen=True)
class WsEndpoint:
    """One websocket connection: where, what to send after connecting, how to keep it alive."""

    url: str
    subscribe: tuple[str, ...] = ()  # text frames sent right after connecting (venue's subscribe ops)
    keepalive_s: float | None = None  # send `keepalive_frame` this often (OKX, Bybit, Hyperliquid)
    keepalive_frame: str | None = None
    max_lifetime_s: float | None = None  # reconnect before the venue drops us (Binance: 24 h)


@dataclass
class Output:
    """What one message or answer gave: events, REST requests, or, when neither, why it was set aside.

    `ignored` is a fixed phrase (it labels a metric, so it names no symbol or number): "control frame",
    "buffered until its snapshot", ... A message that gives nothing and says no reason is a bug, and
    `VenueSession.on_ws` turns it into a dead letter: nothing is dropped silently.
    """

    events: list[Event] = field(default_factory=list)
    requests: list[RestRequest] = field(default_factory=list)
    ignored: str = ""

    def extend(self, other: Output) -> Output:
        self.events.extend(other.events)
        self.requests.extend(other.requests)
        self.ignored = self.ignored or other.ignored
        return self

    def __bool__(self) -> bool:
        """Did it give anything (events or requests)?"""
        return bool(self.events or self.requests)

    @classmethod
    def of(cls, events: list[Event], reason_if_none: str = "no rows in the message") -> Output:
        """The events of a message whose rows may all be set aside, with the reason when they were."""
        return cls(events, [], "" if events else reason_if_none)


class VenueBook:
    """One instrument's book as a session keeps it: the levels, which connection feeds it, the gaps it had.

    Every venue subclasses it as `<Venue>Book` in `venues/<venue>/book.py`, adding its sequencing rule;
    the events a book emits are built here, so they are alike across venues.
    """

    __slots__ = ("gaps", "instrument", "levels", "symbol", "url", "venue")

    def __init__(self, venue: str, symbol: str, instrument: str, url: str | None = None) -> None:
        self.venue = venue
        self.symbol = symbol
        self.instrument = instrument  # canonical id (a venue may learn a better one from its metadata)
        self.url = url  # the connection that fed it last (None: unknown, any disconnect concerns it)
        self.levels = L2Book()
        self.gaps = 0

    @property
    def verified(self) -> bool:
        return self.levels.verified

    def fed_by(self, url: str | None) -> bool:
        """Does a disconnect of `url` (None: of every connection) concern this book?"""
        return url is None or self.url is None or self.url == url

    def update(
        self, ts_ns: int, recv_ts_ns: int, is_snapshot: bool, bids: list[Level], asks: list[Level],
        first_seq: int = -1, last_seq: int = -1, prev_seq: int = -1,
    ) -> BookUpdate:  # fmt: skip
        return BookUpdate(self.venue, self.symbol, self.instrument, ts_ns, recv_ts_ns, is_snapshot, bids, asks,
                          first_seq, last_seq, prev_seq)  # fmt: skip

    def gap(self, reason: str, ts_ns: int, recv_ts_ns: int, first_bad_seq: int = -1) -> BookGap:
        """The book lost integrity: invalidate it, count it, and the BookGap that says so."""
        event = BookGap(self.venue, self.symbol, self.instrument, ts_ns, recv_ts_ns, reason, self.levels.last_seq,
                        first_bad_seq)  # fmt: skip
        self.invalidate()
        self.gaps += 1
        return event

    def invalidate(self) -> None:
        """Forget the levels until the venue's resync (a book keeping more state clears that too)."""
        self.levels.invalidate()

    def disconnect(self, url: str, recv_ts_ns: int) -> BookGap | None:
        """The feeding connection dropped: a verified book reports a gap and waits for its venue's resync."""
        if not self.levels.verified:
            return None
        return self.gap(f"connection {url} closed", recv_ts_ns, recv_ts_ns)


B = TypeVar("B", bound=VenueBook)  # a venue's book


class VenueSession(ABC, Generic[B]):
    """One venue's protocol state: instruments, books (B) and their sequencing, ticker merging."""

    VENUE: str
    WS_BASE_URL: str
    REST_BASE_URL: str
    CHANNELS: tuple[str, ...]  # channel names this venue accepts, e.g. ("aggTrade", "trade", "depth")
    DEFAULT_CHANNELS: tuple[str, ...] = ()  # what a connector subscribes when not told (empty: CHANNELS)
    POLL_INTERVAL_S: float | None = None  # how often the connector calls poll() (REST-only data, e.g. open interest)

    def __init__(
        self,
        symbols: Sequence[str],
        channels: Sequence[str],
        ws_base_url: str | None = None,
        rest_base_url: str | None = None,
    ) -> None:
        unknown = [c for c in channels if c not in self.CHANNELS]
        if unknown:
            raise ValueError(f"{self.VENUE}: unknown channels {unknown}; known: {list(self.CHANNELS)}")
        self.symbols = [self._symbol(s) for s in symbols]
        self.channels = list(channels)
        self.ws_base_url = (ws_base_url or self.WS_BASE_URL).rstrip("/")
        self.rest_base_url = (rest_base_url or self.REST_BASE_URL).rstrip("/")
        self.instruments: dict[str, Instrument] = {}  # by venue symbol
        self.books: dict[str, B] = {}  # by the venue's book key (symbol, or topic)
        self._canonical: dict[str, str] = {}  # symbol -> canonical instrument id (metadata wins once loaded)
        self._setup()

    def _symbol(self, symbol: str) -> str:
        """A symbol as the venue spells it (e.g. upper case)."""
        return symbol

    def _setup(self) -> None:
        """The venue's own state; ValueError for settings the venue cannot serve (the constructor stays one)."""

    def instrument(self, symbol: str) -> str:
        """The canonical id of a venue symbol: from instrument metadata once loaded, else from its name."""
        canonical = self._canonical.get(symbol)
        if canonical is None:
            canonical = self._canonical[symbol] = self._derive_instrument(symbol)
        return canonical

    @abstractmethod
    def _derive_instrument(self, symbol: str) -> str:
        """The canonical id of a symbol from its name alone (BadMessage when it cannot be one of ours)."""

    def _learn(self, instrument: Instrument) -> None:
        """Metadata from the venue's instruments answer: it names the symbol's canonical id from now on."""
        self.instruments[instrument.symbol] = instrument
        self._canonical[instrument.symbol] = instrument.instrument

    @abstractmethod
    def endpoints(self) -> list[WsEndpoint]:
        """Websocket connections to open, with subscriptions batched within the venue's limits."""

    def startup(self) -> Output:
        """Requests to make before streaming (instrument metadata); also used on periodic refresh."""
        return Output()

    def on_ws(self, payload: bytes | str, recv_ts_ns: int, url: str | None = None) -> Output:
        """One websocket message -> events. Raises BadMessage with the reason, and nothing else."""
        try:
            out = self._on_ws(payload, recv_ts_ns, url)
        except BadMessage:
            raise
        except Exception as exc:  # outside input: whatever a decoder or handler raised is this message's fault
            raise rejection(self.VENUE, "websocket message", exc) from exc
        if out.events or out.requests or out.ignored:
            return out
        raise BadMessage(f"{self.VENUE}: the message gave no event and no reason to ignore it", unexpected=True)

    def on_rest(self, request: RestRequest, body: bytes | str, recv_ts_ns: int) -> Output:
        """The answer to a request this session asked for (or a recorded one in a capture). Raises BadMessage only."""
        try:
            out = self._on_rest(request, body, recv_ts_ns)
        except BadMessage:
            raise
        except Exception as exc:
            raise rejection(self.VENUE, f"answer to {request.key}", exc) from exc
        if out.events or out.requests or out.ignored:
            return out
        raise BadMessage(f"{self.VENUE}: the answer to {request.key} gave nothing and no reason", unexpected=True)

    @abstractmethod
    def _on_ws(self, payload: bytes | str, recv_ts_ns: int, url: str | None) -> Output:
        """One websocket message -> events; raise BadMessage with the reason when it cannot be used."""

    def _on_rest(self, request: RestRequest, body: bytes | str, recv_ts_ns: int) -> Output:
        raise BadMessage(f"{self.VENUE}: no REST request of this session is called {request.key!r}")

    def poll(self) -> Output:
        """Requests for data the venue serves only over REST, made every POLL_INTERVAL_S."""
        return Output()

    def on_rest_error(self, request: RestRequest, reason: str, recv_ts_ns: int) -> Output:
        """A request failed after retries; the session may ask again (e.g. for a book snapshot)."""
        return Output()

    def rest_request_for(self, url: str) -> RestRequest | None:
        """Which of this session's requests a recorded REST URL answers (replay), or None."""
        return None

    def resubscribe_frames(self, url: str | None = None) -> list[str]:
        """Frames to send on connection `url` to resync broken books (venues without a REST resync)."""
        return []

    def on_disconnect(self, url: str, recv_ts_ns: int) -> Output:
        """A connection dropped: books it fed are no longer verified (a BookGap each; they resync later)."""
        out = Output()
        for book in self.books.values():
            if book.fed_by(url) and (gap := book.disconnect(url, recv_ts_ns)) is not None:
                out.events.append(gap)
        return out


def rejection(venue: str, what: str, exc: Exception) -> BadMessage:
    """The BadMessage for an exception a venue parser did not turn into one itself."""
    if isinstance(exc, RecursionError):  # msgspec's decoders on a frame nested thousands of levels deep
        return BadMessage(f"{venue}: {what} is nested too deeply to decode")
    if isinstance(exc, UnicodeError):
        return BadMessage(f"{venue}: {what} is not valid UTF-8: {exc}")
    if isinstance(exc, msgspec.DecodeError):  # ValidationError included
        return BadMessage(f"{venue}: malformed {what}: {exc}")
    return BadMessage(f"{venue}: cannot handle {what}: {type(exc).__name__}: {exc}", unexpected=True)
