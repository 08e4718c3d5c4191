"""Benchmarks (not tests): per-core parse/encode/produce rates and end-to-end simulator -> ClickHouse.

Run with `make bench`. Needs ../shared/data for the capture-based numbers and starts the local broker.
Writes the results to docs/benchmarks.md and prints them.
"""

from __future__ import annotations

import json
import math
import platform
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import click
from prometheus_client.parser import text_string_to_metric_families

from tapeline.codec.avro import AvroCodec
from tapeline.config import KafkaSettings, Settings, TopicSettings
from tapeline.domain.events import TradeBatch
from tapeline.io.capture import read_capture
from tapeline.io.kafka import EventPublisher, ensure_topics, make_producer, produce
from tapeline.io.rpc.client import QueryClient, QueryError
from tapeline.signals.rules import REGISTRY, load_detectors
from tapeline.venues.binance.session import BinanceUsdmSession
from tools import REPO_ROOT, kafka_local
from tools.supervisor import ServiceProcess

DATA = REPO_ROOT.parent / "shared" / "data"
CAPTURE = DATA / "binance_usdm" / "trade" / "hftbacktest_2024-08-08__btcusdt_20240808.gz.trade.jsonl.gz"


def best_rate(fn, n: int, repeats: int = 5) -> float:
    """Items per second of the fastest of `repeats` runs (the least disturbed by the other core's load)."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return n / best


def trade_parser() -> Callable[[bytes, int], list]:
    """The connector's path for a trade message: the USD-M session's `on_ws`, payload -> [Trade]."""
    on_ws = BinanceUsdmSession(["BTCUSDT"], ["trade"]).on_ws
    return lambda payload, recv_ts_ns: on_ws(payload, recv_ts_ns).events


def bench_parse(payloads: list[bytes]) -> float:
    parse = trade_parser()
    return best_rate(lambda: [parse(p, 1) for p in payloads], len(payloads))


def bench_encode(payloads: list[bytes]) -> float:
    parse, encode = trade_parser(), AvroCodec().encode_event
    return best_rate(lambda: [encode(t) for p in payloads for t in parse(p, 1)], len(payloads))


def bench_produce(payloads: list[bytes], settings: Settings) -> float:
    """Parse + normalize + Avro + produce (acks=all, idempotent), including the final flush."""
    parse, encode = trade_parser(), AvroCodec().encode_event
    producer = make_producer(settings)
    topic = settings.topics.trades
    ensure_topics(settings, [topic])

    def run() -> None:
        for payload in payloads:
            for trade in parse(payload, 1):
                produce(producer, topic, encode(trade), b"binance-usdm|BTC-USDT-PERP")
        producer.flush()

    return best_rate(run, len(payloads), repeats=3)


def bench_processor(settings: Settings, trades: int, workdir: Path) -> tuple[float, float]:
    """Processor alone: (trades/s, seconds) consuming a backlog, from the first bar visible until all trades are.

    The trades are published first, as the connector would (per-instrument batches of 500); the processor then
    starts on the backlog. Timing starts when the first batch is visible and counts only the trades after
    it, so neither the group join nor the publisher's speed enters the rate. One processor batch takes up
    to 20,000 messages (10M trades) or what arrives in 0.1 s, a few hundred thousand trades from a backlog:
    the backlog must be millions of trades for the first batch to be a small part of it.
    """
    payloads = _capture_payloads()
    parse = trade_parser()
    parsed = [t for p in payloads for t in parse(p, 1)]
    step = parsed[-1].ts_ns - parsed[0].ts_ns + 1_000_000
    ensure_topics(settings, [settings.topics.trades])
    producer = make_producer(settings)
    publisher = EventPublisher(producer, settings.topics)
    for i in range(trades):  # generated as published: millions of trades would not fit in memory at once
        base = parsed[i % len(parsed)]
        shifted = base.__copy__()
        shifted.ts_ns += step * (i // len(parsed))  # later copies move forward in time, as a live feed would
        shifted.trade_id = f"{base.trade_id}-{i // len(parsed)}"
        publisher.publish([shifted])
        producer.poll(0)
    publisher.flush_all()
    producer.flush()
    return _time_to_bars(settings, trades, workdir, extra_env={})


def bench_end_to_end(settings: Settings, trades: int, rate: float, workdir: Path) -> tuple[float, float]:
    """Simulator -> connector -> Kafka -> processor -> ClickHouse; (trades/s, seconds)."""
    port = 19443
    sim = ServiceProcess(
        "simulator", {}, workdir, "--port", str(port), "--rate", str(rate), "--max-trades", str(trades), "--seed", "1"
    )
    env = {"TAPELINE_CONNECTOR__WS_BASE_URL": f"ws://127.0.0.1:{port}"}
    try:
        return _time_to_bars(settings, trades, workdir, extra_env=env, with_connector=True)
    finally:
        sim.stop()


def bench_connector_rss(instruments: int, rate: float, seconds: float, workdir: Path) -> float:
    """Peak resident memory (MB) of a connector process subscribed to `instruments` symbols under load."""
    symbols = ",".join(f"SYM{i:02d}USDT" for i in range(instruments))
    port = 19444
    sim = ServiceProcess("simulator", {}, workdir, "--port", str(port), "--rate", str(rate), "--symbols", symbols)
    env = {
        "TAPELINE_TOPICS__PREFIX": f"bench-rss-{uuid.uuid4().hex[:6]}.",
        "TAPELINE_CONNECTOR__WS_BASE_URL": f"ws://127.0.0.1:{port}",
        "TAPELINE_CONNECTOR__SYMBOLS": symbols,
        "TAPELINE_CONNECTOR__CHANNELS": "aggTrade",
        "TAPELINE_LOG_LEVEL": "WARNING",
    }
    conn = ServiceProcess("connector", env, workdir)
    peak = 0.0
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if not conn.running:
                sys.exit(f"connector died:\n{conn.log_tail()}")
            status = Path(f"/proc/{conn.proc.pid}/status").read_text()
            peak = max(peak, int(status.split("VmHWM:")[1].split()[0]) / 1024)
            time.sleep(1)
    finally:
        conn.stop()
        sim.stop()
    return peak


def bench_live(settings: Settings, rate: float, seconds: float, workdir: Path) -> dict[str, float]:
    """Live feed at `rate` trades/s (trade time = now) into one processor worker: lag of final 1s bars
    after their window closes, processor RSS over the run, and whether it kept up."""
    query_port, metrics_port, signals_metrics_port = 19552, 19553, 19554
    env = {
        "TAPELINE_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "TAPELINE_TOPICS__PREFIX": settings.topics.prefix,
        "TAPELINE_CLICKHOUSE__DSN": f"chdb://{workdir / ('chdb-' + uuid.uuid4().hex[:8])}",
        "TAPELINE_PROCESSOR__APP_ID": f"{settings.topics.prefix}live",
        "TAPELINE_QUERY__PORT": str(query_port),
        "TAPELINE_METRICS__PORT": str(metrics_port),
        "TAPELINE_LOG_LEVEL": "WARNING",
    }
    ensure_topics(settings, [settings.topics.trades])
    proc = ServiceProcess("processor", env, workdir)
    load_detectors()
    # every detector on, at 1s and 1m (the 1s series confirm a bar every second)
    rules = [{"detector": name, "intervals": ["1s", "1m"]} for name in sorted(REGISTRY)]
    signals_env = {**env, "TAPELINE_METRICS__PORT": str(signals_metrics_port),
                   "TAPELINE_SIGNALS__RULES": json.dumps(rules),
                   "TAPELINE_SIGNALS__GROUP_ID": f"{settings.topics.prefix}signals"}  # fmt: skip
    signals = ServiceProcess("signals", signals_env, workdir)
    stop = threading.Event()
    sent = [0]

    def feed() -> None:
        """Trades stamped with the wall clock, sent as the connector sends them (per-instrument TradeBatch
        messages of at most 500, at least every 20 ms), built column by column so that the load generator
        takes little of the CPU the processor is measured on."""
        producer = make_producer(settings)
        codec = AvroCodec()
        # two venues of one asset: the asset stage combines them into BTC asset bars
        symbols = [("binance-usdm", "BTCUSDT", "BTC-USDT-PERP", 60000.0), ("bybit-linear", "BTCUSDT", "BTC-USDT-PERP",
                                                                           60010.0)]  # fmt: skip
        started, n = time.monotonic(), 0
        while not stop.is_set():
            due = int((time.monotonic() - started) * rate)
            now = time.time_ns()
            for k, (venue, symbol, instrument, price) in enumerate(symbols):
                ids = range(n + (k - n) % 2, due, 2)  # trade n goes to symbols[n % 2]
                for chunk in (ids[i : i + 500] for i in range(0, len(ids), 500)):
                    # price and buy share swing over tens of seconds, so swings, divergences and flow
                    # alerts happen as in a market (a flat price would leave most detectors idle)
                    t = now / 1e9
                    px = round(price * (1 + 0.001 * math.sin(t / 37) + 0.0004 * math.sin(t / 7.3)), 1)
                    buy_share = 50 + 25 * math.sin(t / 23)
                    count = len(chunk)
                    sides = ["buy" if (i * 7919) % 100 < buy_share else "sell" for i in chunk]
                    batch = TradeBatch(venue, instrument, symbol, [now] * count, [now] * count,
                                       [px] * count, [0.01] * count, [px * 0.01] * count, sides,
                                       [str(i) for i in chunk])  # fmt: skip
                    key = f"{venue}|{instrument}".encode()
                    produce(producer, settings.topics.trades, codec.encode_event(batch), key)
            n = max(n, due)
            producer.poll(0)
            time.sleep(0.02)
        producer.flush()
        sent[0] = n

    lags: list[float] = []
    rss: list[float] = []
    query_s: list[float] = []
    try:
        with QueryClient(f"127.0.0.1:{query_port}") as client:
            client.wait_ready(120)
            time.sleep(8)  # group join
            feeder = threading.Thread(target=feed, daemon=True)
            feeder.start()
            seen_final: set[int] = set()
            t_end = time.monotonic() + seconds
            last_rss = 0.0
            while time.monotonic() < t_end:
                if not proc.running:
                    sys.exit(f"processor died:\n{proc.log_tail()}")
                # A bar this query returns was visible when it started (the query may wait behind the
                # processor's own work, in-process in embedded mode): its start bounds the visibility time.
                now = time.time_ns()
                try:
                    bars = client.get_bars("binance-usdm", "BTC-USDT-PERP", "1s", now - 30 * 10**9, 2**62)
                except QueryError:
                    bars = []
                query_s.append((time.time_ns() - now) / 1e9)
                for bar in bars:
                    if bar.final and bar.start_ns not in seen_final:
                        seen_final.add(bar.start_ns)
                        lags.append((now - (bar.start_ns + 10**9)) / 1e9)
                if time.monotonic() - last_rss >= 1:
                    status = Path(f"/proc/{proc.proc.pid}/status").read_text()
                    rss.append(int(status.split("VmRSS:")[1].split()[0]) / 1024)
                    last_rss = time.monotonic()
                time.sleep(0.1)
            stop.set()
            feeder.join(30)
            time.sleep(5)
            done = sum(b.trades for venue in ("binance-usdm", "bybit-linear")
                       for b in client.get_bars(venue, "BTC-USDT-PERP", "1m", 0, 2**62))  # fmt: skip
            metrics = f"http://127.0.0.1:{metrics_port}/metrics"
            batches = _histogram_means(metrics)
            asset_lag = _histogram_quantiles(metrics, "tapeline_asset_final_lag_seconds", {"table": "asset_bars"})
            if not signals.running:
                sys.exit(f"signal service died:\n{signals.log_tail()}")
            signal_metrics = f"http://127.0.0.1:{signals_metrics_port}/metrics"
            signal_lag = _histogram_quantiles(signal_metrics, "tapeline_signal_lag_seconds", {})
            signal_count = _counter_total(signal_metrics, "tapeline_signals")
    finally:
        stop.set()
        proc.stop()
        signals.stop()
    lags.sort()
    warm = lags[len(lags) // 10 :] or lags  # the first bars include the feed's start-up
    quarter = max(1, len(rss) // 4)
    quarters = [max(rss[i * quarter : (i + 1) * quarter] or rss[-1:]) for i in range(4)]
    return {
        "sent": sent[0],
        "in_bars": done,
        "lag_p50_s": warm[len(warm) // 2],
        "lag_p99_s": warm[min(len(warm) - 1, int(len(warm) * 0.99))],
        "lag_max_s": warm[-1],
        "rss_quarters_mb": quarters,
        "query_p50_s": sorted(query_s)[len(query_s) // 2],
        "batches": batches,
        "asset_lag": asset_lag,
        "signal_lag": signal_lag,
        "signals": signal_count,
    }


def _counter_total(url: str, name: str) -> float:
    """Sum of a counter's samples over its labels."""
    families = text_string_to_metric_families(urllib.request.urlopen(url, timeout=10).read().decode())
    return sum(s.value for f in families if f.name == name for s in f.samples if s.name == f"{name}_total")


