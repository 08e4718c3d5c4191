"""Asset stage: the by-asset topic -> asset bars, cross-venue OBI and daily asset metrics -> ClickHouse and Kafka.

The bar stage publishes every final venue bar, final OBI bar and bar watermark on the by-asset topic, keyed
by asset (a repartition topic), so this stage scales with that topic's partitions, apart from the trade
stream, and one asset's inputs arrive in one order. A message (AssetInputs) holds what one bar-stage write had
for the asset; a row's position is offset << 16 | its index in the message (flow/assets.py).

Same rules as the bar stage: each batch's rows are written (and final ones published) before Faust acks the
batch. State is not kept in Faust: an asset is restored from ClickHouse the first time this worker sees it
(its stored asset rows and the venue rows of its revisable windows, both written before the venue rows were
published), so a restart, or an asset moving to another worker, continues where the rows end; replayed
records change nothing the stored rows do not already hold.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import NamedTuple

import msgspec
from confluent_kafka import Producer

from tapeline.codec.avro import AvroCodec
from tapeline.config import Settings
from tapeline.domain.aggregates import AssetBar, AssetInputs, AssetMetric, AssetObiBar, Bar, BarWatermark, ObiBar
from tapeline.domain.errors import SchemaError
from tapeline.flow.assets import AssetBarAggregator, AssetObiAggregator
from tapeline.io.kafka import DeadLetters, produce
from tapeline.io.metrics import (
    ASSET_FINAL_LAG_SECONDS,
    ASSET_INPUTS,
    ASSET_LATE_ROWS,
    ASSET_ROWS_WRITTEN,
    ASSET_WRITE_SECONDS,
    ASSET_WRITE_WAIT_SECONDS,
)
from tapeline.io.store import BarStore
from tapeline.runtime.ordered_writes import OrderedWrites

log = logging.getLogger(__name__)

MAX_ROWS = 1 << 16  # rows per message that the position encoding (offset << 16 | index) can order
Frame = tuple[bytes, int, str, float]  # value, offset, context, publish time (s since the epoch)


class AssetRows(NamedTuple):
    bars: list[AssetBar]
    metrics: list[AssetMetric]
    obi: list[AssetObiBar]
    newly_final: list[AssetBar | AssetObiBar]  # windows that became final in this drain (for the lag metric)

    def __bool__(self) -> bool:
        return bool(self.bars or self.metrics or self.obi)


class AssetPipeline:
    """Everything the asset stage does with a batch of by-asset records, independent of Faust."""

    def __init__(self, settings: Settings, store: BarStore, producer: Producer, dead_letters: DeadLetters,
                 codec: AvroCodec) -> None:  # fmt: skip
        cfg = settings.processor
        self.settings = settings
        self.store = store
        self.producer = producer
        self.dead_letters = dead_letters
        self.codec = codec
        self.horizon_ns = (cfg.allowed_lateness_ms + cfg.correction_horizon_ms) * 1_000_000
        settle_ns, expire_ns = cfg.asset_settle_ms * 1_000_000, cfg.asset_expire_ms * 1_000_000
        self.bars = AssetBarAggregator(cfg.intervals, self.horizon_ns, settle_ns, expire_ns)
        self.obi = AssetObiAggregator(cfg.obi_intervals, self.horizon_ns, settle_ns, expire_ns)
        self._restored: set[str] = set()
        self._lock = asyncio.Lock()  # the batch agent and the settle timer both mutate the aggregators
        self._writes = OrderedWrites(ASSET_WRITE_SECONDS, ASSET_WRITE_WAIT_SECONDS)

    async def process(self, frames: Sequence[Frame]) -> asyncio.Future[None]:
        """Apply a batch and start writing its rows; returns the write's future (done: the batch is durable)."""
        async with self._lock:
            now_ns = time.time_ns()
            published: dict[str, float] = {}  # asset -> publish time of its earliest record in the batch
            for value, offset, context, sent_s in frames:
                inputs = self._decode(value, context)
                if inputs is None:
                    continue
                self._restore(inputs.asset, now_ns)
                published.setdefault(inputs.asset, sent_s)
                records: list[Bar | ObiBar | BarWatermark] = [*inputs.bars, *inputs.obi_bars, *inputs.watermarks]
                for index, row in enumerate(records):
                    self._apply(row, offset << 16 | index, now_ns, context)
            rows = self._drain(now_ns)
            return await self._writes.submit(self._write, rows, published)

    async def settle(self) -> None:
        """Settle windows whose late venues have had `asset_settle_ms` (the timer calls this every second)."""
        async with self._lock:
            now_ns = time.time_ns()
            self.bars.settle(now_ns)
            self.obi.settle(now_ns)
            rows = self._drain(now_ns)
            if rows:
                await (await self._writes.submit(self._write, rows, {}))

    def _decode(self, value: bytes, context: str) -> AssetInputs | None:
        try:
            if (name := self.codec.schema_of(value).name) != "tapeline.v1.AssetInputs":
                raise SchemaError(f"a {name} message is not AssetInputs")
            inputs = msgspec.convert(self.codec.decode(value), AssetInputs)
            if len(inputs.bars) + len(inputs.obi_bars) + len(inputs.watermarks) > MAX_ROWS:
                raise SchemaError(f"more than {MAX_ROWS} rows in one message")
            return inputs
        except (SchemaError, ValueError, TypeError, EOFError, KeyError, msgspec.ValidationError) as exc:
            self.dead_letters.send(value, f"processor: undecodable by-asset record: {exc}", context)
            return None

    def _apply(self, row: Bar | ObiBar | BarWatermark, offset: int, now_ns: int, context: str) -> None:
        if isinstance(row, BarWatermark):
            ASSET_INPUTS.labels("watermark").inc()
            self.bars.add_watermark(row.venue, row.instrument, row.watermark_ns, offset, now_ns)
            return
        table, aggregator = ("obi", self.obi) if isinstance(row, ObiBar) else ("bars", self.bars)
        ASSET_INPUTS.labels(table).inc()
        if not aggregator.add(row, offset, now_ns):  # type: ignore[arg-type]  # the aggregator of its type
            ASSET_LATE_ROWS.labels(table).inc()
            self.dead_letters.send(
                self.codec.encode_event(row),
                f"processor: late venue row: its asset window ({row.interval}) is past the correction horizon",
                f"{row.venue}/{row.instrument} start_ns={row.start_ns} {context}",
            )

    def _restore(self, asset: str, now_ns: int) -> None:
        """The first record of an asset since the start: its state back from ClickHouse."""
        if asset in self._restored:
            return
        self._restored.add(asset)
        asset_rows, venue_rows = self.store.resume_asset(asset, self.horizon_ns)
        self.bars.restore(asset_rows, venue_rows, now_ns)
        instruments = sorted({bar.instrument for bar in venue_rows} | self.store.obi_instruments(asset))
        obi_rows, obi_venue_rows = self.store.resume_asset_obi(asset, instruments, self.horizon_ns)
        self.obi.restore(obi_rows, obi_venue_rows, now_ns)
        log.info("asset %s restored: %d asset bars, %d venue bars, %d cross-venue OBI rows", asset,
                 len(asset_rows), len(venue_rows), len(obi_rows))  # fmt: skip

    def _drain(self, now_ns: int) -> AssetRows:
        bars, obi = self.bars.drain(now_ns), self.obi.drain(now_ns)
        return AssetRows(bars, self.bars.drain_metrics(), obi, [*self.bars.newly_final, *self.obi.newly_final])

    def _write(self, rows: AssetRows, published: dict[str, float]) -> None:
        bars, metrics, obi, newly_final = rows
        self.store.insert_asset_bars(bars)
        self.store.insert_asset_metrics(metrics)
        self.store.insert_asset_obi(obi)
        topic = self.settings.topics.asset_bars
        outputs: list[AssetBar | AssetObiBar | AssetMetric] = [*bars, *obi, *metrics]
        for row in outputs:
            if row.final:
                produce(self.producer, topic, self.codec.encode_event(row), row.asset.encode())
        self.producer.flush()  # final rows are durable in Kafka too before the batch is acked
        now_s = time.time()
        for table, written in (("asset_bars", bars), ("asset_metrics", metrics), ("asset_obi_bars", obi)):
            final = sum(r.final for r in written)
            ASSET_ROWS_WRITTEN.labels(table, "true").inc(final)
            ASSET_ROWS_WRITTEN.labels(table, "false").inc(len(written) - final)
        for row in newly_final:
            if row.asset in published:  # else settled by the timer: no record completed it
                table = "asset_bars" if isinstance(row, AssetBar) else "asset_obi_bars"
                ASSET_FINAL_LAG_SECONDS.labels(table).observe(max(0.0, now_s - published[row.asset]))
