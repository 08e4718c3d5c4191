-- Signals (tapeline.signals; Avro Signal v2; docs/signals.md): every version of every signal the signal
-- service published. {database} is replaced by the configured database name. Times are Int64 ns.
-- Idempotent by (signal_id, version): a replayed version replaces itself; `FINAL` plus
-- `LIMIT 1 BY signal_id` (newest version first) gives each signal's current state.
CREATE TABLE IF NOT EXISTS {database}.signals
(
    signal_id   String COMMENT 'deterministic: a replay gives the same id',
    version     UInt32 COMMENT '1, 2, ...: each change is published again with the next',
    status      LowCardinality(String) COMMENT 'active | revised | withdrawn',
    kind        LowCardinality(String) COMMENT 'e.g. divergence_regular, net_flow_threshold',
    direction   LowCardinality(String) COMMENT 'bullish | bearish',
    venue       LowCardinality(Nullable(String)) COMMENT 'NULL for an asset signal',
    instrument  LowCardinality(Nullable(String)),
    asset       LowCardinality(String),
    market      LowCardinality(String) COMMENT 'perp | spot | all',
    interval    LowCardinality(String),
    ts_ns       Int64 CODEC(Delta, ZSTD(1)) COMMENT 'when confirmed: the end of the confirming bar',
    pivot_ts_ns Nullable(Int64) COMMENT 'the swing it refers to, where one applies',
    strength    Float64 COMMENT 'detector-defined (docs/signals.md)',
    detail      Map(LowCardinality(String), Float64) COMMENT 'the numbers that triggered it (times as *_ts_ms)',
    detector    LowCardinality(String) COMMENT 'the rule that found it',
    ts          DateTime64(9, 'UTC') ALIAS fromUnixTimestamp64Nano(ts_ns)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(fromUnixTimestamp64Nano(ts_ns))
ORDER BY (asset, kind, signal_id, version)
COMMENT 'Signal versions (the signals topic, stored)';
