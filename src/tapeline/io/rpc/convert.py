"""Bar <-> protobuf, in one place. The proto Bar uses the contract's field names (a test keeps them equal)."""

from __future__ import annotations

from typing import Any

from tapeline.domain.aggregates import Bar, FootprintBar, FootprintLevel, ObiBar
from tapeline.io.rpc.gen.tapeline.v1 import query_pb2

_FIELDS = Bar.__struct_fields__


def bar_to_proto(bar: Bar) -> query_pb2.Bar:
    # unset optional fields (cmf, mfi) mean "not enough bars yet"
    return query_pb2.Bar(**{name: value for name in _FIELDS if (value := getattr(bar, name)) is not None})


def bar_from_proto(message: query_pb2.Bar) -> Bar:
    fields: dict[str, Any] = {
        name: getattr(message, name) if name not in _OPTIONAL or message.HasField(name) else None for name in _FIELDS
    }
    return Bar(**fields)


_OPTIONAL = {f.name for f in query_pb2.Bar.DESCRIPTOR.fields if f.has_presence}


_LEVEL_FIELDS = [f.name for f in query_pb2.FootprintLevel.DESCRIPTOR.fields]
_FOOTPRINT_FIELDS = [f.name for f in query_pb2.Footprint.DESCRIPTOR.fields if f.name != "levels"]


def footprint_to_proto(bar: FootprintBar, levels: list[FootprintLevel]) -> query_pb2.Footprint:
    message = query_pb2.Footprint(**{name: getattr(bar, name) for name in _FOOTPRINT_FIELDS})
    message.levels.extend(query_pb2.FootprintLevel(**{n: getattr(lv, n) for n in _LEVEL_FIELDS}) for lv in levels)
    return message


def footprint_from_proto(message: query_pb2.Footprint) -> tuple[FootprintBar, list[FootprintLevel]]:
    fields = {name: getattr(message, name) for name in _FOOTPRINT_FIELDS}
    for name in ("stacked_directions", "stacked_lows", "stacked_highs"):
        fields[name] = list(fields[name])
    bar = FootprintBar(**fields)
    levels = [
        FootprintLevel(bar.venue, bar.instrument, bar.interval, bar.start_ns, bucket_size=bar.bucket_size,
                       final=bar.final, version=bar.version, **{n: getattr(lv, n) for n in _LEVEL_FIELDS})
        for lv in message.levels
    ]  # fmt: skip
    return bar, levels


_OBI_FIELDS = [f.name for f in query_pb2.ObiBar.DESCRIPTOR.fields]


def obi_to_proto(bar: ObiBar) -> query_pb2.ObiBar:
    # unset optional fields mean "undefined" (no verified book, or nothing on one side)
    return query_pb2.ObiBar(**{name: value for name in _OBI_FIELDS if (value := getattr(bar, name)) is not None})


def obi_from_proto(message: query_pb2.ObiBar) -> ObiBar:
    fields: dict[str, Any] = {
        name: getattr(message, name) if not field.has_presence or message.HasField(name) else None
        for name, field in ((f.name, f) for f in query_pb2.ObiBar.DESCRIPTOR.fields)
    }
    return ObiBar(**fields)
