"""Integration fixtures: the real local Kafka broker, started once per session; topics per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tapeline.config import KafkaSettings, Settings, SignalSettings, TopicSettings
from tools import kafka_local


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap address of the local broker, started if needed; a missing broker fails, never skips.

    A broker this session started is stopped at its end; one that was already running is left alone.
    """
    cfg = kafka_local.settings()
    started_here = not kafka_local.is_answering(cfg.host, cfg.port)
    try:
        bootstrap = kafka_local.ensure_running(timeout=90)
    except kafka_local.KafkaLocalError as exc:
        pytest.fail(f"the local Kafka broker could not be started: {exc}")
    yield bootstrap
    if started_here:
        kafka_local.stop(cfg)


@pytest.fixture
def settings(kafka_bootstrap: str) -> Settings:
    """Settings on the local broker with this test's own topic prefix and consumer group."""
    run = uuid.uuid4().hex[:12]
    return Settings(
        kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap),
        topics=TopicSettings(prefix=f"test-{run}."),
        signals=SignalSettings(group_id=f"test-{run}-signals"),
    )
