"""Stream processor: trades from Kafka -> event-time bars -> ClickHouse (and final bars -> Kafka).

Final rows go to Kafka keyed venue|instrument, corrections (final rows at a higher version) included: bars to the
bars topic, footprint summaries, liquidation bars and derivatives bars to their own topics.

Faust drives consumption; the work is done in batches (`noack_take`) because per-event table
updates run at ~2k events/s here. State that must survive a crash is not kept in Faust tables:
every batch writes the current rows of the bars it touched to ClickHouse (idempotent upserts),
and the batch's events are acked only after that write returns, so committed offsets never pass
durable results. Writes run one at a time in batch order, each while the next batch is decoded
and aggregated. On start the aggregator is restored from ClickHouse and skips positions it has
already applied, so replays from the last commit do not double count.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import faust
import msgspec
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, Transport

from tapeline.codec.avro import TRADE_FIELDS, AvroCodec
from tapeline.config import Settings
from tapeline.domain.aggregates import (
    AssetInputs,
    Bar,
    BarWatermark,
    DerivBar,
    FootprintBar,
    FootprintLevel,
    LiquidationBar,
    ObiBar,
)
from tapeline.domain.assets import asset_of_instrument
from tapeline.domain.errors import SchemaError
from tapeline.domain.events import BookGap, BookUpdate, DerivTicker, Liquidation, TradeGap
from tapeline.domain.intervals import INTERVAL_NS
from tapeline.flow.bars import BarAggregator
from tapeline.flow.columns import TradeColumns
from tapeline.flow.derivatives import DerivativesAggregator
from tapeline.flow.footprint import BucketPolicy, FootprintAggregator
from tapeline.flow.liquidations import LiquidationAggregator
from tapeline.flow.obi import ObiAggregator
from tapeline.flow.windows import MAX_GAPS, FlowAggregator
from tapeline.io.kafka import DeadLetters, ensure_topics, make_producer, produce
from tapeline.io.metrics import (
    BAR_ROWS_WRITTEN,
    BATCH_SECONDS,
    BATCH_TRADES,
    EVENT_LAG_SECONDS,
    FINAL_BAR_LAG_SECONDS,
    LATE_EVENTS,
    LATE_TRADES,
    TRADES_AGGREGATED,
)
from tapeline.io.store import BarStore
from tapeline.paths import run_dir
from tapeline.runtime.asset_stage import AssetPipeline
from tapeline.runtime.observability import Heartbeat
from tapeline.runtime.ordered_writes import OrderedWrites
from tapeline.runtime.signal_sink import SignalSink

log = logging.getLogger(__name__)

FootprintRows = tuple[list[FootprintLevel], list[FootprintBar]]
E = TypeVar("E")  # a side topic's events
R = TypeVar("R")  # what its aggregator drains
BOOK_EVENTS: dict[str, type[msgspec.Struct]] = {"book": BookUpdate, "book_gap": BookGap}
HEARTBEAT_LIMIT_S = 30.0  # the idle timer runs every second; this long without it, the worker is stuck
BY_ASSET_ROWS = 2000  # rows per by-asset message
MAX_BATCH = 1 << 16  # trades per Kafka message that the position encoding (offset << 16 | index) can order


class TradeRun:
    """Consecutive trades of one instrument within a batch, gathered column by column."""

    def __init__(self) -> None:
        self.lists: dict[str, list[Any]] = {name: [] for name in TRADE_FIELDS}
        self.positions: list[int] = []

    def extend(self, batch: dict[str, list[Any]], base: int) -> None:
        for name, column in batch.items():
            self.lists[name].extend(column)
        self.positions.extend(range(base, base + len(batch["ts_ns"])))

    def columns(self) -> TradeColumns:
        return TradeColumns.of_lists(self.lists, self.positions)


class SideTopicPipeline(Generic[E, R]):
    """A topic besides trades feeding one aggregator into one table (books -> OBI, liquidations -> bars).

    Same rules as the trade pipeline: each batch is written before Faust acks it, the aggregator skips
    positions it already applied, and idle closing waits for the first batch after a start.
    """

    def __init__(
        self,
        name: str,
        aggregator: FlowAggregator[E, R],
        event_types: dict[str, type[msgspec.Struct]],
        insert: Callable[[R, list[E]], None],  # the drained rows and the batch's events, written before the ack
        settings: Settings,
        dead_letters: DeadLetters,
        codec: AvroCodec,
    ) -> None:
        self.name = name
        self.aggregator = aggregator
        self.event_types = event_types
        self.insert = insert
        self.idle_ns = settings.processor.idle_close_ms * 1_000_000
        self.dead_letters = dead_letters
        self.codec = codec
        self._lock = asyncio.Lock()
        self._consuming = False
        self._writes = OrderedWrites()

    async def process(self, frames: Sequence[tuple[bytes, int, str]]) -> asyncio.Future[None]:
        """Aggregate a batch and start writing its rows; returns the write's future (done: the batch is durable)."""
        now_ns = time.time_ns()
        events: list[E] = []
        async with self._lock:
            if not self._consuming:
                self._consuming = True
                self.aggregator.touch(now_ns)
            for value, offset, context in frames:
                try:
                    record = self.codec.decode(value)
                    # the struct its type tag names: one of this topic's event types, E
                    event: E = msgspec.convert(record, self.event_types[record["type"]])  # type: ignore[assignment]
                except (SchemaError, ValueError, TypeError, EOFError, KeyError, msgspec.ValidationError) as exc:
                    self.dead_letters.send(value, f"processor: undecodable {self.name} event: {exc}", context)
                    continue
                too_late = self.aggregator.add(event, offset, now_ns)
                if isinstance(too_late, list) and too_late:  # windowed aggregators: intervals past the horizon
                    LATE_EVENTS.labels(self.name).inc()
                    self.dead_letters.send(value, f"processor: late {self.name} event: its {','.join(too_late)} "
                                           "bar was final and past the correction horizon", context)  # fmt: skip
                events.append(event)
            return await self._writes.submit(self.insert, self.aggregator.drain(), events)

    async def close_idle(self) -> None:
        if not self._consuming:
            return
        async with self._lock:
            self.aggregator.close_idle(time.time_ns(), self.idle_ns)
            await (await self._writes.submit(self.insert, self.aggregator.drain(), []))


