"""Exact bars and footprints across crashes, and offline parity.

A real capture is replayed into Kafka at recorded pace (`tapeline replay`); the processor is killed
with SIGKILL at random points and restarted. The bars and footprints it serves at the end must
equal, field by field, what `tapeline bars` and `tapeline footprint` compute offline over the same capture:
no loss, no double count.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tapeline.config import Settings
from tapeline.domain.events import BookGap
from tapeline.flow.obi import ObiAggregator
from tapeline.io.capture import drive, merge_captures
from tapeline.io.rpc.client import QueryClient, QueryError
from tapeline.venues.binance.session import BinanceUsdmSession
from tests.support.data import data_files
from tests.support.services import Service, free_port, wait_for

pytestmark = pytest.mark.integration

TAPELINE = str(Path(sys.executable).parent / "tapeline")
INTERVALS = ("1s", "1m")
IGNORED = {"version"}  # offline positions count lines, streaming positions count Kafka offsets
BUCKET = 5.0


def _offline_bars(capture: Path) -> dict[str, list[dict]]:
    args = [TAPELINE, "bars", "--lateness-ms", "1000", *(f"--interval={i}" for i in INTERVALS), str(capture)]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    bars: dict[str, list[dict]] = {i: [] for i in INTERVALS}
    for line in out.splitlines():
        bar = json.loads(line)
        bars[bar["interval"]].append({k: v for k, v in bar.items() if k not in IGNORED})
    return bars


def _offline_footprints(capture: Path) -> list[dict]:
    args = [TAPELINE, "footprint", "--lateness-ms", "1000", "--interval=1m", f"--bucket=BTC-USDT-PERP={BUCKET}",
            "--levels", str(capture)]  # fmt: skip
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    bars: list[dict] = []
    for line in out.splitlines():
        row = json.loads(line)
        if "poc" in row:
            bars.append({k: v for k, v in row.items() if k not in IGNORED} | {"levels": []})
        else:
            bars[-1]["levels"].append({k: v for k, v in row.items() if k not in IGNORED})
    return bars


def _served_footprints(client: QueryClient) -> list[dict]:
    out = []
    for bar, levels in client.get_footprints("binance-usdm", "BTC-USDT-PERP", "1m", 0, 2**62):
        row = {k: getattr(bar, k) for k in bar.__struct_fields__ if k not in IGNORED}
        row["levels"] = [{k: getattr(lv, k) for k in lv.__struct_fields__ if k not in IGNORED} for lv in levels]
        out.append(row)
    return out


def _served(client: QueryClient, interval: str) -> list[dict]:
    bars = client.get_bars("binance-usdm", "BTC-USDT-PERP", interval, 0, 2**62)
    return [{k: getattr(b, k) for k in b.__struct_fields__ if k not in IGNORED} for b in bars]


def _served_trades(client: QueryClient) -> int:
    try:
        return sum(b["trades"] for b in _served(client, "1m"))
    except QueryError:
        return -1


def test_kill_9_at_random_points_gives_the_offline_bars(settings: Settings, tmp_path: Path) -> None:
    (capture,) = data_files("binance_usdm/trade/hftbacktest_*.gz")
    expected = _offline_bars(capture)
    expected_footprints = _offline_footprints(capture)
    total = sum(b["trades"] for b in expected["1m"])
    assert total > 20_000 and all(b["final"] for b in expected["1m"])

    query_port = free_port()
    env = {
        "TAPELINE_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "TAPELINE_TOPICS__PREFIX": settings.topics.prefix,
        "TAPELINE_CLICKHOUSE__DSN": f"chdb://{tmp_path / 'chdb'}",
        "TAPELINE_PROCESSOR__APP_ID": f"{settings.topics.prefix}processor",
        "TAPELINE_PROCESSOR__INTERVALS": ",".join(INTERVALS),
        "TAPELINE_PROCESSOR__ALLOWED_LATENESS_MS": "1000",
        "TAPELINE_PROCESSOR__FOOTPRINT_INTERVALS": "1m",
        "TAPELINE_PROCESSOR__FOOTPRINT_BUCKETS": json.dumps({"BTC-USDT-PERP": BUCKET}),
        "TAPELINE_QUERY__PORT": str(query_port),
    }
    rng = random.Random()
    processor = Service("processor", env, tmp_path)
    replay = subprocess.Popen(
        [TAPELINE, "replay", "--pace", "recorded", "--speed", "10", str(capture)],
        env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    kills = 0
    try:
        while replay.poll() is None and kills < 3:
            # kill while it is processing (not while it starts), so the kill falls between durable
            # writes and offset commits and the restart must replay without counting twice
            started = kills + 1  # every (re)start appends one such line to the shared log
            wait_for(lambda p=processor, n=started: p.log_path.read_text().count("first batch after start") >= n,
                     60, "consumption", [processor])  # fmt: skip
            time.sleep(rng.uniform(0.2, 2.0))
            processor.assert_running()
            processor.proc.send_signal(signal.SIGKILL)  # no shutdown hooks, no final commit
            processor.proc.wait()
            kills += 1
            processor = Service("processor", env, tmp_path)
        assert replay.wait(120) == 0
        with QueryClient(f"127.0.0.1:{query_port}") as client:
            wait_for(lambda: _served_trades(client) >= total, 120, f"{total} trades in bars", [processor])
            # the last bars close once the instrument is idle (idle_close_ms) after the stream ends
            wait_for(lambda: all(b["final"] for b in _served(client, "1s")), 30, "the last bars to close", [processor])
            served = {interval: _served(client, interval) for interval in INTERVALS}
            served_footprints = _served_footprints(client)
    finally:
        replay.kill()
        processor.stop()
    assert kills == 3, "the replay ended before the processor could be killed three times"
    assert len(served_footprints) == len(expected_footprints) > 3
    for got, want in zip(served_footprints, expected_footprints, strict=True):
        assert got == want, ("footprint", got["start_ns"])
    for interval in INTERVALS:
        assert len(served[interval]) == len(expected[interval]), interval
        for got, want in zip(served[interval], expected[interval], strict=True):
            assert got == want, (interval, got["start_ns"])


def test_obi_bars_equal_the_offline_aggregator(settings: Settings, tmp_path: Path) -> None:
    """Book events replayed through the connector code -> Kafka -> processor: OBI bars served over gRPC
    equal ObiAggregator run here over the same events (the processor idles them out like close_idle)."""
    captures = data_files("binance_usdm/depthUpdate/hftbacktest_*.gz") + data_files(
        "binance_usdm/rest_depth_snapshot/hftbacktest_*.jsonl"
    )
    session = BinanceUsdmSession(["BTCUSDT"], ["depth"])
    offline = ObiAggregator(["1s", "1m"], 1_000_000_000)
    events = [e for line in merge_captures(captures) for e in drive(session, line).events]
    assert len(events) > 1000 and not any(isinstance(e, BookGap) for e in events)
    for position, event in enumerate(events):
        offline.add(event, position)
    offline.close_idle(now_ns=10**19, idle_ns=0)
    expected = [{k: getattr(b, k) for k in b.__struct_fields__ if k not in IGNORED} for b in offline.drain()]

    query_port = free_port()
    env = {
        "TAPELINE_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "TAPELINE_TOPICS__PREFIX": settings.topics.prefix,
        "TAPELINE_CLICKHOUSE__DSN": f"chdb://{tmp_path / 'chdb'}",
        "TAPELINE_PROCESSOR__APP_ID": f"{settings.topics.prefix}processor",
        "TAPELINE_PROCESSOR__OBI_INTERVALS": "1s,1m",
        "TAPELINE_PROCESSOR__ALLOWED_LATENESS_MS": "1000",
        "TAPELINE_QUERY__PORT": str(query_port),
    }
    replay = subprocess.run([TAPELINE, "replay", "--venue=binance-usdm", "--symbols=BTCUSDT", *map(str, captures)],
                            env={**os.environ, **env}, capture_output=True, text=True)  # fmt: skip
    assert replay.returncode == 0, replay.stderr
    processor = Service("processor", env, tmp_path)
    try:
        with QueryClient(f"127.0.0.1:{query_port}") as client:

            def served() -> list[dict]:
                try:
                    rows = [
                        b for i in ("1s", "1m") for b in client.get_obi("binance-usdm", "BTC-USDT-PERP", i, 0, 2**62)
                    ]
                except QueryError:
                    return []
                return [{k: getattr(b, k) for k in b.__struct_fields__ if k not in IGNORED} for b in rows]

            wait_for(lambda: len(served()) >= len(expected), 120, f"{len(expected)} OBI bars", [processor])
            got = served()
    finally:
        processor.stop()
    key = lambda row: (row["interval"], row["start_ns"])  # noqa: E731
    assert sorted(got, key=key) == sorted(expected, key=key)
    assert sum(not row["incomplete"] for row in got) > 300
