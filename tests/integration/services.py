"""Run Tapeline services as real subprocesses (`python -m services.<name>`) for integration tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Service:
    """One service process with its own environment and log file."""

    def __init__(self, name: str, env: dict[str, str], log_dir: Path, *args: str) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        full_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", f"services.{name}", *args], cwd=REPO, env=full_env, stdout=log, stderr=log
            )

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def assert_running(self) -> None:
        code = self.proc.poll()
        assert code is None, f"{self.name} exited with {code}:\n{self.log_tail()}"

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


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
