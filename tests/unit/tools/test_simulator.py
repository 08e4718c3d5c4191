"""The Binance USD-M simulator, exercised with real websocket clients on an ephemeral port."""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect as sync_connect

from tapeline.io.capture import read_capture
from tests.support.data import DATA_DIR
from tests.support.venues import usdm_trades as parse
from tools.simulator import Market, SentTrade, Simulator, SimulatorThread, parse_route, stream_tier

REPLAY_FILE = DATA_DIR / "binance_usdm" / "aggTrade" / "cryptofeed_2021-07-22__BINANCE_FUTURES.ws.1.0.aggTrade.jsonl"
BOTH = "btcusdt@aggTrade/ethusdt@aggTrade"


def _connect(url: str) -> connect:
    # An unbounded receive buffer: a client that pauses reading (websockets' default at 16 queued
    # messages) cannot see the closing handshake while the server keeps streaming, and waits 10 s.
    return connect(url, max_queue=None)


async def _recv_n(ws: ClientConnection, n: int, timeout: float = 5.0) -> list[str]:
    async with asyncio.timeout(timeout):
        return [str(await ws.recv()) for _ in range(n)]


async def _silent(ws: ClientConnection, for_s: float) -> bool:
    """True when nothing arrives within `for_s` seconds."""
    try:
        await asyncio.wait_for(ws.recv(), for_s)
    except TimeoutError:
        return True
    return False


async def _session(sim: Simulator, path: str, n: int) -> list[str]:
    """Start `sim`, read `n` messages from `path`, stop."""
    port = await sim.start()
    try:
        async with _connect(f"ws://127.0.0.1:{port}{path}") as ws:
            return await _recv_n(ws, n)
    finally:
        await sim.stop()


def _volume_by_side(rows: list[tuple[str, bool]]) -> dict[bool, Decimal]:
    totals = {True: Decimal(0), False: Decimal(0)}
    for q, m in rows:
        totals[m] += Decimal(q)
    return totals


def test_generated_aggtrades_parse_and_match_the_ledger(tmp_path: Path) -> None:
    ledger_path = tmp_path / "ledger.jsonl"
    seen: list[SentTrade] = []
    sim = Simulator(["BTCUSDT", "ETHUSDT"], rate=20_000, seed=7, max_trades=2000, ledger_path=ledger_path,
                    on_sent=seen.append)  # fmt: skip
    messages = asyncio.run(_session(sim, f"/market/stream?streams={BOTH}", 2000))

    trades = [t for m in messages for t in parse(m)]
    assert {t.symbol for t in trades} == {"BTCUSDT", "ETHUSDT"}
    data = [json.loads(m)["data"] for m in messages]
    assert all(re.fullmatch(r"\d+\.\d" if d["s"] == "BTCUSDT" else r"\d+\.\d\d", d["p"]) for d in data)
    assert all(re.fullmatch(r"\d+\.\d{3}", d["q"]) for d in data)

    ledger = [msgspec.json.decode(line, type=SentTrade) for line in ledger_path.read_bytes().splitlines()]
    assert len(ledger) == len(seen) == sim.sent_trades == 2000
    assert ledger == seen
    assert [(r.id, r.p, r.q, r.m) for r in ledger] == [(d["a"], d["p"], d["q"], d["m"]) for d in data]
    assert _volume_by_side([(r.q, r.m) for r in ledger]) == _volume_by_side([(d["q"], d["m"]) for d in data])


def test_same_seed_same_market() -> None:
    def first_trades(seed: int) -> list[tuple[str, str, bool]]:
        sim = Simulator(["BTCUSDT", "ETHUSDT"], rate=20_000, seed=seed)
        data = [json.loads(m)["data"] for m in asyncio.run(_session(sim, f"/market/stream?streams={BOTH}", 300))]
        return [(d["p"], d["q"], d["m"]) for d in data]

    assert first_trades(42) == first_trades(42)
    assert first_trades(42) != first_trades(43)


