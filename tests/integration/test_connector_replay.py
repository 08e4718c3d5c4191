"""Recorded venue traffic -> local websocket/REST stand-in -> connector service -> Kafka.

Every websocket message must be accounted for: each trade published exactly once, each malformed
message dead-lettered with its raw bytes and reason, across a websocket drop and a broker restart
in mid-stream.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer

from tapeline.codec.avro import AvroCodec
from tapeline.config import Settings
from tapeline.domain.events import Trade, TradeGap
from tests.support.data import data_files
from tests.support.services import Service, wait_for
from tools import kafka_local
from tools.capture_server import CaptureServer, CaptureServerThread

pytestmark = pytest.mark.integration

BAD_LINES = [
    "this is not json",
    '{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":1,"a":1,"s":"BTCUSDT","p":"NaN","q":"1","T":1,"m":true}}',
    '{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":1,"a":2,"s":"BTCUSDT","p":"100","q":"-3","T":1,"m":false}}',
]


def _capture_with_bad_lines(tmp_path: Path) -> tuple[Path, list[str], set[str]]:
    """Real aggTrade captures with malformed messages spliced in; returns (file, symbols, expected trade ids)."""
    lines, symbols, trade_ids = [], set(), set()
    for path in data_files("binance_usdm/aggTrade/cryptofeed_*.jsonl"):
        for text in path.read_text().splitlines():
            record = json.loads(text)
            data = json.loads(record["raw"])["data"]
            symbols.add(data["s"])
            trade_ids.add(f"{data['s']}:{data['a']}")
            lines.append(record)
    for i, bad in enumerate(BAD_LINES):  # spread over the stream, including after the drop and the restart
        lines.insert(40 + i * 110, {"source": "test", "line": i, "recv_ts_ns": 0, "conn": "wss://x", "raw": bad})
    out = tmp_path / "capture.jsonl"
    out.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return out, sorted(symbols), trade_ids


def _drain(settings: Settings, topic: str, group: str, expected: int) -> list[bytes]:
    """Everything in `topic`. Reads until at least `expected` messages arrived (a restarted broker can take
    a while to coordinate a new consumer group; 60 s at most), then until 3 s pass without another, so
    that extra messages are caught too."""
    consumer = Consumer(settings.kafka.librdkafka(**{"group.id": group, "auto.offset.reset": "earliest"}))
    consumer.subscribe([topic])
    values: list[bytes] = []
    deadline, last = time.monotonic() + 60, time.monotonic()
    try:
        while time.monotonic() < deadline and (len(values) < expected or time.monotonic() - last < 3):
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                values.append(msg.value())
                last = time.monotonic()
    finally:
        consumer.close()
    return values


def test_every_message_accounted_for_across_ws_drop_and_broker_restart(settings: Settings, tmp_path: Path) -> None:
    capture, symbols, expected_ids = _capture_with_bad_lines(tmp_path)
    server = CaptureServer([capture], drop_after=120, pause_at=200)
    total = len(server.ws_lines)
    with CaptureServerThread(server) as stand_in:
        env = {
            "TAPELINE_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
            "TAPELINE_TOPICS__PREFIX": settings.topics.prefix,
            "TAPELINE_CONNECTOR__VENUE": "binance-usdm",
            "TAPELINE_CONNECTOR__SYMBOLS": ",".join(symbols),
            "TAPELINE_CONNECTOR__CHANNELS": "aggTrade",
            "TAPELINE_CONNECTOR__WS_BASE_URL": f"ws://127.0.0.1:{stand_in.port}",
            "TAPELINE_CONNECTOR__REST_BASE_URL": f"http://127.0.0.1:{stand_in.port}",
            "TAPELINE_CONNECTOR__BACKOFF_INITIAL_S": "0.2",
        }
        connector = Service("connector", env, tmp_path)
        try:
            assert stand_in.wait_paused(60), f"the connector never read 200 messages:\n{connector.log_tail()}"
            cfg = kafka_local.settings()
            kafka_local.stop(cfg)  # the broker goes away while the connector keeps receiving
            stand_in.resume()
            wait_for(lambda: server.sent >= total, 60, "the rest of the capture to be sent", [connector])
            time.sleep(1)
            kafka_local.ensure_running(timeout=90)
            connector.assert_running()
            time.sleep(5)  # librdkafka retries delivery once the broker is back
        finally:
            assert connector.stop() == 0, connector.log_tail()
    assert server.connections >= 2, "the websocket drop did not happen"

    codec = AvroCodec()
    frames = _drain(settings, settings.topics.trades, f"check-{uuid.uuid4().hex}", expected=1)
    events = [e for frame in frames for e in codec.decode_trades(frame)]
    trades = [e for e in events if isinstance(e, Trade)]
    gaps = [e for e in events if isinstance(e, TradeGap)]
    # every reconnect reports a gap for each symbol whose trades came over the dropped connection
    assert len(gaps) >= server.connections - 1 and all(g.from_ns < g.to_ns for g in gaps), gaps
    assert {g.symbol for g in gaps} <= set(symbols)
    ids = [f"{t.symbol}:{t.trade_id}" for t in trades]
    assert len(ids) == len(set(ids)), "a trade was published twice"
    assert set(ids) == expected_ids, (
        f"missing {len(expected_ids - set(ids))}, unexpected {len(set(ids) - expected_ids)}"
    )

    letters = [
        codec.decode(v)
        for v in _drain(settings, settings.topics.dead_letter, f"check-{uuid.uuid4().hex}", expected=len(BAD_LINES))
    ]
    assert sorted(letter["raw"].decode() for letter in letters) == sorted(BAD_LINES)
    reasons = " | ".join(letter["reason"] for letter in letters)
    assert "invalid JSON" in reasons and "is not finite" in reasons and "must be > 0" in reasons
    assert len(trades) + len(letters) == total


def _bybit(raw: dict) -> list[str]:
    return [f"{t['s']}:{t['i']}" for t in raw.get("data", [])] if raw.get("topic", "").startswith("publicTrade") else []


def _okx(raw: dict) -> list[str]:
    if raw.get("arg", {}).get("channel") != "trades":
        return []
    return [f"{t['instId']}:{t['tradeId']}" for t in raw["data"] if t["instId"].count("-") < 3]  # options: rejected


def _hyperliquid(raw: dict) -> list[str]:
    return [f"{t['coin']}:{t['tid']}" for t in raw["data"]] if raw.get("channel") == "trades" else []


VENUE_CASES = {
    "bybit-linear": ("bybit_v5/publicTrade/cryptofeed_v3_*linear.jsonl", "publicTrade", _bybit, "s"),
    "okx": ("okx_v5/trades/cryptofeed_*.jsonl", "trades", _okx, "instId"),
    "hyperliquid": ("hyperliquid/trades/hftbacktest_*.jsonl", "trades", _hyperliquid, "coin"),
}


@pytest.mark.parametrize("venue", list(VENUE_CASES))
def test_other_venues_trades_accounted_for(venue: str, settings: Settings, tmp_path: Path) -> None:
    pattern, channel, expected_of, symbol_field = VENUE_CASES[venue]
    captures = data_files(pattern)
    if venue == "okx":
        captures += data_files("okx_v5/rest_instruments/*.jsonl")  # contract values for SWAP/FUTURES sizes
    expected, symbols, rejected_lines = set(), set(), 0
    for path in captures:
        for text in path.read_text().splitlines():
            record = json.loads(text)
            if (record.get("conn") or "").startswith("http"):
                continue
            raw = json.loads(record["raw"])
            ids = expected_of(raw)
            expected.update(ids)
            items = raw.get("data", []) if isinstance(raw.get("data"), list) else []
            symbols.update(t[symbol_field] for t in items if t.get(symbol_field, "").count("-") < 3)
            rejected_lines += venue == "okx" and any(t["instId"].count("-") >= 3 for t in items)
    server = CaptureServer(captures)
    with CaptureServerThread(server) as stand_in:
        env = {
            "TAPELINE_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
            "TAPELINE_TOPICS__PREFIX": settings.topics.prefix,
            "TAPELINE_CONNECTOR__VENUE": venue,
            "TAPELINE_CONNECTOR__SYMBOLS": ",".join(sorted(symbols)),
            "TAPELINE_CONNECTOR__CHANNELS": channel,
            "TAPELINE_CONNECTOR__WS_BASE_URL": f"ws://127.0.0.1:{stand_in.port}",
            "TAPELINE_CONNECTOR__REST_BASE_URL": f"http://127.0.0.1:{stand_in.port}",
        }
        connector = Service("connector", env, tmp_path)
        try:
            wait_for(lambda: server.sent >= len(server.ws_lines), 60, "the capture to be sent", [connector])
            time.sleep(3)
        finally:
            assert connector.stop() == 0, connector.log_tail()
    codec = AvroCodec()
    frames = _drain(settings, settings.topics.trades, f"check-{uuid.uuid4().hex}", expected=1)
    trades = [t for frame in frames for t in codec.decode_trades(frame) if isinstance(t, Trade)]
    ids = [f"{t.symbol}:{t.trade_id}" for t in trades]
    assert len(ids) == len(set(ids)), "a trade was published twice"
    assert set(ids) == expected, (len(set(ids)), len(expected), connector.log_tail())
    assert all(t.qty_base > 0 and t.side in ("buy", "sell") for t in trades)
    letters = _drain(settings, settings.topics.dead_letter, f"check-{uuid.uuid4().hex}", expected=rejected_lines)
    assert len(letters) == rejected_lines
