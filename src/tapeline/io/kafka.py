"""Kafka edge: topic creation, the idempotent producer, and dead-letter routing (confluent-kafka)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]  # not in admin's __all__

from tapeline.codec.avro import AvroCodec
from tapeline.config import Settings, TopicSettings
from tapeline.domain.events import DeadLetter, Event, Trade, TradeBatch
from tapeline.io.metrics import DEAD_LETTERS, EVENTS_OUT

log = logging.getLogger(__name__)


def ensure_topics(settings: Settings, names: list[str], timeout_s: float = 30.0) -> None:
    """Create the topics that do not exist yet (idempotent)."""
    admin = AdminClient(settings.kafka.librdkafka())
    existing = admin.list_topics(timeout=timeout_s).topics
    missing = [
        NewTopic(n, num_partitions=settings.topics.partitions, replication_factor=settings.topics.replication_factor)
        for n in names
        if n not in existing
    ]
    if not missing:
        return
    for name, future in admin.create_topics(missing, operation_timeout=timeout_s).items():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
        log.info("created topic %s", name)


def make_producer(settings: Settings, **extra: object) -> Producer:
    """Idempotent producer: acks=all, no duplicates or reordering on retries."""
    conf: dict[str, object] = {
        **settings.kafka.librdkafka(),
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "lz4",
        "batch.num.messages": 10000,
        "queue.buffering.max.messages": 500000,
        **extra,  # e.g. on_delivery, a callback
    }
    return Producer(conf)


def produce(producer: Producer, topic: str, value: bytes, key: bytes | None = None) -> None:
    """Produce, waiting for queue space instead of failing when the local queue is full."""
    while True:
        try:
            producer.produce(topic, value, key)
            return
        except BufferError:
            producer.poll(0.05)


class DeadLetters:
    """Routes bad input to the dead-letter topic: counted, logged once per kind, raw bytes kept."""

    def __init__(self, producer: Producer, topic: str, source: str, codec: AvroCodec | None = None) -> None:
        self.producer = producer
        self.topic = topic
        self.source = source
        self.codec = codec or AvroCodec()
        self._logged: set[str] = set()
        self.count = 0

    def send(self, raw: bytes | str, reason: str, context: str = "") -> None:
        raw_bytes = raw.encode() if isinstance(raw, str) else bytes(raw)
        kind = reason.split(":", 2)[1].strip() if reason.count(":") >= 2 else reason.split(":", 1)[0]
        kind = kind[:60]
        self.count += 1
        DEAD_LETTERS.labels(self.source, kind).inc()
        if kind not in self._logged:  # once per kind: a flood of one bad shape must not flood the log
            self._logged.add(kind)
            log.warning("dead-letter (%s) %s [%s] raw=%.200r", self.source, reason, context, raw_bytes)
        letter = DeadLetter(self.source, reason, raw_bytes, time.time_ns(), context)
        produce(self.producer, self.topic, self.codec.encode_event(letter), self.source.encode())


class EventPublisher:
    """Publishes normalized events to their topics, keyed by venue|instrument (one partition per instrument).

    Trades are held briefly per instrument and sent as one TradeBatch message (at most `max_batch` trades
    or `linger_s` old, one symbol): the stream processor's cost is per Kafka message, not per trade. Other events go
    out at once. Call `flush_due()` regularly and `flush_all()` before flushing the producer.
    """

    def __init__(
        self,
        producer: Producer,
        topics: TopicSettings,
        codec: AvroCodec | None = None,
        max_batch: int = 500,
        linger_s: float = 0.02,
    ) -> None:
        self.producer = producer
        self.topics = topics
        self.codec = codec or AvroCodec()
        self.max_batch = max_batch
        self.linger_s = linger_s
        self.published = 0
        self._pending: dict[tuple[str, str], tuple[float, list[Trade]]] = {}

    def publish(self, events: Sequence[Event]) -> None:
        for event in events:
            if type(event) is Trade:
                key = (event.venue, event.instrument)
                pending = self._pending.get(key)
                if pending is not None and pending[1][0].symbol != event.symbol:
                    self._send_batch(key)  # a batch has one symbol
                    pending = None
                if pending is None:
                    pending = self._pending[key] = (time.monotonic(), [])
                pending[1].append(event)
                if len(pending[1]) >= self.max_batch:
                    self._send_batch(key)
                continue
            tag = type(event).__struct_config__.tag
            assert isinstance(tag, str), f"{type(event).__name__} is not a tagged event"  # msgspec also allows int tags
            produce(self.producer, self.topics.for_event(tag), self.codec.encode_event(event), _key(event))
            EVENTS_OUT.labels(event.venue, tag).inc()
            self.published += 1

    def flush_due(self) -> None:
        now = time.monotonic()
        for key in [k for k, (since, _) in self._pending.items() if now - since >= self.linger_s]:
            self._send_batch(key)

    def flush_all(self) -> None:
        for key in list(self._pending):
            self._send_batch(key)

    def _send_batch(self, key: tuple[str, str]) -> None:
        _, trades = self._pending.pop(key)
        batch = TradeBatch.of(trades)
        produce(self.producer, self.topics.trades, self.codec.encode_event(batch), f"{key[0]}|{key[1]}".encode())
        EVENTS_OUT.labels(key[0], "trade").inc(len(trades))
        self.published += len(trades)


def _key(event: Event) -> bytes:
    return f"{event.venue}|{event.instrument}".encode()
