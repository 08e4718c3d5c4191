"""The signal service publishes what `tapeline signals` prints for the same input, across kill -9.

Input: the final venue bars, asset bars and footprint bars of a real Binance USD-M capture at 1s (computed by
the offline code the CLI uses), produced to their topics as the bar and asset stages would. The service runs
as a subprocess with every detector at 1s; it is killed with SIGKILL as soon as its first signals are
committed, the rest of the input is produced, and a new process continues. At the end the signals topic
(read committed) must hold no (signal_id, version) twice, and each signal's newest version must equal the
offline engine's. Versions are compared too: one input topic per row type, each read in order, and the
offline order puts side rows, venue bars and asset bars of a window in that order, as the topics do here.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import msgspec
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from tapeline.codec.avro import AvroCodec
from tapeline.config import Settings
from tapeline.domain.aggregates import AssetBar, Bar, DerivBar, FootprintBar, LiquidationBar
from tapeline.domain.events import Signal
from tapeline.io.kafka import ensure_topics, make_producer, produce
from tapeline.runtime.signal_service import input_topics
from tapeline.signals.engine import SignalEngine
from tapeline.signals.rules import REGISTRY, Rules, load_detectors
from tests.support.data import venue_trades
from tests.support.services import Service, wait_for

pytestmark = pytest.mark.integration


def _topic_and_key(settings: Settings, row: object) -> tuple[str, bytes]:
    t = settings.topics
    if isinstance(row, AssetBar):
        return t.asset_bars, row.asset.encode()
    assert isinstance(row, Bar | FootprintBar | LiquidationBar | DerivBar)
    topic = {Bar: t.bars, FootprintBar: t.footprint_bars, LiquidationBar: t.liquidation_bars, DerivBar: t.deriv_bars}
    return topic[type(row)], f"{row.venue}|{row.instrument}".encode()


def _read_signals(settings: Settings) -> list[Signal]:
    consumer = Consumer(settings.kafka.librdkafka(**{"group.id": "parity-reader", "isolation.level": "read_committed"}))
    codec = AvroCodec()
    try:
        tp = TopicPartition(settings.topics.signals, 0)
        _low, high = consumer.get_watermark_offsets(tp, timeout=10)
        consumer.assign([TopicPartition(settings.topics.signals, 0, OFFSET_BEGINNING)])
        out = []
        deadline = time.monotonic() + 30
        while high and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=500, timeout=0.3):
                record = codec.decode(msg.value())
                record.pop("type")
                out.append(msgspec.convert(record, Signal))
            if consumer.position([tp])[0].offset >= high:
                break
        return out
    finally:
        consumer.close()


def _state(sig: Signal) -> Signal:
    return msgspec.structs.replace(sig, version=0, status="active" if sig.status != "withdrawn" else "withdrawn")


def test_service_equals_offline_across_kill_9(settings: Settings, tmp_path: Path) -> None:
    from tapeline.cli.signals import current, signal_inputs

    load_detectors()
    rule_data = [{"detector": name, "intervals": ["1s"]} for name in sorted(REGISTRY)]
    rules = Rules.parse(rule_data)
    trades = venue_trades("binance-usdm")
    processor = settings.processor
    inputs = signal_inputs(trades, rules, ["1s"], processor.allowed_lateness_ms * 1_000_000,
                           processor.correction_horizon_ms * 1_000_000)  # fmt: skip
    expected_versions = SignalEngine(rules).run(inputs.rows)
    expected = current(expected_versions)
    assert len(expected) > 20, "the capture should give signals to compare"

    ensure_topics(settings, [*input_topics(settings), settings.topics.signals, settings.topics.dead_letter])
    codec = AvroCodec()
    producer = make_producer(settings)

    def publish(rows: list) -> None:
        for row in rows:
            topic, key = _topic_and_key(settings, row)
            produce(producer, topic, codec.encode_event(row), key)
        assert producer.flush(30) == 0

    half = len(inputs.rows) // 2
    publish(inputs.rows[:half])
    env = {
        "TAPELINE_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "TAPELINE_TOPICS__PREFIX": settings.topics.prefix,
        "TAPELINE_SIGNALS__GROUP_ID": settings.signals.group_id,
        "TAPELINE_SIGNALS__RULES": json.dumps(rule_data),
    }
    first = Service("signals", env, tmp_path)
    try:
        wait_for(lambda: len(_read_signals(settings)) > 0, 60, "the first committed signals", [first])
        first.proc.send_signal(signal.SIGKILL)  # mid-stream: no shutdown, an open transaction is left behind
        first.proc.wait(10)
    finally:
        first.stop()
    at_kill = {s.signal_id for s in current(_read_signals(settings))}
    assert not at_kill >= {s.signal_id for s in expected}, "the kill came after everything was published"

    publish(inputs.rows[half:])

    def caught_up() -> bool:
        return {s.signal_id for s in current(_read_signals(settings))} == {s.signal_id for s in expected}

    second = Service("signals", env, tmp_path)
    try:
        wait_for(caught_up, 90, f"the {len(expected)} signals of the offline run", [second])
        time.sleep(3)  # late revisions, if any, come now
        published = _read_signals(settings)
    finally:
        second.stop()

    pairs = [(s.signal_id, s.version) for s in published]
    assert len(pairs) == len(set(pairs)), "a signal version was published twice"
    for sig in published:  # versions of one signal are published in order, 1, 2, ... without a gap
        assert sig.version == 1 or (sig.signal_id, sig.version - 1) in set(pairs), sig
    # Each signal's state at the end: the same signals with the same numbers. The version count may differ:
    # the service reads the topics side by side, so an asset bar may come before a venue bar it counts.
    assert [_state(s) for s in current(published)] == [_state(s) for s in expected]
    kinds = {s.kind for s in expected}
    assert len(kinds) >= 2, kinds
