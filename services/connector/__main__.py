"""Connector service: one venue's websockets -> normalized Avro events on Kafka."""

from __future__ import annotations

import asyncio
import logging
import signal

from tapeline import metrics
from tapeline.config import Settings
from tapeline.connector import Connector
from tapeline.venues import venue_module


async def main() -> None:
    settings = Settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    metrics.serve(settings.metrics.port)
    connector = Connector(settings, venue_module(settings.connector.venue))
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    logging.getLogger("connector").info("streams: %s", connector.urls())
    await connector.run(stop)


if __name__ == "__main__":
    asyncio.run(main())