class BarPipeline:
    """Everything the processor does with a batch, independent of Faust (and so testable alone)."""

    def __init__(self, settings: Settings, store: BarStore) -> None:
        self.settings = settings
        self.store = store
        self.codec = AvroCodec()
        cfg = settings.processor
        lateness_ns = cfg.allowed_lateness_ms * 1_000_000
        self.horizon_ns = horizon_ns = cfg.correction_horizon_ms * 1_000_000
        self.aggregator = BarAggregator(cfg.intervals, lateness_ns, horizon_ns)
        policy = BucketPolicy(cfg.footprint_buckets, cfg.footprint_target_bps)
        self.footprints = FootprintAggregator(cfg.footprint_intervals, lateness_ns, policy,
                                              correction_horizon_ns=horizon_ns)  # fmt: skip
        self.producer = make_producer(settings)
        self.dead_letters = DeadLetters(self.producer, settings.topics.dead_letter, "processor", self.codec)
        self.obi = ObiAggregator(cfg.obi_intervals, lateness_ns)
        self.liquidation_bars = LiquidationAggregator(cfg.intervals, lateness_ns, horizon_ns)
        self.derivs = DerivativesAggregator(cfg.intervals, lateness_ns, horizon_ns)
        self.side_topics: dict[str, SideTopicPipeline[Any, Any]] = {
            settings.topics.books: SideTopicPipeline(
                "book", self.obi, BOOK_EVENTS, self._write_obi, settings, self.dead_letters, self.codec,
            ),
            settings.topics.liquidations: SideTopicPipeline(
                "liquidation", self.liquidation_bars, {"liquidation": Liquidation}, self._write_liquidations,
                settings, self.dead_letters, self.codec,
            ),
            settings.topics.tickers: SideTopicPipeline(
                "ticker", self.derivs, {"deriv_ticker": DerivTicker}, self._write_derivs, settings, self.dead_letters,
                self.codec,
            ),
        }  # fmt: skip
        self._lock = asyncio.Lock()  # the batch agent and the idle timer both mutate the aggregator
        self._consuming = False  # idle closing waits for the first batch: a rejoining worker is not idle
        self._writes = OrderedWrites()  # batch N+1's rows must not land before batch N's (versions, restarts)
        self._instruments: set[tuple[str, str]] = set()  # written to instrument_assets (writes run one at a time)

    def restore(self) -> int:
        rows = self.store.resume_state(self.horizon_ns)
        self.aggregator.restore(rows)
        levels, summaries = self.store.resume_footprints(self.horizon_ns)
        self.footprints.restore(levels, summaries)
        for gap in reversed(self.store.resume_trade_gaps(MAX_GAPS)):  # oldest first, as they arrived
            for aggregator in (self.aggregator, self.footprints):
                aggregator.remember_gap(gap.venue, gap.instrument, gap.from_ns, gap.to_ns)
        obi_rows, liquidation_rows = self.store.resume_obi(), self.store.resume_liquidations(self.horizon_ns)
        self.obi.restore(obi_rows)
        self.liquidation_bars.restore(liquidation_rows)
        deriv_rows = self.store.resume_derivs(self.horizon_ns)
        self.derivs.restore(deriv_rows)
        return len(rows) + len(summaries) + len(obi_rows) + len(liquidation_rows) + len(deriv_rows)

    def decode(self, frames: Sequence[tuple[bytes, int, str]]) -> tuple[list[TradeRun | tuple[TradeGap, int]],
                                                                       dict[str, list[Any]]]:  # fmt: skip
        """(value, offset, context) -> each instrument's trade runs and trade gaps in order, and the trades column
        by column for the raw trades table; undecodable frames are dead-lettered.

        A message may hold a batch, so a trade's position is its offset and its index in the message:
        offset << 16 | index, monotone within a partition like the offsets themselves. Consecutive messages of
        an instrument form one run (a gap ends it); instruments are independent, so each is taken whole.
        """
        pieces: dict[tuple[str, str], list[TradeRun | tuple[TradeGap, int]]] = {}
        columns: dict[str, list[Any]] = {name: [] for name in TRADE_FIELDS}
        for value, offset, context in frames:
            try:
                batch = self.codec.decode_trade_columns(value)
            except (SchemaError, ValueError, TypeError, EOFError, KeyError) as exc:
                self.dead_letters.send(value, f"processor: undecodable trade: {exc}", context)
                continue
            if isinstance(batch, TradeGap):
                pieces.setdefault((batch.venue, batch.instrument), []).append((batch, offset << 16))
                continue
            count = len(batch["ts_ns"])
            if count > MAX_BATCH:
                self.dead_letters.send(value, f"processor: batch of {count} trades exceeds {MAX_BATCH}", context)
                continue
            if not count:
                continue
            runs = pieces.setdefault((batch["venue"][0], batch["instrument"][0]), [])
            run = runs[-1] if runs else None
            if not isinstance(run, TradeRun):
                run = TradeRun()
                runs.append(run)
            run.extend(batch, offset << 16)
            for name, column in batch.items():
                columns[name].extend(column)
        return [piece for runs in pieces.values() for piece in runs], columns

    async def process(self, frames: Sequence[tuple[bytes, int, str]]) -> asyncio.Future[None]:
        """Decode and aggregate a batch and start writing its results; returns the write's future (done: the
        batch is durable). The write overlaps the next batch's decoding and aggregation."""
        started = time.perf_counter()
        pieces, columns = self.decode(frames)
        now_ns = time.time_ns()
        count, newest_ns = 0, 0
        async with self._lock:
            if not self._consuming:
                self._consuming = True
                self.aggregator.touch(now_ns)
                self.footprints.touch(now_ns)
                if pieces:
                    head = pieces[0]
                    first = head[1] if isinstance(head, tuple) else head.positions[0]
                    log.info("first batch after start: position %d (offset %d)", first, first >> 16)
            gaps = []
            for piece in pieces:
                if isinstance(piece, tuple):
                    self.aggregator.add_gap(*piece)
                    self.footprints.add_gap(*piece)
                    gaps.append(piece[0])
                    continue
                trades = piece.columns()
                count += len(trades)
                newest_ns = max(newest_ns, int(trades.ts.max()))
                self.footprints.add_columns(trades, now_ns)  # same windows: lateness is reported once, below
                for i, interval in self.aggregator.add_columns(trades, now_ns):
                    trade, position = trades.trade(i), int(trades.position[i])
                    LATE_TRADES.labels(interval, "dead_lettered").inc()
                    self.dead_letters.send(
                        self.codec.encode_event(trade),
                        f"processor: late trade: its {interval} bar was final and past the correction horizon",
                        f"{trade.venue}/{trade.instrument} ts_ns={trade.ts_ns} offset={position >> 16}",
                    )
            for interval, corrected in self.aggregator.corrections.items():
                LATE_TRADES.labels(interval, "corrected").inc(corrected)
            self.aggregator.corrections.clear()
            rows, footprints = self.aggregator.drain(), self.footprints.drain()
            watermarks = self.aggregator.drain_watermarks()
            BATCH_SECONDS.observe(time.perf_counter() - started)
            written = await self._writes.submit(self._write, columns, rows, footprints, watermarks, newest_ns, gaps)
        TRADES_AGGREGATED.inc(count)
        BATCH_TRADES.observe(count)
        if count:
            EVENT_LAG_SECONDS.labels("consumed").observe((now_ns - newest_ns) / 1e9)
        return written

    async def close_idle(self) -> None:
        if not self._consuming:
            return
        idle_ns = self.settings.processor.idle_close_ms * 1_000_000
        async with self._lock:
            now_ns = time.time_ns()
            self.aggregator.close_idle(now_ns, idle_ns)
            self.footprints.close_idle(now_ns, idle_ns)
            rows, footprints = self.aggregator.drain(), self.footprints.drain()
            watermarks = self.aggregator.drain_watermarks()
            if rows or footprints[1] or watermarks:
                await (await self._writes.submit(self._write, {}, rows, footprints, watermarks))

    def _write(self, trades: dict[str, list[Any]], rows: list[Bar], footprints: FootprintRows,
               watermarks: dict[tuple[str, str], int], newest_ns: int = 0,
               gaps: Sequence[TradeGap] = ()) -> None:  # fmt: skip
        if self.settings.processor.write_trades:
            self.store.insert_trade_columns(trades)
        self.store.insert_trade_gaps(gaps)  # with the batch: a restart still flags bars that open after a gap
        self._register_instruments(rows)
        self.store.insert_bars(rows)
        levels, summaries = footprints
        self.store.insert_footprints(summaries, levels)
        final = [r for r in rows if r.final]
        BAR_ROWS_WRITTEN.labels("true").inc(len(final))
        BAR_ROWS_WRITTEN.labels("false").inc(len(rows) - len(final))
        topics = self.settings.topics
        by_asset: dict[str, AssetInputs] = {}
        self._publish_final(topics.bars, final)
        self._publish_final(topics.footprint_bars, summaries)  # the summaries' final rows; levels stay in ClickHouse
        for bar in final:
            by_asset.setdefault(bar.asset, AssetInputs(bar.asset)).bars.append(bar)
        # after the bars they finalize: the asset stage learns which windows an instrument passed without a trade
        for (venue, instrument), watermark_ns in watermarks.items():
            asset = asset_of_instrument(instrument).asset
            by_asset.setdefault(asset, AssetInputs(asset)).watermarks.append(
                BarWatermark(venue, instrument, asset, watermark_ns)
            )
        self._send_by_asset(by_asset)
        self.producer.flush()  # final rows and dead letters are durable before the batch is acked
        now_ns = time.time_ns()
        if newest_ns:
            EVENT_LAG_SECONDS.labels("written").observe((now_ns - newest_ns) / 1e9)
        for bar in final:
            FINAL_BAR_LAG_SECONDS.labels(bar.interval).observe(
                (now_ns - bar.start_ns - INTERVAL_NS[bar.interval]) / 1e9
            )

    def _write_obi(self, rows: list[ObiBar], events: Sequence[BookUpdate | BookGap]) -> None:
        """OBI bars to ClickHouse, then the final ones (all a drain gives) to the asset stage."""
        self._register_instruments(rows)
        self.store.insert_obi(rows)
        self._publish_by_asset(rows)

    def _write_liquidations(self, rows: list[LiquidationBar], events: Sequence[Liquidation]) -> None:
        self._register_instruments(rows)
        self.store.insert_liquidation_bars(rows)
        self._publish_final(self.settings.topics.liquidation_bars, rows)
        self.producer.flush()  # final rows and dead letters of the batch

    def _write_derivs(self, rows: list[DerivBar], tickers: Sequence[DerivTicker]) -> None:
        """The raw tickers and the derivatives bars to ClickHouse (per asset: the asset_deriv_bars view)."""
        self._register_instruments(rows)
        self.store.insert_deriv_tickers(tickers)
        self.store.insert_deriv_bars(rows)
        self._publish_final(self.settings.topics.deriv_bars, rows)
        self.producer.flush()  # final rows and dead letters of the batch

    def _publish_final(self, topic: str, rows: Sequence[Bar | FootprintBar | LiquidationBar | DerivBar]) -> None:
        """The final rows (corrections too: final at a higher version) to `topic`, keyed venue|instrument; the
        caller flushes before the batch is acked."""
        for row in rows:
            if row.final:
                produce(self.producer, topic, self.codec.encode_event(row), f"{row.venue}|{row.instrument}".encode())

    def _register_instruments(self, rows: Sequence[Bar | ObiBar | LiquidationBar | DerivBar]) -> None:
        """Instruments not written to instrument_assets by this process yet (the SQL views' asset units)."""
        new = {(r.venue, r.instrument) for r in rows} - self._instruments
        if new:
            self.store.insert_instrument_assets(sorted(new))
            self._instruments |= new

    def _publish_by_asset(self, rows: Sequence[ObiBar]) -> None:
        """Final OBI bars to the by-asset topic, one message per asset (then the batch's dead letters are flushed)."""
        by_asset: dict[str, AssetInputs] = {}
        for row in rows:
            if row.final:
                asset = asset_of_instrument(row.instrument).asset
                by_asset.setdefault(asset, AssetInputs(asset)).obi_bars.append(row)
        self._send_by_asset(by_asset)
        self.producer.flush()

    def _send_by_asset(self, by_asset: dict[str, AssetInputs]) -> None:
        """One message per asset, split in order into parts of at most BY_ASSET_ROWS rows (~200 bytes each: well
        inside the broker's 1 MB message limit); the watermarks go in the last part, after the bars."""
        topic = self.settings.topics.by_asset
        for asset, inputs in by_asset.items():
            parts = [AssetInputs(asset, inputs.bars[i : i + BY_ASSET_ROWS]) for i in range(0, len(inputs.bars),
                                                                                          BY_ASSET_ROWS)]  # fmt: skip
            parts += [AssetInputs(asset, obi_bars=inputs.obi_bars[i : i + BY_ASSET_ROWS])
                      for i in range(0, len(inputs.obi_bars), BY_ASSET_ROWS)]  # fmt: skip
            if not parts or len(parts[-1].bars) + len(parts[-1].obi_bars) + len(inputs.watermarks) > BY_ASSET_ROWS:
                parts.append(AssetInputs(asset))
            parts[-1].watermarks = inputs.watermarks
            for part in parts:
                produce(self.producer, topic, self.codec.encode_event(part), asset.encode())


