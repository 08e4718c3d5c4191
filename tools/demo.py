"""The main job on embedded defaults: local Kafka, simulator, connector, processor (+ gRPC), signals.

Prints each final 1s bar as it lands and every signal, and says how to query. Ctrl-C stops it all.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from datetime import UTC, datetime

import click
from confluent_kafka import Consumer
from rich.console import Console

from tapeline.codec.avro import AvroCodec
from tapeline.config import Settings
from tapeline.io.rpc.client import QueryClient, QueryError
from tapeline.paths import run_dir
from tapeline.signals.rules import REGISTRY, load_detectors
from tapeline.venues.binance.instruments import usdm_instrument
from tools import kafka_local
from tools.simulator import SimulatorSettings
from tools.supervisor import ServiceProcess

load_detectors()
# The default rules run at 1m and up; the demo runs for minutes, so every detector also runs at 1s.
DEMO_RULES = [{"detector": name, "intervals": ["1s", "1m"]} for name in sorted(REGISTRY)]

console = Console(highlight=False, soft_wrap=True)


@click.command()
@click.option("--symbols", default="BTCUSDT,ETHUSDT", show_default=True)
@click.option("--rate", default=300.0, show_default=True, help="Simulated trades per second.")
@click.option("--duration", default=0.0, help="Stop after this many seconds (0: run until Ctrl-C).")
def main(symbols: str, rate: float, duration: float) -> None:
    settings = Settings()
    simulator = SimulatorSettings()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    console.print("[bold]Tapeline demo[/]: starting the local Kafka broker (first run downloads it)...")
    bootstrap = kafka_local.ensure_running()
    env = {
        "TAPELINE_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
        "TAPELINE_CONNECTOR__WS_BASE_URL": f"ws://{simulator.host}:{simulator.port}",
        "TAPELINE_CONNECTOR__SYMBOLS": symbols,
        "TAPELINE_SIMULATOR__SYMBOLS": symbols,
        "TAPELINE_SIMULATOR__RATE": str(rate),
        # every detector at 1s too: 1s bars make signals visible within a minute
        "TAPELINE_SIGNALS__RULES": json.dumps(DEMO_RULES),
    }
    logs = run_dir() / "logs"
    services = [ServiceProcess(name, env, logs) for name in ("simulator", "connector", "processor", "signals")]
    target = f"{settings.query.host}:{settings.query.port}"
    console.print(f"services started; logs in {logs}/. ClickHouse: {settings.clickhouse.dsn}")
    try:
        with QueryClient(target) as client:
            client.wait_ready(60)
            _print_help(target, symbols)
            threading.Thread(target=_print_signals, args=(settings, bootstrap, stop), daemon=True).start()
            _print_bars(client, [usdm_instrument(s) for s in symbols.split(",")], services, stop, duration)
    finally:
        console.print("stopping services...")
        for service in reversed(services):
            service.stop()


def _print_help(target: str, symbols: str) -> None:
    instrument = usdm_instrument(symbols.split(",")[0])
    console.print(
        "\n[bold]Query the bars[/] (in another terminal, while this runs):\n"
        f"  .venv/bin/tapeline query bars --target {target} --venue binance-usdm --instrument {instrument}"
        " --interval 1m --since 10m\n"
        f"  .venv/bin/tapeline query series --target {target}\n"
        "Live final 1s bars follow (price, aggressive buy/sell volume in base units, delta, CVD).\n"
    )


def _print_bars(
    client: QueryClient, instruments: list[str], services: list[ServiceProcess], stop: threading.Event, duration: float
) -> None:
    shown: dict[str, int] = {}
    ends_at = time.monotonic() + duration if duration else float("inf")
    while not stop.is_set() and time.monotonic() < ends_at:
        for service in services:
            if not service.running:
                raise click.ClickException(f"{service.name} stopped unexpectedly:\n{service.log_tail()}")
        for instrument in instruments:
            since = shown.get(instrument, time.time_ns() - 10_000_000_000)
            try:
                bars = client.get_bars("binance-usdm", instrument, "1s", since + 1, time.time_ns())
            except QueryError as exc:
                console.print(f"[yellow]query failed: {exc}[/]")
                continue
            for bar in (b for b in bars if b.final):
                shown[instrument] = bar.start_ns
                color = "green" if bar.delta_base >= 0 else "red"
                stamp = datetime.fromtimestamp(bar.start_ns / 1e9, UTC).strftime("%H:%M:%S")
                console.print(
                    f"{stamp} {bar.instrument:<14} close {bar.close:>10.2f}  buy {bar.buy_base:>9.3f}  "
                    f"sell {bar.sell_base:>9.3f}  [{color}]delta {bar.delta_base:>+9.3f}[/]  "
                    f"CVD {bar.cvd_base:>+10.3f}  trades {bar.trades}"
                )
        stop.wait(1.0)


def _print_signals(settings: Settings, bootstrap: str, stop: threading.Event) -> None:
    codec = AvroCodec()
    consumer = Consumer(settings.kafka.librdkafka(**{
        "bootstrap.servers": bootstrap, "group.id": f"tapeline-demo-{time.time_ns()}", "auto.offset.reset": "latest",
    }))  # fmt: skip
    consumer.subscribe([settings.topics.signals])
    try:
        while not stop.is_set():
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            sig = codec.decode(msg.value())
            where = f"{sig['venue']} {sig['instrument']}" if sig.get("venue") else f"{sig['asset']} ({sig['market']})"
            numbers = ", ".join(f"{k} {v:.4g}" for k, v in list(sig["detail"].items())[:4])
            console.print(
                f"[bold magenta]SIGNAL[/] {sig['kind']} {sig['direction']} on {where} {sig['interval']} "
                f"(v{sig['version']} {sig['status']}, strength {sig['strength']:.3g}): {numbers}"
            )
    finally:
        consumer.close()


if __name__ == "__main__":
    main()
