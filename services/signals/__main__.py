"""Signal service: final bars, asset bars and side bars -> the signal engine -> signals topic.
Run as `python -m services.signals`.

Configured by TAPELINE_* (see tapeline.config.SignalSettings: rules_file, rules); a bad rule stops the start
with the rule and field named. Stops cleanly on SIGTERM/SIGINT.
"""

from __future__ import annotations

import logging

from tapeline.config import Settings
from tapeline.io.kafka import ensure_topics
from tapeline.runtime import observability
from tapeline.runtime.signal_service import input_topics, run_forever


def main() -> None:
    settings = Settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    heartbeat = observability.Heartbeat("signal consumer loop", 60.0)  # a turn polls for 0.5 s at most
    health = observability.Health()
    health.liveness("signal consumer loop", heartbeat.check)
    observability.serve(settings.metrics.port, health)
    topics = settings.topics
    ensure_topics(settings, [*input_topics(settings), topics.signals, topics.dead_letter])
    run_forever(settings, heartbeat)


if __name__ == "__main__":
    main()