def bound_fetch_wait(max_wait_ms: int) -> None:
    """Make Faust's Kafka consumers ask the broker to answer a fetch within `max_wait_ms`.

    Faust builds its aiokafka consumer with fetch_max_wait_ms=1500 and no setting for it. Measured at
    50k trades/s, fetches at the log end were at times held the full 1.5 s: the processor sat idle and
    final 1s bars were 1.5-2.5 s late instead of 0.6-0.9 s. aiokafka reads the value when the consumer
    starts, so it is set on the consumer Faust has just built.
    """
    create = getattr(AIOKafkaConsumerThread._create_worker_consumer, "__wrapped__",
                     AIOKafkaConsumerThread._create_worker_consumer)  # fmt: skip

    @functools.wraps(create)
    def create_bounded(thread: AIOKafkaConsumerThread, transport: Transport) -> Any:  # an aiokafka consumer (untyped)
        consumer = create(thread, transport)
        consumer._fetch_max_wait_ms = max_wait_ms
        return consumer

    # A deliberate patch; typeshed types functools.wraps' result as a non-descriptor, hence [assignment].
    AIOKafkaConsumerThread._create_worker_consumer = create_bounded  # type: ignore[method-assign, assignment]


def build_app(settings: Settings, stages: Stages) -> faust.App:
    bound_fetch_wait(settings.processor.fetch_max_wait_ms)
    datadir = run_dir() / "faust" / settings.processor.app_id  # Faust's own files, not in the working directory
    datadir.parent.mkdir(parents=True, exist_ok=True)  # Faust creates the last level only
    kafka = settings.kafka
    app = faust.App(
        settings.processor.app_id,
        broker=[f"kafka://{server}" for server in kafka.bootstrap_servers.split(",")],
        broker_credentials=None,
        store="memory://",
        datadir=str(datadir),
        value_serializer="raw",
        topic_partitions=settings.topics.partitions,
        topic_replication_factor=settings.topics.replication_factor,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        # A restarted worker should rejoin quickly; the default waits about half of 60 s.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=1.0,
        broker_commit_interval=1.0,
        stream_buffer_maxsize=max(4096, settings.processor.batch_max),
    )
    # One agent per topic, each consuming in batches: Faust's cost is per message, the work per batch.
    targets: dict[str, BarPipeline | SideTopicPipeline[Any, Any] | AssetPipeline | SignalSink] = {}
    if stages.bars is not None:
        targets[settings.topics.trades] = stages.bars
        targets.update(stages.bars.side_topics)
    if stages.assets is not None:
        targets[settings.topics.by_asset] = stages.assets
    if stages.signals is not None:
        targets[settings.topics.signals] = stages.signals
    for topic_name, target in targets.items():
        topic = app.topic(topic_name, value_type=bytes, value_serializer="raw")
        app.agent(topic, name=f"{settings.processor.app_id}.{topic_name}")(_consumer(settings, target))

    @app.timer(interval=1.0)  # type: ignore[untyped-decorator]  # faust's App.timer is @no_type_check
    async def close_idle_bars() -> None:
        stages.heartbeat.beat()
        if stages.bars is not None:
            await stages.bars.close_idle()
            for side in stages.bars.side_topics.values():
                await side.close_idle()
        if stages.assets is not None:
            await stages.assets.settle()

    return app


