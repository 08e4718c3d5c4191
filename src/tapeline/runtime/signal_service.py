"""Signal service: final bars from Kafka -> divergence detectors -> signals to Kafka.

Delivery: at-least-once with deterministic signal ids. Per batch, signals (and dead letters) are
produced with the idempotent producer, flushed, and only then are the offsets committed; a crash in
between re-emits the same ids, which consumers de-duplicate.

Warm-up: the detectors are in-memory, and a pivot needs bars from before the committed offset. On
partition assignment each partition is therefore re-read from `warmup_messages` before its committed
offset; those bars only rebuild detector state (no signals, no dead letters: both were already
published by the run that consumed them). Given enough history (`warmup_bars` final bars of every
series of that partition, see divergence.py) a restarted service publishes exactly what an
uninterrupted one would. The seek is counted in messages, not per series, so a series that is rare in
its partition may get less; that is logged as a "cold" series. Assumes every series lives in one
partition (bars keyed by venue|instrument), which per-series ordering needs anyway.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass, field

import msgspec
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, TopicPartition

from tapeline.codec.avro import AvroCodec
from tapeline.config import Settings
from tapeline.domain.aggregates import Bar
from tapeline.domain.errors import BadMessage, TapelineError
from tapeline.domain.events import Signal
from tapeline.io.kafka import DeadLetters, make_producer, produce
from tapeline.io.metrics import SIGNALS_OUT
from tapeline.runtime.observability import Heartbeat
from tapeline.signals.divergence import SeriesDetectors, SeriesKey, series_key, warmup_bars

log = logging.getLogger(__name__)

BATCH_MAX = 500
POLL_TIMEOUT_S = 0.5
FLUSH_TIMEOUT_S = 60.0
# Partition re-read on assignment = warmup_bars(L, D) x this many series. Replay (decode + detect)
# costs ~15 us per message here, so erring high is cheap: 66 k messages, ~1 s, with the defaults.
WARMUP_SERIES_PER_PARTITION = 1000
BAR_SCHEMA = "tapeline.v1.Bar"
# A commit that loses a race with a rebalance: the new owner re-reads from the last commit (at-least-once).
_COMMIT_RACES = {KafkaError.REBALANCE_IN_PROGRESS, KafkaError.ILLEGAL_GENERATION, KafkaError.UNKNOWN_MEMBER_ID}


class PublishError(TapelineError):
    """Signals or dead letters could not be made durable; offsets stay uncommitted."""


@dataclass
class RunStats:
    messages: int = 0  # every message consumed, warm-up included
    warmup_messages: int = 0
    signals: int = 0  # published
    dead_letters: int = 0


@dataclass
class _Partition:
    publish_from: int  # the committed offset: signals from here on are new
    history_complete: bool  # the warm-up starts at the oldest retained message
    warm_bars: dict[SeriesKey, int] = field(default_factory=dict)  # final bars replayed per series
    next_commit: int | None = None
    live: bool = False


def default_warmup_messages(settings: Settings) -> int:
    return warmup_bars(settings.signals.pivot_lookback, settings.signals.max_pivot_distance) * (
        WARMUP_SERIES_PER_PARTITION
    )


def decode_bar(codec: AvroCodec, raw: bytes | None) -> Bar:
    """Bytes -> Bar, or BadMessage saying why."""
    if raw is None:
        raise BadMessage("undecodable bar: empty: tombstone (no value)")
    try:
        writer = codec.schema_of(raw)
        if writer.name != BAR_SCHEMA:
            raise BadMessage(f"undecodable bar: wrong schema: {writer.name} (id {writer.schema_id})")
        return msgspec.convert(codec.decode(raw), Bar)
    except BadMessage:
        raise
    except Exception as exc:  # untrusted bytes: any decoder failure is a bad message, kept with its raw bytes
        raise BadMessage(f"undecodable bar: {type(exc).__name__}: {exc}") from exc


class SignalService:
    """One consumer + one producer; `run_once` handles one batch end to end."""

    def __init__(self, settings: Settings, warmup_messages: int | None = None) -> None:
        self.settings = settings
        self.warmup_messages = default_warmup_messages(settings) if warmup_messages is None else warmup_messages
        self.intervals = frozenset(settings.signals.intervals)
        self.need_bars = warmup_bars(settings.signals.pivot_lookback, settings.signals.max_pivot_distance)
        self.codec = AvroCodec()
        self.detectors = SeriesDetectors(settings.signals.pivot_lookback, settings.signals.max_pivot_distance)
        self.stats = RunStats()
        self.assigned_once = threading.Event()
        self._partitions: dict[tuple[str, int], _Partition] = {}
        self._series_at: dict[SeriesKey, tuple[str, int]] = {}
        self._delivery_errors: list[str] = []
        self.producer = make_producer(settings, on_delivery=self._on_delivery)
        self.dead_letters = DeadLetters(self.producer, settings.topics.dead_letter, source="signals", codec=self.codec)
        self.consumer = Consumer(
            {
                **settings.kafka.librdkafka(),
                "group.id": settings.signals.group_id,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "enable.partition.eof": False,
            }
        )
        self.consumer.subscribe(
            [settings.topics.bars], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_revoke
        )

    # ------------------------------------------------------------------ rebalance

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        committed = consumer.committed(partitions, timeout=30)
        for tp in committed:
            low, _high = consumer.get_watermark_offsets(tp, timeout=30, cached=False)
            if tp.offset < 0:  # nothing committed: a first run, every signal is new
                self._partitions[(tp.topic, tp.partition)] = _Partition(publish_from=-1, history_complete=True)
                log.info("assigned %s[%d]: no committed offset, publishing from the start", tp.topic, tp.partition)
                tp.offset = OFFSET_BEGINNING
                continue
            start = max(low, tp.offset - self.warmup_messages)
            self._partitions[(tp.topic, tp.partition)] = _Partition(tp.offset, history_complete=start <= low)
            log.info("assigned %s[%d]: warm-up from %d, publishing from %d", tp.topic, tp.partition, start, tp.offset)
            tp.offset = start
        consumer.assign(committed)
        self.assigned_once.set()

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Offsets are committed after every batch, so there is nothing to commit here. The series of
        # these partitions are dropped: if the partition comes back, its warm-up rebuilds them from a
        # consistent point instead of continuing from a state with a gap.
        gone = {(tp.topic, tp.partition) for tp in partitions}
        for key in [k for k, at in self._series_at.items() if at in gone]:
            self.detectors.drop(key)
            del self._series_at[key]
        for at in gone:
            self._partitions.pop(at, None)
        log.info("revoked %s", sorted(gone))

    # ------------------------------------------------------------------ batches

    def run_once(self) -> int:
        """Consume, detect, publish, flush, commit one batch; returns the number of messages."""
        messages = self.consumer.consume(num_messages=BATCH_MAX, timeout=POLL_TIMEOUT_S)
        published: list[Signal] = []
        for msg in messages:
            err = msg.error()
            if err is not None:
                if err.fatal():
                    raise KafkaException(err)
                log.warning("consumer error: %s", err)
                continue
            published += self._handle(msg)
        if not messages:
            return 0
        self._flush()
        for sig in published:
            SIGNALS_OUT.labels(sig.kind, sig.direction).inc()
        self.stats.signals += len(published)
        self._commit()
        return len(messages)

    def _handle(self, msg: Message) -> list[Signal]:
        topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
        # Optional only for messages not (yet) in a topic: a consumed message without an error has all three.
        assert topic is not None and partition is not None and offset is not None
        at = (topic, partition)
        state = self._partitions.get(at)
        if state is None:  # fetched just before a revoke; the new owner handles it
            return []
        live = offset >= state.publish_from
        self.stats.messages += 1
        if live:
            state.next_commit = offset + 1
            if not state.live:
                state.live = True
                self._report_cold(at, state)
        else:
            self.stats.warmup_messages += 1
        try:
            bar = decode_bar(self.codec, msg.value())
        except BadMessage as exc:
            if live:  # a warm-up message was dead-lettered by the run that consumed it
                self.dead_letters.send(msg.value() or b"", exc.reason, f"{at[0]}/{at[1]}@{offset}")
                self.stats.dead_letters += 1
            return []
        if bar.interval not in self.intervals or not bar.final:
            return []
        key = series_key(bar)
        self._series_at[key] = at
        if not live:
            state.warm_bars[key] = state.warm_bars.get(key, 0) + 1
        signals = self.detectors.update(bar)
        if not live:
            return []
        for sig in signals:
            value = self.codec.encode_event(sig)
            produce(self.producer, self.settings.topics.signals, value, f"{sig.venue}|{sig.instrument}".encode())
        return signals

    def _report_cold(self, at: tuple[str, int], state: _Partition) -> None:
        """Warm-up of this partition is over: say which series got less history than exactness needs."""
        if not state.history_complete:
            cold = sorted(k for k, n in state.warm_bars.items() if n < self.need_bars)
            if cold:
                log.warning(
                    "%s[%d]: warm-up gave %d series fewer than %d bars (e.g. %s); their first signals after "
                    "the restart may differ from an uninterrupted run (raise warmup_messages)",
                    *at, len(cold), self.need_bars, "|".join(cold[0]),
                )  # fmt: skip
        state.warm_bars.clear()

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._delivery_errors.append(f"{msg.topic()}: {err}")

    def _flush(self) -> None:
        left = self.producer.flush(FLUSH_TIMEOUT_S)
        if left or self._delivery_errors:
            errors, self._delivery_errors = self._delivery_errors, []
            raise PublishError(f"{left} messages not delivered within {FLUSH_TIMEOUT_S}s; errors: {errors[:5]}")

    def _commit(self) -> None:
        # Explicit offsets: a batch of warm-up messages only must not move a committed offset backwards.
        offsets = [
            TopicPartition(topic, partition, state.next_commit)
            for (topic, partition), state in self._partitions.items()
            if state.next_commit is not None
        ]
        if not offsets:
            return
        try:
            self.consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            if exc.args[0].code() not in _COMMIT_RACES:
                raise
            log.warning("commit lost to a rebalance (%s); the batch may be re-read, with the same ids", exc)

    def close(self) -> None:
        try:
            self.producer.flush(FLUSH_TIMEOUT_S)
        finally:
            self.consumer.close()  # leaves the group, so a restart rebalances at once


def run(
    settings: Settings,
    stop_event: threading.Event | None = None,
    *,
    max_idle_s: float | None = None,
    warmup_messages: int | None = None,
    heartbeat: Heartbeat | None = None,
) -> RunStats:
    """Run until `stop_event` is set or, once partitions are assigned, no message came for `max_idle_s`."""
    stop_event = stop_event or threading.Event()
    service = SignalService(settings, warmup_messages)
    last_activity = time.monotonic()
    try:
        while not stop_event.is_set():
            if heartbeat:
                heartbeat.beat()
            if service.run_once():
                last_activity = time.monotonic()
            elif not service.assigned_once.is_set():
                last_activity = time.monotonic()  # joining the group is not idleness
            elif max_idle_s is not None and time.monotonic() - last_activity >= max_idle_s:
                break
    finally:
        service.close()
    log.info("signal service stopped: %s", service.stats)
    return service.stats


def run_forever(settings: Settings, heartbeat: Heartbeat | None = None) -> None:
    """Run until SIGTERM or SIGINT; the current batch finishes and its offsets are committed."""
    stop_event = threading.Event()

    def _stop(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping after the current batch", signum)
        stop_event.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    run(settings, stop_event, heartbeat=heartbeat)
