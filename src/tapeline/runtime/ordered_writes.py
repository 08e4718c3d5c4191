"""Blocking writes (ClickHouse, Kafka flushes) off the event loop, one at a time, in the order submitted."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import ParamSpec

from prometheus_client import Histogram

from tapeline.io.metrics import WRITE_SECONDS, WRITE_WAIT_SECONDS

P = ParamSpec("P")


class OrderedWrites:
    """Blocking writes run off the event loop one at a time, in the order submitted.

    `submit` returns once the previous write is done and this one has started, with this one's future:
    the caller works on its next batch while the write runs. A failed write raises from the next submit.
    Each write's duration and its wait for the previous one go to the given histograms.
    """

    def __init__(self, seconds: Histogram = WRITE_SECONDS, wait_seconds: Histogram = WRITE_WAIT_SECONDS) -> None:
        self._last: asyncio.Future[None] | None = None
        self._seconds = seconds
        self._wait_seconds = wait_seconds

    async def submit(self, write: Callable[P, None], *args: P.args, **kwargs: P.kwargs) -> asyncio.Future[None]:
        if self._last is not None:
            with self._wait_seconds.time():
                await self._last
        timed = functools.partial(self._timed, write, *args, **kwargs)
        self._last = asyncio.get_running_loop().run_in_executor(None, timed)
        return self._last

    def _timed(self, write: Callable[P, None], *args: P.args, **kwargs: P.kwargs) -> None:
        with self._seconds.time():
            write(*args, **kwargs)
