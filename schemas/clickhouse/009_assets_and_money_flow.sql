-- Bar v5: the canonical asset of the instrument (1000PEPE-USDT-PERP -> PEPE) and the money-flow oscillators
-- CMF(21) and MFI(14), null until the series has enough bars. Rows written before v5 have asset ''.
ALTER TABLE {database}.bars ADD COLUMN IF NOT EXISTS asset LowCardinality(String) DEFAULT '' AFTER incomplete;
ALTER TABLE {database}.bars ADD COLUMN IF NOT EXISTS cmf Nullable(Float64) AFTER asset;
ALTER TABLE {database}.bars ADD COLUMN IF NOT EXISTS mfi Nullable(Float64) AFTER cmf;

-- Views that select `*` are recreated so they carry the new columns.
CREATE OR REPLACE VIEW {database}.bars_latest AS
SELECT *, start FROM {database}.bars FINAL;

CREATE OR REPLACE VIEW {database}.bars_with_liquidations AS
SELECT bar_row.*, bar_row.start AS start,
       ifNull(liq_row.long_base, 0) AS liq_long_base, ifNull(liq_row.short_base, 0) AS liq_short_base,
       ifNull(liq_row.long_usd, 0) AS liq_long_usd, ifNull(liq_row.short_usd, 0) AS liq_short_usd,
       ifNull(liq_row.long_count, 0) AS liq_long_count, ifNull(liq_row.short_count, 0) AS liq_short_count
FROM {database}.bars AS bar_row FINAL
LEFT JOIN (SELECT * FROM {database}.liquidation_bars FINAL) AS liq_row USING (venue, instrument, interval, start_ns)
SETTINGS join_use_nulls = 1;

-- The SQL view asset_bars (grouped by the listed base, open/close of the first/last trade) gives way to the
-- streamed asset bars (tapeline.flow.assets): asset units with multipliers, volume-weighted open/close, CVD,
-- oscillators, and which venues were complete.
DROP VIEW IF EXISTS {database}.asset_bars;

CREATE TABLE IF NOT EXISTS {database}.asset_bars
(
    asset             LowCardinality(String),
    kind              LowCardinality(String),
    interval          LowCardinality(String),
    start_ns          Int64 CODEC(Delta, ZSTD(1)),
    open              Float64 CODEC(Gorilla, ZSTD(1)),
    high              Float64 CODEC(Gorilla, ZSTD(1)),
    low               Float64 CODEC(Gorilla, ZSTD(1)),
    close             Float64 CODEC(Gorilla, ZSTD(1)),
    buy_base          Float64 CODEC(ZSTD(1)),
    sell_base         Float64 CODEC(ZSTD(1)),
    buy_quote         Float64 CODEC(ZSTD(1)),
    sell_quote        Float64 CODEC(ZSTD(1)),
    delta_base        Float64 CODEC(ZSTD(1)),
    delta_quote       Float64 CODEC(ZSTD(1)),
    trades            UInt64 CODEC(T64, ZSTD(1)),
    cvd_base          Float64 CODEC(ZSTD(1)),
    cvd_daily_base    Float64 CODEC(ZSTD(1)),
    vwap              Float64 CODEC(Gorilla, ZSTD(1)),
    buy_ratio         Float64 CODEC(ZSTD(1)),
    venues            Array(LowCardinality(String)),
    instruments       Array(LowCardinality(String)),
    incomplete_venues Array(LowCardinality(String)),
    incomplete        Bool,
    cmf               Nullable(Float64),
    mfi               Nullable(Float64),
    final             Bool,
    version           UInt64,
    start             DateTime64(9, 'UTC') ALIAS fromUnixTimestamp64Nano(start_ns)
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(fromUnixTimestamp64Nano(start_ns))
ORDER BY (asset, kind, interval, start_ns);

CREATE TABLE IF NOT EXISTS {database}.asset_obi_bars
(
    asset             LowCardinality(String),
    kind              LowCardinality(String),
    interval          LowCardinality(String),
    start_ns          Int64 CODEC(Delta, ZSTD(1)),
    bps10_mean        Nullable(Float64),
    bps10_last        Nullable(Float64),
    bps10_bid         Nullable(Float64),
    bps10_ask         Nullable(Float64),
    bps25_mean        Nullable(Float64),
    bps25_last        Nullable(Float64),
    bps25_bid         Nullable(Float64),
    bps25_ask         Nullable(Float64),
    bps50_mean        Nullable(Float64),
    bps50_last        Nullable(Float64),
    bps50_bid         Nullable(Float64),
    bps50_ask         Nullable(Float64),
    venues            Array(LowCardinality(String)),
    instruments       Array(LowCardinality(String)),
    incomplete_venues Array(LowCardinality(String)),
    incomplete        Bool,
    final             Bool,
    version           UInt64,
    start             DateTime64(9, 'UTC') ALIAS fromUnixTimestamp64Nano(start_ns)
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(fromUnixTimestamp64Nano(start_ns))
ORDER BY (asset, kind, interval, start_ns);

-- Daily metrics per asset and exchange in the long (asset, time, metric, value) shape of exchange-flow
-- data, e.g. FlowNetBNBNtv (net aggressive flow on Binance in asset units) and FlowNetBNBUSD.
CREATE TABLE IF NOT EXISTS {database}.asset_metrics
(
    asset    LowCardinality(String),
    exchange LowCardinality(String),
    day_ns   Int64 CODEC(Delta, ZSTD(1)),
    metric   LowCardinality(String),
    value    Float64 CODEC(ZSTD(1)),
    final    Bool,
    version  UInt64,
    day      Date ALIAS toDate(fromUnixTimestamp64Nano(day_ns))
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (asset, metric, day_ns);
