"""A local exchange that speaks Binance USD-M's websocket stream format, for tests and demos.

Two sources of messages, one server:

* a generated market: per symbol a random walk on the tick grid, heavy-tailed sizes on the lot grid and
  bursts of one-sided aggression, deterministic given a seed;
* replay of capture files (``tapeline.io.capture``): each recorded payload is sent verbatim.

The server routes like the venue (2026): ``/market/...`` delivers aggTrade, markPrice, forceOrder;
``/public/...`` and tier-less paths deliver trade, depth, bookTicker. A stream subscribed on the wrong
tier is accepted and never delivered, exactly the silent failure the real venue has.

Every delivered trade message is recorded once in a ledger (callback and/or JSON lines) so tests know
exactly what was sent.

Run it: `python -m tools.simulator [--rate 5000 --replay capture.jsonl ...]`; defaults come from
TAPELINE_SIMULATOR__* (`SimulatorSettings`), options override them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from http import HTTPStatus
from pathlib import Path
from typing import IO, Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

import click
import msgspec
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from tapeline.config import CsvList
from tapeline.io.capture import merge_captures
from tapeline.venues.binance.session import USDM_CHANNEL_PATH, usdm_stream_urls

TICKS = {"BTCUSDT": "0.1", "ETHUSDT": "0.01"}
DEFAULT_TICK = "0.0001"
LOTS = {"BTCUSDT": "0.001", "ETHUSDT": "0.001"}
DEFAULT_LOT = "1"
START_PRICES = {"BTCUSDT": "60000", "ETHUSDT": "3000"}
DEFAULT_START_PRICE = "1.0"
GENERATED_CHANNELS = ("aggTrade", "trade")

SIZE_ALPHA = 1.2  # Pareto tail index: most trades are small, a few are huge
MIN_NOTIONAL = 50  # quote units of the smallest typical trade; sets the size scale per symbol
MAX_LOTS_FACTOR = 10_000  # cap on a single trade, in multiples of the typical smallest size
MOVE_PROB = 0.5  # chance that a trade moves the price one step in its direction
STEP_FRACTION = 100_000  # one step is ~1/100000 of the price (about 0.1 bp), at least one tick
BURST_SHARE = 0.8  # share of trades on the burst's side

CLOSE_SLOW_CLIENT = 1008  # policy violation: the client does not read fast enough
CLOSE_EXPIRED = 1000  # the venue ends every connection after 24 h with a normal close
CLOSE_STOPPING = 1001  # going away
CLOSE_TIMEOUT_S = 1.0  # then the TCP connection is dropped
MAX_BATCH_S = 0.05  # generate at most this much time's worth of trades per loop turn
MIN_SLEEP_S = 0.002


class SentTrade(msgspec.Struct, gc=False):
    """One trade message handed to at least one client (a ledger line)."""

    stream: str
    symbol: str
    id: int | None  # aggregate id on aggTrade, trade id on trade
    p: str
    q: str
    m: bool  # true: the aggressor sold
    T: int


# ------------------------------------------------------------------------------------------ market


def _grid(text: str) -> tuple[int, int]:
    """A tick or lot as (decimals, size in units of 10**-decimals): "0.01" -> (2, 1), "5" -> (0, 5)."""
    value = Decimal(text)
    decimals = max(0, -value.as_tuple().exponent)
    return decimals, int(value.scaleb(decimals))


def _fmt(units: int, decimals: int) -> str:
    """Fixed-point text without floats (so never scientific notation): (6000012, 1) -> "600001.2"."""
    if not decimals:
        return str(units)
    digits = str(units).rjust(decimals + 1, "0")
    return f"{digits[:-decimals]}.{digits[-decimals:]}"


@dataclass(slots=True)
class _Book:
    """Per-symbol state of the generated market. Prices in ticks, sizes in lots."""

    symbol: str
    streams: dict[str, str]  # channel -> stream name
    price_decimals: int
    tick_units: int
    qty_decimals: int
    lot_units: int
    price: int
    step: int
    base_lots: int
    agg_id: int
    trade_id: int
    next_burst_at: float
    burst_buy: bool | None = None
    burst_until: float = 0.0


class Fill(NamedTuple):
    book: _Book
    buy: bool  # aggressor side
    p: str
    q: str
    agg_id: int
    trade_id: int


class Market:
    """The generated market: deterministic given the seed; time is simulated as trades / rate."""

    def __init__(
        self,
        symbols: Sequence[str],
        rate: float,
        seed: int | None = None,
        channels: Sequence[str] = ("aggTrade",),
        burst_every_s: float = 20.0,
        burst_s: tuple[float, float] = (2.0, 6.0),
    ) -> None:
        if not symbols:
            raise ValueError("the simulator needs at least one symbol")
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        self.rate = float(rate)
        self.burst_every_s = burst_every_s
        self.burst_s = burst_s
        self.count = 0
        self._rng = random.Random(seed)
        self.books = [self._book(s.upper(), channels) for s in symbols]

    def _book(self, symbol: str, channels: Sequence[str]) -> _Book:
        price_decimals, tick_units = _grid(TICKS.get(symbol, DEFAULT_TICK))
        qty_decimals, lot_units = _grid(LOTS.get(symbol, DEFAULT_LOT))
        tick = Decimal(TICKS.get(symbol, DEFAULT_TICK))
        lot = Decimal(LOTS.get(symbol, DEFAULT_LOT))
        start = Decimal(START_PRICES.get(symbol, DEFAULT_START_PRICE))
        price = max(1, int(start / tick))
        return _Book(
            symbol=symbol,
            streams={ch: f"{symbol.lower()}@{ch}" for ch in channels},
            price_decimals=price_decimals,
            tick_units=tick_units,
            qty_decimals=qty_decimals,
            lot_units=lot_units,
            price=price,
            step=max(1, price // STEP_FRACTION),
            base_lots=max(1, round(MIN_NOTIONAL / (start * lot))),
            agg_id=self._rng.randrange(10**8, 10**9),
            trade_id=self._rng.randrange(10**9, 10**10),
            next_burst_at=self._rng.expovariate(1 / self.burst_every_s),
        )

    def next_fill(self) -> Fill:
        rng = self._rng
        book = self.books[rng.randrange(len(self.books))]
        self.count += 1
        buy = rng.random() < self._buy_share(book, self.count / self.rate)
        if rng.random() < MOVE_PROB:  # the aggressor took the last lot of the level
            book.price = book.price + book.step if buy else max(book.step, book.price - book.step)
        lots = min(MAX_LOTS_FACTOR * book.base_lots, int(rng.paretovariate(SIZE_ALPHA) * book.base_lots))
        book.agg_id += 1
        book.trade_id += 1
        return Fill(
            book,
            buy,
            _fmt(book.price * book.tick_units, book.price_decimals),
            _fmt(lots * book.lot_units, book.qty_decimals),
            book.agg_id,
            book.trade_id,
        )

    def _buy_share(self, book: _Book, now: float) -> float:
        """0.5 in a calm market; BURST_SHARE toward one side while a burst lasts."""
        rng = self._rng
        if book.burst_buy is not None and now >= book.burst_until:
            book.burst_buy = None
            book.next_burst_at = now + rng.expovariate(1 / self.burst_every_s)
        if book.burst_buy is None and now >= book.next_burst_at:
            book.burst_buy = rng.random() < 0.5
            book.burst_until = now + rng.uniform(*self.burst_s)
        if book.burst_buy is None:
            return 0.5
        return BURST_SHARE if book.burst_buy else 1 - BURST_SHARE


def render(channel: str, fill: Fill, ms: int) -> str:
    """The venue's data object for one fill (key order as the venue sends it)."""
    b = fill.book
    m = "false" if fill.buy else "true"
    if channel == "aggTrade":
        return (
            f'{{"e":"aggTrade","E":{ms},"a":{fill.agg_id},"s":"{b.symbol}","p":"{fill.p}","q":"{fill.q}",'
            f'"f":{fill.trade_id},"l":{fill.trade_id},"T":{ms},"m":{m}}}'
        )
    return (
        f'{{"e":"trade","E":{ms},"T":{ms},"s":"{b.symbol}","t":{fill.trade_id},"p":"{fill.p}","q":"{fill.q}",'
        f'"X":"MARKET","m":{m}}}'
    )


