"""Bybit v5 venue module: messages per second on one core, on the real captures in ../shared/data.

    .venv/bin/python tools/bench_venue_bybit.py [--repeat N]

- trades: publicTrade parse + normalize (payload -> Trade events), linear and spot recordings;
- books: orderbook maintenance (payload -> sequence check -> L2Book update -> BookUpdate), replaying each
  recording from its snapshot with a fresh session, so snapshots are counted at their real share;
- orjson.loads of the same payloads, as a yardstick for "just parsing the JSON".

Best of 5 runs; the process is pinned to one CPU where the OS allows it.
"""

from __future__ import annotations

import os
import platform
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import click
import orjson

from tapeline.io.capture import read_capture
from tapeline.venues.bybit.session import BybitLinearSession, BybitSession, BybitSpotSession

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
BYBIT = DATA / "bybit_v5"


def best_rate(fn: Callable[[], object], n: int, repeats: int = 5) -> float:
    """Items per second of the fastest of `repeats` runs."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return n / best


def payloads(path: Path) -> list[str]:
    return [line.raw for line in read_capture(path)]


def session_class(path: Path) -> type[BybitSession]:
    return BybitSpotSession if "spot" in path.name else BybitLinearSession


def drain(fn: Callable[[str], object], msgs: list[str]) -> None:
    """Call fn on every payload and drop the results (keeping them would measure the garbage collector)."""
    for p in msgs:
        fn(p)


def bench_trades(path: Path, repeat: int) -> tuple[float, float, float]:
    """(messages/s, trades/s, orjson.loads messages/s)."""
    msgs = payloads(path) * repeat
    on_ws = session_class(path)([], ["publicTrade"]).on_ws
    trades = sum(len(on_ws(p, 1).events) for p in msgs)
    rate = best_rate(lambda: drain(lambda p: on_ws(p, 1), msgs), len(msgs))
    baseline = best_rate(lambda: drain(orjson.loads, msgs), len(msgs))
    return rate, rate * trades / len(msgs), baseline


def bench_book(cls: type[BybitSession], msgs: list[str], repeat: int) -> tuple[float, float]:
    """(messages/s, orjson.loads messages/s) replaying `msgs` `repeat` times, a fresh session each time."""

    def replay() -> None:
        for _ in range(repeat):
            on_ws = cls([], []).on_ws
            for p in msgs:
                on_ws(p, 1)

    n = len(msgs) * repeat
    return best_rate(replay, n), best_rate(lambda: drain(orjson.loads, msgs * repeat), n)


@click.command()
@click.option("--repeat", default=200, show_default=True, help="How often each recording is replayed per run.")
def main(repeat: int) -> None:
    if not BYBIT.is_dir():
        sys.exit(f"recorded market data not found at {BYBIT}")
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    print(f"Python {platform.python_version()} on {platform.machine()}, one core, best of 5\n")

    print(f"{'publicTrade parse+normalize':<60} {'msgs/s':>10} {'trades/s':>10} {'orjson/s':>10}")
    for path in sorted((BYBIT / "publicTrade").glob("cryptofeed_*.jsonl")):
        rate, trade_rate, baseline = bench_trades(path, repeat * 10)
        print(f"{path.name[-40:]:<60} {rate:>10,.0f} {trade_rate:>10,.0f} {baseline:>10,.0f}")

    books = [(p.name, session_class(p), payloads(p)) for p in sorted((BYBIT / "orderbook").glob("[!_]*.jsonl"))]
    for archive in sorted((DATA / "historical" / "bybit_public_history").glob("*.zip")):
        with zipfile.ZipFile(archive) as z:
            for member in z.namelist():
                books.append((f"{archive.name}!{member}", BybitLinearSession, z.read(member).decode().splitlines()))
    print(f"\n{'orderbook maintenance (fresh session per replay)':<60} {'msgs/s':>10} {'':>10} {'orjson/s':>10}")
    for name, cls, msgs in books:
        rate, baseline = bench_book(cls, msgs, max(1, repeat * 80 // len(msgs)))
        print(f"{name[-58:]:<60} {rate:>10,.0f} {'':>10} {baseline:>10,.0f}")


if __name__ == "__main__":
    main()
