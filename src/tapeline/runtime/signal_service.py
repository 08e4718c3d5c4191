"""Signal service: final rows from Kafka -> the signal engine (signals/) -> signal versions to Kafka.

Inputs: final venue bars, asset bars, and the footprint, liquidation and derivatives bars of the bar stage
(each topic keyed so that one series stays in one partition). Output: Signal v2 records on the signals
topic, keyed by asset; the processor's `signals` stage stores them in ClickHouse.

Delivery is exactly-once for readers with isolation.level=read_committed: each batch's signals and dead
letters are produced in one Kafka transaction together with the batch's consumer offsets, so a crash
(kill -9 included) aborts the open transaction and the restarted service re-reads the batch and
publishes it once. The transactional id is fixed per group and host, so a restarted instance fences
the one it replaces.

Warm-up: the engine's state (recent bars, what was published, versions) is in memory. On assignment,
before consuming, every assigned partition is re-read from `warmup_s` before its committed offset up to
it, with a consumer of its own; those rows rebuild the engine without publishing. Then the signals topic
is read back over the same span and the engine reconciles with it (signals/engine.py `reconcile`): the
topic's versions are the truth, and what the replayed inputs hold differently (the topics interleave
otherwise on a replay) is published as the next versions in the first transaction. `warmup_s` defaults
to the longest history any rule reads (bars x interval), so a restarted service ends in the state an
uninterrupted one reaches, with each (signal_id, version) published once.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TypeVar

import msgspec
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Message, Producer, TopicPartition

from tapeline.codec.avro import AvroCodec
from tapeline.config import Settings
from tapeline.domain.aggregates import AssetBar, Bar, DerivBar, FootprintBar, LiquidationBar
from tapeline.domain.errors import BadMessage, TapelineError
from tapeline.domain.events import Signal
from tapeline.domain.intervals import INTERVAL_NS
from tapeline.io.kafka import DeadLetters, make_producer, produce
from tapeline.io.metrics import SIGNAL_INPUTS, SIGNAL_LAG_SECONDS, SIGNALS_OUT
from tapeline.runtime.observability import Heartbeat
from tapeline.signals.engine import SignalEngine
from tapeline.signals.rules import Rules

log = logging.getLogger(__name__)

BATCH_MAX = 500
POLL_TIMEOUT_S = 0.5
TXN_TIMEOUT_S = 60.0
WARMUP_STALL_S = 30.0  # a warm-up read that gets nothing this long while short of its end fails the start
Row = Bar | AssetBar | FootprintBar | LiquidationBar | DerivBar
INPUTS: dict[str, type[Row]] = {
    "tapeline.v1.Bar": Bar,
    "tapeline.v1.AssetBar": AssetBar,
    "tapeline.v1.FootprintBar": FootprintBar,
    "tapeline.v1.LiquidationBar": LiquidationBar,
    "tapeline.v1.DerivBar": DerivBar,
}
# other records on the input topics (the asset-bars topic also carries cross-venue OBI and daily metrics)
NOT_INPUTS = frozenset({"tapeline.v1.AssetObiBar", "tapeline.v1.AssetMetric"})
SIGNAL_SCHEMA = "tapeline.v1.Signal"
T = TypeVar("T")


class PublishError(TapelineError):
    """Signals or dead letters could not be made durable; the transaction is aborted."""


@dataclass
class RunStats:
    messages: int = 0  # every message consumed, warm-up included
    warmup_messages: int = 0
    signals: int = 0  # published
    dead_letters: int = 0


@dataclass
class _Partition:
    next_commit: int | None = None  # the offset after the last message handled


def warmup_seconds(rules: Rules) -> float:
    """The longest history a rule reads, in seconds (bars x interval width, plus the confirming bar)."""
    longest = 0
    for rule, detector in rules.pairs():
        for interval in rule.intervals:
            width = INTERVAL_NS[interval]
            longest = max(longest, (detector.history(width) + 2) * width)
    return longest / 1e9


def decode_row(codec: AvroCodec, raw: bytes | None) -> Row | None:
    """Bytes of an input topic -> an input row, None for a record that is not an input, or BadMessage saying why."""
    return _decode(codec, raw, INPUTS, NOT_INPUTS, "input")


def decode_signal(codec: AvroCodec, raw: bytes | None) -> Signal:
    """Bytes of the signals topic -> a Signal, or BadMessage saying why."""
    sig = _decode(codec, raw, {SIGNAL_SCHEMA: Signal}, frozenset(), "signal")
    assert sig is not None  # nothing is skipped
    return sig


def _decode(codec: AvroCodec, raw: bytes | None, types: Mapping[str, type[T]], skip: frozenset[str],
            what: str) -> T | None:  # fmt: skip
    if raw is None:
        raise BadMessage(f"undecodable {what}: empty: tombstone (no value)")
    try:
        writer = codec.schema_of(raw)
        if writer.name in skip:
            return None
        row_type = types.get(writer.name)
        if row_type is None:
            raise BadMessage(f"undecodable {what}: wrong schema: {writer.name} (id {writer.schema_id})")
        record = codec.decode(raw)
        record.pop("type", None)
        return msgspec.convert(record, row_type)
    except BadMessage:
        raise
    except Exception as exc:  # untrusted bytes: any decoder failure is a bad message, kept with its raw bytes
        raise BadMessage(f"undecodable {what}: {type(exc).__name__}: {exc}") from exc


def input_topics(settings: Settings) -> list[str]:
    t = settings.topics
    return [t.bars, t.asset_bars, t.footprint_bars, t.liquidation_bars, t.deriv_bars]


class SignalService:
    """One consumer + one transactional producer; `run_once` handles one batch end to end."""

    def __init__(self, settings: Settings, warmup_s: float | None = None) -> None:
        self.settings = settings
        self.rules = settings.signals.signal_rules()
        if warmup_s is None:
            warmup_s = settings.signals.warmup_s
        self.warmup_s: float = warmup_seconds(self.rules) if warmup_s is None else warmup_s
        self.codec = AvroCodec()
        self.engine = SignalEngine(self.rules)
        self.stats = RunStats()
        self.assigned_once = threading.Event()
        self._partitions: dict[tuple[str, int], _Partition] = {}
        self._pending: list[Signal] = []  # versions the reconciliation after a warm-up publishes first
        self.producer: Producer = make_producer(
            settings, **{"transactional.id": f"{settings.signals.group_id}-{socket.gethostname()}"}
        )
        self.producer.init_transactions(TXN_TIMEOUT_S)
        self.dead_letters = DeadLetters(self.producer, settings.topics.dead_letter, source="signals", codec=self.codec)
        self.consumer = Consumer(
            {
                **settings.kafka.librdkafka(),
                "group.id": settings.signals.group_id,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                "enable.partition.eof": False,
            }
        )
        self.consumer.subscribe(
            input_topics(settings), on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_revoke
        )

    # ------------------------------------------------------------------ rebalance

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        committed = consumer.committed(partitions, timeout=30)
        since_ms = max(0, int((time.time() - self.warmup_s) * 1000))
        by_time = {(tp.topic, tp.partition): tp.offset for tp in consumer.offsets_for_times(
            [TopicPartition(tp.topic, tp.partition, since_ms) for tp in committed], timeout=30)}  # fmt: skip
        ranges: list[tuple[TopicPartition, int]] = []
        for tp in committed:
            at = (tp.topic, tp.partition)
            self._partitions[at] = _Partition()
            if tp.offset < 0:  # nothing committed: a first run, every signal is new
                tp.offset = OFFSET_BEGINNING
                continue
            low, _high = consumer.get_watermark_offsets(tp, timeout=30, cached=False)
            found = by_time.get(at, -1)
            start = max(low, tp.offset if found < 0 else min(found, tp.offset))  # found -1: nothing that recent
            if start < tp.offset:
                ranges.append((TopicPartition(tp.topic, tp.partition, start), tp.offset))
        self.engine = SignalEngine(self.rules)
        self._warm_up(ranges)
        self._pending = self.engine.reconcile(self._read_published(since_ms))
        log.info("assigned %d partitions: warm-up of %d messages; %d signal versions to reconcile",
                 len(committed), self.stats.warmup_messages, len(self._pending))  # fmt: skip
        consumer.assign(committed)
        self.assigned_once.set()

    def _reader(self) -> Consumer:
        return Consumer({**self.settings.kafka.librdkafka(), "group.id": f"{self.settings.signals.group_id}-warmup",
                         "enable.auto.commit": False, "isolation.level": "read_committed",
                         "enable.partition.eof": False})  # fmt: skip

    def _read(self, ranges: list[tuple[TopicPartition, int]]) -> Iterator[Message]:
        """The messages of each (partition from its offset, up to an end offset), in the order they come."""
        if not ranges:
            return
        reader = self._reader()
        try:
            reader.assign([tp for tp, _end in ranges])
            left = {(tp.topic, tp.partition): end for tp, end in ranges}
            idle_since = time.monotonic()
            while left:
                messages = reader.consume(num_messages=BATCH_MAX, timeout=POLL_TIMEOUT_S)
                for msg in messages:
                    if msg.error() is not None:
                        continue
                    at, offset = (msg.topic(), msg.partition()), msg.offset()
                    end = left.get(at)  # type: ignore[arg-type]
                    if end is not None and offset is not None and offset < end:
                        yield msg
                for tp in reader.position([TopicPartition(t, p) for t, p in left]):
                    if tp.offset >= left[(tp.topic, tp.partition)]:  # transaction markers count too
                        del left[(tp.topic, tp.partition)]
                if messages:
                    idle_since = time.monotonic()
                elif time.monotonic() - idle_since > WARMUP_STALL_S:
                    raise PublishError(f"warm-up read stalled before the ends {left}")
        finally:
            reader.close()

    def _warm_up(self, ranges: list[tuple[TopicPartition, int]]) -> None:
        """Rebuild the engine from the committed inputs of `ranges`, publishing nothing (the run that consumed
        them did; bad ones were dead-lettered then)."""
        for msg in self._read(ranges):
            self.stats.warmup_messages += 1
            try:
                row = decode_row(self.codec, msg.value())
            except BadMessage:
                continue
            if row is not None:
                self.engine.add(row)

    def _read_published(self, since_ms: int) -> list[Signal]:
        """The committed signal versions published since `since_ms`, from the signals topic."""
        topic = self.settings.topics.signals
        reader = self._reader()
        try:
            metadata = reader.list_topics(topic, timeout=30).topics[topic]
            wanted = [TopicPartition(topic, p, since_ms) for p in metadata.partitions]
            ranges = []
            for tp in reader.offsets_for_times(wanted, timeout=30):
                _low, high = reader.get_watermark_offsets(tp, timeout=30, cached=False)
                if 0 <= tp.offset < high:
                    ranges.append((tp, high))
        finally:
            reader.close()
        out = []
        for msg in self._read(ranges):
            try:
                out.append(decode_signal(self.codec, msg.value()))
            except BadMessage as exc:  # our own topic: a record we cannot read is logged, not fatal
                log.warning("signals topic: unreadable record at %s@%s: %s", msg.partition(), msg.offset(), exc.reason)
        return out

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Offsets are committed with every batch's transaction. The engine's state cannot be split by
        # partition, and the (eager) rebalance revokes every partition: the next assignment warms up afresh.
        self._partitions.clear()
        self._pending = []
        log.info("revoked %s", sorted((tp.topic, tp.partition) for tp in partitions))

    # ------------------------------------------------------------------ batches

    def run_once(self) -> int:
        """Consume one batch; publish its signals and commit its offsets in one transaction."""
        messages = self.consumer.consume(num_messages=BATCH_MAX, timeout=POLL_TIMEOUT_S)
        if not messages:
            return 0
        self.producer.begin_transaction()
        try:
            published, self._pending = self._pending, []  # reconciled versions after a warm-up go first
            for sig in published:
                produce(self.producer, self.settings.topics.signals, self.codec.encode_event(sig), sig.asset.encode())
            handled, newest_input_s = self._handle_all(messages)
            published += handled
            offsets = [
                TopicPartition(topic, partition, state.next_commit)
                for (topic, partition), state in self._partitions.items()
                if state.next_commit is not None
            ]
            if offsets:
                self.producer.send_offsets_to_transaction(offsets, self.consumer.consumer_group_metadata(),
                                                          TXN_TIMEOUT_S)  # fmt: skip
            self.producer.commit_transaction(TXN_TIMEOUT_S)
        except KafkaException as exc:
            self._abort()
            raise PublishError(f"batch not published (transaction aborted): {exc}") from exc
        now = time.time()
        for sig in published:
            SIGNALS_OUT.labels(sig.kind, sig.direction).inc()
        if published and newest_input_s:
            SIGNAL_LAG_SECONDS.observe(now - newest_input_s)
        self.stats.signals += len(published)
        return len(messages)

    def _handle_all(self, messages: list[Message]) -> tuple[list[Signal], float]:
        published: list[Signal] = []
        newest_input_s = 0.0  # publication time of the newest input that confirmed a signal
        for msg in messages:
            err = msg.error()
            if err is not None:
                if err.fatal():
                    raise KafkaException(err)
                log.warning("consumer error: %s", err)
                continue
            signals = self._handle(msg)
            if signals:
                published += signals
                _kind, stamp_ms = msg.timestamp()
                newest_input_s = max(newest_input_s, stamp_ms / 1000)
        return published, newest_input_s

    def _handle(self, msg: Message) -> list[Signal]:
        topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
        # Optional only for messages not (yet) in a topic: a consumed message without an error has all three.
        assert topic is not None and partition is not None and offset is not None
        at = (topic, partition)
        state = self._partitions.get(at)
        if state is None:  # fetched just before a revoke; the new owner handles it
            return []
        self.stats.messages += 1
        state.next_commit = offset + 1
        try:
            row = decode_row(self.codec, msg.value())
        except BadMessage as exc:
            self.dead_letters.send(msg.value() or b"", exc.reason, f"{at[0]}/{at[1]}@{offset}")
            self.stats.dead_letters += 1
            return []
        if row is None:
            return []
        SIGNAL_INPUTS.labels(type(row).__name__).inc()
        signals = self.engine.add(row)
        for sig in signals:
            produce(self.producer, self.settings.topics.signals, self.codec.encode_event(sig), sig.asset.encode())
        return signals

    def _abort(self) -> None:
        try:
            self.producer.abort_transaction(TXN_TIMEOUT_S)
        except KafkaException as exc:  # the transaction may be fenced or gone already
            log.warning("abort failed: %s", exc)

    def close(self) -> None:
        self.consumer.close()  # leaves the group, so a restart rebalances at once


def run(
    settings: Settings,
    stop_event: threading.Event | None = None,
    *,
    max_idle_s: float | None = None,
    warmup_s: float | None = None,
    heartbeat: Heartbeat | None = None,
) -> RunStats:
    """Run until `stop_event` is set or, once partitions are assigned, no message came for `max_idle_s`."""
    stop_event = stop_event or threading.Event()
    service = SignalService(settings, warmup_s)
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
    log.info("signal service stopped: %s (stale bar changes: %d)", service.stats, service.engine.stale)
    return service.stats


def run_forever(settings: Settings, heartbeat: Heartbeat | None = None) -> None:
    """Run until SIGTERM or SIGINT; the current batch's transaction completes first."""
    stop_event = threading.Event()

    def _stop(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping after the current batch", signum)
        stop_event.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    run(settings, stop_event, heartbeat=heartbeat)


__all__ = ["PublishError", "RunStats", "SignalService", "decode_row", "decode_signal", "run", "run_forever"]
