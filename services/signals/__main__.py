"""Signal service: final bars -> price/CVD divergences -> signals topic. Run as `python -m services.signals`.

Configured by TAPELINE_* (see tapeline.config.SignalSettings); stops cleanly on SIGTERM/SIGINT.
"""

from __future__ import annotations

import logging

from tapeline.config import Settings
from tapeline.io import metrics
from tapeline.io.kafka import ensure_topics
from tapeline.runtime.signal_service import run_forever


def main() -> None:
    settings = Settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    metrics.serve(settings.metrics.port)
    topics = settings.topics
    ensure_topics(settings, [topics.bars, topics.signals, topics.dead_letter])
    run_forever(settings)


if __name__ == "__main__":
    main()
