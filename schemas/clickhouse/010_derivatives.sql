-- Derivatives context: the normalized DerivTicker time series, and derivatives bars computed from it
-- (tapeline.flow.derivatives.DerivBar; Avro DerivBar v1; docs/DOMAIN.md "Derivatives bars").
-- {database} is replaced by the configured database name. Times are Int64 nanoseconds; ALIAS columns give
-- DateTime64 views. Open interest is in base units (`*_usd`: in USD). NULL: not known (yet).

-- One row per ticker as the venue session emitted it (venues that push deltas are merged by the session, so
-- a row carries everything its venue had said; NULL where the venue never sent the field).
CREATE TABLE IF NOT EXISTS {database}.deriv_tickers
(
    venue              LowCardinality(String),
    instrument         LowCardinality(String),
    symbol             LowCardinality(String),
    ts_ns              Int64 CODEC(Delta, ZSTD(1)) COMMENT 'venue event time (UTC epoch ns)',
    recv_ts_ns         Int64 CODEC(Delta, ZSTD(1)) COMMENT 'when the connector received the message',
    funding_rate       Nullable(Float64) CODEC(Gorilla, ZSTD(1)),
    next_funding_ts_ns Nullable(Int64) CODEC(ZSTD(1)) COMMENT 'next funding settlement (UTC epoch ns)',
    mark_price         Nullable(Float64) CODEC(Gorilla, ZSTD(1)),
    index_price        Nullable(Float64) CODEC(Gorilla, ZSTD(1)),
    open_interest_base Nullable(Float64) CODEC(Gorilla, ZSTD(1)),
    open_interest_usd  Nullable(Float64) CODEC(Gorilla, ZSTD(1)),
    ts                 DateTime64(9, 'UTC') ALIAS fromUnixTimestamp64Nano(ts_ns)
)
-- A replayed ticker carries the same venue and receive times, so it replaces itself (two tickers of one
-- instrument with equal venue and receive times, down to the ns, would collapse into the last inserted).
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMMDD(fromUnixTimestamp64Nano(ts_ns))
ORDER BY (venue, instrument, ts_ns, recv_ts_ns)
COMMENT 'Normalized derivatives tickers: funding, mark, index, open interest';

CREATE TABLE IF NOT EXISTS {database}.deriv_bars
(
    venue              LowCardinality(String),
    instrument         LowCardinality(String),
    interval           LowCardinality(String),
    start_ns           Int64 CODEC(Delta, ZSTD(1)) COMMENT 'bar start (UTC epoch ns), the bar is [start, start + interval)',
    funding_rate       Nullable(Float64) CODEC(Gorilla, ZSTD(1)) COMMENT 'last value at or before the bar end',
    mark_price         Nullable(Float64) CODEC(Gorilla, ZSTD(1)) COMMENT 'last value at or before the bar end',
    index_price        Nullable(Float64) CODEC(Gorilla, ZSTD(1)) COMMENT 'last value at or before the bar end',
    basis              Nullable(Float64) CODEC(Gorilla, ZSTD(1)) COMMENT '(mark_price - index_price) / index_price',
    oi_open            Nullable(Float64) CODEC(Gorilla, ZSTD(1)) COMMENT 'open interest (base): first in the bar, else the previous close',
    oi_high            Nullable(Float64) CODEC(Gorilla, ZSTD(1)),
    oi_low             Nullable(Float64) CODEC(Gorilla, ZSTD(1)),
    oi_close           Nullable(Float64) CODEC(Gorilla, ZSTD(1)),
    oi_delta           Nullable(Float64) CODEC(ZSTD(1)) COMMENT 'oi_close - the previous bar''s oi_close',
    oi_open_usd        Nullable(Float64) CODEC(Gorilla, ZSTD(1)) COMMENT 'open interest in USD, OHLC as in base units',
    oi_high_usd        Nullable(Float64) CODEC(Gorilla, ZSTD(1)),
    oi_low_usd         Nullable(Float64) CODEC(Gorilla, ZSTD(1)),
    oi_close_usd       Nullable(Float64) CODEC(Gorilla, ZSTD(1)),
    next_funding_ts_ns Nullable(Int64) CODEC(ZSTD(1)),
    updates            UInt64 CODEC(T64, ZSTD(1)) COMMENT 'DerivTicker events in the bar',
    final              Bool COMMENT 'the window closed (watermark passed)',
    version            UInt64 COMMENT 'source position of the last ticker included',
    last_ts_ns         Int64 CODEC(Delta, ZSTD(1)) COMMENT 'venue time of the newest ticker in the bar',
    carried            Array(LowCardinality(String)) COMMENT 'DerivTicker fields taken from the previous bar',
    start              DateTime64(9, 'UTC') ALIAS fromUnixTimestamp64Nano(start_ns)
)
-- One row per bar after merges: the highest version (ties: the last inserted) wins, so a replay
-- that rewrites the same rows leaves the same numbers. Read with FINAL (see docs/clickhouse.md).
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(fromUnixTimestamp64Nano(start_ns))
ORDER BY (venue, instrument, interval, start_ns)
COMMENT 'Derivatives bars: funding, mark, index, basis and open-interest OHLC per event-time bar';
