"""The connector's trade path on one core: session on_ws, + Avro encode, + produce (acks=all) to a running broker.

    .venv/bin/python -m tools.bench_trade_path [--bootstrap 127.0.0.1:9092]

For A/B runs of a change, run it alternately on the code before and after (the imports also find the
module layout before the re-layering: `PYTHONPATH=<old checkout>/src python tools/bench_trade_path.py`).
Prints msgs/s, best of 5 (3 with produce), over the 21,313 real trades of the hftbacktest capture.
"""

from __future__ import annotations

import argparse
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from tapeline.config import KafkaSettings, Settings, TopicSettings

try:
    from tapeline.codec.avro import AvroCodec
    from tapeline.io.capture import read_capture
    from tapeline.io.kafka import ensure_topics, make_producer, produce
    from tapeline.venues.binance.session import BinanceUsdmSession
except ImportError:  # the layout before the re-layering
    from tapeline.capture import read_capture  # type: ignore[no-redef]
    from tapeline.kafka import ensure_topics, make_producer, produce  # type: ignore[no-redef]
    from tapeline.venues.binance_usdm import BinanceUsdmSession  # type: ignore[no-redef]

    from tapeline.codec import AvroCodec  # type: ignore[no-redef]

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CAPTURE = DATA / "binance_usdm" / "trade" / "hftbacktest_2024-08-08__btcusdt_20240808.gz.trade.jsonl.gz"


def best_rate(fn: Callable[[], object], n: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return n / best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    payloads = [line.raw.encode() for line in read_capture(CAPTURE)]
    on_ws = BinanceUsdmSession(["BTCUSDT"], ["trade"]).on_ws
    encode = AvroCodec().encode_event
    settings = Settings(kafka=KafkaSettings(bootstrap_servers=args.bootstrap),
                        topics=TopicSettings(prefix=f"bench-{uuid.uuid4().hex[:8]}."))  # fmt: skip
    producer = make_producer(settings)
    topic = settings.topics.trades
    ensure_topics(settings, [topic])

    def with_produce() -> None:
        for p in payloads:
            for trade in on_ws(p, 1).events:
                produce(producer, topic, encode(trade), b"binance-usdm|BTC-USDT-PERP")
        producer.flush()

    n = len(payloads)
    parse = best_rate(lambda: [on_ws(p, 1).events for p in payloads], n, 5)
    encoded = best_rate(lambda: [encode(t) for p in payloads for t in on_ws(p, 1).events], n, 5)
    produced = best_rate(with_produce, n, 3)
    print(f"session on_ws {parse:,.0f}  + encode {encoded:,.0f}  + produce {produced:,.0f} msgs/s")


if __name__ == "__main__":
    main()
