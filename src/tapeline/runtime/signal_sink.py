"""Signals stage of the processor: the signals topic -> the ClickHouse `signals` table.

The signal service only talks to Kafka; the processor owns the store (embedded ClickHouse admits one process
per directory), so it stores the signals. Each batch is inserted before Faust acks it. The table is
idempotent by (signal_id, version): a re-read batch, or a version a crashed signal service had produced in a
transaction it never committed (the same deterministic record is produced again), replaces itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from tapeline.codec.avro import AvroCodec
from tapeline.domain.errors import BadMessage
from tapeline.domain.events import Signal
from tapeline.io.kafka import DeadLetters
from tapeline.io.store import BarStore
from tapeline.runtime.ordered_writes import OrderedWrites
from tapeline.runtime.signal_service import decode_signal


class SignalSink:
    def __init__(self, store: BarStore, dead_letters: DeadLetters, codec: AvroCodec) -> None:
        self.store = store
        self.dead_letters = dead_letters
        self.codec = codec
        self._writes = OrderedWrites()

    def decode(self, frames: Sequence[tuple[bytes, int, str]]) -> list[Signal]:
        signals = []
        for value, _offset, context in frames:
            try:
                signals.append(decode_signal(self.codec, value))
            except BadMessage as exc:
                self.dead_letters.send(value, f"processor: {exc.reason}", context)
        return signals

    async def process(self, frames: Sequence[tuple[bytes, int, str]]) -> asyncio.Future[None]:
        """Decode a batch and start inserting it; returns the insert's future (done: the batch is durable)."""
        return await self._writes.submit(self._write, self.decode(frames))

    def _write(self, signals: list[Signal]) -> None:
        self.store.insert_signals(signals)
        self.dead_letters.producer.flush()  # the batch's dead letters, before its ack
