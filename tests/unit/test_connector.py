"""The connector drives a real venue session against a local stand-in: subscriptions, REST, polls, rejects."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from tapeline.config import ConnectorSettings
from tapeline.domain.events import DerivTicker, Trade
from tapeline.runtime.connector import Connector
from tapeline.venues.binance_usdm import BinanceUsdmSession
from tools.capture_server import CaptureServer

AGG = (
    '{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":1,"a":%d,"s":"BTCUSDT","p":"100.5","q":"2","T":1,'
    '"m":false}}'
)
OI = '{"symbol":"BTCUSDT","openInterest":"1234.5","time":1723161256322}'


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
        session.POLL_INTERVAL_S = 0.2
        connector = Connector(session, ConnectorSettings(), events.extend, lambda raw, why, ctx: rejects.append(why))
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(1.5, stop.set)
        await connector.run(stop)
        await server.stop()
        return server

    server = asyncio.run(run())
    trades = [e for e in events if isinstance(e, Trade)]
    assert [t.trade_id for t in trades] == ["0", "1", "2", "3", "4"]
    assert len(rejects) == 1 and "invalid JSON" in rejects[0]
    oi_requests = [r for r in server.requests if "openInterest" in r]
    assert len(oi_requests) >= 4, server.requests  # once at start, then every 0.2 s
    tickers = [e for e in events if isinstance(e, DerivTicker)]
    assert tickers and all(t.open_interest_base == 1234.5 for t in tickers)


def test_a_dropped_connection_reports_a_trade_gap_per_instrument_it_carried(tmp_path: Path) -> None:
    capture = tmp_path / "c.jsonl"
    capture.write_text("\n".join(json.dumps({"raw": AGG % i, "conn": "wss://x"}) for i in range(6)))
    events: list = []

    async def run() -> None:
        server = CaptureServer([capture], drop_after=3)
        port = await server.start()
        session = BinanceUsdmSession(["BTCUSDT"], ["aggTrade"], f"ws://127.0.0.1:{port}", f"http://127.0.0.1:{port}")
        connector = Connector(session, ConnectorSettings(backoff_initial_s=0.05), events.extend, lambda *a: None)
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(1.5, stop.set)
        await connector.run(stop)
        await server.stop()

    asyncio.run(run())
    kinds = [type(e).__name__ for e in events]
    # three trades, the drop, the gap once subscribed again, then the other three (and a gap per later drop)
    assert kinds[:7] == ["Trade"] * 3 + ["TradeGap"] + ["Trade"] * 3, kinds
    gap = events[3]
    assert (gap.venue, gap.symbol, gap.instrument) == ("binance-usdm", "BTCUSDT", "BTC-USDT-PERP")
    assert events[2].recv_ts_ns == gap.from_ns < gap.to_ns < events[4].recv_ts_ns
