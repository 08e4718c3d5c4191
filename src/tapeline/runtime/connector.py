"""Venue connector: drives a sans-I/O venue session with real websockets and REST.

One task per websocket endpoint: connect, send the venue's subscribe frames, keep the connection
alive (the venue's ping frame, a silence watchdog, a planned reconnect before the venue's own
lifetime limit), and hand every message to the session. Events go to Kafka through the event sink;
REST requests the session makes (instrument metadata, book snapshots, polls) are performed with
rate-limit back-off and their answers fed back. Bad messages go to the dead-letter topic and the
loop keeps going. Reconnects use jittered exponential backoff that resets after a healthy session.
After a reconnect, every instrument whose trades came over that connection gets a TradeGap from the
last message received to the resubscription: its bars over that span are flagged incomplete.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import msgspec
import websockets
from tenacity import AsyncRetrying, retry_if_exception_type, stop_never, wait_exponential_jitter

from tapeline.config import ConnectorSettings, Settings
from tapeline.domain.errors import BadMessage
from tapeline.domain.events import BookGap, Trade, TradeGap
from tapeline.io.capture import CaptureWriter
from tapeline.io.kafka import DeadLetters, EventPublisher, ensure_topics, make_producer
from tapeline.io.metrics import MESSAGES_IN, RECONNECTS
from tapeline.io.rest import RestClient, RestError
from tapeline.venues import make_session
from tapeline.venues.base import Output, RestRequest, VenueSession, WsEndpoint

log = logging.getLogger(__name__)

HEALTHY_SESSION_S = 30.0  # a session that lasted this long resets the backoff
RETRYABLE = (OSError, asyncio.TimeoutError, websockets.ConnectionClosed, websockets.InvalidHandshake)
EventSink = Callable[[list[msgspec.Struct]], None]
RejectSink = Callable[[bytes | str, str, str], None]  # raw, reason, context


class _PlannedReconnect(Exception):
    """The venue's connection lifetime is nearly over: reconnect now, on our terms."""


