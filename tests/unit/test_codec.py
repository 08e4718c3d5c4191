from __future__ import annotations

import struct

import pytest

from tapeline.codec import AvroCodec
from tapeline.errors import SchemaError
from tapeline.events import Bar, Trade, as_record

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
