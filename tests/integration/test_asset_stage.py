"""The asset stage on real parts: venue bars and watermarks go through the broker's by-asset topic (keyed by
asset), asset bars land in embedded ClickHouse, and they equal what `tapeline bars --by asset` computes
offline from the same trades; a restarted stage continues from ClickHouse with the same rows."""

from __future__ import annotations

import asyncio
import time
import uuid

import msgspec
import pytest
from confluent_kafka import Consumer

from tapeline.cli import asset_bars
from tapeline.codec.avro import AvroCodec
from tapeline.config import ProcessorSettings, Settings
from tapeline.domain.aggregates import AssetBar
from tapeline.domain.events import Trade, TradeBatch
from tapeline.flow.bars import BarAggregator
from tapeline.flow.windows import newest_versions
from tapeline.io.kafka import DeadLetters, ensure_topics, make_producer
from tapeline.io.store import BarStore
from tapeline.runtime.asset_stage import AssetPipeline, Frame
from tapeline.runtime.processor import BarPipeline
from tests.support.data import VENUE_TRADE_CAPTURES, venue_trades

INTERVALS = ["1s", "1m"]


def _settings(settings: Settings) -> Settings:
    processor = ProcessorSettings(intervals=INTERVALS, allowed_lateness_ms=0, correction_horizon_ms=60_000,
                                  obi_intervals=["1s"], write_trades=False)  # fmt: skip
    return settings.model_copy(update={"processor": processor})


def _consume(settings: Settings, topic: str, expected_at_least: int) -> list[Frame]:
    """Everything on `topic`, as the asset agent gets it (value, offset, context, publish time)."""
    consumer = Consumer(settings.kafka.librdkafka(**{"group.id": uuid.uuid4().hex, "auto.offset.reset": "earliest"}))
    consumer.subscribe([topic])
    frames: list[Frame] = []
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                if len(frames) >= expected_at_least:
                    break  # nothing more for half a second
                continue
            if msg.error():
                continue
            frames.append((msg.value(), msg.offset(), f"{msg.topic()}@{msg.offset()}", msg.timestamp()[1] / 1000))
    finally:
        consumer.close()
    return frames


@pytest.mark.data
def test_streamed_asset_bars_equal_offline_and_survive_a_restart(settings: Settings, store: BarStore) -> None:
    settings = _settings(settings)
    topics = settings.topics
    ensure_topics(settings, [topics.by_asset, topics.asset_bars, topics.bars, topics.dead_letter])
    codec = AvroCodec()
    trades: list[Trade] = [t for venue in VENUE_TRADE_CAPTURES for t in venue_trades(venue)]
    # the bar stage, batch by batch as Kafka would hand trades to it (per instrument, in order)
    bar_stage = BarPipeline(settings, store)
    # venues live side by side: their trades reach the processor in time order, in per-instrument batches
    runs: list[list[Trade]] = []
    for t in sorted(trades, key=lambda t: t.recv_ts_ns):
        if runs and runs[-1][0].instrument == t.instrument and runs[-1][0].venue == t.venue and len(runs[-1]) < 200:
            runs[-1].append(t)
        else:
            runs.append([t])
    frames = [(codec.encode_event(TradeBatch.of(run)), offset, "t") for offset, run in enumerate(runs)]

    async def run_bars() -> None:
        for i in range(0, len(frames), 20):
            await (await bar_stage.process(frames[i : i + 20]))

    asyncio.run(run_bars())
    inputs = _consume(settings, topics.by_asset, 50)
    kinds = {codec.schema_of(f[0]).name for f in inputs}
    assert kinds == {"tapeline.v1.AssetInputs"}, kinds  # rows travel in per-asset batches

    def stage() -> AssetPipeline:
        producer = make_producer(settings)
        return AssetPipeline(settings, store, producer, DeadLetters(producer, topics.dead_letter, "test", codec),
                             codec)  # fmt: skip

    async def run_assets(pipeline: AssetPipeline, batch: list[Frame]) -> None:
        for i in range(0, len(batch), 50):
            await (await pipeline.process(batch[i : i + 50]))

    cut = len(inputs) * 2 // 3
    asyncio.run(run_assets(stage(), inputs[:cut]))
    # a restart: a new stage restores each asset from ClickHouse on its first record; the committed offset lags
    asyncio.run(run_assets(stage(), inputs[cut - 40 :]))

    # offline: the same trades -> venue bars -> asset bars, by the CLI's code
    offline_bars = BarAggregator(INTERVALS, 0, 60 * 10**9)
    for position, t in enumerate(trades):
        offline_bars.add(t, position)
    offline_bars.flush()
    offline = {(r.asset, r.kind, r.interval, r.start_ns): r
               for r in asset_bars(newest_versions(offline_bars.drain()), INTERVALS, 60 * 10**9)}  # fmt: skip

    db = store.database
    columns = ", ".join(AssetBar.__struct_fields__)
    streamed = [
        AssetBar(*row) for row in store.client.query(f"SELECT {columns} FROM {db}.asset_bars FINAL").result_rows
    ]
    finals = [r for r in streamed if r.final]
    # The stream cannot know the captures ended: a window stays open while a venue of its asset has not passed
    # it (here BTC's venues are years apart), until the settle timer lists that venue as missing.
    assert len(finals) > 400, (len(finals), len(offline))
    assert {r.asset for r in finals} >= {"BTC", "ETH", "AKRO", "XMR"}
    assert {v for r in finals for v in r.venues} >= {"binance-usdm", "bybit-linear", "bybit-spot", "okx"}
    ignore = {"version"}
    for row in finals:
        want = offline[(row.asset, row.kind, row.interval, row.start_ns)]
        got_fields = {k: v for k, v in msgspec.structs.asdict(row).items() if k not in ignore}
        want_fields = {k: v for k, v in msgspec.structs.asdict(want).items() if k not in ignore}
        assert got_fields == want_fields, (row.asset, row.kind, row.interval, row.start_ns)
    # final asset rows were published for downstream consumers
    published = [f for f in _consume(settings, topics.asset_bars, len(finals))
                 if codec.schema_of(f[0]).name == "tapeline.v1.AssetBar"]  # fmt: skip
    assert {
        (r["asset"], r["kind"], r["interval"], r["start_ns"]) for r in map(codec.decode, (f[0] for f in published))
    } >= {(r.asset, r.kind, r.interval, r.start_ns) for r in finals}
