"""Query service: bars from ClickHouse over gRPC. Run as `python -m services.query`; configured by TAPELINE_*."""

from __future__ import annotations

import logging
import sys

from tapeline.config import Settings
from tapeline.domain.errors import TapelineError
from tapeline.io.rpc.server import serve
from tapeline.io.store import BarStore
from tapeline.runtime import observability

log = logging.getLogger("services.query")


def main() -> int:
    settings = Settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        store = BarStore.open(settings.clickhouse)
        observability.serve(settings.metrics.port, observability.Health())  # gRPC health answers the probes
        serve(store, settings.query)
    except TapelineError as exc:  # a store or bind failure: one clear line, not a traceback
        log.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
