"""What operators and Kubernetes look at: health checks and the HTTP endpoint every service serves.

On TAPELINE_METRICS__PORT a service answers

* ``/metrics``: Prometheus metrics (definitions in io/metrics.py);
* ``/healthz``: liveness, 200 while every liveness check passes (a dead or blocked loop fails it,
  and Kubernetes restarts the pod);
* ``/readyz``: readiness, 200 while every check passes (liveness and readiness ones: e.g. a venue
  connection silent past its watchdog makes the connector unready).

Both health answers are JSON: ``{"ok": bool, "checks": {name: {"ok": bool, "detail": str}}}``, 503
when not ok. Checks run in the server's thread and only read state the loops update.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import make_wsgi_app


@dataclass(frozen=True)
class Status:
    ok: bool
    detail: str


Check = Callable[[], Status]


class Health:
    """Named checks: liveness ones answer /healthz and /readyz, readiness ones /readyz only."""

    def __init__(self) -> None:
        self._checks: dict[str, tuple[Check, bool]] = {}

    def liveness(self, name: str, check: Check) -> None:
        self._checks[name] = (check, True)

    def readiness(self, name: str, check: Check) -> None:
        self._checks[name] = (check, False)

    def report(self, readiness: bool) -> tuple[bool, dict[str, Status]]:
        """(all ok, status per check) for /readyz (`readiness`) or /healthz."""
        statuses = {}
        for name, (check, live) in self._checks.items():
            if live or readiness:
                try:
                    statuses[name] = check()
                except Exception as exc:  # a broken check reports itself rather than the server failing
                    statuses[name] = Status(False, f"check failed: {type(exc).__name__}: {exc}")
        return all(s.ok for s in statuses.values()), statuses


class Heartbeat:
    """A loop calls `beat()` every turn; the check fails once it has not beaten for `max_silence_s`."""

    def __init__(self, what: str, max_silence_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.what = what
        self.max_silence_s = max_silence_s
        self._clock = clock
        self._last: float | None = None

    def beat(self) -> None:
        self._last = self._clock()

    def check(self) -> Status:
        if self._last is None:
            return Status(False, f"{self.what} has not started")
        silent = self._clock() - self._last
        if silent > self.max_silence_s:
            return Status(False, f"{self.what} silent for {silent:.1f}s (limit {self.max_silence_s:.0f}s)")
        return Status(True, f"{self.what} ran {silent:.1f}s ago")


def tasks_running(tasks: Callable[[], Iterable[Any]], what: str) -> Check:
    """A check that fails when one of the asyncio tasks `tasks()` gives has ended (a loop died)."""

    def check() -> Status:
        current = list(tasks())
        done = [t.get_name() for t in current if t.done()]
        if done:
            return Status(False, f"{what} ended: {', '.join(done)}")
        return Status(True, f"{len(current)} {what} running")

    return check


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # probes every few seconds: not worth a log line
        pass


def make_app(health: Health) -> Callable[..., Iterable[bytes]]:
    metrics: Callable[..., Iterable[bytes]] = make_wsgi_app()  # typed as a bare Callable

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path not in ("/healthz", "/readyz"):
            return metrics(environ, start_response)
        ok, statuses = health.report(readiness=path == "/readyz")
        body = json.dumps({"ok": ok, "checks": {k: {"ok": s.ok, "detail": s.detail} for k, s in statuses.items()}})
        start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "application/json")])
        return [body.encode()]

    return app


def serve(port: int, health: Health, host: str = "0.0.0.0") -> WSGIServer | None:
    """Serve /metrics, /healthz and /readyz on `port` from a daemon thread (0: serve nothing)."""
    if not port:
        return None
    server = make_server(host, port, make_app(health), _Server, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name=f"observability:{port}", daemon=True).start()
    return server