def _histogram_quantiles(url: str, name: str, labels: dict[str, str]) -> dict[str, float]:
    """Count, and p50/p99 upper bounds (the bucket edge the quantile falls under) of one labelled histogram."""
    families = text_string_to_metric_families(urllib.request.urlopen(url, timeout=10).read().decode())
    buckets = []
    for family in families:
        if family.name == name and family.type == "histogram":
            for sample in family.samples:
                if sample.name.endswith("_bucket") and labels.items() <= sample.labels.items():
                    buckets.append((float(sample.labels["le"]), sample.value))
    buckets.sort()
    total = buckets[-1][1] if buckets else 0.0

    def under(q: float) -> float:
        return next((edge for edge, count in buckets if count >= q * total), float("inf"))

    return {"count": total, "p50_le": under(0.5), "p99_le": under(0.99)}


def _histogram_means(url: str) -> dict[str, float]:
    """Mean of each tapeline_processor_* histogram a service exposes, and its count as `<name>_count`."""
    families = text_string_to_metric_families(urllib.request.urlopen(url, timeout=10).read().decode())
    sums: dict[str, float] = {}
    for family in families:
        if family.type == "histogram" and family.name.startswith("tapeline_processor_"):
            for sample in family.samples:
                if sample.name.endswith(("_sum", "_count")):
                    sums[sample.name] = sample.value
    out = {}
    for name, value in sums.items():
        if name.endswith("_count"):
            base = name.removesuffix("_count")
            out[base.removeprefix("tapeline_processor_")] = sums[base + "_sum"] / value if value else 0.0
            out[base.removeprefix("tapeline_processor_") + "_count"] = value
    return out


