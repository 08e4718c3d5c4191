-- FootprintBar v2: `incomplete` flags footprint bars that overlap a trade-feed gap, as 007 does for bars.
ALTER TABLE {database}.footprints ADD COLUMN IF NOT EXISTS incomplete Bool DEFAULT false AFTER version;

CREATE OR REPLACE VIEW {database}.footprint_levels AS
SELECT venue, instrument, interval, start_ns, start, bucket_size, final, version, incomplete,
       level_price AS price, level_buy_base AS buy_base, level_sell_base AS sell_base,
       level_buy_trades AS buy_trades, level_sell_trades AS sell_trades, level_delta_base AS delta_base,
       level_buy_imbalance AS buy_imbalance, level_sell_imbalance AS sell_imbalance
FROM {database}.footprints FINAL
ARRAY JOIN level_price, level_buy_base, level_sell_base, level_buy_trades, level_sell_trades,
           level_delta_base, level_buy_imbalance, level_sell_imbalance;

-- Trade-feed gaps the connectors reported (TradeGap events): trades of the instrument between from_ns and
-- to_ns may be missing. The processor writes each gap with the batch that carried it, before acking it,
-- and reads the recent ones back on start, so bars that open after a restart are still flagged.
CREATE TABLE IF NOT EXISTS {database}.trade_gaps
(
    venue      LowCardinality(String),
    instrument LowCardinality(String),
    symbol     LowCardinality(String),
    from_ns    Int64 CODEC(Delta, ZSTD(1)),
    to_ns      Int64 CODEC(Delta, ZSTD(1)),
    reason     String,
    from_time  DateTime64(9, 'UTC') ALIAS fromUnixTimestamp64Nano(from_ns),
    to_time    DateTime64(9, 'UTC') ALIAS fromUnixTimestamp64Nano(to_ns)
)
-- a replayed gap replaces itself
ENGINE = ReplacingMergeTree
ORDER BY (venue, instrument, from_ns, to_ns);
