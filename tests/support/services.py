"""Helpers for running Tapeline services as real subprocesses in integration tests."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

from tools.supervisor import ServiceProcess


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Service(ServiceProcess):
    """A service under test: its log tail explains any failure."""

    def assert_running(self) -> None:
        code = self.proc.poll()
        assert code is None, f"{self.name} exited with {code}:\n{self.log_tail()}"


def wait_for(condition: Callable[[], bool], timeout: float, what: str, services: list[Service]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for service in services:
            service.assert_running()
        if condition():
            return
        time.sleep(0.5)
    tails = "\n".join(f"--- {s.name}\n{s.log_tail()}" for s in services)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{tails}")