# ------------------------------------------------------------------------------------------ routing


def stream_tier(stream: str) -> str:
    """The tier ("market" or "public") whose paths deliver `stream`; unknown channels are market data."""
    name = stream.lstrip("!")
    parts = name.split("@")
    channel = parts[0] if stream.startswith("!") else (parts[1] if len(parts) > 1 else "")
    if channel.startswith("depth"):  # depth, depth5, depth20@100ms, ...
        return "public"
    return USDM_CHANNEL_PATH.get(channel, "market")


@dataclass(frozen=True, slots=True)
class Route:
    tier: str
    combined: bool  # /stream (envelope) or /ws (bare data)
    streams: tuple[str, ...]


def parse_route(path: str) -> Route | None:
    """`/market/stream?streams=a/b`, `/public/ws/a`, `/ws`, ... -> Route; None for unknown paths."""
    url = urlsplit(path)
    segments = [s for s in url.path.split("/") if s]
    tier = segments.pop(0) if segments and segments[0] in ("market", "public") else "public"
    if segments[:1] == ["stream"] and len(segments) == 1:
        query = parse_qs(url.query).get("streams", [""])[0]
        return Route(tier, True, tuple(s for s in query.split("/") if s))
    if segments[:1] == ["ws"]:
        return Route(tier, False, tuple(segments[1:]))
    return None