def venue_benchmarks() -> str:
    """The per-venue scripts' own reports (parse and book maintenance on the real captures)."""
    out = []
    for script in sorted((REPO_ROOT / "tools").glob("bench_venue_*.py")):
        done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=REPO_ROOT)
        out.append(f"### {script.name}\n\n```\n{done.stdout.strip() or done.stderr.strip()}\n```\n")
    return "\n".join(out)


def _time_to_bars(
    settings: Settings,
    trades: int,
    workdir: Path,
    extra_env: dict[str, str],
    with_connector: bool = False,
) -> tuple[float, float]:
    query_port = 19551
    env = {
        "TAPELINE_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "TAPELINE_TOPICS__PREFIX": settings.topics.prefix,
        "TAPELINE_CLICKHOUSE__DSN": f"chdb://{workdir / ('chdb-' + uuid.uuid4().hex[:8])}",
        "TAPELINE_PROCESSOR__APP_ID": f"{settings.topics.prefix}bench",
        "TAPELINE_QUERY__PORT": str(query_port),
        "TAPELINE_LOG_LEVEL": "WARNING",
        **extra_env,
    }
    started = time.monotonic()
    procs = [ServiceProcess("processor", env, workdir)]
    if with_connector:
        procs.append(ServiceProcess("connector", env, workdir))
    try:
        with QueryClient(f"127.0.0.1:{query_port}") as client:
            client.wait_ready(120)
            first_seen, first_done = None, 0
            while True:
                for proc in procs:
                    if not proc.running:
                        sys.exit(f"{proc.name} died:\n{proc.log_tail()}")
                try:
                    bars = client.get_bars("binance-usdm", "BTC-USDT-PERP", "1m", 0, 2**62)
                    if with_connector:
                        bars += client.get_bars("binance-usdm", "ETH-USDT-PERP", "1m", 0, 2**62)
                except QueryError:
                    bars = []
                done = sum(b.trades for b in bars)
                if done and first_seen is None:
                    first_seen, first_done = time.monotonic(), done
                if done >= trades:
                    elapsed = time.monotonic() - (first_seen or started)
                    return (trades - first_done) / elapsed, elapsed
                if time.monotonic() - started > 900:
                    sys.exit(f"only {done} of {trades} trades reached ClickHouse in 900 s")
                time.sleep(0.1)
    finally:
        for proc in procs:
            proc.stop()