def test_streams_on_the_wrong_tier_are_accepted_and_never_delivered() -> None:
    async def run() -> None:
        sim = Simulator(["BTCUSDT"], rate=2000, seed=1, channels=("aggTrade", "trade"))
        port = await sim.start()
        base = f"ws://127.0.0.1:{port}"
        try:
            async with _connect(f"{base}/public/stream?streams=btcusdt@aggTrade") as wrong:
                await asyncio.sleep(0.1)
                assert sim.market is not None and sim.market.count == 0  # nobody can receive: no ticking
                async with (
                    _connect(f"{base}/market/stream?streams=btcusdt@aggTrade") as right,
                    _connect(f"{base}/ws/btcusdt@trade") as tierless,
                ):
                    assert all(parse(m)[0].symbol == "BTCUSDT" for m in await _recv_n(right, 50))
                    bare = await _recv_n(tierless, 5)  # no tier behaves as /public
                    assert all(json.loads(m)["e"] == "trade" and parse(m) for m in bare)
                    assert await _silent(wrong, 1.0)
        finally:
            await sim.stop()

    asyncio.run(run())


def test_subscribe_methods_on_a_raw_market_connection() -> None:
    async def run() -> None:
        sim = Simulator(["BTCUSDT", "ETHUSDT"], rate=2000, seed=1)
        port = await sim.start()
        try:
            async with _connect(f"ws://127.0.0.1:{port}/market/ws") as ws:
                assert await _silent(ws, 0.1)
                await ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@aggTrade"], "id": 1}))
                reply, *messages = await _recv_n(ws, 21)
                assert json.loads(reply) == {"result": None, "id": 1}
                assert all("stream" not in json.loads(m) and parse(m)[0].symbol == "BTCUSDT" for m in messages)
                await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 2}))
                await ws.send(json.dumps({"method": "UNSUBSCRIBE", "params": ["btcusdt@aggTrade"], "id": 3}))
                replies = [json.loads(m) for m in await _collect_until_id(ws, 3)]
                assert {"result": ["btcusdt@aggTrade"], "id": 2} in replies
                assert replies[-1] == {"result": None, "id": 3}
                assert await _silent(ws, 0.2)
        finally:
            await sim.stop()

    asyncio.run(run())


async def _collect_until_id(ws: ClientConnection, request_id: int) -> list[str]:
    out: list[str] = []
    async with asyncio.timeout(5):
        while not out or json.loads(out[-1]).get("id") != request_id:
            out.append(str(await ws.recv()))
    return out


