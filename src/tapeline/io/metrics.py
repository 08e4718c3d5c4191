"""Prometheus metrics, defined once. Services serve them (with health checks) through runtime/observability.py."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

MESSAGES_IN = Counter("tapeline_ws_messages_total", "Websocket messages received", ["venue"])
MESSAGES_IGNORED = Counter(
    "tapeline_ws_messages_ignored_total", "Messages that gave no event, by the reason the session gave (control "
    "frames, deltas buffered until a snapshot, ...)", ["venue", "reason"],
)  # fmt: skip
EVENTS_OUT = Counter("tapeline_events_published_total", "Normalized events published", ["venue", "type"])
DEAD_LETTERS = Counter("tapeline_dead_letters_total", "Messages routed to the dead-letter topic", ["source", "kind"])
RECONNECTS = Counter("tapeline_ws_reconnects_total", "Websocket reconnects", ["venue"])
CONNECTOR_FAILURES = Counter(
    "tapeline_connector_unexpected_failures_total", "Failures nothing anticipated (each logged with its traceback; "
    "the message is dead-lettered and the connection rebuilt)", ["venue", "stage"],
)  # fmt: skip
TRADES_AGGREGATED = Counter("tapeline_trades_aggregated_total", "Trades applied to bars")
LATE_TRADES = Counter(
    "tapeline_late_trades_total",
    "Trades that arrived after their bar was final: corrected (bar "
    "emitted again) or dead_lettered (past the correction horizon)",
    ["interval", "outcome"],
)
BAR_ROWS_WRITTEN = Counter("tapeline_bar_rows_written_total", "Bar rows written to ClickHouse", ["final"])
BATCH_SECONDS = Histogram("tapeline_processor_batch_seconds", "Processor batch: decode and aggregate (CPU)")
BATCH_TRADES = Histogram(
    "tapeline_processor_batch_trades", "Trades per processor batch", buckets=(10, 100, 1e3, 5e3, 2e4, 1e5, 5e5)
)
WRITE_SECONDS = Histogram(
    "tapeline_processor_write_seconds", "Processor batch write: trades, bars and footprints to ClickHouse, final bars "
    "to Kafka (overlaps the next batch)"
)  # fmt: skip
EVENT_LAG_SECONDS = Histogram(
    "tapeline_processor_event_lag_seconds", "Wall clock minus the newest trade time of a batch, when the batch is "
    "consumed and when its results are written (visible)", ["stage"],
    buckets=(0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0),
)  # fmt: skip
FINAL_BAR_LAG_SECONDS = Histogram(
    "tapeline_processor_final_bar_lag_seconds", "Wall clock when a final bar is written minus its window end "
    "(includes the allowed lateness)", ["interval"],
    buckets=(0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 5.0, 10.0, 30.0, 60.0),
)  # fmt: skip
WRITE_WAIT_SECONDS = Histogram(
    "tapeline_processor_write_wait_seconds", "Time a batch's write waited for the previous batch's write"
)
SIGNALS_OUT = Counter("tapeline_signals_total", "Signal versions published", ["kind", "direction"])
SIGNAL_INPUTS = Counter("tapeline_signal_inputs_total", "Rows the signal engine read", ["type"])
SIGNAL_LAG_SECONDS = Histogram(
    "tapeline_signal_lag_seconds",
    "From the publication of the newest input row that confirmed signals in a batch to their commit",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0),
)
RPC_REQUESTS = Counter("tapeline_rpc_requests_total", "gRPC requests", ["method", "code"])
ASSET_INPUTS = Counter("tapeline_asset_inputs_total", "By-asset topic records applied by the asset stage", ["type"])
ASSET_LATE_ROWS = Counter(
    "tapeline_asset_late_rows_total", "Venue rows for asset windows already past the horizon (dead-lettered)", ["table"]
)
ASSET_ROWS_WRITTEN = Counter(
    "tapeline_asset_rows_written_total", "Asset stage rows written to ClickHouse", ["table", "final"]
)
ASSET_FINAL_LAG_SECONDS = Histogram(
    "tapeline_asset_final_lag_seconds", "Wall clock when an asset window's final row is written minus the time the "
    "by-asset record that completed it was published (the venue bar's or watermark's write)", ["table"],
    buckets=(0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0),
)  # fmt: skip
ASSET_WRITE_SECONDS = Histogram(
    "tapeline_asset_write_seconds", "Asset stage batch write: asset rows to ClickHouse, final ones to Kafka"
)
ASSET_WRITE_WAIT_SECONDS = Histogram(
    "tapeline_asset_write_wait_seconds", "Time an asset stage write waited for the previous one"
)
LATE_EVENTS = Counter(
    "tapeline_late_events_total", "Book, liquidation and ticker events too late for a final bar past the correction "
    "horizon (dead-lettered)", ["stream"],
)  # fmt: skip
