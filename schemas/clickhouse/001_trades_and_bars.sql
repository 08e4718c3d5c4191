-- Normalized trades and flow bars. {database} is replaced by the configured database name.
-- Times are Int64 nanoseconds (the contract's *_ns fields); ALIAS columns give DateTime64 views.

CREATE TABLE IF NOT EXISTS {database}.trades
(
    venue          LowCardinality(String),
    instrument     LowCardinality(String),
    symbol         LowCardinality(String),
    ts_ns          Int64 CODEC(Delta, ZSTD(1)),
    recv_ts_ns     Int64 CODEC(Delta, ZSTD(1)),
    price          Float64 CODEC(Gorilla, ZSTD(1)),
    qty_base       Float64 CODEC(ZSTD(1)),
    notional_quote Float64 CODEC(ZSTD(1)),
    side           Enum8('buy' = 1, 'sell' = 2),
    trade_id       String CODEC(ZSTD(1)),
    ts             DateTime64(9, 'UTC') ALIAS fromUnixTimestamp64Nano(ts_ns)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMMDD(fromUnixTimestamp64Nano(ts_ns))
-- trade_id in the key: a replayed trade replaces itself instead of counting twice
ORDER BY (venue, instrument, ts_ns, trade_id);

CREATE TABLE IF NOT EXISTS {database}.bars
(
    venue       LowCardinality(String),
    instrument  LowCardinality(String),
    interval    LowCardinality(String),
    start_ns    Int64 CODEC(Delta, ZSTD(1)),
    open        Float64 CODEC(Gorilla, ZSTD(1)),
    high        Float64 CODEC(Gorilla, ZSTD(1)),
    low         Float64 CODEC(Gorilla, ZSTD(1)),
    close       Float64 CODEC(Gorilla, ZSTD(1)),
    vwap        Float64 CODEC(Gorilla, ZSTD(1)),
    buy_base    Float64 CODEC(ZSTD(1)),
    sell_base   Float64 CODEC(ZSTD(1)),
    buy_quote   Float64 CODEC(ZSTD(1)),
    sell_quote  Float64 CODEC(ZSTD(1)),
    delta_base  Float64 CODEC(ZSTD(1)),
    delta_quote Float64 CODEC(ZSTD(1)),
    trades      UInt64 CODEC(T64, ZSTD(1)),
    buy_trades  UInt64 CODEC(T64, ZSTD(1)),
    sell_trades UInt64 CODEC(T64, ZSTD(1)),
    cvd_base    Float64 CODEC(ZSTD(1)),
    first_ts_ns Int64 CODEC(Delta, ZSTD(1)),
    last_ts_ns  Int64 CODEC(Delta, ZSTD(1)),
    final       Bool,
    version     UInt64,
    start       DateTime64(9, 'UTC') ALIAS fromUnixTimestamp64Nano(start_ns)
)
-- One row per bar after merges: the highest version (ties: the last inserted) wins, so a replay
-- that rewrites the same rows leaves the same numbers. Read with FINAL (see docs/clickhouse.md).
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(fromUnixTimestamp64Nano(start_ns))
ORDER BY (venue, instrument, interval, start_ns);
