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

from tapeline.codec import AvroCodec
from tapeline.config import Settings
from tapeline.devtools import kafka_local
from tapeline.devtools.capture_server import CaptureServer, CaptureServerThread
from tests.datafiles import data_files
from tests.integration.services import Service, wait_for

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


def _drain(settings: Settings, topic: str, group: str) -> list[bytes]:
    consumer = Consumer(settings.kafka.librdkafka(**{"group.id": group, "auto.offset.reset": "earliest"}))
    consumer.subscribe([topic])
    values, idle_since = [], time.monotonic()
    try:
        while time.monotonic() - idle_since < 3:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                values.append(msg.value())
                idle_since = time.monotonic()
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
    trades = [codec.decode(v) for v in _drain(settings, settings.topics.trades, f"check-{uuid.uuid4().hex}")]
    ids = [f"{t['symbol']}:{t['trade_id']}" for t in trades]
    assert len(ids) == len(set(ids)), "a trade was published twice"
    assert set(ids) == expected_ids, (
        f"missing {len(expected_ids - set(ids))}, unexpected {len(set(ids) - expected_ids)}"
    )

    letters = [codec.decode(v) for v in _drain(settings, settings.topics.dead_letter, f"check-{uuid.uuid4().hex}")]
    assert sorted(letter["raw"].decode() for letter in letters) == sorted(BAD_LINES)
    reasons = " | ".join(letter["reason"] for letter in letters)
    assert "invalid JSON" in reasons and "positive and finite" in reasons
    assert len(trades) + len(letters) == total