def _consumer(
    settings: Settings, target: BarPipeline | SideTopicPipeline[Any, Any] | AssetPipeline | SignalSink
) -> Callable[[faust.StreamT[bytes]], Awaitable[None]]:
    """The agent of one topic: batches of events -> `target.process` -> acks once the batch is durable."""

    async def consume(stream: faust.StreamT[bytes]) -> None:
        batch_max, within = settings.processor.batch_max, settings.processor.batch_within_s
        acks: set[asyncio.Task[None]] = set()  # held until done
        # Agents get a faust.Stream, which has noack_take (StreamT does not); it yields events, not values.
        batches: AsyncIterator[Sequence[faust.EventT[bytes]]] = stream.noack_take(  # type: ignore[attr-defined]
            batch_max, within=within
        )
        async for events in batches:
            contexts = [f"{e.message.topic}/{e.message.partition}@{e.message.offset}" for e in events]
            if isinstance(target, AssetPipeline):  # it also times asset rows from their inputs' publication
                timed = [
                    (e.value, e.message.offset, c, e.message.timestamp) for e, c in zip(events, contexts, strict=True)
                ]
                written = await target.process(timed)
            else:
                written = await target.process(
                    [(e.value, e.message.offset, c) for e, c in zip(events, contexts, strict=True)]
                )
            ack = asyncio.ensure_future(_ack_when_written(stream, written, events))
            acks.add(ack)
            ack.add_done_callback(acks.discard)

    return consume


