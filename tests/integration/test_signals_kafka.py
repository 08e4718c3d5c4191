"""Signal service against the real broker: input topics -> signals topic in transactions, restart with warm-up,
dead letters, and the same signals as `tapeline signals` across a kill -9."""

from __future__ import annotations

import time
import uuid

import msgspec
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from tapeline.codec.avro import AvroCodec
from tapeline.config import Settings, SignalSettings
from tapeline.domain.aggregates import Bar
from tapeline.domain.events import DeadLetter, Trade
from tapeline.io.kafka import ensure_topics, make_producer, produce
from tapeline.runtime.signal_service import BATCH_MAX, SignalService, input_topics, run

pytestmark = pytest.mark.integration

T0 = 1_700_000_040_000_000_000  # a minute boundary
STEP = 60_000_000_000
IDLE_S = 3.0
GARBAGE = b"\x00\x00\x00\x00\x63not an avro bar"  # Confluent header with unknown schema id 99

# Worked out by hand (pivot: high >= 3 bars left and > 3 bars right; lows mirrored), high = p + 1,
# low = p - 1:  pivot highs at 3 (21) and 10 (26), confirmed at 13, CVD 100 -> 50: regular bearish.
# Pivot lows at 6 (9) and 17 (4), confirmed at 20, CVD -20 -> 30: regular bullish.
PRICES_1 = [10, 11, 12, 20, 12, 11, 10, 11, 12, 13, 25, 13, 12, 11]  # bars 0..13
PRICES_2 = [10, 9, 8, 5, 8, 9, 10]  # bars 14..20
CVD = {3: 100.0, 6: -20.0, 10: 50.0, 17: 30.0}


def _bar(i: int, price: float, interval: str = "1m") -> Bar:
    return Bar(
        venue="binance-usdm", instrument="BTC-USDT-PERP", interval=interval, start_ns=T0 + i * STEP,
        open=price, high=price + 1, low=price - 1, close=price, buy_base=1.0, sell_base=1.0, buy_quote=price,
        sell_quote=price, delta_base=0.0, delta_quote=0.0, trades=2, cvd_base=CVD.get(i, 0.0), final=True,
    )  # fmt: skip


def _frames(first: int, prices: list[int]) -> list[bytes]:
    codec = AvroCodec()
    frames = []
    for i, price in enumerate(prices, start=first):
        frames.append(codec.encode_event(_bar(i, price)))
        # The same shape on an interval the service is not configured for: it must not signal.
        frames.append(codec.encode_event(_bar(i, price, interval="1s")))
    return frames


def _facts(sig: dict) -> tuple:
    return (sig["kind"], sig["direction"], sig["pivot_ts_ns"], int(sig["detail"]["prev_pivot_ts_ms"] * 1e6),
            sig["ts_ns"], sig["detail"]["price_prev"], sig["detail"]["price_now"])  # fmt: skip


# Worked out by hand above; ts_ns is the end of the confirming bar.
BEARISH = ("divergence_regular", "bearish", T0 + 10 * STEP, T0 + 3 * STEP, T0 + 14 * STEP, 21.0, 26.0)
BULLISH = ("divergence_regular", "bullish", T0 + 17 * STEP, T0 + 6 * STEP, T0 + 21 * STEP, 9.0, 4.0)


def _produce(settings: Settings, frames: list[bytes], topic: str | None = None,
             key: bytes = b"binance-usdm|BTC-USDT-PERP") -> None:  # fmt: skip
    producer = make_producer(settings)
    for frame in frames:
        produce(producer, topic or settings.topics.bars, frame, key)
    assert producer.flush(30) == 0


def _read_all(settings: Settings, topic: str, timeout_s: float = 30.0) -> list[tuple[bytes, bytes | None]]:
    """Every committed (value, key) of partition 0 up to its current end (transaction markers take offsets too)."""
    consumer = Consumer(settings.kafka.librdkafka(**{"group.id": f"reader-{uuid.uuid4().hex}",
                                                     "isolation.level": "read_committed"}))  # fmt: skip
    try:
        tp = TopicPartition(topic, 0)
        _low, high = consumer.get_watermark_offsets(tp, timeout=10)
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        out: list[tuple[bytes, bytes | None]] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=500, timeout=0.3):
                assert msg.error() is None, msg.error()
                out.append((msg.value(), msg.key()))
            [position] = consumer.position([tp])
            if position.offset >= high or high == 0:
                return out
        raise AssertionError(f"read {len(out)} messages of {topic}, not up to offset {high}")
    finally:
        consumer.close()


def _signals(settings: Settings) -> list[dict]:
    codec = AvroCodec()
    rows = []
    for value, key in _read_all(settings, settings.topics.signals):
        record = codec.decode(value)
        assert key == record["asset"].encode()
        assert record.pop("type") == "signal"
        rows.append(record)
    return rows


@pytest.fixture
def topics(settings: Settings) -> Settings:
    ensure_topics(settings, [*input_topics(settings), settings.topics.signals, settings.topics.dead_letter])
    return settings


