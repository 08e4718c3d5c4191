"""The processor's Kafka consumer answers within the configured fetch wait, not Faust's fixed 1.5 s."""

from __future__ import annotations

import asyncio

import faust

from tapeline.runtime.processor import bound_fetch_wait


def _consumer_fetch_wait_ms() -> int:
    async def build() -> int:
        app = faust.App("tapeline-test-fetch-wait", broker="kafka://127.0.0.1:1", web_enabled=False)
        consumer = app.consumer._thread._create_worker_consumer(app.transport)  # as the worker's thread does
        try:
            return consumer._fetch_max_wait_ms
        finally:
            await consumer.stop()

    return asyncio.run(build())


def test_fetch_wait_is_bounded_and_setting_it_again_replaces_it() -> None:
    bound_fetch_wait(100)
    assert _consumer_fetch_wait_ms() == 100
    bound_fetch_wait(250)  # not wrapped twice: the newest value wins
    assert _consumer_fetch_wait_ms() == 250
