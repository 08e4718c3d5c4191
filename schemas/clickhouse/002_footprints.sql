-- Footprint bars (tapeline.flow.footprint): one row per bar holding its summary and, as parallel
-- arrays, its price levels. {database} is replaced by the configured database name.
--
-- One table, not a levels table plus a summary table: the processor persists a bar's summary and
-- levels in ONE insert, so a crash can never leave a summary of one version beside levels of another
-- (ReplacingMergeTree would already have dropped the matching older half, and restore could not repair
-- it). Analysts read levels through the footprint_levels view below.

CREATE TABLE IF NOT EXISTS {database}.footprints
(
    venue                LowCardinality(String),
    instrument           LowCardinality(String),
    interval             LowCardinality(String),
    start_ns             Int64 CODEC(Delta, ZSTD(1)),
    bucket_size          Float64 CODEC(ZSTD(1)),
    poc                  Float64 CODEC(Gorilla, ZSTD(1)),
    vah                  Float64 CODEC(Gorilla, ZSTD(1)),
    val                  Float64 CODEC(Gorilla, ZSTD(1)),
    volume_base          Float64 CODEC(ZSTD(1)),
    delta_base           Float64 CODEC(ZSTD(1)),
    stacked_buy          UInt32 CODEC(T64, ZSTD(1)),
    stacked_sell         UInt32 CODEC(T64, ZSTD(1)),
    -- stacked imbalance run i: stacked_directions[i] ('buy' | 'sell') from stacked_lows[i] to stacked_highs[i]
    stacked_directions   Array(LowCardinality(String)),
    stacked_lows         Array(Float64),
    stacked_highs        Array(Float64),
    unfinished_high      Bool,
    unfinished_low       Bool,
    volume_quote         Float64 CODEC(ZSTD(1)),
    vwap                 Float64 CODEC(Gorilla, ZSTD(1)),
    last_ts_ns           Int64 CODEC(Delta, ZSTD(1)),
    -- levels, ascending by price (bucket lower bound, computed in decimal so it is a stable key)
    level_price          Array(Float64),
    level_buy_base       Array(Float64),
    level_sell_base      Array(Float64),
    level_buy_trades     Array(UInt64),
    level_sell_trades    Array(UInt64),
    level_delta_base     Array(Float64),
    level_buy_imbalance  Array(Bool),
    level_sell_imbalance Array(Bool),
    final                Bool,
    version              UInt64,
    start                DateTime64(9, 'UTC') ALIAS fromUnixTimestamp64Nano(start_ns)
)
-- One row per bar after merges: the highest version (ties: the last inserted) wins. Read with FINAL.
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(fromUnixTimestamp64Nano(start_ns))
ORDER BY (venue, instrument, interval, start_ns);

-- Volume at price, one row per (bar, bucket), from the latest version of each bar.
CREATE VIEW IF NOT EXISTS {database}.footprint_levels AS
SELECT venue, instrument, interval, start_ns, start, bucket_size, final, version,
       level_price AS price, level_buy_base AS buy_base, level_sell_base AS sell_base,
       level_buy_trades AS buy_trades, level_sell_trades AS sell_trades, level_delta_base AS delta_base,
       level_buy_imbalance AS buy_imbalance, level_sell_imbalance AS sell_imbalance
FROM {database}.footprints FINAL
ARRAY JOIN level_price, level_buy_base, level_sell_base, level_buy_trades, level_sell_trades,
           level_delta_base, level_buy_imbalance, level_sell_imbalance
