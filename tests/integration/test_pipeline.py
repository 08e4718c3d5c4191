"""End to end on real parts: simulator -> connector -> Kafka -> processor -> ClickHouse -> GetBars (gRPC).

The simulator's ledger says exactly what went over the websocket; the bars served over gRPC must
add up to it, per instrument and side, in both intervals.
"""

from __future__ import annotations

import json
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest

from tapeline.config import Settings
from tapeline.io.rpc.client import QueryClient, QueryError
from tapeline.venues.binance.instruments import usdm_instrument
from tests.support.services import Service, free_port, wait_for

pytestmark = pytest.mark.integration

TRADES = 20_000
SYMBOLS = ["BTCUSDT", "ETHUSDT"]


def _ledger_totals(path: Path) -> dict[tuple[str, str], dict[str, Decimal]]:
    totals: dict[tuple[str, str], dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for line in path.read_text().splitlines():
        sent = json.loads(line)
        side = "sell" if sent["m"] else "buy"
        bucket = totals[(usdm_instrument(sent["symbol"]), side)]
        bucket["base"] += Decimal(sent["q"])
        bucket["quote"] += Decimal(sent["q"]) * Decimal(sent["p"])
        bucket["count"] += 1
    return totals


def _served_totals(client: QueryClient, interval: str) -> dict[tuple[str, str], dict[str, Decimal]]:
    totals: dict[tuple[str, str], dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for symbol in SYMBOLS:
        instrument = usdm_instrument(symbol)
        for bar in client.get_bars("binance-usdm", instrument, interval, 0, 2**62):
            for side in ("buy", "sell"):
                bucket = totals[(instrument, side)]
                bucket["base"] += Decimal(repr(getattr(bar, f"{side}_base")))
                bucket["quote"] += Decimal(repr(getattr(bar, f"{side}_quote")))
                bucket["count"] += getattr(bar, f"{side}_trades")
    return totals


def _served_count(client: QueryClient, interval: str) -> int:
    try:
        return sum(int(t["count"]) for t in _served_totals(client, interval).values())
    except QueryError:
        return -1  # not serving yet


def test_bars_add_up_to_what_the_simulator_sent(settings: Settings, tmp_path: Path) -> None:
    sim_port, query_port = free_port(), free_port()
    env = {
        "TAPELINE_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "TAPELINE_TOPICS__PREFIX": settings.topics.prefix,
        "TAPELINE_CLICKHOUSE__DSN": f"chdb://{tmp_path / 'chdb'}",
        "TAPELINE_CONNECTOR__WS_BASE_URL": f"ws://127.0.0.1:{sim_port}",
        "TAPELINE_CONNECTOR__SYMBOLS": ",".join(SYMBOLS),
        "TAPELINE_PROCESSOR__APP_ID": f"{settings.topics.prefix}processor",
        "TAPELINE_PROCESSOR__INTERVALS": "1s,1m",
        "TAPELINE_QUERY__PORT": str(query_port),
    }
    ledger = tmp_path / "ledger.jsonl"
    services = [
        Service("simulator", env, tmp_path, "--port", str(sim_port), "--symbols", ",".join(SYMBOLS),
                "--rate", "4000", "--seed", "7", "--max-trades", str(TRADES), "--ledger", str(ledger)),
        Service("connector", env, tmp_path),
        Service("processor", env, tmp_path),
    ]  # fmt: skip
    try:
        with QueryClient(f"127.0.0.1:{query_port}") as client:
            for interval in ("1m", "1s"):
                wait_for(lambda i=interval: _served_count(client, i) >= TRADES, 180, f"{TRADES} trades in {interval}",
                         services)  # fmt: skip
            expected = _ledger_totals(ledger)
            assert sum(t["count"] for t in expected.values()) == TRADES
            for interval in ("1m", "1s"):
                served = _served_totals(client, interval)
                assert set(served) == set(expected)
                for key, want in expected.items():
                    got = served[key]
                    assert got["count"] == want["count"], (interval, key)
                    # Bar sums are rounded to 1e-10 base and 1e-6 quote; summing bars adds binary noise below that.
                    exact = Decimal("1e-8")
                    assert got["base"].quantize(exact) == want["base"].quantize(exact), (interval, key)
                    assert abs(got["quote"] - want["quote"]) < Decimal("1e-4"), (interval, key)
            assert ("binance-usdm", "BTC-USDT-PERP", "1s") in set(client.list_series())
    finally:
        codes = {s.name: s.stop() for s in reversed(services)}
    assert codes == {"simulator": 0, "connector": 0, "processor": 0}, codes
