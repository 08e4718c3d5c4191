from __future__ import annotations

import io
import math
import random
import struct

import fastavro
import msgspec
import pytest

from tapeline.codec.avro import TRADE_FIELDS, AvroCodec
from tapeline.codec.avro_writer import write_long, write_string
from tapeline.domain.aggregates import Bar, ObiBar
from tapeline.domain.errors import SchemaError
from tapeline.domain.events import Trade, TradeBatch, TradeGap, as_record

TRADE = Trade("binance-usdm", "BTCUSDT", "BTC-USDT-PERP", 10, 11, 100.5, 0.25, 25.125, "buy", "42")


def test_trade_round_trip_with_confluent_frame() -> None:
    codec = AvroCodec()
    frame = codec.encode_event(TRADE)
    magic, schema_id = struct.unpack(">bI", frame[:5])
    assert magic == 0
    assert schema_id == codec.registry.latest("Trade").schema_id
    assert codec.decode(frame) == as_record(TRADE)


def test_reader_on_newer_version_reads_older_data() -> None:
    codec = AvroCodec()
    v1 = codec.registry.version("Bar", 1)
    assert codec.registry.latest("Bar").version > v1.version, "Bar must have evolved for this test to mean anything"
    old_fields = [f["name"] for f in v1.parsed["fields"]]
    bar = Bar("okx", "BTC-USDT-PERP", "1m", 60, 1, 2, 0.5, 1.5, 3, 1, 4.5, 1.5, 2, 3, 7, 9)
    frame = codec.encode({k: v for k, v in as_record(bar).items() if k in old_fields}, "Bar", version=1)
    assert struct.unpack(">bI", frame[:5])[1] == v1.schema_id
    decoded = codec.decode(frame)
    assert {k: decoded[k] for k in old_fields} == {k: as_record(bar)[k] for k in old_fields}
    # fields added later come with their defaults
    assert decoded["vwap"] == 0.0 and decoded["final"] is False and decoded["version"] == 0


def test_unknown_frames_are_rejected_with_reason() -> None:
    codec = AvroCodec()
    with pytest.raises(SchemaError, match="magic byte"):
        codec.decode(b"\x01\x00\x00\x00\x01abc")
    with pytest.raises(SchemaError, match="unknown schema id 999"):
        codec.decode(struct.pack(">bI", 0, 999) + b"x")
    with pytest.raises(SchemaError, match="shorter than"):
        codec.decode(b"\x00")


def test_schema_ids_are_unique_and_stable() -> None:
    ids = {reg.schema_id: f"{reg.name}.v{reg.version}" for reg in AvroCodec().registry.by_id.values()}
    assert ids[1] == "tapeline.v1.Trade.v1"
    assert ids[2] == "tapeline.v1.Bar.v1"


def test_every_trade_layout_decodes_to_the_same_trades() -> None:
    """Trade v1, TradeBatch v1 (array of records) and TradeBatch v2 (columns) carry the same trades."""
    codec = AvroCodec()
    trades = [msgspec.structs.replace(TRADE, ts_ns=TRADE.ts_ns + i, side=("buy", "sell")[i % 2], trade_id=str(i))
              for i in range(5)]  # fmt: skip
    v1 = {"venue": TRADE.venue, "instrument": TRADE.instrument,
          "trades": [{k: v for k, v in as_record(t).items() if k not in ("type", "venue", "instrument")}
                     for t in trades]}  # fmt: skip
    v1_frame = codec.encode(v1, "TradeBatch", version=1)
    v2_frame = codec.encode_event(TradeBatch.of(trades))
    assert codec.schema_of(v2_frame).schema_id == 15
    assert codec.decode_trades(v1_frame) == codec.decode_trades(v2_frame) == trades
    assert codec.decode_trades(codec.encode_event(TRADE)) == [TRADE]
    gap = TradeGap("okx", "BTC-USDT-SWAP", "BTC-USDT-PERP", 5, 9, "connection closed")
    assert codec.decode_trades(codec.encode_event(gap)) == [gap]
    assert codec.decode_trade_columns(v2_frame)["price"] == [t.price for t in trades]


def _blocks(items: list[bytes], sizes: list[int], with_byte_size: bool) -> bytes:
    """An Avro array in several blocks (valid, but not how fastavro writes one)."""
    out, i = b"", 0
    for size in sizes:
        chunk = b"".join(items[i : i + size])
        i += size
        out += write_long(-size) + write_long(len(chunk)) + chunk if with_byte_size else write_long(size) + chunk
    return out + b"\x00"


