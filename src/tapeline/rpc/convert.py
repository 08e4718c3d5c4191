"""Bar <-> protobuf, in one place. The proto Bar uses the contract's field names (a test keeps them equal)."""

from __future__ import annotations

from tapeline.events import Bar
from tapeline.rpc.gen.tapeline.v1 import query_pb2

_FIELDS = Bar.__struct_fields__


def bar_to_proto(bar: Bar) -> query_pb2.Bar:
    return query_pb2.Bar(**{name: getattr(bar, name) for name in _FIELDS})


def bar_from_proto(message: query_pb2.Bar) -> Bar:
    return Bar(*(getattr(message, name) for name in _FIELDS))
