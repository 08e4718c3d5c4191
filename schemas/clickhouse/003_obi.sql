-- Order-book imbalance bars (tapeline.flow.obi.ObiBar; Avro ObiBar v1). {database} is replaced by the
-- configured database name. Times are Int64 nanoseconds; the ALIAS column gives a DateTime64 view.
--
-- OBI = (B - A) / (B + A) in [-1, 1], B and A the resting bid / ask base quantity over the top N levels
-- (top1, top5, top10, top20) or within +/- b bps of the mid (bps10, bps25, bps50); docs/DOMAIN.md.
-- Per measure: <m>_mean is time-weighted over the time the value was defined, <m>_last the value at the
-- bar end, <m>_min / <m>_max over values that held for more than 0 ns. NULL: never defined in the bar
-- (book unverified or crossed, B + A = 0). Unverified time is in no mean and sets `incomplete`.

CREATE TABLE IF NOT EXISTS {database}.obi_bars
(
    venue       LowCardinality(String),
    instrument  LowCardinality(String),
    interval    LowCardinality(String),
    start_ns    Int64 CODEC(Delta, ZSTD(1)) COMMENT 'bar start (UTC epoch ns), the bar is [start, start + interval)',
    top1_mean   Nullable(Float64) CODEC(Gorilla, ZSTD(1)) COMMENT 'top1 OBI: time-weighted mean',
    top1_last   Nullable(Float64) CODEC(Gorilla, ZSTD(1)) COMMENT 'top1 OBI: value at the bar end',
    top1_min    Nullable(Float64) CODEC(Gorilla, ZSTD(1)) COMMENT 'top1 OBI: min held > 0 ns',
    top1_max    Nullable(Float64) CODEC(Gorilla, ZSTD(1)) COMMENT 'top1 OBI: max held > 0 ns',
    top5_mean   Nullable(Float64) CODEC(Gorilla, ZSTD(1)) COMMENT 'top5 OBI: time-weighted mean',
    top5_last   Nullable(Float64) CODEC(Gorilla, ZSTD(1)) COMMENT 'top5 OBI: value at the bar end',
    top5_min    Nullable(Float64) CODEC(Gorilla, ZSTD(1)) COMMENT 'top5 OBI: min held > 0 ns',
    top5_max    Nullable(Float64) CODEC(Gorilla, ZSTD(1)) COMMENT 'top5 OBI: max held > 0 ns',
    top10_mean  Nullable(Float64) CODEC(Gorilla, ZSTD(1)) COMMENT 'top10 OBI: time-weighted mean',
    top10_last  Nullable(Float64) CODEC(Gorilla, ZSTD(1)) COMMENT 'top10 OBI: value at the bar end',
    top10_min   Nullable(Float64) CODEC(Gorilla, ZSTD(1)) COMMENT 'top10 OBI: min held > 0 ns',
    top10_max   Nullable(Float64) CODEC(Gorilla, ZSTD(1)) COMMENT 'top10 OBI: max held > 0 ns',
    top20_mean  Nullable(Float64) CODEC(Gorilla, ZSTD(1)) COMMENT 'top20 OBI: time-weighted mean',
    top20_last  Nullable(Float64) CODEC(Gorilla, ZSTD(1)) COMMENT 'top20 OBI: value at the bar end',
    top20_min   Nullable(Float64) CODEC(Gorilla, ZSTD(1)) COMMENT 'top20 OBI: min held > 0 ns',
    top20_max   Nullable(Float64) CODEC(Gorilla, ZSTD(1)) COMMENT 'top20 OBI: max held > 0 ns',
    bps10_mean  Nullable(Float64) CODEC(Gorilla, ZSTD(1)) COMMENT 'bps10 OBI: time-weighted mean',
    bps10_last  Nullable(Float64) CODEC(Gorilla, ZSTD(1)) COMMENT 'bps10 OBI: value at the bar end',
    bps10_min   Nullable(Float64) CODEC(Gorilla, ZSTD(1)) COMMENT 'bps10 OBI: min held > 0 ns',
    bps10_max   Nullable(Float64) CODEC(Gorilla, ZSTD(1)) COMMENT 'bps10 OBI: max held > 0 ns',
    bps25_mean  Nullable(Float64) CODEC(Gorilla, ZSTD(1)) COMMENT 'bps25 OBI: time-weighted mean',
    bps25_last  Nullable(Float64) CODEC(Gorilla, ZSTD(1)) COMMENT 'bps25 OBI: value at the bar end',
    bps25_min   Nullable(Float64) CODEC(Gorilla, ZSTD(1)) COMMENT 'bps25 OBI: min held > 0 ns',
    bps25_max   Nullable(Float64) CODEC(Gorilla, ZSTD(1)) COMMENT 'bps25 OBI: max held > 0 ns',
    bps50_mean  Nullable(Float64) CODEC(Gorilla, ZSTD(1)) COMMENT 'bps50 OBI: time-weighted mean',
    bps50_last  Nullable(Float64) CODEC(Gorilla, ZSTD(1)) COMMENT 'bps50 OBI: value at the bar end',
    bps50_min   Nullable(Float64) CODEC(Gorilla, ZSTD(1)) COMMENT 'bps50 OBI: min held > 0 ns',
    bps50_max   Nullable(Float64) CODEC(Gorilla, ZSTD(1)) COMMENT 'bps50 OBI: max held > 0 ns',
    verified_ns Int64 CODEC(T64, ZSTD(1)) COMMENT 'ns of the bar the book was verified',
    incomplete  Bool COMMENT 'part of the bar the book was unverified or unknown',
    updates     UInt64 CODEC(T64, ZSTD(1)) COMMENT 'book updates applied to a verified book in the bar',
    final       Bool COMMENT 'the window closed (watermark passed)',
    version     UInt64 COMMENT 'source position after which the row became final',
    start       DateTime64(9, 'UTC') ALIAS fromUnixTimestamp64Nano(start_ns)
)
-- One row per bar after merges: the highest version (ties: the last inserted) wins, so a replay
-- that rewrites the same rows leaves the same numbers. Read with FINAL (see docs/clickhouse.md).
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(fromUnixTimestamp64Nano(start_ns))
ORDER BY (venue, instrument, interval, start_ns)
COMMENT 'Order-book imbalance per event-time bar, from verified L2 books only';
