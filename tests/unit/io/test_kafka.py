"""EventPublisher batching, with a stand-in producer (no broker)."""

from __future__ import annotations

import msgspec

from tapeline.codec.avro import AvroCodec
from tapeline.config import TopicSettings
from tapeline.domain.events import Trade
from tapeline.io.kafka import EventPublisher


class _Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes | None]] = []

    def produce(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        self.sent.append((topic, value, key))


def test_trades_go_out_as_columnar_batches_of_one_symbol() -> None:
    trade = Trade("okx", "BTC-USDT-SWAP", "BTC-USDT-PERP", 10, 11, 100.5, 0.25, 25.125, "buy", "1")
    trades = [msgspec.structs.replace(trade, ts_ns=10 + i, side=("buy", "sell")[i % 3 == 0], trade_id=str(i))
              for i in range(7)]  # fmt: skip
    trades[5] = msgspec.structs.replace(trades[5], symbol="BTC-USDT-SWAP2")  # a batch carries one symbol
    producer, codec = _Producer(), AvroCodec()
    publisher = EventPublisher(producer, TopicSettings(), codec, max_batch=3)  # type: ignore[arg-type]
    publisher.publish(trades)
    publisher.flush_all()
    batches = [codec.decode_trades(value) for _, value, _ in producer.sent]
    assert [len(b) for b in batches] == [3, 2, 1, 1]
    assert [t for b in batches for t in b] == trades
    assert {key for _, _, key in producer.sent} == {b"okx|BTC-USDT-PERP"}
    assert publisher.published == 7
