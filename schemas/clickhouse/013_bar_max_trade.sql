-- Bar v6: the bar's largest single trade by notional (ties: the first to arrive): its notional_quote, price,
-- aggressor side and trade time. Rows written before v6 have 0 and ''.
ALTER TABLE {database}.bars ADD COLUMN IF NOT EXISTS max_trade_quote Float64 DEFAULT 0 CODEC(ZSTD(1)) AFTER mfi;
ALTER TABLE {database}.bars ADD COLUMN IF NOT EXISTS max_trade_price Float64 DEFAULT 0 CODEC(Gorilla, ZSTD(1)) AFTER max_trade_quote;
ALTER TABLE {database}.bars ADD COLUMN IF NOT EXISTS max_trade_side LowCardinality(String) DEFAULT '' AFTER max_trade_price;
ALTER TABLE {database}.bars ADD COLUMN IF NOT EXISTS max_trade_ts_ns Int64 DEFAULT 0 CODEC(Delta, ZSTD(1)) AFTER max_trade_side;

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