def _divergence_only(settings: Settings, intervals: list[str] | None = None) -> Settings:
    rules = [{"detector": "divergence", "intervals": intervals or ["1m"]}]
    return settings.model_copy(update={"signals": SignalSettings(group_id=settings.signals.group_id, rules=rules)})


def test_divergence_is_published_once_and_restart_warms_up(topics: Settings) -> None:
    settings = _divergence_only(topics)
    first = _frames(0, PRICES_1)
    _produce(settings, [*first[:10], GARBAGE, *first[10:]])

    stats = run(settings, max_idle_s=IDLE_S)
    assert [_facts(s) for s in _signals(settings)] == [BEARISH]
    assert (stats.messages, stats.warmup_messages, stats.signals, stats.dead_letters) == (len(first) + 1, 0, 1, 1)

    # Restart (same group) after more bars: the new pivot low is compared with the one at bar 6,
    # which only a warm-up over the already-committed bars can know.
    second = _frames(len(PRICES_1), PRICES_2)
    _produce(settings, second)
    stats = run(settings, max_idle_s=IDLE_S)
    signals = _signals(settings)
    assert [_facts(s) for s in signals] == [BEARISH, BULLISH]  # no duplicate of the first, the new one once
    assert [(s["version"], s["status"], s["asset"], s["market"]) for s in signals] == [(1, "active", "BTC", "perp")] * 2
    assert (stats.warmup_messages, stats.signals, stats.dead_letters) == (len(first) + 1, 1, 0)
    assert len(_read_all(settings, settings.topics.dead_letter)) == 1  # warm-up does not dead-letter again

    # A third run with nothing new publishes nothing.
    stats = run(settings, max_idle_s=IDLE_S)
    assert stats.signals == 0 and len(_signals(settings)) == 2


def test_a_corrected_bar_on_the_topic_revises_the_signal(topics: Settings) -> None:
    settings = _divergence_only(topics)
    codec = AvroCodec()
    frames = [codec.encode_event(_bar(i, p)) for i, p in enumerate(PRICES_1)]
    corrected = msgspec.structs.replace(_bar(10, PRICES_1[10]), cvd_base=150.0, version=1)  # no divergence now
    _produce(settings, [*frames, codec.encode_event(corrected)])
    run(settings, max_idle_s=IDLE_S)
    first, second = _signals(settings)
    assert first["signal_id"] == second["signal_id"]
    assert [(s["version"], s["status"]) for s in (first, second)] == [(1, "active"), (2, "withdrawn")]


def test_garbage_goes_to_dead_letter_and_the_service_keeps_going(topics: Settings) -> None:
    settings = _divergence_only(topics)
    codec = AvroCodec()
    not_a_bar = codec.encode_event(  # valid Avro, but a Trade
        Trade("binance-usdm", "BTCUSDT", "BTC-USDT-PERP", 1, 1, 1.0, 1.0, 1.0, "buy", "1")
    )
    _produce(settings, [GARBAGE, not_a_bar, *_frames(0, PRICES_1)])

    stats = run(settings, max_idle_s=IDLE_S)
    assert [_facts(s) for s in _signals(settings)] == [BEARISH]
    assert stats.dead_letters == 2
    raw_letters = _read_all(settings, settings.topics.dead_letter)
    letters = [msgspec.convert(codec.decode(v), DeadLetter) for v, _ in raw_letters]
    assert [(d.raw, d.source, d.context) for d in letters] == [
        (GARBAGE, "signals", f"{settings.topics.bars}/0@0"),
        (not_a_bar, "signals", f"{settings.topics.bars}/0@1"),
    ]
    assert "unknown schema id 99" in letters[0].reason
    assert "tapeline.v1.Trade" in letters[1].reason


def test_a_restart_warms_up_before_consuming_and_leaves_the_offsets_alone(topics: Settings) -> None:
    settings = _divergence_only(topics)
    codec = AvroCodec()
    filler = [codec.encode_event(_bar(i, 100 + i)) for i in range(BATCH_MAX * 2)]  # more than one batch
    _produce(settings, filler)
    run(settings, max_idle_s=IDLE_S)
    [before] = _committed(settings)

    service = SignalService(settings)
    try:
        deadline = time.monotonic() + 60
        while not service.assigned_once.is_set() and time.monotonic() < deadline:
            service.run_once()
        # the whole history was replayed in the assignment, by its own reader, before any batch
        assert service.stats.warmup_messages == len(filler)
        assert service.run_once() == 0 and service.stats.messages == 0
        assert _committed(settings) == [before] and before > len(filler) - 1
    finally:
        service.close()


def _committed(settings: Settings) -> list[int]:
    consumer = Consumer(settings.kafka.librdkafka(**{"group.id": settings.signals.group_id}))
    try:
        return [tp.offset for tp in consumer.committed([TopicPartition(settings.topics.bars, 0)], timeout=10)]
    finally:
        consumer.close()