# bare payloads name their event, not their stream: depthUpdate arrives on <s>@depth@100ms etc.
_EVENT_CHANNEL = {"depthUpdate": "depth", "markPriceUpdate": "markPrice", "24hrTicker": "ticker"}


def _bare_prefix(data: dict[str, Any]) -> str | None:
    symbol = data.get("s") or (data.get("o") or {}).get("s")
    event = data.get("e")
    if not isinstance(symbol, str) or not isinstance(event, str):
        return None
    return f"{symbol.lower()}@{_EVENT_CHANNEL.get(event, event)}"


def _matches_prefix(stream: str, prefix: str) -> bool:
    return stream == prefix or stream.startswith((prefix + "@", prefix + "_"))


# ------------------------------------------------------------------------------------------ server


class _Conn:
    """One client: its route, subscriptions and bounded send queue (drained by a writer task)."""

    __slots__ = ("combined", "dead", "limit", "queue", "subs", "tier", "wakeup", "ws")

    def __init__(self, ws: ServerConnection, route: Route, limit: int) -> None:
        self.ws = ws
        self.tier = route.tier
        self.combined = route.combined
        self.subs: dict[str, None] = {}  # insertion-ordered set, for LIST_SUBSCRIPTIONS
        self.queue: deque[str] = deque()
        self.wakeup = asyncio.Event()
        self.limit = limit
        self.dead = False

    def push(self, message: str) -> bool:
        """Queue a message; False when the connection is closing or its queue is full."""
        if self.dead or len(self.queue) >= self.limit:
            return False
        self.queue.append(message)
        if not self.wakeup.is_set():
            self.wakeup.set()
        return True

    async def write(self) -> None:
        while True:
            while self.queue:
                await self.ws.send(self.queue.popleft())
            self.wakeup.clear()
            await self.wakeup.wait()


