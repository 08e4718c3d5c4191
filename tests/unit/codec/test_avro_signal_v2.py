"""Signal v2 (id 29): a v1 frame still decodes, into v2 with v2's defaults; v2 round trips."""

from __future__ import annotations

import msgspec

from tapeline.codec.avro import AvroCodec
from tapeline.domain.events import Signal


def test_signal_v2_is_the_newest_and_round_trips() -> None:
    codec = AvroCodec()
    sig = Signal("id", 3, "withdrawn", "absorption", "bearish", None, None, "BTC", "perp", "1m", 10, None, 2.5,
                 {"delta_base": -1.5}, "absorption")  # fmt: skip
    frame = codec.encode_event(sig)
    assert codec.schema_of(frame).schema_id == 29
    record = codec.decode(frame)
    assert record.pop("type") == "signal"
    assert msgspec.convert(record, Signal) == sig


def test_a_v1_frame_decodes_with_the_v2_defaults() -> None:
    codec = AvroCodec()
    v1 = {"type": "signal", "signal_id": "old", "kind": "divergence", "variant": "regular", "direction": "bullish",
          "venue": "okx", "instrument": "BTC-USDT-PERP", "interval": "1m", "pivot_ts_ns": 5, "prev_pivot_ts_ns": 1,
          "confirmed_ts_ns": 8, "price_prev": 1.0, "price_now": 0.5, "cvd_prev": -1.0, "cvd_now": 1.0}  # fmt: skip
    frame = codec.encode(v1, "Signal", version=1)
    assert codec.schema_of(frame).schema_id == 4
    record = codec.decode(frame)
    assert (record["version"], record["status"], record["venue"], record["pivot_ts_ns"]) == (1, "active", "okx", 5)
    assert (record["asset"], record["detail"], record["detector"]) == ("", {}, "")
    assert "variant" not in record
