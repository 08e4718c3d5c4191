"""The compiled Avro writers must produce exactly fastavro's bytes for every registered schema."""

from __future__ import annotations

import io
import random

import fastavro
import msgspec
import pytest

from tapeline.codec.avro import AvroCodec
from tapeline.codec.avro_writer import compile_writer, write_long
from tapeline.domain.aggregates import (
    AssetBar,
    AssetInputs,
    AssetMetric,
    AssetObiBar,
    Bar,
    BarWatermark,
    DerivBar,
    FootprintBar,
    FootprintLevel,
    LiquidationBar,
    ObiBar,
)
from tapeline.domain.events import (
    BookGap,
    BookUpdate,
    DeadLetter,
    DerivTicker,
    Liquidation,
    Signal,
    Trade,
    TradeBatch,
    TradeGap,
    as_record,
)

LONGS = [0, 1, -1, 63, 64, -64, -65, 8191, 8192, 2**27 - 1, 2**27, 2**28, 2**40, -(2**50), 2**62,
         1723161256322000000, 1723161256322000001, -(2**63), 2**63 - 1]  # fmt: skip


@pytest.mark.parametrize("value", LONGS)
def test_long_encoding_matches_fastavro(value: int) -> None:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, {"type": "long"}, value)
    assert write_long(value) == out.getvalue()


def _samples(rng: random.Random) -> list[msgspec.Struct]:
    ts = 1_700_000_000_000_000_000 + rng.randrange(10**15)
    maybe = lambda: rng.choice([None, rng.uniform(-1, 1) * 10 ** rng.randrange(8)])  # noqa: E731
    levels = [(rng.uniform(1, 1e5), rng.uniform(0, 50)) for _ in range(rng.randrange(0, 30))]
    return [
        Trade("binance-usdm", "BTCUSDT", "BTC-USDT-PERP", ts, ts + rng.randrange(10**9), rng.uniform(1, 1e5),
              rng.uniform(1e-8, 100), rng.uniform(0, 1e7), rng.choice(["buy", "sell"]), str(rng.randrange(10**12))),
        BookUpdate("okx", "BTC-USDT-SWAP", "BTC-USDT-PERP", ts, ts, rng.random() < 0.5, levels, levels[::-1],
                   rng.randrange(-1, 10**12), rng.randrange(-1, 10**12), rng.randrange(-1, 10**12)),
        BookGap("bybit-linear", "ETHUSDT", "ETH-USDT-PERP", ts, ts, "u jumped from 5 to 7 — ünïcode", 5, 7),
        Liquidation("hyperliquid", "BTC", "BTC-USDC-PERP", ts, ts, "long", "sell", 1.5, 2.25, 3.375),
        DerivTicker("okx", "BTC-USDT-SWAP", "BTC-USDT-PERP", ts, ts, maybe(), rng.choice([None, ts]), maybe(),
                    maybe(), maybe(), maybe()),
        Bar("binance-usdm", "BTC-USDT-PERP", "1s", ts, *(rng.uniform(-1e6, 1e6) for _ in range(10)),
            rng.randrange(10**6), rng.uniform(-1e6, 1e6), rng.random(), rng.randrange(10**6), rng.randrange(10**6),
            ts, ts + 1, rng.random(), rng.uniform(0, 1e3), rng.uniform(-1e3, 0), rng.random() < 0.5,
            rng.randrange(2**62), rng.random() < 0.5, rng.choice(["BTC", "PEPE", ""]), maybe(), maybe(),
            rng.uniform(0, 1e7), rng.uniform(1, 1e5), rng.choice(["buy", "sell", ""]), ts + rng.randrange(10**9)),
        LiquidationBar("okx", "BTC-USDT-PERP", "1m", ts, *(rng.uniform(0, 1e6) for _ in range(4)),
                       rng.randrange(10**6), rng.randrange(10**6), rng.random() < 0.5, rng.randrange(2**62)),
        AssetBar("PEPE", rng.choice(["perp", "spot", "all"]), "1m", ts, *(rng.uniform(-1e6, 1e6) for _ in range(10)),
                 rng.randrange(10**6), rng.uniform(-1e6, 1e6), rng.uniform(-1e6, 1e6), rng.uniform(0, 1e5),
                 rng.random(),
                 venues := rng.sample(["okx", "bybit-linear", "hyperliquid"], rng.randrange(4)),
                 [f"{v}/PEPE-USDT-PERP" for v in venues], venues[:1], rng.random() < 0.5, maybe(), maybe(),
                 rng.random() < 0.5, rng.randrange(2**62)),
        AssetObiBar("BTC", "all", "1s", ts, *(maybe() for _ in range(12)), ["okx"], ["okx/BTC-USDT-PERP"],
                    rng.sample(["okx"], rng.randrange(2)), rng.random() < 0.5, rng.random() < 0.5,
                    rng.randrange(2**62)),
        AssetMetric("BTC", "BNB", ts - ts % 86_400_000_000_000, rng.choice(["FlowNetBNBNtv", "FlowNetBNBUSD"]),
                    rng.uniform(-1e9, 1e9), rng.random() < 0.5, rng.randrange(2**62)),
        BarWatermark("okx", "BTC-USDT-PERP", "BTC", ts),
        AssetInputs("BTC", [Bar("okx", "BTC-USDT-PERP", "1m", ts, *(rng.uniform(0, 1e5) for _ in range(10)), 5,
                                1.5, asset="BTC", cmf=maybe())] * rng.randrange(3),
                    [], [BarWatermark("okx", "BTC-USDT-PERP", "BTC", ts)] * rng.randrange(3)),
        TradeGap("okx", "BTC-USDT-SWAP", "BTC-USDT-PERP", ts, ts + rng.randrange(10**10), "connection closed: wss://x"),
        Signal("abc", 2, "revised", "divergence_regular", "bearish", "okx", "BTC-USDT-PERP", "BTC", "perp", "1m", ts,
               ts - 1, rng.uniform(0, 1), {"cvd_now": -3.0, "prev_pivot_ts_ms": 1.7e12}, "divergence"),
        Signal("def", 1, "active", "net_flow_threshold", "bullish", None, None, "ETH", "all", "1h", ts, None, 1.5, {},
               "net_flow"),
        DeadLetter("connector:okx", "bad", bytes(rng.randrange(256) for _ in range(rng.randrange(50))), ts, "ctx"),
        FootprintLevel("binance-usdm", "BTC-USDT-PERP", "1m", ts, rng.uniform(1, 1e5), 50.0, rng.uniform(0, 50),
                       rng.uniform(0, 50), rng.randrange(10**6), rng.randrange(10**6), rng.uniform(-50, 50),
                       rng.random() < 0.5, rng.random() < 0.5, rng.random() < 0.5, rng.randrange(2**62)),
        FootprintBar("okx", "BTC-USDT-PERP", "5m", ts, 2.5, *(rng.uniform(-1e5, 1e5) for _ in range(5)),
                     rng.randrange(5), rng.randrange(5), ["buy", "sell"][: (n := rng.randrange(3))],
                     [rng.uniform(1, 1e5) for _ in range(n)], [rng.uniform(1, 1e5) for _ in range(n)],
                     rng.random() < 0.5, rng.random() < 0.5, rng.uniform(0, 1e9), rng.uniform(1, 1e5), ts + 1,
                     rng.random() < 0.5, rng.randrange(2**62), rng.random() < 0.5),
        ObiBar("binance-usdm", "BTC-USDT-PERP", "1s", ts, *(maybe() for _ in range(28)), rng.randrange(10**9),
               rng.random() < 0.5, rng.randrange(10**6), rng.random() < 0.5, rng.randrange(2**62),
               *(maybe() for _ in range(12))),
        DerivBar("bybit-linear", "BTC-USDT-PERP", "1m", ts, *(maybe() for _ in range(13)), rng.choice([None, ts]),
                 rng.randrange(10**6), rng.random() < 0.5, rng.randrange(2**62), ts + 1,
                 rng.sample(["funding_rate", "mark_price", "open_interest_base"], rng.randrange(4))),
        trade_batch(rng, ts),
    ]  # fmt: skip


