"""Binance venue modules: messages per second on one core, on the real captures in ../shared/data.

    .venv/bin/python tools/bench_venue_binance.py [--repeats N]

- trades: `BinanceUsdmSession.on_ws` (what the connector runs) and `BinanceSpotSession.on_ws`, payload ->
  Trade, on the hftbacktest `trade` capture (21,313 messages) and the cryptofeed `aggTrade` captures.
  "dropped" throws each result away as the connector does after publishing; "kept" collects them in a list
  like tools/bench.py, which also measures the allocator and garbage collector holding 21k results.
- spot trades: the spot session on the same trades rewritten into the spot shape (there is no spot
  capture), so the number is comparable, not independent.
- depth: book maintenance (payload -> pu check -> L2Book update -> BookUpdate), replaying each recording
  through a fresh session with its REST snapshot, on the hftbacktest BTCUSDT capture (6,551 messages,
  ~68 levels each) and the cryptofeed ones.
- orjson.loads of the same payloads, as a yardstick for "just parsing the JSON".

Times are CPU time of this process (the machine is shared: wall time would count other work), best of
N runs; the process is pinned to one CPU where the OS allows it.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import click
import orjson

from tapeline.io.capture import read_capture
from tapeline.venues.binance.session import BinanceSpotSession, BinanceUsdmSession

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
USDM = DATA / "binance_usdm"
HFT = "hftbacktest_2024-08-08__btcusdt_20240808.gz"


def best_rate(fn: Callable[[], object], n: int, repeats: int) -> float:
    """Items per CPU second of the fastest of `repeats` runs."""
    best = float("inf")
    for _ in range(repeats):
        gc.collect()
        started = time.process_time()
        fn()
        best = min(best, time.process_time() - started)
    return n / best


def payloads(path: Path) -> list[bytes]:
    return [line.raw.encode() for line in read_capture(path)]


def trade_rates(fn: Callable[[bytes, int], object], msgs: list[bytes], repeats: int) -> tuple[float, float]:
    """(dropped, kept) messages/s."""

    def dropped() -> None:
        for p in msgs:
            fn(p, 1)

    return best_rate(dropped, len(msgs), repeats), best_rate(lambda: [fn(p, 1) for p in msgs], len(msgs), repeats)


def spot_shape(payload: bytes) -> bytes:
    """A USD-M trade message rewritten as a spot one (spot adds "M"; the stream name is the same form)."""
    msg = json.loads(payload)
    data = msg.get("data", msg)
    data.pop("X", None)
    data["M"] = True
    return json.dumps(msg, separators=(",", ":")).encode()


def depth_replay(source: str) -> tuple[list[tuple[str, bytes, int, str | None]], int]:
    """The recording's depth events and REST snapshots in receive order, and its level count."""
    lines = []
    levels = 0
    for path in sorted((USDM / "depthUpdate").glob(f"{source}*")):
        for line in read_capture(path):
            data = json.loads(line.raw)["data"]
            levels += len(data["b"]) + len(data["a"])
            lines.append(("ws", line.raw.encode(), line.recv_ts_ns, line.conn))
    for path in sorted((USDM / "rest_depth_snapshot").glob(f"{source}*")):
        for line in read_capture(path):
            lines.append(("rest", line.raw.encode(), line.recv_ts_ns, line.conn))
    lines.sort(key=lambda item: (item[2], item[0] == "rest"))
    return lines, levels


def bench_depth(source: str, repeats: int) -> tuple[int, float, float, float]:
    """(messages, messages/s, levels/s, orjson.loads messages/s) of whole replays, a fresh session each."""
    lines, levels = depth_replay(source)
    n = sum(1 for kind, *_ in lines if kind == "ws")

    def replay() -> None:
        session = BinanceUsdmSession([], ["depth"])
        on_ws = session.on_ws
        for kind, raw, recv, conn in lines:
            if kind == "ws":
                on_ws(raw, recv, conn)
            else:
                request = session.rest_request_for(conn) if conn else session.book("BTCUSDT").request
                session.on_rest(request, raw, recv)
        assert all(book.state == "live" and book.gaps == 0 for book in session.books.values())

    rate = best_rate(replay, n, repeats)
    ws = [raw for kind, raw, *_ in lines if kind == "ws"]
    baseline = best_rate(lambda: [orjson.loads(p) for p in ws], n, repeats)
    return n, rate, rate * levels / n, baseline


@click.command()
@click.option("--repeats", default=15, show_default=True, help="Runs per measurement; the fastest counts.")
def main(repeats: int) -> None:
    if not USDM.is_dir():
        sys.exit(f"recorded market data not found at {USDM}")
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    print(f"Python {platform.python_version()} on {platform.machine()}, one core, CPU time, best of {repeats}\n")

    hft = payloads(USDM / "trade" / f"{HFT}.trade.jsonl.gz")
    agg = [p for path in sorted((USDM / "aggTrade").glob("cryptofeed_*")) for p in payloads(path)] * 50
    session = BinanceUsdmSession(["BTCUSDT"], ["trade", "aggTrade"])
    spot = BinanceSpotSession(["BTCUSDT"], ["trade"])
    rows = [
        ("BinanceUsdmSession.on_ws, trade (hftbacktest)", session.on_ws, hft),
        ("BinanceUsdmSession.on_ws, aggTrade (cryptofeed, x50)", session.on_ws, agg),
        ("BinanceSpotSession.on_ws, trade (hftbacktest in spot shape)", spot.on_ws, [spot_shape(p) for p in hft]),
    ]
    print(f"{'trades: parse + normalize':<58} {'dropped/s':>11} {'kept/s':>11} {'orjson/s':>11}")
    for name, fn, msgs in rows:
        dropped, kept = trade_rates(fn, msgs, repeats)
        baseline = best_rate(lambda msgs=msgs: [orjson.loads(p) for p in msgs], len(msgs), repeats)
        print(f"{name:<58} {dropped:>11,.0f} {kept:>11,.0f} {baseline:>11,.0f}")

    print(f"\n{'depth: book maintenance (fresh session per replay)':<46} {'msgs':>6} {'msgs/s':>11} "
          f"{'levels/s':>11} {'orjson/s':>11}")  # fmt: skip
    for source in ("hftbacktest_2024-08-08", "cryptofeed_2021-04-17", "cryptofeed_2021-07-22"):
        n, rate, level_rate, baseline = bench_depth(source, repeats)
        print(f"{source:<46} {n:>6} {rate:>11,.0f} {level_rate:>11,.0f} {baseline:>11,.0f}")


if __name__ == "__main__":
    main()
