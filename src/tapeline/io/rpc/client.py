"""Client of the gRPC query service, returning the domain's Bar structs."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any, NamedTuple

import grpc  # type: ignore[import-untyped]  # grpcio ships no type hints

from tapeline.domain.aggregates import Bar, FootprintBar, FootprintLevel, ObiBar
from tapeline.domain.errors import TapelineError
from tapeline.io.rpc.convert import bar_from_proto, footprint_from_proto, obi_from_proto
from tapeline.io.rpc.gen.tapeline.v1 import query_pb2, query_pb2_grpc


class QueryError(TapelineError):
    """A query call failed; `code` is the gRPC status (INVALID_ARGUMENT, UNAVAILABLE, ...)."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


class BarPage(NamedTuple):
    bars: list[Bar]
    truncated: bool  # more bars lie in the range: ask again from bars[-1].start_ns + 1


class QueryClient:
    """`with QueryClient("127.0.0.1:50051") as client: client.get_bars(...)`; every call has a deadline."""

    def __init__(self, target: str, timeout_s: float = 30.0) -> None:
        self.target = target
        self.timeout_s = timeout_s
        # The server bounds responses by max_rows (100k bars is ~20 MB), above gRPC's 4 MB default.
        self._channel = grpc.insecure_channel(target, options=[("grpc.max_receive_message_length", -1)])
        self._stub = query_pb2_grpc.QueryServiceStub(self._channel)  # type: ignore[no-untyped-call]  # generated code

    def __enter__(self) -> QueryClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def wait_ready(self, timeout_s: float) -> None:
        """Block until the channel connects; QueryError(UNAVAILABLE) after `timeout_s`."""
        try:
            grpc.channel_ready_future(self._channel).result(timeout=timeout_s)
        except grpc.FutureTimeoutError:
            raise QueryError(
                grpc.StatusCode.UNAVAILABLE, f"no query service reachable at {self.target} within {timeout_s}s"
            ) from None

    def get_bars(
        self, venue: str, instrument: str, interval: str, from_ns: int, to_ns: int, limit: int = 0
    ) -> list[Bar]:
        """Bars with from_ns <= start_ns < to_ns, oldest first; limit 0 is the server's max_rows."""
        return self.get_bars_page(venue, instrument, interval, from_ns, to_ns, limit).bars

    def get_bars_page(
        self, venue: str, instrument: str, interval: str, from_ns: int, to_ns: int, limit: int = 0
    ) -> BarPage:
        """Like get_bars, also telling whether the limit cut the range short."""
        response = self._call(self._stub.GetBars, query_pb2.GetBarsRequest, venue, instrument, interval, from_ns,
                              to_ns, limit)  # fmt: skip
        return BarPage([bar_from_proto(b) for b in response.bars], response.truncated)

    def get_footprints(
        self, venue: str, instrument: str, interval: str, from_ns: int, to_ns: int, limit: int = 0
    ) -> list[tuple[FootprintBar, list[FootprintLevel]]]:
        response = self._call(self._stub.GetFootprints, query_pb2.GetFootprintsRequest, venue, instrument, interval,
                              from_ns, to_ns, limit)  # fmt: skip
        return [footprint_from_proto(f) for f in response.footprints]

    def get_obi(
        self, venue: str, instrument: str, interval: str, from_ns: int, to_ns: int, limit: int = 0
    ) -> list[ObiBar]:
        response = self._call(self._stub.GetObi, query_pb2.GetObiRequest, venue, instrument, interval, from_ns,
                              to_ns, limit)  # fmt: skip
        return [obi_from_proto(b) for b in response.bars]

    def list_series(self) -> list[tuple[str, str, str]]:
        """(venue, instrument, interval) of every series with bars, sorted."""
        try:
            response = self._stub.ListSeries(query_pb2.ListSeriesRequest(), timeout=self.timeout_s)
        except grpc.RpcError as exc:
            raise _query_error(exc) from None
        return [(s.venue, s.instrument, s.interval) for s in response.series]

    def _call(self, method: Callable[..., Any], request_type: Callable[..., Any], venue: str, instrument: str,
              interval: str, from_ns: int, to_ns: int, limit: int) -> Any:  # fmt: skip
        """One range RPC within the deadline; QueryError carries the status the server gave."""
        request = request_type(venue=venue, instrument=instrument, interval=interval, from_ns=from_ns, to_ns=to_ns,
                               limit=limit)  # fmt: skip
        try:
            return method(request, timeout=self.timeout_s)
        except grpc.RpcError as exc:
            raise _query_error(exc) from None


def _query_error(exc: grpc.RpcError) -> QueryError:
    # Errors raised by calls are also grpc.Call, which carries the status.
    call: grpc.Call = exc
    return QueryError(call.code(), call.details() or "")
