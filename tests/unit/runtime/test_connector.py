"""The connector drives a real venue session against a local stand-in: subscriptions, REST, polls, rejects."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

from tapeline.config import ConnectorSettings
from tapeline.domain.events import DerivTicker, Trade
from tapeline.runtime.connector import Connector
from tapeline.runtime.observability import Health
from tapeline.venues.binance.session import BinanceUsdmSession
from tools.capture_server import CaptureServer

AGG = (
    '{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":1,"a":%d,"s":"BTCUSDT","p":"100.5","q":"2","T":1,'
    '"m":false}}'
)
OI = '{"symbol":"BTCUSDT","openInterest":"1234.5","time":1723161256322}'


async def _run_until(connector: Connector, done: Callable[[], bool], timeout_s: float = 20.0) -> None:
    """Run the connector until `done()` holds (checked as it works); fail after `timeout_s` instead of hanging."""
    stop = asyncio.Event()
    task = asyncio.create_task(connector.run(stop))
    try:
        async with asyncio.timeout(timeout_s):
            while not done():
                await asyncio.sleep(0.01)
    finally:
        stop.set()
        await task


def test_connector_polls_publishes_and_rejects(tmp_path: Path) -> None:
    lines = [{"raw": AGG % i, "conn": "wss://x"} for i in range(5)] + [{"raw": "garbage", "conn": "wss://x"}]
    lines.append({"raw": OI, "conn": "https://fapi.binance.com/fapi/v1/openInterest?symbol=BTCUSDT"})
    capture = tmp_path / "c.jsonl"
    capture.write_text("\n".join(json.dumps(line) for line in lines))
    events, rejects = [], []

    async def run() -> CaptureServer:
        server = CaptureServer([capture])
        port = await server.start()
        session = BinanceUsdmSession(["BTCUSDT"], ["aggTrade", "openInterest"], f"ws://127.0.0.1:{port}",
                                     f"http://127.0.0.1:{port}")  # fmt: skip
        session.POLL_INTERVAL_S = 0.01
        connector = Connector(session, ConnectorSettings(), events.extend, lambda raw, why, ctx: rejects.append(why))

        def polled_four_times() -> bool:  # once at start, then every poll interval
            return len(rejects) == 1 and len([r for r in server.requests if "openInterest" in r]) >= 4

        await _run_until(connector, polled_four_times)
        await server.stop()
        return server

    asyncio.run(run())
    trades = [e for e in events if isinstance(e, Trade)]
    assert [t.trade_id for t in trades] == ["0", "1", "2", "3", "4"]
    assert len(rejects) == 1 and "invalid JSON" in rejects[0]
    tickers = [e for e in events if isinstance(e, DerivTicker)]
    assert len(tickers) >= 4 and all(t.open_interest_base == 1234.5 for t in tickers)


def test_an_unexpected_failure_is_dead_lettered_and_the_endpoint_reconnects(tmp_path: Path) -> None:
    """A sink that blows up on one message must not end the endpoint's loop: the message is dead-lettered with
    the reason, the connection is rebuilt, and the messages after it still arrive."""
    capture = tmp_path / "c.jsonl"
    capture.write_text("\n".join(json.dumps({"raw": AGG % i, "conn": "wss://x"}) for i in range(5)))
    published: list = []
    rejects: list[tuple[bytes, str]] = []

    def publish(events: list) -> None:
        if any(isinstance(e, Trade) and e.trade_id == "2" for e in events):
            raise RuntimeError("the producer's queue is wedged")
        published.extend(events)

    async def run() -> CaptureServer:
        server = CaptureServer([capture], pause_at=3)  # 3 and 4 wait for the second connection (see resume)
        port = await server.start()
        session = BinanceUsdmSession(["BTCUSDT"], ["aggTrade"], f"ws://127.0.0.1:{port}", f"http://127.0.0.1:{port}")
        connector = Connector(session, ConnectorSettings(backoff_initial_s=0.01), publish,
                              lambda raw, why, ctx: rejects.append((raw, why)))  # fmt: skip
        health = Health()
        connector.register_health(health)

        def reconnected_and_streaming() -> bool:
            if server.connections == 2:
                server.resume()
            if not any(getattr(e, "trade_id", "") == "4" for e in published):
                return False
            liveness.append(health.report(readiness=False))
            return True

        liveness: list = []
        await _run_until(connector, reconnected_and_streaming)
        assert liveness[0][0], liveness  # alive throughout: the failure never ended a loop
        await server.stop()
        return server

    server = asyncio.run(run())
    assert [e.trade_id for e in published if isinstance(e, Trade)] == ["0", "1", "3", "4"]
    assert [type(e).__name__ for e in published].count("TradeGap") == 1  # the rebuilt connection's gap
    ((raw, reason),) = rejects
    assert json.loads(raw)["data"]["a"] == 2
    assert reason == "connector: unexpected RuntimeError handling the message: the producer's queue is wedged"
    assert server.connections == 2  # the connection was rebuilt after the failure


def test_health_reports_a_silent_endpoint_and_a_dead_loop(tmp_path: Path) -> None:
    capture = tmp_path / "c.jsonl"
    capture.write_text(json.dumps({"raw": AGG % 0, "conn": "wss://x"}))
    now = [1000.0]
    events: list = []

    async def run() -> None:
        server = CaptureServer([capture])
        port = await server.start()
        session = BinanceUsdmSession(["BTCUSDT"], ["aggTrade"], f"ws://127.0.0.1:{port}", f"http://127.0.0.1:{port}")
        settings = ConnectorSettings(stale_after_s=30)
        connector = Connector(session, settings, events.extend, lambda *a: None, clock=lambda: now[0])
        health = Health()
        connector.register_health(health)
        assert not health.report(readiness=True)[0]  # nothing connected yet
        stop = asyncio.Event()
        task = asyncio.create_task(connector.run(stop))
        async with asyncio.timeout(20):
            while not events:
                await asyncio.sleep(0.01)
        assert health.report(readiness=True)[0], health.report(readiness=True)

        now[0] += 31  # the endpoint's last message is now older than its watchdog
        ready, statuses = health.report(readiness=True)
        assert not ready and "silent 31s (watchdog 30s)" in statuses["venue endpoints"].detail
        assert not health.report(readiness=False)[0]  # and the event loop's heartbeat is as old
        now[0] -= 31

        endpoint_loop = next(t for t in connector._loops if t.get_name().startswith("endpoint"))
        endpoint_loop.cancel()
        await asyncio.wait([endpoint_loop])
        live, statuses = health.report(readiness=False)
        assert not live and "connector loops ended: endpoint ws://" in statuses["connector loops"].detail
        stop.set()
        await task
        await server.stop()

    asyncio.run(run())


def test_a_dropped_connection_reports_a_trade_gap_per_instrument_it_carried(tmp_path: Path) -> None:
    capture = tmp_path / "c.jsonl"
    capture.write_text("\n".join(json.dumps({"raw": AGG % i, "conn": "wss://x"}) for i in range(6)))
    events: list = []

    async def run() -> None:
        server = CaptureServer([capture], drop_after=3)
        port = await server.start()
        session = BinanceUsdmSession(["BTCUSDT"], ["aggTrade"], f"ws://127.0.0.1:{port}", f"http://127.0.0.1:{port}")
        connector = Connector(session, ConnectorSettings(backoff_initial_s=0.01), events.extend, lambda *a: None)
        await _run_until(connector, lambda: sum(isinstance(e, Trade) for e in events) == 6)
        await server.stop()

    asyncio.run(run())
    kinds = [type(e).__name__ for e in events]
    # three trades, the drop, the gap once subscribed again, then the other three (and a gap per later drop)
    assert kinds[:7] == ["Trade"] * 3 + ["TradeGap"] + ["Trade"] * 3, kinds
    gap = events[3]
    assert (gap.venue, gap.symbol, gap.instrument) == ("binance-usdm", "BTCUSDT", "BTC-USDT-PERP")
    assert events[2].recv_ts_ns == gap.from_ns < gap.to_ns < events[4].recv_ts_ns
