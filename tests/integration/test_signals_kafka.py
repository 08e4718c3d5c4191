"""Signal service against the real broker: bars topic -> signals topic, restart with warm-up, dead letters."""

from __future__ import annotations

import time
import uuid

import msgspec
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from tapeline.codec.avro import AvroCodec
from tapeline.config import Settings
from tapeline.domain.aggregates import Bar
from tapeline.domain.events import DeadLetter, Signal, Trade
from tapeline.io.kafka import ensure_topics, make_producer, produce
from tapeline.runtime.signal_service import BATCH_MAX, SignalService, run
from tapeline.signals.divergence import signal_id

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


def _expected(variant: str, direction: str, prev: int, now: int, confirmed: int, prev_p: float, now_p: float) -> dict:
    sid = signal_id("binance-usdm", "BTC-USDT-PERP", "1m", variant, direction, T0 + now * STEP, T0 + prev * STEP)
    sig = Signal(
        signal_id=sid,
        kind="divergence", variant=variant, direction=direction, venue="binance-usdm", instrument="BTC-USDT-PERP",
        interval="1m", pivot_ts_ns=T0 + now * STEP, prev_pivot_ts_ns=T0 + prev * STEP,
        confirmed_ts_ns=T0 + confirmed * STEP, price_prev=prev_p, price_now=now_p, cvd_prev=CVD[prev], cvd_now=CVD[now],
    )  # fmt: skip
    return msgspec.structs.asdict(sig)


BEARISH = _expected("regular", "bearish", prev=3, now=10, confirmed=13, prev_p=21.0, now_p=26.0)
BULLISH = _expected("regular", "bullish", prev=6, now=17, confirmed=20, prev_p=9.0, now_p=4.0)


def _produce(settings: Settings, frames: list[bytes]) -> None:
    producer = make_producer(settings)
    for frame in frames:
        produce(producer, settings.topics.bars, frame, b"binance-usdm|BTC-USDT-PERP")
    assert producer.flush(30) == 0


def _read_all(settings: Settings, topic: str, timeout_s: float = 30.0) -> list[tuple[bytes, bytes | None]]:
    """Every (value, key) of partition 0 up to its current end."""
    consumer = Consumer(settings.kafka.librdkafka(**{"group.id": f"reader-{uuid.uuid4().hex}"}))
    try:
        _low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        out: list[tuple[bytes, bytes | None]] = []
        deadline = time.monotonic() + timeout_s
        while len(out) < high and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=500, timeout=0.5):
                assert msg.error() is None, msg.error()
                out.append((msg.value(), msg.key()))
        assert len(out) == high, f"read {len(out)} of {high} messages from {topic}"
        return out
    finally:
        consumer.close()


def _signals(settings: Settings) -> list[dict]:
    codec = AvroCodec()
    rows = []
    for value, key in _read_all(settings, settings.topics.signals):
        record = codec.decode(value)
        assert key == f"{record['venue']}|{record['instrument']}".encode()
        assert record.pop("type") == "signal"
        rows.append(record)
    return rows


@pytest.fixture
def topics(settings: Settings) -> Settings:
    ensure_topics(settings, [settings.topics.bars, settings.topics.signals, settings.topics.dead_letter])
    return settings


def test_divergence_is_published_once_and_restart_warms_up(topics: Settings) -> None:
    settings = topics
    first = _frames(0, PRICES_1)
    _produce(settings, [*first[:10], GARBAGE, *first[10:]])

    stats = run(settings, max_idle_s=IDLE_S)
    assert _signals(settings) == [BEARISH]
    assert (stats.messages, stats.warmup_messages, stats.signals, stats.dead_letters) == (len(first) + 1, 0, 1, 1)

    # Restart (same group) after more bars: the new pivot low is compared with the one at bar 6,
    # which only a warm-up over the already-committed bars can know.
    second = _frames(len(PRICES_1), PRICES_2)
    _produce(settings, second)
    stats = run(settings, max_idle_s=IDLE_S)
    assert _signals(settings) == [BEARISH, BULLISH]  # no duplicate of the first, the new one once
    assert (stats.warmup_messages, stats.signals, stats.dead_letters) == (len(first) + 1, 1, 0)
    assert len(_read_all(settings, settings.topics.dead_letter)) == 1  # warm-up does not dead-letter again

    # A third run with nothing new publishes nothing.
    stats = run(settings, max_idle_s=IDLE_S)
    assert stats.signals == 0 and len(_signals(settings)) == 2


def test_garbage_goes_to_dead_letter_and_the_service_keeps_going(topics: Settings) -> None:
    settings = topics
    codec = AvroCodec()
    not_a_bar = codec.encode_event(  # valid Avro, but a Trade
        Trade("binance-usdm", "BTCUSDT", "BTC-USDT-PERP", 1, 1, 1.0, 1.0, 1.0, "buy", "1")
    )
    _produce(settings, [GARBAGE, not_a_bar, *_frames(0, PRICES_1)])

    stats = run(settings, max_idle_s=IDLE_S)
    assert _signals(settings) == [BEARISH]
    assert stats.dead_letters == 2
    raw_letters = _read_all(settings, settings.topics.dead_letter)
    letters = [msgspec.convert(codec.decode(v), DeadLetter) for v, _ in raw_letters]
    assert [(d.raw, d.source, d.context) for d in letters] == [
        (GARBAGE, "signals", f"{settings.topics.bars}/0@0"),
        (not_a_bar, "signals", f"{settings.topics.bars}/0@1"),
    ]
    assert "unknown schema id 99" in letters[0].reason
    assert "tapeline.v1.Trade" in letters[1].reason


def test_warmup_batches_never_move_the_committed_offset_back(topics: Settings) -> None:
    settings = topics
    codec = AvroCodec()
    # More history than one batch, so the first batch after a restart is warm-up only.
    filler = [codec.encode_event(_bar(i, 100 + i)) for i in range(BATCH_MAX * 2)]
    _produce(settings, filler)
    run(settings, max_idle_s=IDLE_S)
    committed_before = len(filler)

    service = SignalService(settings)
    try:
        deadline = time.monotonic() + 60
        while service.stats.messages == 0 and time.monotonic() < deadline:
            service.run_once()
        assert service.stats.warmup_messages == BATCH_MAX  # one full batch, all below the committed offset
        [tp] = service.consumer.committed([TopicPartition(settings.topics.bars, 0)], timeout=10)
        assert tp.offset == committed_before
    finally:
        service.close()