def test_bursts_of_one_sided_aggression() -> None:
    def windows(burst_every_s: float, size: int = 300) -> list[tuple[float, float, int]]:
        """(count share, volume share, price move in ticks) of the buy side per window."""
        market = Market(["BTCUSDT"], rate=500, seed=5, burst_every_s=burst_every_s)
        fills = [market.next_fill() for _ in range(4000)]
        out = []
        for i in range(0, len(fills) - size, size // 3):
            w = fills[i : i + size]
            buy_qty = sum(Decimal(f.q) for f in w if f.buy)
            move = round((Decimal(w[-1].p) - Decimal(w[0].p)) * 10)
            out.append((sum(f.buy for f in w) / size, float(buy_qty / sum(Decimal(f.q) for f in w)), move))
        return out

    bursty = windows(burst_every_s=3.0)
    one_sided = [w for w in bursty if max(w[1], 1 - w[1]) >= 0.7 and max(w[0], 1 - w[0]) >= 0.7]
    assert one_sided, "no window where one side has >= 70% of trades and volume"
    assert all((w[2] > 0) == (w[0] > 0.5) for w in one_sided)  # price drifts the aggressor's way
    calm = windows(burst_every_s=1e9)
    assert all(0.3 < w[0] < 0.7 for w in calm)


@pytest.mark.data
def test_replay_sends_the_recorded_payloads_verbatim(tmp_path: Path) -> None:
    if not DATA_DIR.is_dir():
        pytest.skip(f"../shared/data not found: {DATA_DIR}")
    wanted = {"sushiusdt@aggTrade", "ctkusdt@aggTrade"}
    expected = [line.raw for line in read_capture(REPLAY_FILE) if json.loads(line.raw)["stream"] in wanted]
    assert len(expected) > 50

    async def run() -> list[str]:
        sim = Simulator([], rate=1, replay=[REPLAY_FILE], ledger_path=tmp_path / "ledger.jsonl")
        port = await sim.start()
        try:
            async with _connect(f"ws://127.0.0.1:{port}/market/stream?streams={'/'.join(sorted(wanted))}") as ws:
                got = await _recv_n(ws, len(expected))
                assert await _silent(ws, 0.2)
                return got
        finally:
            await sim.stop()

    assert asyncio.run(run()) == expected
    assert len((tmp_path / "ledger.jsonl").read_bytes().splitlines()) == len(expected)


def test_disconnect_after_closes_every_connection() -> None:
    sim = Simulator(["BTCUSDT"], rate=1000, seed=1, disconnect_after_s=0.3)
    with SimulatorThread(sim) as runner, sync_connect(f"{runner.base_url}/market/ws/btcusdt@aggTrade") as ws:
        received = sum(1 for _ in ws)  # iteration ends when the server closes
        assert received > 0
        assert ws.close_code == 1000


def test_a_client_that_does_not_read_is_disconnected_with_1008() -> None:
    async def run() -> None:
        sim = Simulator(["BTCUSDT"], rate=50_000, seed=1, max_queue=200)
        port = await sim.start()
        try:
            # The default client stops reading at 16 queued messages: the slow reader we want.
            async with connect(f"ws://127.0.0.1:{port}/market/stream?streams=btcusdt@aggTrade") as ws:
                await asyncio.sleep(1.0)  # sockets and buffers fill up, then the server's queue
                with pytest.raises(ConnectionClosed):
                    async with asyncio.timeout(5):
                        while True:
                            await ws.recv()
                assert ws.close_code == 1008
        finally:
            await sim.stop()

    asyncio.run(run())


def test_unknown_paths_are_refused() -> None:
    async def run() -> None:
        sim = Simulator(["BTCUSDT"], rate=10)
        port = await sim.start()
        try:
            with pytest.raises(InvalidStatus):
                async with _connect(f"ws://127.0.0.1:{port}/v5/public/linear"):
                    pass
        finally:
            await sim.stop()

    asyncio.run(run())


@pytest.mark.parametrize(
    ("path", "tier", "combined", "streams"),
    [
        ("/market/stream?streams=a@aggTrade/b@markPrice", "market", True, ("a@aggTrade", "b@markPrice")),
        ("/public/ws/btcusdt@depth@100ms", "public", False, ("btcusdt@depth@100ms",)),
        ("/stream?streams=btcusdt@trade", "public", True, ("btcusdt@trade",)),
        ("/ws", "public", False, ()),
    ],
)  # fmt: skip
def test_routes(path: str, tier: str, combined: bool, streams: tuple[str, ...]) -> None:
    route = parse_route(path)
    assert route is not None and (route.tier, route.combined, route.streams) == (tier, combined, streams)


def test_stream_tiers() -> None:
    tiers = Counter(
        stream_tier(s) for s in ["btcusdt@trade", "btcusdt@depth20@100ms", "btcusdt@bookTicker", "!bookTicker"]
    )
    assert tiers == {"public": 4}
    assert {stream_tier(s) for s in ["btcusdt@aggTrade", "btcusdt@markPrice@1s", "!forceOrder@arr"]} == {"market"}


def test_default_grid_formats_fixed_point() -> None:
    fill = Market(["XYZUSDT"], rate=10, seed=1).next_fill()
    assert re.fullmatch(r"\d+\.\d{4}", fill.p) and re.fullmatch(r"\d+", fill.q)