def _capture_payloads() -> list[bytes]:
    if not CAPTURE.exists():
        sys.exit(f"benchmark capture not found: {CAPTURE}")
    return [line.raw.encode() for line in read_capture(CAPTURE)]


@click.command()
@click.option("--trades", default=300_000, show_default=True, help="Trades for the end-to-end run.")
@click.option("--backlog", default=3_000_000, show_default=True, help="Trades waiting in Kafka for the processor run.")
@click.option(
    "--rate", default=8_000.0, show_default=True, help="Simulator rate for the end-to-end run (sustainable here)."
)
@click.option("--out", default=str(REPO_ROOT / "docs" / "benchmarks.md"), show_default=True)
@click.option("--only", type=click.Choice(["processor", "live"]), help="Run just this benchmark and print it.")
@click.option("--live-rate", default=50_000.0, show_default=True, help="Trades/s of the live-feed run.")
@click.option("--live-seconds", default=600.0, show_default=True, help="Length of the live-feed run.")
def main(
    trades: int, backlog: int, rate: float, out: str, only: str | None, live_rate: float, live_seconds: float
) -> None:
    payloads = _capture_payloads()
    bootstrap = kafka_local.ensure_running()
    results: list[tuple[str, str]] = []

    def record(name: str, value: str) -> None:
        click.echo(f"{name}: {value}")
        results.append((name, value))

    def record_live(workdir: Path) -> None:
        live = bench_live(_fresh_settings(bootstrap), live_rate, live_seconds, workdir)
        record(f"live feed {live_rate / 1000:,.0f}k trades/s for {live_seconds:,.0f} s into one processor "
               "(feeder on the same box): trades in bars / sent",
               f"{live['in_bars']:,} / {live['sent']:,}")  # fmt: skip
        record("  lag of final 1s bars after window end (lateness 500 ms included): p50 / p99 / max",
               f"{live['lag_p50_s']:.2f} s / {live['lag_p99_s']:.2f} s / {live['lag_max_s']:.2f} s "
               f"(GetBars answered in {live['query_p50_s']:.2f} s, median)")  # fmt: skip
        record("  processor RSS (max) in the 1st / 2nd / 3rd / 4th quarter of the run",
               " / ".join(f"{mb:.0f}" for mb in live["rss_quarters_mb"]) + " MB")  # fmt: skip
        a = live["asset_lag"]
        record("  asset bars (BTC from both venues): final rows written after the venue bar or watermark that "
               "completed them was published: count / p50 / p99 (histogram bucket upper bounds)",
               f"{a['count']:,.0f} / <= {a['p50_le']} s / <= {a['p99_le']} s")  # fmt: skip
        g = live["signal_lag"]
        record("  signal service, every detector at 1s and 1m: signal versions published / from the confirming "
               "bar's publication to the signals' commit: p50 / p99 (histogram bucket upper bounds)",
               f"{live['signals']:,.0f} / <= {g['p50_le']} s / <= {g['p99_le']} s")  # fmt: skip
        b = live["batches"]
        record("  processor batches: count / mean trades / mean aggregate s / mean write s / mean wait for the "
               "previous write s",
               f"{b['batch_trades_count']:,.0f} / {b['batch_trades']:,.0f} / {b['batch_seconds']:.3f} / "
               f"{b['write_seconds']:.3f} / {b['write_wait_seconds']:.3f}")  # fmt: skip

    if only == "processor":
        with tempfile.TemporaryDirectory(prefix="tapeline-bench-") as tmp:
            proc_rate, proc_s = bench_processor(_fresh_settings(bootstrap), backlog, Path(tmp))
        click.echo(f"processor alone: {backlog:,} trades: {proc_rate:,.0f} trades/s ({proc_s:.1f} s)")
        return
    if only == "live":
        with tempfile.TemporaryDirectory(prefix="tapeline-bench-") as tmp:
            record_live(Path(tmp))
        return

    record("parse + normalize, Binance USD-M trades (1 core)", f"{bench_parse(payloads):,.0f} msgs/s")
    record("parse + normalize + Avro encode (1 core)", f"{bench_encode(payloads):,.0f} msgs/s")
    with tempfile.TemporaryDirectory(prefix="tapeline-bench-") as tmp:
        workdir = Path(tmp)

        def fresh() -> Settings:
            return _fresh_settings(bootstrap)

        produced = bench_produce(payloads, fresh())
        record("parse + normalize + Avro + produce, acks=all (1 core + broker)", f"{produced:,.0f} msgs/s")
        proc_rate, proc_s = bench_processor(fresh(), backlog, workdir)
        record("processor alone, default metrics and stages (bars at 6 intervals with CMF/MFI, 1m/5m footprints, "
               f"raw trades; asset stage on): {backlog:,} trades waiting in Kafka -> ClickHouse",
               f"{proc_rate:,.0f} trades/s ({proc_s:.1f} s)")  # fmt: skip
        e2e_rate, e2e_s = bench_end_to_end(fresh(), trades, rate, workdir)
        record(f"end to end: simulator at {rate:,.0f}/s -> ClickHouse, {trades:,} trades",
               f"{e2e_rate:,.0f} trades/s ({e2e_s:.1f} s)")  # fmt: skip
        record_live(workdir)
        rss = bench_connector_rss(50, 2000.0, 30.0, workdir)
        record("connector peak RSS, 50 instruments subscribed, 2,000 msgs/s for 30 s", f"{rss:.0f} MB")
    _write(Path(out), results, venue_benchmarks())