@pytest.mark.parametrize("seed", range(20))
def test_fast_trade_batch_reader_equals_fastavro(seed: int) -> None:
    codec = AvroCodec()
    reg = codec.registry.version("TradeBatch", 2)
    rng = random.Random(seed)
    n = rng.randrange(1, 300)
    extremes = [0, 1, -1, 63, 64, -65, 2**62, 2**63 - 1, -(2**63), 1_723_161_256_322_000_000]
    batch = TradeBatch(
        "okx", "BTC-USDT-PERP", "BTC-USDT-SWAP",
        [rng.choice(extremes) if rng.random() < 0.2 else rng.randrange(-(2**63), 2**63) for _ in range(n)],
        [1_723_161_256_322_000_000 + rng.randrange(10**9) for _ in range(n)],
        [rng.choice([0.0, -0.0, math.inf, 1e-300, rng.uniform(-1e9, 1e9)]) for _ in range(n)],
        [rng.uniform(0, 1) for _ in range(n)], [rng.uniform(0, 1e7) for _ in range(n)],
        [rng.choice(["buy", "sell"]) for _ in range(n)],
        [rng.choice(["", "ü", "x" * rng.randrange(200), str(rng.randrange(10**12))]) for _ in range(n)],
    )  # fmt: skip
    frame = codec.encode_event(batch)
    expected = fastavro.schemaless_reader(io.BytesIO(frame[5:]), reg.parsed, None)
    assert codec.decode_trade_columns(frame) == {
        name: expected[name] if isinstance(expected[name], list) else [expected[name]] * n for name in TRADE_FIELDS
    }
    # the same columns written in several blocks go through fastavro
    sizes = [n // 2, n - n // 2] if n > 1 else [1]
    body = b"".join(write_string(v) for v in ("trade_batch", batch.venue, batch.instrument, batch.symbol))
    body += _blocks([write_long(v) for v in batch.ts_ns], sizes, True)
    body += _blocks([write_long(v) for v in batch.recv_ts_ns], sizes, False)
    for column in (batch.price, batch.qty_base, batch.notional_quote):
        body += _blocks([struct.pack("<d", v) for v in column], sizes, rng.random() < 0.5)
    body += _blocks([write_long(("buy", "sell").index(v)) for v in batch.side], sizes, True)
    body += _blocks([write_string(v) for v in batch.trade_id], sizes, False)
    assert codec.decode_trade_columns(frame[:5] + body) == codec.decode_trade_columns(frame)


def test_bad_trade_batches_raise_what_the_processor_dead_letters() -> None:
    codec = AvroCodec()
    frame = codec.encode_event(TradeBatch.of([TRADE, TRADE]))
    sides = frame.index(b"\x04\x00\x00\x00\x04")  # the side column, then the trade ids
    side_out_of_range = frame[: sides + 1] + b"\x08" + frame[sides + 2 :]
    for bad in (frame[:-3], frame[:12], side_out_of_range):
        with pytest.raises((SchemaError, ValueError, TypeError, EOFError, KeyError)):  # what the processor catches
            codec.decode_trades(bad)
    uneven = TradeBatch.of([TRADE, TRADE])
    uneven.price.append(1.0)
    with pytest.raises(SchemaError, match="differ in length"):
        codec.decode_trades(codec.encode_event(uneven))


def test_an_obi_bar_v1_frame_decodes_with_the_band_quantities_unset() -> None:
    """ObiBar v2 (id 22) adds the band quantities with null defaults; a v1 frame (id 12) still decodes."""
    codec = AvroCodec()
    v1, v2 = codec.registry.by_id[12], codec.registry.by_id[22]
    assert (v1.name, v1.version) == ("tapeline.v1.ObiBar", 1) and (v2.name, v2.version) == ("tapeline.v1.ObiBar", 2)
    assert codec.registry.latest("ObiBar").schema_id == 22
    measures = [0.25, None, -0.5, 1.0] * 7
    row = ObiBar("okx", "BTC-USDT-PERP", "1s", 60 * 10**9, *measures, 10**9, False, 7, True, 42,
                 *[1.5, 0.0, None, 2.25] * 3)  # fmt: skip
    body = io.BytesIO()
    old_fields = [f["name"] for f in v1.parsed["fields"]]
    fastavro.schemaless_writer(body, v1.parsed, {k: v for k, v in as_record(row).items() if k in old_fields})
    decoded = msgspec.convert(codec.decode(struct.pack(">bI", 0, 12) + body.getvalue()), ObiBar)
    unset = {f"bps{b}_{s}": None for b in (10, 25, 50) for s in ("bid_mean", "ask_mean", "bid_last", "ask_last")}
    assert decoded == msgspec.structs.replace(row, **unset)
    assert msgspec.convert(codec.decode(codec.encode_event(row)), ObiBar) == row  # v2 carries them
