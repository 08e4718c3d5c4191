"""Local Binance USD-M exchange: `python -m services.simulator [--rate 5000 --replay capture.jsonl ...]`.

Defaults come from TAPELINE_SIMULATOR__* (tapeline.config.SimulatorSettings); options override them.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

import click

from tapeline.config import Settings
from tapeline.simulator import Simulator
from tapeline.venues.binance_usdm import stream_urls

log = logging.getLogger("tapeline.simulator")


@click.command()
@click.option("--host")
@click.option("--port", type=int)
@click.option("--rate", type=float, help="Generated trades per second over all symbols.")
@click.option("--symbols", help="Comma-separated, e.g. BTCUSDT,ETHUSDT.")
@click.option("--channels", default="aggTrade", show_default=True, help="aggTrade and/or trade.")
@click.option("--seed", type=int)
@click.option("--max-trades", type=int, help="Go quiet after this many generated trades.")
@click.option("--replay", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--speed", type=float, help="Replay at recorded pace times this; default: as fast as read.")
@click.option("--ledger", type=click.Path(dir_okay=False, path_type=Path), help="JSON lines of sent trades.")
@click.option("--disconnect-after", type=float, help="Close every connection after this many seconds.")
def main(
    host: str | None, port: int | None, rate: float | None, symbols: str | None, channels: str, seed: int | None,
    max_trades: int | None, replay: tuple[Path, ...], speed: float | None, ledger: Path | None,
    disconnect_after: float | None,
) -> None:  # fmt: skip
    settings = Settings()
    cfg = settings.simulator
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    symbol_list = symbols.split(",") if symbols else cfg.symbols
    sim = Simulator(
        symbol_list, rate or cfg.rate, seed if seed is not None else cfg.seed, max_trades, channels.split(","),
        replay or cfg.replay, speed, disconnect_after, ledger,
    )  # fmt: skip
    asyncio.run(_serve(sim, host or cfg.host, port if port is not None else cfg.port, symbol_list, channels))


async def _serve(sim: Simulator, host: str, port: int, symbols: list[str], channels: str) -> None:
    port = await sim.start(host, port)
    base = f"ws://{host}:{port}"
    log.info("simulated Binance USD-M on %s (set TAPELINE_CONNECTOR__WS_BASE_URL=%s)", base, base)
    for url in stream_urls(base, symbols, channels.split(",")):
        log.info("  %s", url)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("stopping after %d trade messages", sim.sent_trades)
    await sim.stop()


if __name__ == "__main__":
    main()
