"""OKX v5 venue benchmark (not a test): messages per second on one core, best of 5, on the real captures.

    .venv/bin/python tools/bench_venue_okx.py [--rounds 5] [--repeat 20]

- books: books-l2-tbt maintenance WITH checksum verification (every message carries one) on
  okx_v5/books-l2-tbt/cryptofeed_2021-07-22__OKEX.ws.1.0.books-l2-tbt.jsonl, emitting BookUpdate events in
  base units. The file is fed `repeat` times per round (each pass starts with each book's snapshot).
- books (updates only): the same without the 8 snapshots (400-level books), i.e. the steady state.
- trades: trades parse + normalize (contracts -> base) on the trades capture.
- decode only: msgspec decoding of the book messages, the floor under the books number.
OPTION instruments (out of scope, BadMessage) are left out of the inputs. Payloads are bytes, as a
websocket client hands them over; the instruments REST answers are loaded before timing.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

from tapeline.io.capture import read_capture
from tapeline.venues.okx.instruments import inst_type
from tapeline.venues.okx.session import OkxSession
from tapeline.venues.okx.wire import book_decoder

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "okx_v5"
BOOKS = DATA / "books-l2-tbt" / "cryptofeed_2021-07-22__OKEX.ws.1.0.books-l2-tbt.jsonl"
TRADES = DATA / "trades" / "cryptofeed_2021-07-22__OKEX.ws.1.0.trades.jsonl"
INSTRUMENTS = DATA / "rest_instruments" / "cryptofeed_2021-07-22__OKEX.0.rest_instruments.jsonl"


def _payloads(path: Path) -> list[tuple[bytes, int]]:
    out = []
    for line in read_capture(path):
        head = line.raw[:120]
        inst_id = head.split('"instId":"', 1)[1].split('"', 1)[0]
        if inst_type(inst_id) != "OPTION":
            out.append((line.raw.encode(), line.recv_ts_ns or 0))
    return out


def _session(channels: list[str]) -> OkxSession:
    session = OkxSession([], channels)
    for line in read_capture(INSTRUMENTS):
        request = session.rest_request_for(line.conn or "")
        if request is not None:
            session.on_rest(request, line.raw, line.recv_ts_ns or 0)
    return session


def best_rate(make_session, payloads: list[tuple[bytes, int]], rounds: int, repeat: int) -> tuple[float, OkxSession]:
    """Messages per second of the fastest round (the least disturbed by other load on the machine)."""
    best = float("inf")
    session = None
    for _ in range(rounds):
        session = make_session()
        on_ws = session.on_ws
        started = time.perf_counter()
        for _ in range(repeat):
            for payload, recv in payloads:
                on_ws(payload, recv)
        best = min(best, time.perf_counter() - started)
    return len(payloads) * repeat / best, session


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=20, help="passes over each capture per round")
    args = parser.parse_args()
    if not BOOKS.exists():
        sys.exit(f"capture not found: {BOOKS} (clone ../shared beside the project)")
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core

    books = _payloads(BOOKS)
    updates = [(p, r) for p, r in books if b'"action":"update"' in p[:120]]
    snapshots = [(p, r) for p, r in books if b'"action":"snapshot"' in p[:120]]
    trades = _payloads(TRADES)
    n_trades = sum(p.count(b'"tradeId"') for p, _ in trades)

    print(f"python {platform.python_version()} on {platform.machine()}, {args.rounds} rounds, best kept")
    rate, session = best_rate(lambda: _session(["books-l2-tbt"]), books, args.rounds, args.repeat)
    assert session.gaps == 0 and session.checksums_verified == len(books) * args.repeat
    print(
        f"books-l2-tbt maintenance + checksum : {rate:>10,.0f} msgs/s per core "
        f"({len(books)} msgs incl. {len(snapshots)} snapshots, {session.checksums_verified:,} checksums verified)"
    )

    def primed() -> OkxSession:
        s = _session(["books-l2-tbt"])
        for payload, recv in snapshots:
            s.on_ws(payload, recv)
        return s

    rate, session = best_rate(primed, updates, args.rounds, 1)
    assert session.gaps == 0
    print(f"books-l2-tbt updates only           : {rate:>10,.0f} msgs/s per core ({len(updates)} msgs)")

    rate, session = best_rate(lambda: _session(["trades"]), trades, args.rounds, args.repeat * 20)
    print(
        f"trades parse + normalize            : {rate:>10,.0f} msgs/s per core "
        f"({len(trades)} msgs, {n_trades} trades, {rate * n_trades / len(trades):,.0f} trades/s)"
    )

    best = float("inf")
    for _ in range(args.rounds):
        started = time.perf_counter()
        for _ in range(args.repeat):
            for payload, _recv in books:
                book_decoder.decode(payload)
        best = min(best, time.perf_counter() - started)
    print(f"book messages, msgspec decode only  : {len(books) * args.repeat / best:>10,.0f} msgs/s per core")


if __name__ == "__main__":
    main()
