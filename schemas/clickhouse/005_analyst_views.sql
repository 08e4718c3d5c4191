-- Views for analysts: the latest version of every row (no FINAL to remember), bars aggregated per base
-- asset across venues (perpetuals, dated futures and spot apart), and daily net flow per exchange.

CREATE VIEW IF NOT EXISTS {database}.bars_latest AS
SELECT *, start FROM {database}.bars FINAL;

CREATE VIEW IF NOT EXISTS {database}.obi_latest AS
SELECT *, start FROM {database}.obi_bars FINAL;

-- Cross-venue bars of one base asset: volumes, deltas and trade counts add up; high/low are the extremes
-- of all venues, open/close the first/last trade across venues (quotes in USDT/USDC/USD are treated as USD).
-- The cross-venue CVD is the running sum of the summed delta from the first bar in the result; compute it
-- in the query (see docs/clickhouse.md) so that it starts where your time range starts.
CREATE VIEW IF NOT EXISTS {database}.asset_bars AS
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
    min(b.final) AS final
FROM {database}.bars AS b FINAL
GROUP BY base, kind, interval, start_ns;

-- The trade-flow analogue of exchange net-flow metrics: per exchange, instrument and UTC day, in native
-- units (base asset) and USD, from the 1d bars.
CREATE VIEW IF NOT EXISTS {database}.daily_net_flow AS
SELECT
    toDate(fromUnixTimestamp64Nano(start_ns)) AS day,
    venue,
    instrument,
    splitByChar('-', instrument)[1] AS base,
    delta_base AS net_flow_base,
    delta_quote AS net_flow_usd,
    buy_base,
    sell_base,
    buy_quote AS buy_usd,
    sell_quote AS sell_usd,
    trades,
    final
FROM {database}.bars FINAL
WHERE interval = '1d'
