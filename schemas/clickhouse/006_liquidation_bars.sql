-- Liquidation flow per bar (tapeline.flow.liquidations): long/short liquidated volume in base and USD and
-- counts. A long liquidation is a forced sell. Venue feeds are throttled snapshots, so these are lower bounds.
CREATE TABLE IF NOT EXISTS {database}.liquidation_bars
(
    venue       LowCardinality(String),
    instrument  LowCardinality(String),
    interval    LowCardinality(String),
    start_ns    Int64 CODEC(Delta, ZSTD(1)),
    long_base   Float64 CODEC(ZSTD(1)),
    short_base  Float64 CODEC(ZSTD(1)),
    long_usd    Float64 CODEC(ZSTD(1)),
    short_usd   Float64 CODEC(ZSTD(1)),
    long_count  UInt32 CODEC(T64, ZSTD(1)),
    short_count UInt32 CODEC(T64, ZSTD(1)),
    final       Bool,
    version     UInt64,
    start       DateTime64(9, 'UTC') ALIAS fromUnixTimestamp64Nano(start_ns)
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(fromUnixTimestamp64Nano(start_ns))
ORDER BY (venue, instrument, interval, start_ns);

-- Trade bars with the liquidations of the same window (zeros where there were none).
CREATE VIEW IF NOT EXISTS {database}.bars_with_liquidations AS
SELECT bar_row.*, bar_row.start AS start,
       ifNull(liq_row.long_base, 0) AS liq_long_base, ifNull(liq_row.short_base, 0) AS liq_short_base,
       ifNull(liq_row.long_usd, 0) AS liq_long_usd, ifNull(liq_row.short_usd, 0) AS liq_short_usd,
       ifNull(liq_row.long_count, 0) AS liq_long_count, ifNull(liq_row.short_count, 0) AS liq_short_count
FROM {database}.bars AS bar_row FINAL
LEFT JOIN (SELECT * FROM {database}.liquidation_bars FINAL) AS liq_row USING (venue, instrument, interval, start_ns)
SETTINGS join_use_nulls = 1