class Connector:
    def __init__(
        self,
        session: VenueSession,
        settings: ConnectorSettings,
        on_events: EventSink,
        on_reject: RejectSink,
        recorder: CaptureWriter | None = None,
    ) -> None:
        self.session = session
        self.settings = settings
        self.on_events = on_events
        self.on_reject = on_reject
        self.recorder = recorder
        self._rest: RestClient | None = None
        self._in_flight: set[str] = set()
        self._tasks: set[asyncio.Task] = set()
        self._messages_in = MESSAGES_IN.labels(session.VENUE)
        self._last_recv: dict[str, int] = {}  # url -> receive time of its last message
        self._dropped: dict[str, int] = {}  # url -> receive time of the last message before it dropped
        self._trade_keys: dict[str, set[tuple[str, str]]] = {}  # url -> (symbol, instrument) it carried trades of
        self._reconnects = RECONNECTS.labels(session.VENUE)

    async def run(self, stop: asyncio.Event) -> None:
        async with RestClient(self.settings.rest_timeout_s) as rest:
            self._rest = rest
            self._handle(self.session.startup())
            await asyncio.gather(*list(self._tasks), return_exceptions=True)  # instruments before any message
            loops = [asyncio.create_task(self._keep_connected(ep, stop)) for ep in self.session.endpoints()]
            loops.append(asyncio.create_task(self._every(self.settings.refresh_s, self.session.startup, stop)))
            if self.session.POLL_INTERVAL_S:
                loops.append(asyncio.create_task(self._every(self.session.POLL_INTERVAL_S, self.session.poll, stop)))
            try:
                await stop.wait()
            finally:
                for task in [*loops, *self._tasks]:
                    task.cancel()
                await asyncio.gather(*loops, *self._tasks, return_exceptions=True)

    # ----------------------------------------------------------------- websocket

    async def _keep_connected(self, endpoint: WsEndpoint, stop: asyncio.Event) -> None:
        cfg = self.settings
        while not stop.is_set():
            retrying = AsyncRetrying(
                retry=retry_if_exception_type(RETRYABLE),
                wait=wait_exponential_jitter(initial=cfg.backoff_initial_s, max=cfg.backoff_max_s),
                stop=stop_never,
                before_sleep=lambda state: log.warning(
                    "%s: reconnecting in %.1fs after %r",
                    endpoint.url,
                    state.next_action.sleep,
                    state.outcome.exception(),
                ),
            )
            async for attempt in retrying:
                with attempt:
                    await self._session(endpoint)  # returns only after a healthy session: backoff restarts

    async def _session(self, endpoint: WsEndpoint) -> None:
        url = endpoint.url
        async with websockets.connect(url, ping_interval=20, ping_timeout=20, max_size=2**24) as ws:
            log.info("connected %s", url)
            started = time.monotonic()
            for frame in endpoint.subscribe:
                await ws.send(frame)
            self._report_trade_gaps(url)
            keepalive = asyncio.create_task(self._keepalive(ws, endpoint)) if endpoint.keepalive_s else None
            try:
                await self._receive(ws, endpoint, started)
            except (*RETRYABLE, _PlannedReconnect) as exc:
                self._reconnects.inc()
                self._dropped.setdefault(url, self._last_recv.get(url, time.time_ns()))
                self._handle(self.session.on_disconnect(url, time.time_ns()))
                if isinstance(exc, _PlannedReconnect):
                    return
                if time.monotonic() - started < HEALTHY_SESSION_S:
                    raise
                log.info("%s: dropped after a healthy session (%r); reconnecting now", url, exc)
            finally:
                if keepalive:
                    keepalive.cancel()

    async def _receive(self, ws: websockets.ClientConnection, endpoint: WsEndpoint, started: float) -> None:
        stale_after = self.settings.stale_after_s
        deadline = started + endpoint.max_lifetime_s if endpoint.max_lifetime_s else None
        while True:
            if deadline and time.monotonic() > deadline:
                raise _PlannedReconnect()
            # Watchdog: a connection that stays silent is dead even if TCP says otherwise.
            payload = await asyncio.wait_for(ws.recv(decode=False), timeout=stale_after)
            recv_ts = self._last_recv[endpoint.url] = time.time_ns()
            self._messages_in.inc()
            if self.recorder:
                self.recorder.write(endpoint.url, payload, recv_ts)
            try:
                out = self.session.on_ws(payload, recv_ts, endpoint.url)
            except BadMessage as exc:
                self.on_reject(payload, exc.reason, endpoint.url)
                continue
            self._handle(out)
            trade_keys = self._trade_keys.setdefault(endpoint.url, set())
            book_gap = False
            for event in out.events:
                if type(event) is Trade:
                    trade_keys.add((event.symbol, event.instrument))
                elif type(event) is BookGap:
                    book_gap = True
            if book_gap:
                # Venues without a REST resync (Bybit, OKX) resync a broken book by subscribing again.
                for frame in self.session.resubscribe_frames(endpoint.url):
                    await ws.send(frame)

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

    async def _keepalive(self, ws: websockets.ClientConnection, endpoint: WsEndpoint) -> None:
        while True:
            await asyncio.sleep(endpoint.keepalive_s)
            with contextlib.suppress(websockets.ConnectionClosed):
                await ws.send(endpoint.keepalive_frame)

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
            conn = request.url if request.method == "GET" else f"{request.method} {request.url} {request.body.decode()}"
            self.recorder.write(conn, body, recv_ts)
        try:
            out = self.session.on_rest(request, body, recv_ts)
        except BadMessage as exc:
            self.on_reject(body, exc.reason, request.url)
            return
        self._handle(out)

    async def _every(self, interval_s: float, requests: Callable[[], Output], stop: asyncio.Event) -> None:
        """Instrument metadata refresh, and REST polls for data without a stream (open interest)."""
        while not stop.is_set():
            await asyncio.sleep(interval_s)
            self._handle(requests())


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