class Simulator:
    """Binance USD-M websocket streams on a local port, from a generated market or from captures.

    `replay_speed` None replays as fast as clients read; 1.0 at the recorded pace. `max_queue` is the
    per-connection backlog (messages) after which a slow client is closed with 1008. `on_sent` runs in
    the server's event loop. Bursts: `burst_every_s` mean calm time per symbol, `burst_s` duration
    range, both in simulated seconds (trades / rate).

    A trade message counts as delivered (ledger, `on_sent`, `sent_trades`) once it is in at least one
    subscriber's send queue. Generated trades of symbols nobody subscribes to advance the market (so
    a seed gives the same market whoever listens) but are neither sent nor recorded.
    """

    def __init__(
        self,
        symbols: Sequence[str],
        rate: float,
        seed: int | None = None,
        max_trades: int | None = None,
        channels: Sequence[str] = ("aggTrade",),
        replay: Sequence[Path | str] = (),
        replay_speed: float | None = None,
        disconnect_after_s: float | None = None,
        ledger_path: Path | str | None = None,
        on_sent: Callable[[SentTrade], None] | None = None,
        max_queue: int = 20_000,
        burst_every_s: float = 20.0,
        burst_s: tuple[float, float] = (2.0, 6.0),
    ) -> None:
        unknown = [c for c in channels if c not in GENERATED_CHANNELS]
        if unknown and not replay:
            raise ValueError(f"the simulator generates {GENERATED_CHANNELS}, not {unknown}")
        self.market = None if replay else Market(symbols, rate, seed, channels, burst_every_s, burst_s)
        self.max_trades = max_trades
        self.replay = [Path(p) for p in replay]
        self.replay_speed = replay_speed
        self.disconnect_after_s = disconnect_after_s
        self.ledger_path = ledger_path
        self.on_sent = on_sent
        self.max_queue = max_queue
        self.sent_trades = 0  # trade messages delivered (= ledger lines)
        self._served = {s for b in self.market.books for s in b.streams.values()} if self.market else set()
        self._index: dict[str, set[_Conn]] = {}  # deliverable stream -> subscribed connections
        self._conns: set[_Conn] = set()
        self._active = asyncio.Event()  # some connection wants what the source can serve (binds on use)
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: Server | None = None
        self._ledger: IO[bytes] | None = None

    # -- lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen and start the market; returns the bound port."""
        if self.ledger_path is not None:
            self._ledger = open(self.ledger_path, "ab")  # noqa: SIM115 - closed in stop()
        self._server = await serve(
            self._handle,
            host,
            port,
            process_request=_reject_unknown_path,
            compression=None,  # the venue's streams are uncompressed; deflate would dominate CPU
            write_limit=2**20,
            close_timeout=CLOSE_TIMEOUT_S,
        )
        source = self._generate(self.market) if self.market else self._replay()
        self._spawn(source)
        return self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._server is not None:
            self._server.close(close_connections=False)  # ours below are bounded even for stuck clients
            await asyncio.gather(*(self._close(c, CLOSE_STOPPING, "simulator stopping") for c in list(self._conns)))
            await self._server.wait_closed()
        if self._ledger is not None:
            self._ledger.close()
            self._ledger = None

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- connections

    async def _handle(self, ws: ServerConnection) -> None:
        route = parse_route(ws.request.path if ws.request else "")
        assert route is not None  # _reject_unknown_path answered 404 otherwise
        conn = _Conn(ws, route, self.max_queue)
        self._conns.add(conn)
        self._subscribe(conn, route.streams)
        writer = self._spawn(self._write(conn))
        after_s = self.disconnect_after_s
        expiry = self._spawn(self._expire(conn, after_s)) if after_s is not None else None
        try:
            async for message in ws:
                self._on_request(conn, message)
        except ConnectionClosed:
            pass
        finally:
            conn.dead = True
            self._unregister(conn)
            writer.cancel()
            if expiry is not None:
                expiry.cancel()

    async def _write(self, conn: _Conn) -> None:
        with contextlib.suppress(ConnectionClosed):
            await conn.write()

    async def _expire(self, conn: _Conn, after_s: float) -> None:
        await asyncio.sleep(after_s)
        self._kick(conn, CLOSE_EXPIRED, "connection lifetime reached (simulated 24 h limit)")

    def _kick(self, conn: _Conn, code: int, reason: str) -> None:
        """Close a connection; safe to call while iterating the index (removal happens in a task)."""
        if not conn.dead:
            conn.dead = True
            self._spawn(self._close(conn, code, reason))

    async def _close(self, conn: _Conn, code: int, reason: str) -> None:
        conn.dead = True
        conn.queue.clear()  # the close frame goes right after what is already on the socket
        self._unregister(conn)
        try:
            # A client that stopped reading never completes the closing handshake.
            await asyncio.wait_for(conn.ws.close(code, reason), timeout=CLOSE_TIMEOUT_S)
        except TimeoutError:
            conn.ws.transport.abort()

    def _unregister(self, conn: _Conn) -> None:
        self._conns.discard(conn)
        self._unsubscribe(conn, list(conn.subs))

    # -- subscriptions

    def _subscribe(self, conn: _Conn, streams: Iterable[str]) -> None:
        for stream in streams:
            if stream in conn.subs:
                continue
            conn.subs[stream] = None
            if stream_tier(stream) == conn.tier:  # otherwise accepted but never delivered
                self._index.setdefault(stream, set()).add(conn)
        self._refresh_active()

    def _unsubscribe(self, conn: _Conn, streams: Iterable[str]) -> None:
        for stream in streams:
            conn.subs.pop(stream, None)
            subscribers = self._index.get(stream)
            if subscribers is not None:
                subscribers.discard(conn)
                if not subscribers:
                    del self._index[stream]
        self._refresh_active()

    def _refresh_active(self) -> None:
        # Replay cannot know its streams in advance, so any deliverable subscription wakes it.
        wanted = bool(self._index) if self.replay else any(s in self._served for s in self._index)
        if wanted:
            self._active.set()
        else:
            self._active.clear()

    def _on_request(self, conn: _Conn, text: str | bytes) -> None:
        """The venue's live requests: SUBSCRIBE, UNSUBSCRIBE, LIST_SUBSCRIPTIONS."""
        try:
            request = msgspec.json.decode(text)
        except msgspec.DecodeError as exc:
            conn.push(_error(3, f"Invalid JSON: {exc}", None))
            return
        if not isinstance(request, dict):
            conn.push(_error(3, "Invalid JSON: expected an object", None))
            return
        request_id, method, params = request.get("id"), request.get("method"), request.get("params", [])
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
                conn.push(_error(2, "Invalid request: params must be a list of stream names", request_id))
                return
            (self._subscribe if method == "SUBSCRIBE" else self._unsubscribe)(conn, params)
            conn.push(_reply(None, request_id))
        elif method == "LIST_SUBSCRIPTIONS":
            conn.push(_reply(list(conn.subs), request_id))
        else:
            conn.push(_error(2, f"Invalid request: unknown method {method!r}", request_id))

    # -- delivery

    def _deliver(self, stream: str, data: str, envelope: str | None = None) -> bool:
        """Queue one message for the subscribers of `stream`; True if at least one took it."""
        taken = False
        for conn in self._index.get(stream, ()):
            if conn.combined:
                envelope = envelope or f'{{"stream":"{stream}","data":{data}}}'
                ok = conn.push(envelope)
            else:
                ok = conn.push(data)
            if not ok and not conn.dead:
                self._kick(conn, CLOSE_SLOW_CLIENT, f"send queue over {conn.limit} messages")
            taken = taken or ok
        return taken

    def _record(self, records: list[SentTrade]) -> None:
        if not records:
            return
        self.sent_trades += len(records)
        if self.on_sent is not None:
            for record in records:
                self.on_sent(record)
        if self._ledger is not None:
            # One write and a flush per batch: whole lines, visible to readers within a loop turn.
            self._ledger.write(b"".join(msgspec.json.encode(r) + b"\n" for r in records))
            self._ledger.flush()

    # -- generated market

    async def _generate(self, market: Market) -> None:
        loop = asyncio.get_running_loop()
        rate = market.rate
        max_batch = max(1, int(rate * MAX_BATCH_S))
        while not self._exhausted(market):
            await self._active.wait()
            # Pace from the moment someone listens; a pause never causes a catch-up burst.
            anchor, base = loop.time(), market.count
            while self._active.is_set() and not self._exhausted(market):
                due = base + 1 + int((loop.time() - anchor) * rate)
                if self.max_trades is not None:
                    due = min(due, self.max_trades)
                self._emit(market, min(due - market.count, max_batch))
                ahead = (market.count - base) / rate - (loop.time() - anchor)
                # Behind: just yield to the writers. Ahead: sleep, but at least MIN_SLEEP_S so high
                # rates go out in batches instead of one loop turn per trade.
                await asyncio.sleep(max(ahead, MIN_SLEEP_S) if ahead > 0 else 0)

    def _exhausted(self, market: Market) -> bool:
        return self.max_trades is not None and market.count >= self.max_trades

    def _emit(self, market: Market, n: int) -> None:
        ms = time.time_ns() // 1_000_000
        records = []
        for _ in range(n):
            fill = market.next_fill()
            for channel, stream in fill.book.streams.items():
                if stream in self._index and self._deliver(stream, render(channel, fill, ms)):
                    trade_id = fill.agg_id if channel == "aggTrade" else fill.trade_id
                    records.append(SentTrade(stream, fill.book.symbol, trade_id, fill.p, fill.q, not fill.buy, ms))
        self._record(records)

    # -- replay

    async def _replay(self) -> None:
        loop = asyncio.get_running_loop()
        anchor: tuple[float, int] | None = None  # pacing origin: (loop time, recv_ts_ns)
        for number, line in enumerate(merge_captures(self.replay)):
            if line.conn and line.conn.startswith("http"):
                continue  # REST answers are not websocket traffic
            if not self._active.is_set():
                await self._active.wait()
                anchor = None  # resume at the recorded pace from here, no catch-up
            if self.replay_speed and line.recv_ts_ns is not None:
                anchor = anchor or (loop.time(), line.recv_ts_ns)
                delay = anchor[0] + (line.recv_ts_ns - anchor[1]) / 1e9 / self.replay_speed - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            elif self._backlogged():
                await self._drained()
            if number % 256 == 0:
                await asyncio.sleep(0)  # let writers and readers run
            self._replay_payload(line.raw)

    def _backlogged(self) -> bool:
        return any(len(c.queue) > c.limit // 2 for c in self._conns)

    async def _drained(self) -> None:
        """As-fast-as-possible replay waits for readers instead of disconnecting them."""
        while self._backlogged():
            await asyncio.sleep(0.001)

    def _replay_payload(self, raw: str) -> None:
        try:
            payload = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            return  # not JSON: nothing a venue would have sent on a stream
        if not isinstance(payload, dict):
            return
        if isinstance(payload.get("stream"), str) and isinstance(payload.get("data"), dict):
            data = payload["data"]
            delivered = self._deliver_enveloped(payload["stream"], raw, data)
        else:
            data = payload
            prefix = _bare_prefix(payload)
            delivered = self._deliver_bare(prefix, raw) if prefix else []
        if delivered and data.get("e") in ("aggTrade", "trade"):
            self._record([_ledger_line(stream, data) for stream in delivered])

    def _deliver_enveloped(self, stream: str, raw: str, data: dict[str, Any]) -> list[str]:
        """Combined subscribers get `raw` verbatim; raw (/ws) ones its data object."""
        if stream not in self._index:
            return []
        head = f'{{"stream":"{stream}","data":'
        compact = raw.startswith(head) and raw.endswith("}")
        bare = raw[len(head) : -1] if compact else msgspec.json.encode(data).decode()
        return [stream] if self._deliver(stream, bare, envelope=raw) else []

    def _deliver_bare(self, prefix: str, raw: str) -> list[str]:
        """Bare payloads go to every stream they belong to (<s>@depth matches <s>@depth@100ms ...)."""
        streams = [s for s in self._index if _matches_prefix(s, prefix)]
        return [s for s in streams if self._deliver(s, raw)]


def _ledger_line(stream: str, data: dict[str, Any]) -> SentTrade:
    trade_id = data.get("a") if data.get("e") == "aggTrade" else data.get("t")
    return SentTrade(stream, str(data.get("s")), trade_id, str(data.get("p")), str(data.get("q")),
                     bool(data.get("m")), int(data.get("T") or 0))  # fmt: skip


def _reply(result: Any, request_id: Any) -> str:
    return msgspec.json.encode({"result": result, "id": request_id}).decode()


def _error(code: int, msg: str, request_id: Any) -> str:
    return msgspec.json.encode({"error": {"code": code, "msg": msg}, "id": request_id}).decode()


def _reject_unknown_path(connection: ServerConnection, request: Request) -> Response | None:
    if parse_route(request.path) is None:
        return connection.respond(HTTPStatus.NOT_FOUND, "unknown path; use /market|/public + /stream or /ws\n")
    return None


# ------------------------------------------------------------------------------------------ threads


class SimulatorThread:
    """Run a Simulator in a background thread with its own event loop (for synchronous tests).

    with SimulatorThread(Simulator(["BTCUSDT"], rate=1000)) as sim:
        connect(f"{sim.base_url}/market/stream?streams=btcusdt@aggTrade")
    """

    def __init__(self, simulator: Simulator, host: str = "127.0.0.1", port: int = 0) -> None:
        self.simulator = simulator
        self.host = host
        self.port = port
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="tapeline-simulator", daemon=True)

    @property
    def base_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    def start(self) -> int:
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error
        return self.port

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(timeout=10)

    def __enter__(self) -> SimulatorThread:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _main(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        try:
            self.port = await self.simulator.start(self.host, self.port)
        except BaseException as exc:  # reported to the starting thread
            self._error = exc
            self._ready.set()
            return
        self._loop, self._stopping = asyncio.get_running_loop(), asyncio.Event()
        self._ready.set()
        await self._stopping.wait()
        await self.simulator.stop()


def run_in_thread(simulator: Simulator, host: str = "127.0.0.1", port: int = 0) -> tuple[int, Callable[[], None]]:
    """Start `simulator` in a background thread; returns (port, stop)."""
    runner = SimulatorThread(simulator, host, port)
    return runner.start(), runner.stop


__all__ = [
    "Fill",
    "Market",
    "Route",
    "SentTrade",
    "Simulator",
    "SimulatorThread",
    "parse_route",
    "render",
    "run_in_thread",
    "stream_tier",
]


class SimulatorSettings(BaseSettings):
    """TAPELINE_SIMULATOR__HOST, __PORT, __SYMBOLS, __RATE, __SEED, __REPLAY."""

    model_config = SettingsConfigDict(env_prefix="TAPELINE_SIMULATOR__", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 9443
    symbols: CsvList = Field(default_factory=lambda: ["BTCUSDT", "ETHUSDT"])
    rate: float = 200.0  # trades per second over all symbols
    seed: int | None = None
    replay: list[Path] = Field(default_factory=list)


log = logging.getLogger("tools.simulator")


@click.command()
@click.option("--host")
@click.option("--port", type=int)
@click.option("--rate", type=float, help="Generated trades per second over all symbols.")
@click.option("--symbols", help="Comma-separated, e.g. BTCUSDT,ETHUSDT.")
@click.option("--channels", default="aggTrade", show_default=True, help="aggTrade and/or trade.")
@click.option("--seed", type=int)
@click.option("--max-trades", type=int, help="Go quiet after this many generated trades.")
@click.option("--replay", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--speed", type=float, help="Replay at recorded pace times this; default: as fast as read.")
@click.option("--ledger", type=click.Path(dir_okay=False, path_type=Path), help="JSON lines of sent trades.")
@click.option("--disconnect-after", type=float, help="Close every connection after this many seconds.")
def main(
    host: str | None, port: int | None, rate: float | None, symbols: str | None, channels: str, seed: int | None,
    max_trades: int | None, replay: tuple[Path, ...], speed: float | None, ledger: Path | None,
    disconnect_after: float | None,
) -> None:  # fmt: skip
    cfg = SimulatorSettings()
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    symbol_list = symbols.split(",") if symbols else cfg.symbols
    sim = Simulator(
        symbol_list, rate or cfg.rate, seed if seed is not None else cfg.seed, max_trades, channels.split(","),
        replay or cfg.replay, speed, disconnect_after, ledger,
    )  # fmt: skip
    asyncio.run(_serve(sim, host or cfg.host, port if port is not None else cfg.port, symbol_list, channels))


async def _serve(sim: Simulator, host: str, port: int, symbols: list[str], channels: str) -> None:
    port = await sim.start(host, port)
    base = f"ws://{host}:{port}"
    log.info("simulated Binance USD-M on %s (set TAPELINE_CONNECTOR__WS_BASE_URL=%s)", base, base)
    for url in usdm_stream_urls(base, symbols, channels.split(",")):
        log.info("  %s", url)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("stopping after %d trade messages", sim.sent_trades)
    await sim.stop()


if __name__ == "__main__":
    main()
