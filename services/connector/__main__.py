"""Connector service: one venue's websockets and REST -> normalized Avro events on Kafka."""

from __future__ import annotations

import asyncio
import logging
import signal

from tapeline.config import Settings
from tapeline.runtime import connector, observability


async def main() -> None:
    settings = Settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    live, publisher = connector.build(settings)
    health = observability.Health()
    live.register_health(health)
    observability.serve(settings.metrics.port, health)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await asyncio.gather(live.run(stop), connector.serve_producer(publisher, stop))


if __name__ == "__main__":
    asyncio.run(main())
