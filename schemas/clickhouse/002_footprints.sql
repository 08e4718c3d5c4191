-- Footprint bars (tapeline.flow.footprint): volume at price per bar, and one summary row per bar.
-- {database} is replaced by the configured database name. Same conventions as 001: Int64 ns times,
-- ReplacingMergeTree(version) upserts of open bars, a final = true row when the window closes.
--
-- Why replacing by version per (bar, price) is correct for levels: a bar's level rows are always
-- written together, all with the bar's current version, and a bucket only ever gains volume within a
-- bar (trades are added, never removed; late trades are rejected, not retracted), so every price that
-- has a row in one version of a bar also has a row in each later version. No stale level can survive
-- beside a newer version of its bar. `price` is a bucket lower bound computed in decimal
-- (index x bucket_size), identical on every run, so it is a stable key. Changing an instrument's bucket
-- size changes the prices: rows of reprocessed bars computed with the old size must be deleted first.

CREATE TABLE IF NOT EXISTS {database}.footprint_levels
(
    venue          LowCardinality(String),
    instrument     LowCardinality(String),
    interval       LowCardinality(String),
    start_ns       Int64 CODEC(Delta, ZSTD(1)),
    price          Float64 CODEC(Gorilla, ZSTD(1)),
    bucket_size    Float64 CODEC(ZSTD(1)),
    buy_base       Float64 CODEC(ZSTD(1)),
    sell_base      Float64 CODEC(ZSTD(1)),
    buy_trades     UInt64 CODEC(T64, ZSTD(1)),
    sell_trades    UInt64 CODEC(T64, ZSTD(1)),
    delta_base     Float64 CODEC(ZSTD(1)),
    buy_imbalance  Bool,
    sell_imbalance Bool,
    final          Bool,
    version        UInt64,
    start          DateTime64(9, 'UTC') ALIAS fromUnixTimestamp64Nano(start_ns)
)
-- One row per (bar, price bucket) after merges: the highest version (ties: the last inserted) wins.
-- Read with FINAL (see docs/clickhouse.md).
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(fromUnixTimestamp64Nano(start_ns))
ORDER BY (venue, instrument, interval, start_ns, price);

CREATE TABLE IF NOT EXISTS {database}.footprint_bars
(
    venue              LowCardinality(String),
    instrument         LowCardinality(String),
    interval           LowCardinality(String),
    start_ns           Int64 CODEC(Delta, ZSTD(1)),
    bucket_size        Float64 CODEC(ZSTD(1)),
    poc                Float64 CODEC(Gorilla, ZSTD(1)),
    vah                Float64 CODEC(Gorilla, ZSTD(1)),
    val                Float64 CODEC(Gorilla, ZSTD(1)),
    volume_base        Float64 CODEC(ZSTD(1)),
    delta_base         Float64 CODEC(ZSTD(1)),
    stacked_buy        UInt32 CODEC(T64, ZSTD(1)),
    stacked_sell       UInt32 CODEC(T64, ZSTD(1)),
    -- stacked imbalance runs as parallel arrays: run i is stacked_directions[i] ('buy' | 'sell')
    -- from bucket stacked_lows[i] to bucket stacked_highs[i]
    stacked_directions Array(LowCardinality(String)),
    stacked_lows       Array(Float64),
    stacked_highs      Array(Float64),
    unfinished_high    Bool,
    unfinished_low     Bool,
    volume_quote       Float64 CODEC(ZSTD(1)),
    vwap               Float64 CODEC(Gorilla, ZSTD(1)),
    last_ts_ns         Int64 CODEC(Delta, ZSTD(1)),
    final              Bool,
    version            UInt64,
    start              DateTime64(9, 'UTC') ALIAS fromUnixTimestamp64Nano(start_ns)
)
-- One row per bar after merges: the highest version (ties: the last inserted) wins.
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(fromUnixTimestamp64Nano(start_ns))
ORDER BY (venue, instrument, interval, start_ns);
