"""Bar v6 (id 27: the largest trade) and LiquidationBar v1 (id 28) on the wire and in ClickHouse: every field of the
row round-trips, older Bar frames decode with the new fields' defaults, and the tables have the fields in order."""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Callable

import fastavro
import msgspec

from tapeline.codec.avro import AvroCodec
from tapeline.domain.aggregates import Bar, LiquidationBar
from tapeline.domain.events import as_record
from tapeline.io.store import BarStore
from tapeline.paths import schemas_dir

S = 1_000_000_000
BAR = Bar("okx", "BTC-USDT-PERP", "1m", 60 * S, 100.0, 102.5, 99.5, 101.0, 3.5, 1.5, 351.5, 152.5, 2.0, 199.0, 4,
          2.0, 100.8, 2, 2, 60 * S + 1, 60 * S + 9, 0.7, 2.0, 0.5, True, 42, False, "BTC", 0.25, None,
          max_trade_quote=205.0, max_trade_price=102.5, max_trade_side="sell", max_trade_ts_ns=60 * S + 5)  # fmt: skip
LIQUIDATION = LiquidationBar("binance-usdm", "BTC-USDT-PERP", "1s", 60 * S, 0.5, 1.25, 32_500.0, 81_250.5, 2, 3,
                             True, 7 << 16)  # fmt: skip


def test_a_bar_round_trips_with_schema_id_27_and_older_frames_get_the_defaults() -> None:
    codec = AvroCodec()
    assert codec.registry.by_id[27].name == "tapeline.v1.Bar" and codec.registry.by_id[27].version == 6
    frame = codec.encode_event(BAR)
    assert struct.unpack(">bI", frame[:5]) == (0, 27)
    assert msgspec.convert(codec.decode(frame), Bar) == BAR
    v5 = codec.registry.by_id[19]
    assert (v5.name, v5.version) == ("tapeline.v1.Bar", 5)
    body = io.BytesIO()
    old_fields = {f["name"] for f in v5.parsed["fields"]}
    fastavro.schemaless_writer(body, v5.parsed, {k: v for k, v in as_record(BAR).items() if k in old_fields})
    old = msgspec.convert(codec.decode(struct.pack(">bI", 0, 19) + body.getvalue()), Bar)
    assert old == msgspec.structs.replace(BAR, max_trade_quote=0.0, max_trade_price=0.0, max_trade_side="",
                                          max_trade_ts_ns=0)  # fmt: skip


def test_a_liquidation_bar_round_trips_with_schema_id_28() -> None:
    codec = AvroCodec()
    assert codec.registry.by_id[28].name == "tapeline.v1.LiquidationBar"
    frame = codec.encode_event(LIQUIDATION)
    assert struct.unpack(">bI", frame[:5]) == (0, 28)
    assert msgspec.convert(codec.decode(frame), LiquidationBar) == LIQUIDATION
    fast = io.BytesIO()
    fastavro.schemaless_writer(fast, codec.registry.by_id[28].parsed, as_record(LIQUIDATION))
    assert frame[5:] == fast.getvalue()  # the compiled writer writes fastavro's bytes


def test_avro_schemas_and_clickhouse_tables_have_the_fields_in_order(store_factory: Callable[[], BarStore]) -> None:
    for row_type, schema in ((Bar, "Bar.v6.avsc"), (LiquidationBar, "LiquidationBar.v1.avsc")):
        raw = json.loads((schemas_dir() / "avro" / schema).read_text())
        assert [f["name"] for f in raw["fields"]] == list(row_type.__struct_fields__), schema
        if row_type is Bar:  # v6 adds fields with defaults only, so a v6 reader resolves every older frame
            assert [f["default"] for f in raw["fields"][-4:]] == [0.0, 0.0, "", 0]
    store = store_factory()
    columns = store.client.query(
        f"SELECT table, name FROM system.columns WHERE database = '{store.database}' "
        "AND table IN ('bars', 'liquidation_bars') AND default_kind != 'ALIAS' ORDER BY table, position"
    ).result_rows
    assert sorted(name for table, name in columns if table == "bars") == sorted(Bar.__struct_fields__)
    assert [name for table, name in columns if table == "liquidation_bars"] == list(LiquidationBar.__struct_fields__)
    # the migration adds the largest trade after mfi, in the row's order; the views selecting * carry it
    bars = [name for table, name in columns if table == "bars"]
    assert bars[-5:] == ["mfi", "max_trade_quote", "max_trade_price", "max_trade_side", "max_trade_ts_ns"]
    view = store.client.query(f"SELECT * FROM {store.database}.bars_latest LIMIT 0").column_names
    assert {"max_trade_quote", "max_trade_side"} <= set(view)


def test_the_largest_trade_is_written_and_read_back(store: BarStore) -> None:
    store.insert_bars([BAR, msgspec.structs.replace(BAR, start_ns=120 * S, final=False, version=43)])
    assert store.get_bars("okx", "BTC-USDT-PERP", "1m", 0, 10**12, 10) == [
        BAR, msgspec.structs.replace(BAR, start_ns=120 * S, final=False, version=43)]  # fmt: skip
    assert sorted(store.resume_state(), key=lambda b: b.start_ns)[1].max_trade_side == "sell"
