"""Venue connector: drives a sans-I/O venue session with real websockets and REST.

One task per websocket endpoint: connect, send the venue's subscribe frames, keep the connection
alive (the venue's ping frame, a silence watchdog, a planned reconnect before the venue's own
lifetime limit), and hand every message to the session. Events go to Kafka through the event sink;
REST requests the session makes (instrument metadata, book snapshots, polls) are performed with
rate-limit back-off and their answers fed back. Bad messages go to the dead-letter topic and the
loop keeps going. Reconnects use jittered exponential backoff that resets after a healthy session.
After a reconnect, every instrument whose trades came over that connection gets a TradeGap from the
last message received to the resubscription: its bars over that span are flagged incomplete.

No exception ends an endpoint's loop: a failure nothing anticipated (publishing, recording, a bug)
while handling a message is logged with its traceback, counted, dead-lettered with the payload, and
the connection is rebuilt with backoff (its books resync). `register_health` exposes what probes
need: liveness fails when a loop task ended or the event loop stalls, readiness when an endpoint is
not connected or has been silent past its watchdog.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import websockets
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_never, wait_exponential_jitter

from tapeline.config import ConnectorSettings, Settings
from tapeline.domain.errors import BadMessage
from tapeline.domain.events import BookGap, Event, Trade, TradeGap
from tapeline.io.capture import CaptureWriter
from tapeline.io.kafka import DeadLetters, EventPublisher, ensure_topics, make_producer
from tapeline.io.metrics import CONNECTOR_FAILURES, MESSAGES_IGNORED, MESSAGES_IN, RECONNECTS
from tapeline.io.rest import RestClient, RestError
from tapeline.runtime.observability import Health, Heartbeat, Status, tasks_running
from tapeline.venues import make_session
from tapeline.venues.base import Output, RestRequest, VenueSession, WsEndpoint

log = logging.getLogger(__name__)

HEALTHY_SESSION_S = 30.0  # a session that lasted this long resets the backoff
PULSE_S = 1.0  # the event loop's heartbeat; liveness fails after STALLED_S without one
STALLED_S = 15.0
# Network trouble: a reconnect, logged briefly. Anything else also reconnects, with its traceback logged.
NETWORK_ERRORS = (OSError, asyncio.TimeoutError, websockets.ConnectionClosed, websockets.InvalidHandshake)
EventSink = Callable[[Sequence[Event]], None]
RejectSink = Callable[[bytes | str, str, str], None]  # raw, reason, context


class _PlannedReconnect(Exception):
    """The venue's connection lifetime is nearly over: reconnect now, on our terms."""


class _MessageFailed(Exception):
    """Handling one message failed unexpectedly (it was dead-lettered): rebuild the connection."""


@dataclass
class EndpointState:
    """What readiness needs to know of one websocket endpoint (monotonic times)."""

    connected: bool = False
    last_message: float | None = None
    connects: int = 0


