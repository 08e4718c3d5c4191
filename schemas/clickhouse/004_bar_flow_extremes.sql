-- Bar v3: buy ratio and the running-delta extremes inside each bar.
ALTER TABLE {database}.bars ADD COLUMN IF NOT EXISTS buy_ratio Float64 DEFAULT 0.5 CODEC(ZSTD(1)) AFTER last_ts_ns;
ALTER TABLE {database}.bars ADD COLUMN IF NOT EXISTS max_delta_base Float64 DEFAULT 0 CODEC(ZSTD(1)) AFTER buy_ratio;
ALTER TABLE {database}.bars ADD COLUMN IF NOT EXISTS min_delta_base Float64 DEFAULT 0 CODEC(ZSTD(1)) AFTER max_delta_base
