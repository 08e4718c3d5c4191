"""A local venue stand-in that replays capture files: websocket messages and the recorded REST answers.

Any websocket path gets the capture's websocket lines in order (subscribe frames are acknowledged by
silence, text pings get "pong"); any HTTP request whose path and query match a recorded REST line gets
that line's body. `drop_after` closes every connection after that many messages, and a reconnecting
client continues where the last one stopped, so a test can demand that nothing is lost across drops.
Used by the connector integration tests; the same connector code then talks to the live venue.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web

from tapeline.io.capture import CaptureLine, merge_captures


def _rest_key(conn: str) -> str | None:
    """'https://host/a/b?x=1' or 'POST https://host/info {...}' -> '/a/b?x=1' (POST: path + body)."""
    method, _, rest = conn.partition(" ") if conn.startswith(("GET ", "POST ")) else ("GET", "", conn)
    url, _, body = rest.partition(" ")
    if not url.startswith(("http://", "https://")):
        return None
    parts = urlsplit(url)
    key = parts.path + (f"?{parts.query}" if parts.query else "")
    return f"{key} {body}" if method == "POST" else key


@dataclass
class CaptureServer:
    captures: list[Path]
    drop_after: int | None = None  # close each connection after this many messages
    pause_at: int | None = None  # stop feeding after this many messages in total until resume() is called
    ws_lines: list[CaptureLine] = field(default_factory=list)
    rest: dict[str, str] = field(default_factory=dict)
    sent: int = 0  # websocket messages delivered so far (over all connections)
    connections: int = 0
    requests: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for line in merge_captures(self.captures):
            key = _rest_key(line.conn or "")
            if key is not None:
                self.rest[key] = line.raw
            else:
                self.ws_lines.append(line)
        self._runner: web.AppRunner | None = None
        self._lock = asyncio.Lock()
        self._resumed = asyncio.Event()
        self.paused = asyncio.Event()  # set while feeding waits at pause_at

    def resume(self) -> None:
        self._resumed.set()

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._route)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        return site._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    async def _route(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._websocket(request)
        query = request.rel_url.query_string
        key = request.rel_url.path + (f"?{query}" if query else "")
        if request.method == "POST":
            key = f"{key} {await request.text()}"
        self.requests.append(key)
        body = self.rest.get(key)
        if body is None:
            return web.Response(status=404, text=f"no recorded answer for {key}")
        return web.Response(text=body, content_type="application/json")

    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self.connections += 1
        reader = asyncio.create_task(self._answer_pings(ws))
        sent_here = 0
        try:
            async with self._lock:  # one feeding connection at a time keeps the order exact
                while self.sent < len(self.ws_lines) and not ws.closed:
                    if self.drop_after is not None and sent_here >= self.drop_after:
                        break
                    if self.sent == self.pause_at and not self._resumed.is_set():
                        self.paused.set()
                        await self._resumed.wait()
                    await ws.send_str(self.ws_lines[self.sent].raw)
                    self.sent += 1
                    sent_here += 1
                    if sent_here % 200 == 0:
                        await asyncio.sleep(0)  # let the client read and ping
            if self.drop_after is None or self.sent >= len(self.ws_lines):
                await reader  # stay open (quiet) until the client leaves
        finally:
            reader.cancel()
            with contextlib.suppress(Exception):
                await ws.close()
        return ws

    async def _answer_pings(self, ws: web.WebSocketResponse) -> None:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT and msg.data == "ping":
                await ws.send_str("pong")


class CaptureServerThread:
    """Runs a CaptureServer on its own event loop in a background thread (for tests driving it from outside)."""

    def __init__(self, server: CaptureServer) -> None:
        self.server = server
        self.loop = asyncio.new_event_loop()
        self.port = 0

    def __enter__(self) -> CaptureServerThread:
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.port = self.loop.run_until_complete(self.server.start())
            ready.set()
            self.loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def wait_paused(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.server.paused.is_set():
                return True
            time.sleep(0.05)
        return False

    def resume(self) -> None:
        self.loop.call_soon_threadsafe(self.server.resume)

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