class Connector:
    def __init__(
        self,
        session: VenueSession[Any],  # any venue's (its book type does not matter here)
        settings: ConnectorSettings,
        on_events: EventSink,
        on_reject: RejectSink,
        recorder: CaptureWriter | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.session = session
        self.settings = settings
        self.on_events = on_events
        self.on_reject = on_reject
        self.recorder = recorder
        self._rest: RestClient | None = None
        self._in_flight: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._messages_in = MESSAGES_IN.labels(session.VENUE)
        self._last_recv: dict[str, int] = {}  # url -> receive time of its last message
        self._dropped: dict[str, int] = {}  # url -> receive time of the last message before it dropped
        self._trade_keys: dict[str, set[tuple[str, str]]] = {}  # url -> (symbol, instrument) it carried trades of
        self._reconnects = RECONNECTS.labels(session.VENUE)
        self._clock = clock
        self.endpoints = {ep.url: EndpointState() for ep in session.endpoints()}
        self._loops: list[asyncio.Task[None]] = []
        self.pulse = Heartbeat("connector event loop", STALLED_S, clock)

    async def run(self, stop: asyncio.Event) -> None:
        async with RestClient(self.settings.rest_timeout_s) as rest:
            self._rest = rest
            self._handle(self.session.startup())
            await asyncio.gather(*list(self._tasks), return_exceptions=True)  # instruments before any message
            loops = [asyncio.create_task(self._keep_connected(ep, stop), name=f"endpoint {ep.url}")
                     for ep in self.session.endpoints()]  # fmt: skip
            loops.append(asyncio.create_task(self._every(self.settings.refresh_s, self.session.startup, stop),
                                             name="instrument refresh"))  # fmt: skip
            if self.session.POLL_INTERVAL_S:
                loops.append(asyncio.create_task(self._every(self.session.POLL_INTERVAL_S, self.session.poll, stop),
                                                 name="REST poll"))  # fmt: skip
            loops.append(asyncio.create_task(self._beat(), name="heartbeat"))
            self._loops = loops
            try:
                await stop.wait()
            finally:
                for task in [*loops, *self._tasks]:
                    task.cancel()
                await asyncio.gather(*loops, *self._tasks, return_exceptions=True)

    # ----------------------------------------------------------------- health

    def register_health(self, health: Health) -> None:
        """Liveness: every loop runs and the event loop turns. Readiness: every endpoint is live and fresh."""
        health.liveness("connector loops", tasks_running(lambda: self._loops, "connector loops"))
        health.liveness("event loop", self.pulse.check)
        health.readiness("venue endpoints", self.endpoints_status)

    def endpoints_status(self) -> Status:
        now, limit = self._clock(), self.settings.stale_after_s
        problems = []
        for url, state in self.endpoints.items():
            if not state.connected:
                problems.append(f"{url}: not connected")
            elif state.last_message is None or now - state.last_message > limit:
                silent = "no message yet" if state.last_message is None else f"silent {now - state.last_message:.0f}s"
                problems.append(f"{url}: {silent} (watchdog {limit:.0f}s)")
        if problems:
            return Status(False, "; ".join(problems))
        return Status(True, f"{len(self.endpoints)} endpoints connected and receiving")

    async def _beat(self) -> None:
        while True:
            self.pulse.beat()
            await asyncio.sleep(PULSE_S)

    # ----------------------------------------------------------------- websocket

    async def _keep_connected(self, endpoint: WsEndpoint, stop: asyncio.Event) -> None:
        """Connect, stream, reconnect, until `stop`: every exception is a reconnect with backoff, never the end."""
        cfg = self.settings

        def log_reconnect(state: RetryCallState) -> None:
            assert state.next_action is not None and state.outcome is not None  # set before before_sleep runs
            log.warning(
                "%s: reconnecting in %.1fs after %r", endpoint.url, state.next_action.sleep, state.outcome.exception()
            )

        while not stop.is_set():
            retrying = AsyncRetrying(
                retry=retry_if_exception_type(Exception),  # only cancellation (a BaseException) ends the loop
                wait=wait_exponential_jitter(initial=cfg.backoff_initial_s, max=cfg.backoff_max_s),
                stop=stop_never,
                before_sleep=log_reconnect,
            )
            async for attempt in retrying:
                with attempt:
                    await self._session(endpoint)  # returns only after a healthy session: backoff restarts

    async def _session(self, endpoint: WsEndpoint) -> None:
        url = endpoint.url
        state = self.endpoints.setdefault(url, EndpointState())
        async with websockets.connect(url, ping_interval=20, ping_timeout=20, max_size=2**24) as ws:
            log.info("connected %s", url)
            started = time.monotonic()
            state.connected, state.last_message = True, None
            state.connects += 1
            try:
                for frame in endpoint.subscribe:
                    await ws.send(frame)
                self._report_trade_gaps(url)
                every, ping = endpoint.keepalive_s, endpoint.keepalive_frame
                keepalive = (
                    asyncio.create_task(self._keepalive(ws, every, ping)) if every and ping is not None else None
                )
                try:
                    await self._receive(ws, endpoint, state, started)
                finally:
                    if keepalive:
                        keepalive.cancel()
            except Exception as exc:
                state.connected = False
                self._reconnects.inc()
                self._dropped.setdefault(url, self._last_recv.get(url, time.time_ns()))
                self._handle(self.session.on_disconnect(url, time.time_ns()))
                if isinstance(exc, _PlannedReconnect):
                    return
                if not isinstance(exc, (*NETWORK_ERRORS, _MessageFailed)):
                    CONNECTOR_FAILURES.labels(self.session.VENUE, "connection").inc()
                    log.exception("%s: unexpected failure; reconnecting", url)
                if time.monotonic() - started < HEALTHY_SESSION_S:
                    raise
                log.info("%s: dropped after a healthy session (%r); reconnecting now", url, exc)
            finally:
                state.connected = False

    async def _receive(
        self, ws: websockets.ClientConnection, endpoint: WsEndpoint, state: EndpointState, started: float
    ) -> None:
        stale_after = self.settings.stale_after_s
        deadline = started + endpoint.max_lifetime_s if endpoint.max_lifetime_s else None
        while True:
            if deadline and time.monotonic() > deadline:
                raise _PlannedReconnect()
            # Watchdog: a connection that stays silent is dead even if TCP says otherwise.
            payload = await asyncio.wait_for(ws.recv(decode=False), timeout=stale_after)
            recv_ts = self._last_recv[endpoint.url] = time.time_ns()
            state.last_message = self._clock()
            self._messages_in.inc()
            try:
                frames = self._on_message(endpoint.url, payload, recv_ts)
            except Exception as exc:  # not the message's fault alone: dead-letter it and rebuild the connection
                CONNECTOR_FAILURES.labels(self.session.VENUE, "message").inc()
                log.exception(
                    "%s: unexpected failure handling a message; dead-lettering it, reconnecting", endpoint.url
                )
                self.on_reject(payload, f"connector: unexpected {type(exc).__name__} handling the message: {exc}",
                               endpoint.url)  # fmt: skip
                raise _MessageFailed() from exc
            for frame in frames:
                await ws.send(frame)

    def _on_message(self, url: str, payload: bytes, recv_ts: int) -> list[str]:
        """One websocket message through the session to the sinks; returns frames to send back (resubscriptions)."""
        if self.recorder:
            self.recorder.write(url, payload, recv_ts)
        try:
            out = self.session.on_ws(payload, recv_ts, url)
        except BadMessage as exc:
            if exc.unexpected:
                CONNECTOR_FAILURES.labels(self.session.VENUE, "parser").inc()
                log.error("%s: a parser failed unexpectedly: %s", url, exc.reason, exc_info=exc.__cause__)
            self.on_reject(payload, exc.reason, url)
            return []
        if not out.events and out.ignored:
            MESSAGES_IGNORED.labels(self.session.VENUE, out.ignored).inc()
        self._handle(out)
        trade_keys = self._trade_keys.setdefault(url, set())
        book_gap = False
        for event in out.events:
            if type(event) is Trade:
                trade_keys.add((event.symbol, event.instrument))
            elif type(event) is BookGap:
                book_gap = True
        # Venues without a REST resync (Bybit, OKX) resync a broken book by subscribing again.
        return self.session.resubscribe_frames(url) if book_gap else []

    def _report_trade_gaps(self, url: str) -> None:
        """Subscribed again after a drop: trades between the last message and now may be missing."""
        dropped = self._dropped.pop(url, None)
        if dropped is None:
            return
        now, venue = time.time_ns(), self.session.VENUE
        reason = f"connection {url} dropped; resubscribed"
        gaps = [TradeGap(venue, symbol, instrument, dropped, now, reason)
                for symbol, instrument in sorted(self._trade_keys.get(url, ()))]  # fmt: skip
        if gaps:
            log.warning("%s: trade gap of %.1fs for %d instruments", url, (now - dropped) / 1e9, len(gaps))
            self.on_events(gaps)

    async def _keepalive(self, ws: websockets.ClientConnection, interval_s: float, frame: str) -> None:
        while True:
            await asyncio.sleep(interval_s)
            with contextlib.suppress(websockets.ConnectionClosed):
                await ws.send(frame)

    # ---------------------------------------------------------------------- REST

    def _handle(self, out: Output) -> None:
        if out.events:
            self.on_events(out.events)
        for request in out.requests:
            if request.key not in self._in_flight:  # one snapshot per book at a time
                self._in_flight.add(request.key)
                task = asyncio.create_task(self._fetch(request))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _fetch(self, request: RestRequest) -> None:
        assert self._rest is not None
        try:
            body = await self._rest.fetch(request)
        except (RestError, OSError, TimeoutError) as exc:
            log.error("%s failed after retries: %s", request.url, exc)
            self._in_flight.discard(request.key)
            self._handle(self.session.on_rest_error(request, str(exc), time.time_ns()))
            return
        recv_ts = time.time_ns()
        self._in_flight.discard(request.key)
        if self.recorder:
            conn = request.url
            if request.method != "GET":  # a POST's body says what it asks (Hyperliquid /info)
                conn = f"{request.method} {request.url} {(request.body or b'').decode()}"
            self.recorder.write(conn, body, recv_ts)
        try:
            out = self.session.on_rest(request, body, recv_ts)
        except BadMessage as exc:
            self.on_reject(body, exc.reason, request.url)
            return
        try:
            self._handle(out)
        except Exception as exc:  # a task nobody awaits: say what failed here, or nobody will
            CONNECTOR_FAILURES.labels(self.session.VENUE, "rest").inc()
            log.exception("%s: unexpected failure publishing the answer's events", request.url)
            self.on_reject(body, f"connector: unexpected {type(exc).__name__} handling the answer: {exc}", request.url)

    async def _every(self, interval_s: float, requests: Callable[[], Output], stop: asyncio.Event) -> None:
        """Instrument metadata refresh, and REST polls for data without a stream (open interest)."""
        while not stop.is_set():
            await asyncio.sleep(interval_s)
            try:
                self._handle(requests())
            except Exception:  # the next turn tries again; the loop must outlive one failure
                CONNECTOR_FAILURES.labels(self.session.VENUE, "poll").inc()
                log.exception("periodic REST requests failed")


def build(settings: Settings, recorder: CaptureWriter | None = None) -> tuple[Connector, EventPublisher]:
    """The live wiring: the configured venue session, publishing to Kafka, rejects to the dead-letter topic."""
    cfg = settings.connector
    session = make_session(cfg.venue, cfg.symbols, cfg.channels, cfg.ws_base_url, cfg.rest_base_url)
    ensure_topics(settings, settings.topics.venue_topics)
    producer = make_producer(settings)
    publisher = EventPublisher(producer, settings.topics)
    dead_letters = DeadLetters(producer, settings.topics.dead_letter, f"connector:{cfg.venue}")
    return Connector(session, cfg, publisher.publish, dead_letters.send, recorder), publisher


async def serve_producer(publisher: EventPublisher, stop: asyncio.Event) -> None:
    """Send trade batches that are due and serve delivery callbacks; flush everything on the way out."""
    producer = publisher.producer
    while not stop.is_set():
        publisher.flush_due()
        producer.poll(0)
        await asyncio.sleep(0.005)
    publisher.flush_all()
    remaining = producer.flush(30)
    if remaining:
        log.error("%d messages were not delivered before shutdown", remaining)
