"""REST edge for venue sessions: performs their RestRequests, backing off on rate limits.

Binance answers 429 when a client exceeds its weight and 418 when it kept going after that (an IP ban);
both carry Retry-After. Other venues use 429 too. We honour Retry-After, else back off with jitter.
"""

from __future__ import annotations

import logging

import aiohttp
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from tapeline.venues.base import RestRequest

log = logging.getLogger(__name__)

RETRY_STATUSES = {418, 429, 500, 502, 503, 504}


class RestError(Exception):
    def __init__(self, request: RestRequest, status: int, body: str, retry_after_s: float | None = None) -> None:
        super().__init__(f"{request.method} {request.url} -> HTTP {status}: {body[:200]}")
        self.status = status
        self.retry_after_s = retry_after_s


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, RestError):
        return exc.status in RETRY_STATUSES
    return isinstance(exc, aiohttp.ClientError | TimeoutError)


def _failure(retry_state: RetryCallState) -> BaseException | None:
    """The exception of the attempt that just failed."""
    assert retry_state.outcome is not None  # tenacity sets it before calling wait and before_sleep
    return retry_state.outcome.exception()


def _wait(retry_state: RetryCallState) -> float:
    exc = _failure(retry_state)
    if isinstance(exc, RestError) and exc.retry_after_s:
        return exc.retry_after_s
    return wait_exponential_jitter(initial=0.5, max=60)(retry_state)


class RestClient:
    def __init__(self, timeout_s: float = 10.0, attempts: int = 6) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._attempts = attempts
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> RestClient:
        self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session:
            await self._session.close()

    async def fetch(self, request: RestRequest) -> bytes:
        """The body of a successful answer; retries rate limits and transient failures."""
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(_retryable),
            wait=_wait,
            stop=stop_after_attempt(self._attempts),
            reraise=True,
            before_sleep=lambda s: log.warning("%s: retrying after %r", request.url, _failure(s)),
        ):
            with attempt:
                return await self._once(request)
        raise AssertionError("unreachable")

    async def _once(self, request: RestRequest) -> bytes:
        assert self._session is not None, "use RestClient as an async context manager"
        headers = {"Content-Type": "application/json"} if request.body else None
        async with self._session.request(request.method, request.url, data=request.body, headers=headers) as resp:
            body = await resp.read()
            if resp.status != 200:
                retry_after = resp.headers.get("Retry-After")
                raise RestError(request, resp.status, body.decode(errors="replace"),
                                float(retry_after) if retry_after and retry_after.isdigit() else None)  # fmt: skip
            return body
