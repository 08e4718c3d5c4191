"""gRPC query service: bars from the store, plus the standard health and reflection services."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from concurrent import futures
from typing import Any, NoReturn, TypeVar

import grpc  # type: ignore[import-untyped]  # grpcio ships no type hints
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from tapeline.config import QuerySettings
from tapeline.domain.errors import InvalidQuery, StoreError, TapelineError
from tapeline.domain.events import VENUES
from tapeline.domain.intervals import INTERVAL_NS
from tapeline.io.metrics import RPC_REQUESTS
from tapeline.io.rpc.convert import bar_to_proto, footprint_to_proto, obi_to_proto
from tapeline.io.rpc.gen.tapeline.v1 import query_pb2, query_pb2_grpc
from tapeline.io.store import BarStore

log = logging.getLogger(__name__)

SERVICE_NAME = query_pb2.DESCRIPTOR.services_by_name["QueryService"].full_name  # "tapeline.v1.QueryService"
_INTERVALS = ", ".join(sorted(INTERVAL_NS, key=INTERVAL_NS.__getitem__))
Row = TypeVar("Row")  # what a range RPC fetches: bars, footprints or OBI bars


def validate(request: query_pb2.GetBarsRequest, max_rows: int) -> int:
    """The effective row limit of a valid request; InvalidQuery names the first bad field."""
    if request.venue not in VENUES:
        raise InvalidQuery(f"venue {request.venue!r} is unknown; known venues: {', '.join(VENUES)}")
    if not request.instrument:
        raise InvalidQuery("instrument is empty; give the canonical name, e.g. BTC-USDT-PERP")
    if request.interval not in INTERVAL_NS:
        raise InvalidQuery(f"interval {request.interval!r} is unknown; known intervals: {_INTERVALS}")
    if request.from_ns < 0:
        raise InvalidQuery(f"from_ns is negative ({request.from_ns}); it is ns since the Unix epoch")
    if request.to_ns < 0:
        raise InvalidQuery(f"to_ns is negative ({request.to_ns}); it is ns since the Unix epoch")
    if request.from_ns >= request.to_ns:
        raise InvalidQuery(
            f"from_ns ({request.from_ns}) must be less than to_ns ({request.to_ns}); the range is [from_ns, to_ns)"
        )
    if request.limit > max_rows:
        raise InvalidQuery(f"limit {request.limit} is above the server's max_rows {max_rows}; use 0 for max_rows")
    return request.limit or max_rows


class QueryServicer(query_pb2_grpc.QueryServiceServicer):
    def __init__(self, store: BarStore, max_rows: int) -> None:
        self.store = store
        self.max_rows = max_rows

    def GetBars(self, request: query_pb2.GetBarsRequest, context: grpc.ServicerContext) -> query_pb2.GetBarsResponse:
        bars, truncated = self._range("GetBars", request, context, self.store.get_bars, "bar")
        return query_pb2.GetBarsResponse(bars=[bar_to_proto(b) for b in bars], truncated=truncated)

    def GetFootprints(
        self, request: query_pb2.GetFootprintsRequest, context: grpc.ServicerContext
    ) -> query_pb2.GetFootprintsResponse:
        rows, truncated = self._range("GetFootprints", request, context, self.store.get_footprints, "footprint")
        footprints = [footprint_to_proto(bar, levels) for bar, levels in rows]
        return query_pb2.GetFootprintsResponse(footprints=footprints, truncated=truncated)

    def GetObi(self, request: query_pb2.GetObiRequest, context: grpc.ServicerContext) -> query_pb2.GetObiResponse:
        rows, truncated = self._range("GetObi", request, context, self.store.get_obi, "OBI")
        return query_pb2.GetObiResponse(bars=[obi_to_proto(b) for b in rows], truncated=truncated)

    def _range(
        self, method: str, request: Any, context: grpc.ServicerContext, fetch: Callable[..., list[Row]], what: str
    ) -> tuple[list[Row], bool]:
        """Validate a (venue, instrument, interval, from, to, limit) request and fetch its rows."""
        try:
            limit = validate(request, self.max_rows)
        except InvalidQuery as exc:
            _abort(context, method, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        try:
            # One row more than asked tells whether the range holds more (truncated).
            rows = fetch(request.venue, request.instrument, request.interval, request.from_ns, request.to_ns,
                         limit + 1)  # fmt: skip
        except StoreError as exc:
            log.exception("%s failed in the store", method)
            _abort(context, method, grpc.StatusCode.UNAVAILABLE, f"{what} store failed: {exc}")
        RPC_REQUESTS.labels(method, grpc.StatusCode.OK.name).inc()
        return rows[:limit], len(rows) > limit

    def ListSeries(
        self, request: query_pb2.ListSeriesRequest, context: grpc.ServicerContext
    ) -> query_pb2.ListSeriesResponse:
        try:
            series = self.store.instruments()
        except StoreError as exc:
            log.exception("ListSeries failed in the store")
            _abort(context, "ListSeries", grpc.StatusCode.UNAVAILABLE, f"bar store failed: {exc}")
        RPC_REQUESTS.labels("ListSeries", grpc.StatusCode.OK.name).inc()
        return query_pb2.ListSeriesResponse(
            series=[query_pb2.Series(venue=v, instrument=i, interval=n) for v, i, n in series]
        )


def _abort(context: grpc.ServicerContext, method: str, code: grpc.StatusCode, message: str) -> NoReturn:
    RPC_REQUESTS.labels(method, code.name).inc()
    context.abort(code, message)
    raise AssertionError("context.abort returned")  # it raises; this keeps type checkers honest


def build_server(store: BarStore, settings: QuerySettings) -> tuple[grpc.Server, int]:
    """A server (not started) with the query, health and reflection services; returns it and the bound port."""
    server, port, _ = _build(store, settings)
    return server, port


def _build(store: BarStore, settings: QuerySettings) -> tuple[grpc.Server, int, health.HealthServicer]:
    executor = futures.ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="tapeline-rpc")
    # gRPC sets SO_REUSEPORT by default: a second instance on the same port would silently share it.
    server = grpc.server(executor, options=[("grpc.so_reuseport", 0)])
    query_pb2_grpc.add_QueryServiceServicer_to_server(  # type: ignore[no-untyped-call]  # generated code
        QueryServicer(store, settings.max_rows), server
    )
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ("", SERVICE_NAME):  # "" is the whole server, what probes ask by default
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    host = f"[{settings.host}]" if ":" in settings.host and not settings.host.startswith("[") else settings.host
    address = f"{host}:{settings.port}"
    try:
        port = server.add_insecure_port(address)
    except RuntimeError as exc:
        raise TapelineError(f"cannot bind the query service to {address}: {exc}") from exc
    return server, port, health_servicer


def serve(store: BarStore, settings: QuerySettings, grace_s: float = 5.0) -> None:
    """Serve until SIGTERM/SIGINT, then report NOT_SERVING and let in-flight calls finish. Main thread only."""
    server, port, health_servicer = _build(store, settings)
    server.start()
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    log.info("query service listening on %s:%d", settings.host, port)
    try:
        # Poll: a signal delivered to one of gRPC's threads would not wake a plain wait() in this one.
        while not stop.wait(0.5):
            pass
    finally:
        log.info("query service stopping (grace %.1fs)", grace_s)
        health_servicer.enter_graceful_shutdown()  # probes see NOT_SERVING while calls drain
        server.stop(grace_s).wait()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
