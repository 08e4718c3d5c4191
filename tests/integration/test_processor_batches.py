"""The processor's batch path on real parts (broker for dead letters and final rows, embedded ClickHouse):
late trades correct final bars, trades past the correction horizon are dead-lettered, a trade gap
flags the bars it spans incomplete, and every final row (corrections too) reaches its topic."""

from __future__ import annotations

import asyncio
import uuid

import msgspec
import pytest
from confluent_kafka import Consumer, TopicPartition

from tapeline.codec.avro import AvroCodec
from tapeline.config import ProcessorSettings, Settings
from tapeline.domain.aggregates import Bar, DerivBar, FootprintBar, LiquidationBar
from tapeline.domain.events import DerivTicker, Liquidation, Trade, TradeBatch, TradeGap
from tapeline.flow.windows import newest_versions
from tapeline.io.kafka import ensure_topics
from tapeline.io.store import BarStore
from tapeline.runtime.processor import BarPipeline
from tests.support.derivs import bybit_linear_tickers, run_derivs

S = 1_000_000_000
T0 = 1_723_161_600 * S  # a whole minute
VENUE, INSTRUMENT = "binance-usdm", "BTC-USDT-PERP"


def trade(at_s: float, qty: float, side: str, trade_id: int) -> Trade:
    return Trade(VENUE, "BTCUSDT", INSTRUMENT, T0 + int(at_s * S), T0, 100.0, qty, 100.0 * qty, side, str(trade_id))


