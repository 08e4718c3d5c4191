-- ObiBar v2: the resting bid and ask quantity (base units) within +/- 10/25/50 bps of the mid, per bar, so
-- cross-venue OBI can be computed from the per-venue rows (docs/DOMAIN.md "Order-book imbalance"):
-- <band>_bid_mean / <band>_ask_mean are time-weighted over the time the bands were defined (verified,
-- uncrossed, both sides non-empty; a band with no level in it is 0, not NULL), <band>_bid_last /
-- <band>_ask_last are the quantities at the bar end. NULL: never defined in the bar (at its end, for last);
-- rows written before this migration are NULL too. The view that selects `*` is recreated so it carries
-- the new columns.
ALTER TABLE {database}.obi_bars
    ADD COLUMN IF NOT EXISTS bps10_bid_mean Nullable(Float64) CODEC(Gorilla, ZSTD(1)) COMMENT 'bps10 bid quantity in the band: time-weighted mean (base units)' AFTER version,
    ADD COLUMN IF NOT EXISTS bps10_ask_mean Nullable(Float64) CODEC(Gorilla, ZSTD(1)) COMMENT 'bps10 ask quantity in the band: time-weighted mean (base units)' AFTER bps10_bid_mean,
    ADD COLUMN IF NOT EXISTS bps10_bid_last Nullable(Float64) CODEC(Gorilla, ZSTD(1)) COMMENT 'bps10 bid quantity in the band at the bar end (base units)' AFTER bps10_ask_mean,
    ADD COLUMN IF NOT EXISTS bps10_ask_last Nullable(Float64) CODEC(Gorilla, ZSTD(1)) COMMENT 'bps10 ask quantity in the band at the bar end (base units)' AFTER bps10_bid_last,
    ADD COLUMN IF NOT EXISTS bps25_bid_mean Nullable(Float64) CODEC(Gorilla, ZSTD(1)) COMMENT 'bps25 bid quantity in the band: time-weighted mean (base units)' AFTER bps10_ask_last,
    ADD COLUMN IF NOT EXISTS bps25_ask_mean Nullable(Float64) CODEC(Gorilla, ZSTD(1)) COMMENT 'bps25 ask quantity in the band: time-weighted mean (base units)' AFTER bps25_bid_mean,
    ADD COLUMN IF NOT EXISTS bps25_bid_last Nullable(Float64) CODEC(Gorilla, ZSTD(1)) COMMENT 'bps25 bid quantity in the band at the bar end (base units)' AFTER bps25_ask_mean,
    ADD COLUMN IF NOT EXISTS bps25_ask_last Nullable(Float64) CODEC(Gorilla, ZSTD(1)) COMMENT 'bps25 ask quantity in the band at the bar end (base units)' AFTER bps25_bid_last,
    ADD COLUMN IF NOT EXISTS bps50_bid_mean Nullable(Float64) CODEC(Gorilla, ZSTD(1)) COMMENT 'bps50 bid quantity in the band: time-weighted mean (base units)' AFTER bps25_ask_last,
    ADD COLUMN IF NOT EXISTS bps50_ask_mean Nullable(Float64) CODEC(Gorilla, ZSTD(1)) COMMENT 'bps50 ask quantity in the band: time-weighted mean (base units)' AFTER bps50_bid_mean,
    ADD COLUMN IF NOT EXISTS bps50_bid_last Nullable(Float64) CODEC(Gorilla, ZSTD(1)) COMMENT 'bps50 bid quantity in the band at the bar end (base units)' AFTER bps50_ask_mean,
    ADD COLUMN IF NOT EXISTS bps50_ask_last Nullable(Float64) CODEC(Gorilla, ZSTD(1)) COMMENT 'bps50 ask quantity in the band at the bar end (base units)' AFTER bps50_bid_last;

CREATE OR REPLACE VIEW {database}.obi_latest AS
SELECT *, start FROM {database}.obi_bars FINAL;
