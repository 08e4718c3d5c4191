-- Bar v4: `incomplete` flags bars that overlap a trade-feed gap (a connector lost its websocket; trades
-- between the last message and the resubscription may be missing). Views that select `*` are recreated so
-- they carry the new column; asset_bars is incomplete when any venue's bar is.
ALTER TABLE {database}.bars ADD COLUMN IF NOT EXISTS incomplete Bool DEFAULT false AFTER version;

CREATE OR REPLACE VIEW {database}.bars_latest AS
SELECT *, start FROM {database}.bars FINAL;

CREATE OR REPLACE VIEW {database}.asset_bars AS
SELECT
    splitByChar('-', b.instrument)[1] AS base,
    multiIf(endsWith(b.instrument, '-PERP'), 'perp', endsWith(b.instrument, '-SPOT'), 'spot', 'future') AS kind,
    b.interval AS interval,
    b.start_ns AS start_ns,
    fromUnixTimestamp64Nano(b.start_ns) AS start,
    argMin(b.open, b.first_ts_ns) AS open,
    max(b.high) AS high,
    min(b.low) AS low,
    argMax(b.close, b.last_ts_ns) AS close,
    sum(b.buy_base) AS buy_base,
    sum(b.sell_base) AS sell_base,
    sum(b.buy_quote) AS buy_quote,
    sum(b.sell_quote) AS sell_quote,
    sum(b.delta_base) AS delta_base,
    sum(b.delta_quote) AS delta_quote,
    sum(b.trades) AS trades,
    sum(b.buy_quote + b.sell_quote) / nullIf(sum(b.buy_base + b.sell_base), 0) AS vwap,
    sum(b.buy_base) / nullIf(sum(b.buy_base + b.sell_base), 0) AS buy_ratio,
    groupUniqArray(b.venue) AS venues,
    min(b.final) AS final,
    max(b.incomplete) AS incomplete
FROM {database}.bars AS b FINAL
GROUP BY base, kind, interval, start_ns;

CREATE OR REPLACE VIEW {database}.bars_with_liquidations AS
SELECT bar_row.*, bar_row.start AS start,
       ifNull(liq_row.long_base, 0) AS liq_long_base, ifNull(liq_row.short_base, 0) AS liq_short_base,
       ifNull(liq_row.long_usd, 0) AS liq_long_usd, ifNull(liq_row.short_usd, 0) AS liq_short_usd,
       ifNull(liq_row.long_count, 0) AS liq_long_count, ifNull(liq_row.short_count, 0) AS liq_short_count
FROM {database}.bars AS bar_row FINAL
LEFT JOIN (SELECT * FROM {database}.liquidation_bars FINAL) AS liq_row USING (venue, instrument, interval, start_ns)
SETTINGS join_use_nulls = 1;
