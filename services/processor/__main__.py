"""Processor service: Faust worker turning trades, books and liquidations into bars in ClickHouse, and venue
bars into asset bars (`processor.stages`).

With the embedded ClickHouse (chdb) only one process may open the data directory, so this process
also serves the gRPC query API (see ARCHITECTURE.md); against a server the query service runs alone.
"""

from __future__ import annotations

import logging

import faust

from tapeline.config import Settings
from tapeline.io.rpc.server import build_server
from tapeline.runtime import observability
from tapeline.runtime.processor import build_app, prepare


def main() -> None:
    settings = Settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stages = prepare(settings)
    health = observability.Health()
    health.liveness("processor timer", stages.heartbeat.check)
    observability.serve(settings.metrics.port, health)
    serve_queries = settings.processor.serve_queries
    if serve_queries if serve_queries is not None else settings.clickhouse.embedded:
        server, port = build_server(stages.store, settings.query)
        server.start()
        logging.getLogger("processor").info("serving gRPC queries on %s:%d", settings.query.host, port)
    app = build_app(settings, stages)
    faust.Worker(app, loglevel=settings.log_level.lower(), override_logging=False).execute_from_commandline()


if __name__ == "__main__":
    main()
