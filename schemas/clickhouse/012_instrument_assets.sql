-- The asset, multiplier and market kind of every instrument the processor has seen (domain/assets.py), so
-- that SQL can put any venue table in asset units. Liquidations and derivatives per asset are views over it.
CREATE TABLE IF NOT EXISTS {database}.instrument_assets
(
    venue      LowCardinality(String),
    instrument LowCardinality(String),
    asset      LowCardinality(String),
    multiplier Float64,  -- units of the asset per unit of the listed base (1000PEPE: 1000)
    kind       LowCardinality(String)  -- perp | spot
)
ENGINE = ReplacingMergeTree
ORDER BY (venue, instrument);

-- Liquidations per asset across venues: volumes in asset units and USD, counts, and the venues with any.
CREATE OR REPLACE VIEW {database}.asset_liquidation_bars AS
SELECT a.asset AS asset, l.interval AS interval, l.start_ns AS start_ns,
       fromUnixTimestamp64Nano(l.start_ns) AS start,
       sum(l.long_base * a.multiplier) AS long_base, sum(l.short_base * a.multiplier) AS short_base,
       sum(l.long_usd) AS long_usd, sum(l.short_usd) AS short_usd,
       sum(l.long_count) AS long_count, sum(l.short_count) AS short_count,
       arraySort(groupUniqArray(l.venue)) AS venues, min(l.final) AS final
FROM {database}.liquidation_bars AS l FINAL
INNER JOIN (SELECT * FROM {database}.instrument_assets FINAL) AS a ON l.venue = a.venue AND l.instrument = a.instrument
GROUP BY asset, interval, start_ns;

-- Derivatives per asset across venues (docs/DOMAIN.md): open interest and its delta summed in asset units and
-- USD, funding as the open-interest-weighted mean of the venues that report both.
CREATE OR REPLACE VIEW {database}.asset_deriv_bars AS
SELECT a.asset AS asset, d.interval AS interval, d.start_ns AS start_ns,
       fromUnixTimestamp64Nano(d.start_ns) AS start,
       sum(d.oi_close * a.multiplier) AS oi_close, sum(d.oi_delta * a.multiplier) AS oi_delta,
       sum(d.oi_close_usd) AS oi_close_usd,
       sumIf(d.funding_rate * d.oi_close * a.multiplier, d.funding_rate IS NOT NULL AND d.oi_close IS NOT NULL)
         / nullIf(sumIf(d.oi_close * a.multiplier, d.funding_rate IS NOT NULL AND d.oi_close IS NOT NULL), 0)
         AS funding_rate,
       arraySort(groupUniqArray(d.venue)) AS venues, min(d.final) AS final
FROM {database}.deriv_bars AS d FINAL
INNER JOIN (SELECT * FROM {database}.instrument_assets FINAL) AS a ON d.venue = a.venue AND d.instrument = a.instrument
GROUP BY asset, interval, start_ns;
