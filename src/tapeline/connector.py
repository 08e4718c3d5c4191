"""Venue connector: websocket -> parse -> Avro -> Kafka, one task per stream URL.

The loop is the same for every venue; the venue module supplies URLs and the parser. Reconnects
use jittered exponential backoff that resets after a healthy session; a watchdog reconnects a
connection that went silent. Bad messages go to the dead-letter topic and the loop keeps going.
"""

from __future__ import annotations

import asyncio
import logging
import time
from types import ModuleType

import websockets
from confluent_kafka import KafkaError, Message
from tenacity import AsyncRetrying, retry_if_exception_type, stop_never, wait_exponential_jitter

from tapeline.codec import AvroCodec
from tapeline.config import Settings
from tapeline.errors import BadMessage
from tapeline.kafka import DeadLetters, ensure_topics, make_producer, produce
from tapeline.metrics import EVENTS_OUT, MESSAGES_IN, RECONNECTS

log = logging.getLogger(__name__)

HEALTHY_SESSION_S = 30.0  # a session that lasted this long resets the backoff
RETRYABLE = (OSError, asyncio.TimeoutError, websockets.ConnectionClosed, websockets.InvalidHandshake)


class Connector:
    def __init__(self, settings: Settings, venue: ModuleType) -> None:
        self.settings = settings
        self.venue = venue
        self.codec = AvroCodec()
        self.topic = settings.topics.trades
        self.producer = make_producer(settings, on_delivery=self._on_delivery, **{"delivery.report.only.error": True})
        self.dead_letters = DeadLetters(self.producer, settings.topics.dead_letter, f"connector:{venue.VENUE}")
        self.published = 0
        self.delivery_errors = 0
        self._messages_in = MESSAGES_IN.labels(venue.VENUE)
        self._reconnects = RECONNECTS.labels(venue.VENUE)

    def urls(self) -> list[str]:
        cfg = self.settings.connector
        return self.venue.stream_urls(cfg.ws_base_url or self.venue.WS_BASE_URL, cfg.symbols, cfg.channels)

    async def run(self, stop: asyncio.Event) -> None:
        ensure_topics(self.settings, [self.topic, self.settings.topics.dead_letter])
        tasks = [asyncio.create_task(self._keep_connected(url, stop)) for url in self.urls()]
        poller = asyncio.create_task(self._poll_deliveries(stop))
        try:
            await stop.wait()
        finally:
            for task in [*tasks, poller]:
                task.cancel()
            await asyncio.gather(*tasks, poller, return_exceptions=True)
            remaining = self.producer.flush(30)
            log.info("connector stopped: %d published, %d dead-lettered, %d unflushed",
                     self.published, self.dead_letters.count, remaining)  # fmt: skip

    async def _keep_connected(self, url: str, stop: asyncio.Event) -> None:
        cfg = self.settings.connector
        while not stop.is_set():
            retrying = AsyncRetrying(
                retry=retry_if_exception_type(RETRYABLE),
                wait=wait_exponential_jitter(initial=cfg.backoff_initial_s, max=cfg.backoff_max_s),
                stop=stop_never,
                before_sleep=lambda state: log.warning(
                    "%s: reconnecting in %.1fs after %r", url, state.next_action.sleep, state.outcome.exception()
                ),
            )
            async for attempt in retrying:
                with attempt:
                    await self._session(url)  # returns only after a healthy session: backoff restarts

    async def _session(self, url: str) -> None:
        stale_after = self.settings.connector.stale_after_s
        async with websockets.connect(url, ping_interval=20, ping_timeout=20, max_size=2**24) as ws:
            log.info("connected %s", url)
            started = time.monotonic()
            try:
                while True:
                    # Watchdog: a connection that stays silent is dead even if TCP says otherwise.
                    payload = await asyncio.wait_for(ws.recv(decode=False), timeout=stale_after)
                    self.handle(payload, time.time_ns(), url)
            except RETRYABLE:
                self._reconnects.inc()
                if time.monotonic() - started < HEALTHY_SESSION_S:
                    raise
                log.info("%s: connection dropped after a healthy session; reconnecting now", url)

    def handle(self, payload: bytes, recv_ts_ns: int, context: str = "") -> None:
        """One websocket message: publish its events, or dead-letter it with the reason."""
        self._messages_in.inc()
        try:
            events = self.venue.parse(payload, recv_ts_ns)
        except BadMessage as exc:
            self.dead_letters.send(payload, exc.reason, context)
            return
        for event in events:
            key = f"{event.venue}|{event.instrument}".encode()
            produce(self.producer, self.topic, self.codec.encode_event(event), key)
            EVENTS_OUT.labels(event.venue, "trade").inc()
        self.published += len(events)

    async def _poll_deliveries(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.producer.poll(0)
            await asyncio.sleep(0.05)

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.delivery_errors += 1
            log.error("delivery to %s failed: %s", msg.topic(), err)