async def _ack_when_written(
    stream: faust.StreamT[bytes], written: asyncio.Future[None], events: Sequence[faust.EventT[bytes]]
) -> None:
    """Ack a batch once its results are durable; if its write failed the batch stays unacked (and the next
    write, or the idle timer's, raises the error)."""
    await asyncio.wait([written])
    if written.exception() is None:
        for event in events:
            await stream.ack(event)


@dataclass
class Stages:
    """What one processor worker runs (`processor.stages`): the bar stage, the asset stage, or both."""

    store: BarStore
    bars: BarPipeline | None
    assets: AssetPipeline | None
    signals: SignalSink | None = None
    heartbeat: Heartbeat = field(default_factory=lambda: Heartbeat("processor timer", HEARTBEAT_LIMIT_S))


def prepare(settings: Settings) -> Stages:
    topics = settings.topics
    ensure_topics(
        settings,
        [topics.trades, topics.books, topics.liquidations, topics.tickers, topics.bars, topics.signals,
         topics.dead_letter, topics.by_asset, topics.asset_bars, topics.footprint_bars, topics.liquidation_bars,
         topics.deriv_bars],
    )  # fmt: skip
    store = BarStore.open(settings.clickhouse)
    bars = assets = None
    if "bars" in settings.processor.stages:
        bars = BarPipeline(settings, store)
        restored = bars.restore()
        log.info("processor restored %d bar rows from ClickHouse", restored)
    if "assets" in settings.processor.stages:
        producer = bars.producer if bars is not None else make_producer(settings)
        codec = AvroCodec()
        assets = AssetPipeline(settings, store, producer, DeadLetters(producer, topics.dead_letter, "processor", codec),
                               codec)  # fmt: skip
    sink = None
    if "signals" in settings.processor.stages:
        producer = bars.producer if bars is not None else make_producer(settings)
        sink = SignalSink(store, DeadLetters(producer, topics.dead_letter, "processor", AvroCodec()), AvroCodec())
    return Stages(store, bars, assets, sink)
