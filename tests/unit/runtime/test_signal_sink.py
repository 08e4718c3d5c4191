"""The processor's signals stage: signal frames into ClickHouse, anything else dead-lettered with its bytes."""

from __future__ import annotations

import asyncio

from tapeline.codec.avro import AvroCodec
from tapeline.domain.events import DeadLetter, Signal, Trade
from tapeline.io.kafka import DeadLetters
from tapeline.io.store import BarStore
from tapeline.runtime.signal_sink import SignalSink


class _Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes | None]] = []

    def produce(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        self.sent.append((topic, value, key))

    def flush(self, timeout: float | None = None) -> int:
        return 0


def test_signals_are_stored_and_other_frames_dead_lettered(store: BarStore) -> None:
    codec = AvroCodec()
    producer = _Producer()
    sink = SignalSink(store, DeadLetters(producer, "dlq", "processor", codec), codec)  # type: ignore[arg-type]
    first = Signal("a" * 40, 1, "active", "absorption", "bearish", "okx", "BTC-USDT-PERP", "BTC", "perp", "1m", 60,
                   None, 2.5, {"delta_base": 3.0}, "absorption")  # fmt: skip
    second = Signal("a" * 40, 2, "withdrawn", "absorption", "bearish", "okx", "BTC-USDT-PERP", "BTC", "perp", "1m",
                    60, None, 2.5, {"delta_base": 3.0}, "absorption")  # fmt: skip
    trade = codec.encode_event(Trade("okx", "BTC-USDT-SWAP", "BTC-USDT-PERP", 1, 1, 1.0, 1.0, 1.0, "buy", "1"))
    frames = [(codec.encode_event(first), 0, "s/0@0"), (trade, 1, "s/0@1"), (b"\x00garbage", 2, "s/0@2"),
              (codec.encode_event(second), 3, "s/0@3"), (codec.encode_event(first), 4, "s/0@4")]  # fmt: skip

    async def go() -> None:
        await (await sink.process(frames))

    asyncio.run(go())
    assert store.signal_versions() == [first, second]  # the replayed version 1 replaced itself
    assert store.current_signals(include_withdrawn=True) == [second] and store.current_signals() == []
    letters = [DeadLetter(**{k: v for k, v in codec.decode(value).items() if k != "type"})
               for _, value, _ in producer.sent]  # fmt: skip
    assert [(d.raw, d.context) for d in letters] == [(trade, "s/0@1"), (b"\x00garbage", "s/0@2")]
    assert "wrong schema: tapeline.v1.Trade" in letters[0].reason
