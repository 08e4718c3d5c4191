"""DerivBar on the wire and in ClickHouse: Avro v1 (id 20) and the deriv_bars table carry every field of the row."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable

import msgspec

from tapeline.codec.avro import AvroCodec
from tapeline.domain.aggregates import DerivBar
from tapeline.domain.events import DerivTicker
from tapeline.io.store import BarStore
from tapeline.paths import schemas_dir

BAR = DerivBar("okx", "BTC-USDT-PERP", "1m", 60 * 10**9, None, 65118.03, 65138.37, -0.0003, 1.5, 2.0, 1.25, 1.75, 0.25,
               None, None, None, None, 1_786_320_000 * 10**9, 7, True, 42, 61 * 10**9,
               ["funding_rate", "open_interest_usd"])  # fmt: skip


def test_a_deriv_bar_round_trips_with_schema_id_20() -> None:
    codec = AvroCodec()
    frame = codec.encode_event(BAR)
    assert struct.unpack(">bI", frame[:5]) == (0, 20)
    assert codec.registry.by_id[20].name == "tapeline.v1.DerivBar"
    assert msgspec.convert(codec.decode(frame), DerivBar) == BAR
    empty = msgspec.structs.replace(BAR, mark_price=None, next_funding_ts_ns=None, carried=[])
    assert msgspec.convert(codec.decode(codec.encode_event(empty)), DerivBar) == empty


def test_avro_schema_and_clickhouse_tables_have_the_fields_in_order(store_factory: Callable[[], BarStore]) -> None:
    fields = list(DerivBar.__struct_fields__)
    raw = json.loads((schemas_dir() / "avro" / "DerivBar.v1.avsc").read_text())
    assert [f["name"] for f in raw["fields"]] == fields
    nullable = {f["name"] for f in raw["fields"] if isinstance(f["type"], list)}
    assert nullable == {f.name for f in msgspec.structs.fields(DerivBar) if "None" in str(f.type)}
    store = store_factory()
    columns = store.client.query(
        f"SELECT table, name, type FROM system.columns WHERE database = '{store.database}' "
        "AND table IN ('deriv_bars', 'deriv_tickers') AND default_kind != 'ALIAS' ORDER BY table, position"
    ).result_rows
    bars = [(name, kind) for table, name, kind in columns if table == "deriv_bars"]
    assert [name for name, _ in bars] == fields
    assert {name for name, kind in bars if kind.startswith("Nullable")} == nullable
    tickers = [name for table, name, _ in columns if table == "deriv_tickers"]
    assert sorted(tickers) == sorted(DerivTicker.__struct_fields__)
