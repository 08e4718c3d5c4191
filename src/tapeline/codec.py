"""Avro codec with Confluent wire framing: magic byte 0, 4-byte big-endian schema id, Avro body.

Schemas live in ``schemas/avro`` and are parsed once. ``registry.json`` pins every schema file to a
fixed id (ids never change), so standard Kafka tooling and a reader of any later version can tell
which writer schema produced a message and resolve it.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import fastavro
import msgspec

from tapeline.avro_writer import compile_writer
from tapeline.errors import SchemaError
from tapeline.events import Trade, TradeGap, as_record
from tapeline.paths import schemas_dir

MAGIC = 0
_HEADER = struct.Struct(">bI")


@dataclass(frozen=True)
class RegisteredSchema:
    schema_id: int
    name: str  # full name, e.g. tapeline.v1.Trade
    version: int
    parsed: dict


class SchemaRegistry:
    """The schemas of one directory, by id and by name (newest version last)."""

    def __init__(self, directory: Path) -> None:
        manifest = json.loads((directory / "registry.json").read_text())
        self.by_id: dict[int, RegisteredSchema] = {}
        self.versions: dict[str, list[RegisteredSchema]] = {}
        for entry in manifest["schemas"]:
            raw = json.loads((directory / entry["file"]).read_text())
            parsed = fastavro.parse_schema(raw)
            name = parsed["name"]
            version = int(entry["file"].rsplit(".v", 1)[1].split(".")[0])
            reg = RegisteredSchema(entry["id"], name, version, parsed)
            if reg.schema_id in self.by_id:
                raise SchemaError(f"duplicate schema id {reg.schema_id} in {directory / 'registry.json'}")
            self.by_id[reg.schema_id] = reg
            self.versions.setdefault(name, []).append(reg)
        for regs in self.versions.values():
            regs.sort(key=lambda r: r.version)

    def latest(self, name: str) -> RegisteredSchema:
        try:
            return self.versions[_full_name(name)][-1]
        except KeyError:
            raise SchemaError(f"no Avro schema named {name!r}") from None

    def version(self, name: str, version: int) -> RegisteredSchema:
        for reg in self.versions.get(_full_name(name), []):
            if reg.version == version:
                return reg
        raise SchemaError(f"no Avro schema {name!r} version {version}")


def _full_name(name: str) -> str:
    return name if "." in name else f"tapeline.v1.{name}"


class AvroCodec:
    """Encode records with a given (default: newest) schema; decode any registered writer version."""

    def __init__(self, registry: SchemaRegistry | None = None) -> None:
        self.registry = registry or default_registry()
        # Compiled writers for the newest version of each record (fastavro for anything they don't cover).
        self._writers = {}
        for name, versions in self.registry.versions.items():
            newest = versions[-1]
            writer = compile_writer(newest.parsed, _HEADER.pack(MAGIC, newest.schema_id))
            if writer is not None:
                self._writers[name] = writer

    def encode(self, record: dict, name: str, version: int | None = None) -> bytes:
        reg = self.registry.latest(name) if version is None else self.registry.version(name, version)
        buf = io.BytesIO()
        buf.write(_HEADER.pack(MAGIC, reg.schema_id))
        fastavro.schemaless_writer(buf, reg.parsed, record)
        return buf.getvalue()

    def encode_event(self, event: msgspec.Struct, name: str | None = None) -> bytes:
        """Encode an event with the newest schema of its record (the hot path of every service)."""
        writer = self._writers.get(_full_name(name or type(event).__name__))
        if writer is not None:
            return writer(event)
        return self.encode(as_record(event), name or type(event).__name__)

    def schema_of(self, frame: bytes) -> RegisteredSchema:
        if len(frame) < _HEADER.size:
            raise SchemaError(f"frame of {len(frame)} bytes is shorter than the 5-byte Confluent header")
        magic, schema_id = _HEADER.unpack_from(frame)
        if magic != MAGIC:
            raise SchemaError(f"unknown magic byte {magic} (expected {MAGIC})")
        try:
            return self.registry.by_id[schema_id]
        except KeyError:
            raise SchemaError(f"unknown schema id {schema_id}") from None

    def decode(self, frame: bytes) -> dict:
        """Decode into the newest version of the writer's record (missing fields get their defaults)."""
        writer = self.schema_of(frame)
        reader = self.registry.latest(writer.name)
        body = io.BytesIO(memoryview(frame)[_HEADER.size :])
        if reader.schema_id == writer.schema_id:
            return fastavro.schemaless_reader(body, writer.parsed, None)
        return fastavro.schemaless_reader(body, writer.parsed, reader.parsed)

    def decode_many(self, frames: Iterable[bytes]) -> list[dict]:
        return [self.decode(f) for f in frames]

    def decode_trades(self, frame: bytes) -> list[Trade] | list[TradeGap]:
        """The events of a trades-topic message: a single Trade, a TradeBatch, or a TradeGap."""
        record = self.decode(frame)
        kind = record.get("type")
        if kind == "trade":
            del record["type"]
            return [Trade(**record)]
        if kind == "trade_gap":
            del record["type"]
            return [TradeGap(**record)]
        if kind == "trade_batch":
            venue, instrument = record["venue"], record["instrument"]
            return [Trade(venue=venue, instrument=instrument, **item) for item in record["trades"]]
        raise SchemaError(f"a {self.schema_of(frame).name} message is not a trade")


@cache
def default_registry() -> SchemaRegistry:
    return SchemaRegistry(schemas_dir() / "avro")