def _fresh_settings(bootstrap: str) -> Settings:
    """Settings with topics of their own, so one run does not read another's."""
    return Settings(
        kafka=KafkaSettings(bootstrap_servers=bootstrap), topics=TopicSettings(prefix=f"bench-{uuid.uuid4().hex[:8]}.")
    )


def _write(path: Path, results: list[tuple[str, str]], venues: str) -> None:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    rows = "\n".join(f"| {name} | {value} |" for name, value in results)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "# Benchmarks\n\n"
        "Generated by `make bench` (tools/bench.py). Machine: "
        f"{platform.machine()}, 2 cores; broker, ClickHouse (embedded) and all services on the same box.\n"
        f"Last run: {stamp}.\n\n| what | result |\n|---|---|\n{rows}\n\n"
        "Per-core rates are the best of several runs over the 21,313 real trades of "
        "`binance_usdm/trade/hftbacktest_2024-08-08...` in ../shared/data. The processor-alone run consumes "
        "trades already in Kafka; it and the end-to-end run count the trades after the first visible batch, from "
        "then until all trades are in bars (seen through gRPC). The live run's feeder stamps trades with the wall "
        "clock and publishes them as the connector does (per-instrument batches of at most 500, every 20 ms).\n\n"
        "## Venue parsers and books (one core, best of several runs, real captures)\n\n"
        "Peers measured on the same captures, one core each: tardis-dev maps Binance USD-M trades at ~600k/s and "
        "keeps the Binance depth book at ~15k msgs/s; cryptofeed normalizes the trades at ~300k/s, keeps that book "
        "at ~9k msgs/s and OKX books-l2-tbt with checksums at ~33k msgs/s.\n\n" + venues
    )
    click.echo(f"wrote {path}")


if __name__ == "__main__":
    main()