def trade_batch(rng: random.Random, ts: int) -> TradeBatch:
    """A batch of 0-39 trades; ids of 0 to 80 characters, some not ASCII."""
    n = rng.randrange(0, 40)
    ids = [rng.choice(["", "ü-7", str(rng.randrange(10 ** rng.randrange(1, 81)))]) for _ in range(n)]
    return TradeBatch("bybit-linear", "BTC-USDT-PERP", "BTCUSDT", [ts + rng.randrange(10**6) for _ in range(n)],
                      [ts - rng.randrange(-(10**9), 10**9) for _ in range(n)], [rng.uniform(1, 1e5) for _ in range(n)],
                      [rng.uniform(0, 9) for _ in range(n)], [rng.uniform(0, 1e6) for _ in range(n)],
                      [rng.choice(["buy", "sell"]) for _ in range(n)], ids)  # fmt: skip


def test_every_registered_record_matches_fastavro_byte_for_byte() -> None:
    codec = AvroCodec()
    rng = random.Random(7)
    covered = set()
    for _ in range(300):
        for event in _samples(rng):
            reg = codec.registry.latest(type(event).__name__)
            fast = io.BytesIO()
            fast.write(codec.encode_event(event)[:5])
            fastavro.schemaless_writer(fast, reg.parsed, as_record(event))
            assert codec.encode_event(event) == fast.getvalue(), type(event).__name__
            if isinstance(event, TradeBatch):
                assert codec.decode_trades(codec.encode_event(event)) == _trades_of(event)
            else:
                assert msgspec.convert(codec.decode(codec.encode_event(event)), type(event)) == event
            covered.add(reg.name)
    assert covered == {reg.name for reg in (codec.registry.latest(n) for n in codec.registry.versions)}


def _trades_of(batch: TradeBatch) -> list[Trade]:
    columns = zip(batch.ts_ns, batch.recv_ts_ns, batch.price, batch.qty_base, batch.notional_quote, batch.side,
                  batch.trade_id, strict=True)  # fmt: skip
    return [Trade(batch.venue, batch.symbol, batch.instrument, *values) for values in columns]


def test_unsupported_types_fall_back() -> None:
    field = {"name": "m", "type": {"type": "map", "values": "long"}}
    schema = fastavro.parse_schema({"type": "record", "name": "M", "fields": [field]})
    assert compile_writer(schema) is None
