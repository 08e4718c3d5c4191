"""The health endpoint: /healthz and /readyz answer from the checks, /metrics from Prometheus."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request

from tapeline.runtime.observability import Health, Heartbeat, Status, serve


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_liveness_and_readiness_answer_from_their_checks() -> None:
    now = [0.0]
    beat = Heartbeat("the loop", max_silence_s=10, clock=lambda: now[0])
    ready = [True]
    health = Health()
    health.liveness("loop", beat.check)
    health.readiness("feed", lambda: Status(ready[0], "fresh" if ready[0] else "silent 40s"))
    port = _free_port()
    server = serve(port, health, host="127.0.0.1")
    assert server is not None
    try:
        base = f"http://127.0.0.1:{port}"
        status, body = _get(f"{base}/healthz")
        assert status == 503
        assert json.loads(body)["checks"]["loop"] == {"ok": False, "detail": "the loop has not started"}

        beat.beat()
        assert _get(f"{base}/healthz")[0] == 200
        assert _get(f"{base}/readyz")[0] == 200

        ready[0] = False  # readiness only: the process is alive, but not fit for traffic
        status, body = _get(f"{base}/readyz")
        assert status == 503 and json.loads(body)["checks"]["feed"]["detail"] == "silent 40s"
        assert _get(f"{base}/healthz")[0] == 200

        now[0] = 11.0  # the loop stopped beating
        status, body = _get(f"{base}/healthz")
        assert status == 503 and "silent for 11.0s" in json.loads(body)["checks"]["loop"]["detail"]

        status, body = _get(f"{base}/metrics")
        assert status == 200 and b"# HELP" in body
    finally:
        server.shutdown()


def test_a_failing_check_reports_itself() -> None:
    health = Health()
    health.liveness("broken", lambda: 1 / 0)
    ok, statuses = health.report(readiness=False)
    assert not ok and statuses["broken"].detail == "check failed: ZeroDivisionError: division by zero"


def test_no_port_serves_nothing() -> None:
    assert serve(0, Health()) is None
