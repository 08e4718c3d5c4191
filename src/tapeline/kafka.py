"""Kafka edge: topic creation, the idempotent producer, and dead-letter routing (confluent-kafka)."""

from __future__ import annotations

import logging
import time

import msgspec
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from tapeline.codec import AvroCodec
from tapeline.config import Settings, TopicSettings
from tapeline.events import DeadLetter
from tapeline.metrics import DEAD_LETTERS, EVENTS_OUT

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
    conf = settings.kafka.librdkafka(
        **{
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": "lz4",
            "batch.num.messages": 10000,
            "queue.buffering.max.messages": 500000,
        }
    )
    conf.update(extra)
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
    """Publishes normalized events to their topics, keyed by venue|instrument (one partition per instrument)."""

    def __init__(self, producer: Producer, topics: TopicSettings, codec: AvroCodec | None = None) -> None:
        self.producer = producer
        self.topics = topics
        self.codec = codec or AvroCodec()
        self.published = 0

    def publish(self, events: list[msgspec.Struct]) -> None:
        for event in events:
            tag = type(event).__struct_config__.tag
            key = f"{event.venue}|{event.instrument}".encode()
            produce(self.producer, self.topics.for_event(tag), self.codec.encode_event(event), key)
            EVENTS_OUT.labels(event.venue, tag).inc()
        self.published += len(events)