def test_late_trades_correct_bars_gaps_flag_them_and_too_late_ones_are_dead_lettered(
    settings: Settings, store: BarStore
) -> None:
    # `store`: the session's embedded ClickHouse (one per process), on this test's own database
    settings = settings.model_copy(update={
        "processor": ProcessorSettings(intervals=["1s", "1m"], allowed_lateness_ms=0, correction_horizon_ms=30_000),
    })  # fmt: skip
    ensure_topics(settings, [settings.topics.dead_letter, settings.topics.bars])
    codec = AvroCodec()
    pipeline = BarPipeline(settings, store)
    too_late = trade(0.7, 3, "sell", 4)
    messages = [
        TradeBatch.of([trade(0.5, 1, "buy", 1), trade(1.5, 2, "buy", 2), trade(40.5, 1, "sell", 3)]),
        TradeBatch.of([too_late]),  # 40 s late: past the 30 s horizon
        TradeBatch.of([trade(15.2, 4, "sell", 5)]),  # 25 s late: corrects bar 15 s (new)
        TradeGap(VENUE, "BTCUSDT", INSTRUMENT, T0 + int(39.9 * S), T0 + int(41.2 * S), "connection dropped"),
        TradeBatch.of([trade(41.5, 1, "buy", 6)]),
    ]
    frames = [(codec.encode_event(m), offset, f"trades/0@{offset}") for offset, m in enumerate(messages)]
    asyncio.run(pipeline.process(frames))

    store = pipeline.store
    bars = {b.start_ns: b for b in store.get_bars(VENUE, INSTRUMENT, "1s", T0, T0 + 60 * S, 100)}
    seconds = {(start - T0) // S: b for start, b in bars.items()}
    assert sorted(seconds) == [0, 1, 15, 40, 41]
    assert seconds[0].trades == 1, "the trade past the horizon must not be applied"
    assert seconds[15].final and seconds[15].sell_base == 4 and seconds[15].version == 2 << 16
    assert [seconds[s].cvd_base for s in (0, 1, 15, 40, 41)] == [1, 3, -1, -2, -1]
    assert {s for s, b in seconds.items() if b.incomplete} == {40, 41}
    (minute,) = store.get_bars(VENUE, INSTRUMENT, "1m", T0, T0 + 60 * S, 10)
    assert minute.incomplete and minute.trades == 6 and not minute.final  # the minute was open for all of them
    ((footprint, _),) = store.get_footprints(VENUE, INSTRUMENT, "1m", T0, T0 + 60 * S, 10)
    assert footprint.incomplete and not footprint.final

    # Restart right after a gap became durable: the bar that opens after it is still flagged.
    gap = TradeGap(VENUE, "BTCUSDT", INSTRUMENT, T0 + int(41.9 * S), T0 + int(43.5 * S), "connection dropped")
    asyncio.run(pipeline.process([(codec.encode_event(gap), 5, "trades/0@5")]))
    restarted = BarPipeline(settings, store)
    restarted.restore()
    after = TradeBatch.of([trade(43.6, 1, "buy", 7), trade(44.6, 1, "buy", 8)])
    asyncio.run(restarted.process([(codec.encode_event(after), 6, "trades/0@6")]))
    seconds = {
        (b.start_ns - T0) // S: b.incomplete for b in store.get_bars(VENUE, INSTRUMENT, "1s", T0, T0 + 60 * S, 100)
    }
    assert (seconds[43], seconds[44]) == (True, False)

    consumer = Consumer(settings.kafka.librdkafka(**{"group.id": uuid.uuid4().hex, "auto.offset.reset": "earliest"}))
    consumer.subscribe([settings.topics.dead_letter])
    letters = []
    try:
        for _ in range(40):
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                letters.append(codec.decode(msg.value()))
                break
    finally:
        consumer.close()
    (letter,) = letters
    assert "past the correction horizon" in letter["reason"] and "offset=1" in letter["context"]
    assert codec.decode_trades(letter["raw"]) == [too_late]


@pytest.mark.data
def test_tickers_become_derivatives_bars_and_the_raw_series(settings: Settings, store: BarStore) -> None:
    """The tickers topic: Bybit's real linear tickers -> deriv_bars (the offline aggregator's final rows),
    deriv_tickers (each ticker once, also after a replay), instrument_assets, and per-asset views."""
    settings = settings.model_copy(update={
        "processor": ProcessorSettings(intervals=["1s", "1m"], allowed_lateness_ms=0, correction_horizon_ms=10_000),
    })  # fmt: skip
    ensure_topics(settings, [settings.topics.dead_letter, settings.topics.by_asset])
    codec = AvroCodec()
    tickers = bybit_linear_tickers()
    assert len(tickers) > 50
    pipeline = BarPipeline(settings, store)
    side = pipeline.side_topics[settings.topics.tickers]
    frames = [(codec.encode_event(t), offset, f"tickers/0@{offset}") for offset, t in enumerate(tickers)]

    async def run(batch: list[tuple[bytes, int, str]]) -> None:
        for i in range(0, len(batch), 25):
            await (await side.process(batch[i : i + 25]))

    asyncio.run(run(frames))
    asyncio.run(run(frames[-30:]))  # a replay after a restart from an older commit changes nothing
    offline = [r for r in run_derivs(tickers, ["1s", "1m"], 0, 10 * S) if r.final]
    db = store.database
    columns = ", ".join(DerivBar.__struct_fields__)
    stored = [DerivBar(*row) for row in store.client.query(f"SELECT {columns} FROM {db}.deriv_bars FINAL "
                                                            "WHERE final").result_rows]  # fmt: skip
    want = {(r.venue, r.instrument, r.interval, r.start_ns): r for r in offline}
    # the stream leaves each series' last bars open (no later ticker passed them); the offline run flushes
    assert len(want) - 4 <= len(stored) < len(want)
    for row in stored:
        assert row == want[(row.venue, row.instrument, row.interval, row.start_ns)]
    (count,) = store.client.query(f"SELECT count() FROM {db}.deriv_tickers FINAL").result_rows[0]
    assert count == len({(t.venue, t.instrument, t.ts_ns, t.recv_ts_ns) for t in tickers})
    assets = dict(store.client.query(f"SELECT instrument, asset FROM {db}.instrument_assets FINAL").result_rows)
    assert assets == {"BTC-USDT-PERP": "BTC", "ETH-USDT-PERP": "ETH"}
    per_asset = store.client.query(
        f"SELECT asset, interval, start_ns, oi_close FROM {db}.asset_deriv_bars WHERE final ORDER BY asset, start_ns"
    ).result_rows
    venue_oi = {(r.instrument.split("-")[0], r.interval, r.start_ns): r.oi_close for r in stored}
    assert per_asset and all(oi == pytest.approx(venue_oi[(a, i, s)]) for a, i, s, oi in per_asset)


def _published(settings: Settings, topic: str) -> list[tuple[bytes, bytes]]:
    """Every (key, value) of a one-partition topic, up to its end offset when called."""
    consumer = Consumer(settings.kafka.librdkafka(**{"group.id": uuid.uuid4().hex, "auto.offset.reset": "earliest"}))
    try:
        _, end = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        consumer.assign([TopicPartition(topic, 0, 0)])
        out: list[tuple[bytes, bytes]] = []
        for _ in range(200):
            if len(out) >= end:
                break
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                out.append((msg.key(), msg.value()))
        assert len(out) == end, f"{topic}: read {len(out)} of {end} messages"
        return out
    finally:
        consumer.close()


def _stored_finals(store: BarStore, table: str, row_type: type[LiquidationBar] | type[DerivBar]) -> list:
    columns = ", ".join(row_type.__struct_fields__)
    rows = store.client.query(f"SELECT {columns} FROM {store.database}.{table} FINAL WHERE final").result_rows
    return [row_type(*row) for row in rows]


def _key(row: Bar | FootprintBar | LiquidationBar | DerivBar) -> tuple[str, str, str, int]:
    return (row.venue, row.instrument, row.interval, row.start_ns)


def test_final_bars_footprints_liquidation_and_derivatives_bars_are_published_as_written(
    settings: Settings, store: BarStore
) -> None:
    """Final rows, and the corrections late events make (final, at a higher version), go to their topics keyed
    venue|instrument before the write returns; the newest of each window is the final row in ClickHouse."""
    settings = settings.model_copy(update={
        "processor": ProcessorSettings(intervals=["1s", "1m"], footprint_intervals=["1s"], allowed_lateness_ms=0,
                                       correction_horizon_ms=30_000),
    })  # fmt: skip
    topics = settings.topics
    ensure_topics(settings, [topics.dead_letter, topics.bars, topics.by_asset, topics.footprint_bars,
                             topics.liquidation_bars, topics.deriv_bars])  # fmt: skip
    codec = AvroCodec()
    pipeline = BarPipeline(settings, store)
    trades = [
        TradeBatch.of([trade(0.5, 1, "buy", 1), trade(0.6, 3, "sell", 2), trade(1.5, 2, "buy", 3),
                       trade(2.5, 1, "sell", 4), trade(5.5, 1, "buy", 5)]),
        TradeBatch.of([trade(1.2, 4, "sell", 6)]),  # late: corrects the 1 s bar and footprint (the largest trade)
    ]  # fmt: skip

    def liquidation(at_s: float, side: str, qty: float) -> Liquidation:
        order = "sell" if side == "long" else "buy"
        return Liquidation(VENUE, "BTCUSDT", INSTRUMENT, T0 + int(at_s * S), T0, side, order, 100.0, qty, 100.0 * qty)

    liquidations = [
        liquidation(0.3, "long", 1),
        liquidation(0.6, "short", 2),
        liquidation(1.4, "long", 0.5),
        liquidation(3.5, "short", 1),
        liquidation(0.8, "long", 4),
    ]  # the last one late: a correction
    tickers = [DerivTicker(VENUE, "BTCUSDT", INSTRUMENT, T0 + int(at_s * S), T0, 0.0001 * i, T0 + 3600 * S,
                           100.0 + i, 99.5 + i, 10.0 + i, 1000.0 + 100 * i)
               for i, at_s in enumerate([0.2, 0.7, 1.3, 2.6, 4.1, 1.6])]  # fmt: skip  # the last one late

    async def run() -> None:
        for offset, message in enumerate(trades):
            await (await pipeline.process([(codec.encode_event(message), offset, f"trades/0@{offset}")]))
        for topic, events in ((topics.liquidations, liquidations), (topics.tickers, tickers)):
            side = pipeline.side_topics[topic]
            for offset, event in enumerate(events):  # one batch each: the late ones correct a final bar
                await (await side.process([(codec.encode_event(event), offset, f"{topic}/0@{offset}")]))

    asyncio.run(run())

    def check(topic: str, row_type: type, stored: list, corrected_start_s: float) -> list:
        published = _published(settings, topic)
        assert {key for key, _ in published} == {f"{VENUE}|{INSTRUMENT}".encode()}
        rows = [msgspec.convert(codec.decode(value), row_type) for _, value in published]
        assert rows and all(r.final for r in rows)
        assert len({_key(r) for r in rows}) < len(rows), "a correction is published as a final row again"
        versions = [r.version for r in rows if r.start_ns == T0 + int(corrected_start_s * S) and r.interval == "1s"]
        assert len(versions) == 2 and versions[0] < versions[1], topic
        assert sorted(newest_versions(rows), key=_key) == sorted(stored, key=_key), topic
        return rows

    stored_prints = [bar for bar, _ in store.get_footprints(VENUE, INSTRUMENT, "1s", T0, T0 + 60 * S, 100) if bar.final]
    assert [(b.start_ns - T0) // S for b in stored_prints] == [0, 1, 2]  # the 5 s bar is still open
    check(topics.footprint_bars, FootprintBar, stored_prints, 1)
    check(topics.liquidation_bars, LiquidationBar, _stored_finals(store, "liquidation_bars", LiquidationBar), 0)
    derivs = check(topics.deriv_bars, DerivBar, _stored_finals(store, "deriv_bars", DerivBar), 1)
    assert {d.interval for d in derivs} == {"1s"}  # the minute is open
    stored_bars = [b for i in ("1s", "1m") for b in store.get_bars(VENUE, INSTRUMENT, i, T0, T0 + 60 * S, 100)
                   if b.final]  # fmt: skip
    bars = check(topics.bars, Bar, stored_bars, 1)
    corrected = max((b for b in bars if b.start_ns == T0 + S), key=lambda b: b.version)
    assert (corrected.max_trade_quote, corrected.max_trade_side, corrected.max_trade_ts_ns) == (
        400.0, "sell", T0 + int(1.2 * S))  # fmt: skip
