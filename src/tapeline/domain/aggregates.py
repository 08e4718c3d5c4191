"""The rows the flow layer computes: bars, footprints, order-book imbalance, liquidation bars.

Field names are the public contract (Avro, ClickHouse, gRPC, JSON lines of the offline commands). Every
row carries `final` (its window closed) and `version` (the source position of the last event it
includes): a sink keeps the highest version of each (venue, instrument, interval, start_ns).
"""

from __future__ import annotations

import msgspec


class Bar(msgspec.Struct, gc=False):
    """Event-time bar of one venue-instrument (fields up to cvd_base are Bar v1, then v2 and v3 additions)."""

    venue: str
    instrument: str
    interval: str
    start_ns: int
    open: float
    high: float
    low: float
    close: float
    buy_base: float
    sell_base: float
    buy_quote: float
    sell_quote: float
    delta_base: float
    delta_quote: float
    trades: int
    cvd_base: float
    vwap: float = 0.0
    buy_trades: int = 0
    sell_trades: int = 0
    first_ts_ns: int = 0  # trade time of the earliest trade in the bar
    last_ts_ns: int = 0  # trade time of the latest trade in the bar
    buy_ratio: float = 0.5  # buy / (buy + sell) in base units; > 0.55 reads strong buy, < 0.45 strong sell (v3)
    max_delta_base: float = 0.0  # highest running delta inside the bar, in arrival order (v3)
    min_delta_base: float = 0.0  # lowest running delta inside the bar (v3)
    final: bool = False  # the window closed (watermark passed); later rows only correct it
    version: int = 0  # source position of the last trade included; replays give the same version
    incomplete: bool = False  # the window overlaps a trade-feed gap: trades may be missing (v4)


class FootprintLevel(msgspec.Struct, gc=False):
    """Volume at one price bucket of one footprint bar (only traded buckets have a row)."""

    venue: str
    instrument: str
    interval: str
    start_ns: int
    price: float  # the bucket's lower bound
    bucket_size: float
    buy_base: float  # aggressive buys: offers lifted
    sell_base: float  # aggressive sells: bids hit
    buy_trades: int
    sell_trades: int
    delta_base: float
    buy_imbalance: bool  # buy here >= ratio x sell one bucket below
    sell_imbalance: bool  # sell here >= ratio x buy one bucket above
    final: bool = False
    version: int = 0


class FootprintBar(msgspec.Struct, gc=False):
    """Summary of one footprint bar. Prices (poc, vah, val, stacked runs) are bucket lower bounds.

    Stacked imbalance runs are three parallel arrays (Avro and ClickHouse carry them the same way);
    `stacked_runs` gives them as (direction, low, high) tuples.
    """

    venue: str
    instrument: str
    interval: str
    start_ns: int
    bucket_size: float
    poc: float
    vah: float
    val: float
    volume_base: float
    delta_base: float
    stacked_buy: int  # number of stacked buy-imbalance runs
    stacked_sell: int
    stacked_directions: list[str]  # "buy" | "sell", one per run, ordered by low price then direction
    stacked_lows: list[float]
    stacked_highs: list[float]
    unfinished_high: bool
    unfinished_low: bool
    volume_quote: float = 0.0  # with volume_base: the VWAP of the POC tie rule, and state for restore
    vwap: float = 0.0
    last_ts_ns: int = 0  # trade time of the latest trade in the bar (restores the watermark)
    final: bool = False
    version: int = 0
    incomplete: bool = False  # the bar overlaps a trade gap: trades of its window may be missing

    @property
    def stacked_runs(self) -> list[tuple[str, float, float]]:
        return list(zip(self.stacked_directions, self.stacked_lows, self.stacked_highs, strict=True))


class ObiBar(msgspec.Struct, gc=False):
    """OBI of one venue-instrument over one event-time bar (Avro ObiBar v1, ClickHouse obi_bars)."""

    venue: str
    instrument: str
    interval: str
    start_ns: int
    top1_mean: float | None
    top1_last: float | None
    top1_min: float | None
    top1_max: float | None
    top5_mean: float | None
    top5_last: float | None
    top5_min: float | None
    top5_max: float | None
    top10_mean: float | None
    top10_last: float | None
    top10_min: float | None
    top10_max: float | None
    top20_mean: float | None
    top20_last: float | None
    top20_min: float | None
    top20_max: float | None
    bps10_mean: float | None
    bps10_last: float | None
    bps10_min: float | None
    bps10_max: float | None
    bps25_mean: float | None
    bps25_last: float | None
    bps25_min: float | None
    bps25_max: float | None
    bps50_mean: float | None
    bps50_last: float | None
    bps50_min: float | None
    bps50_max: float | None
    verified_ns: int  # time of the bar the book was verified (crossed included)
    incomplete: bool  # part of the bar the book was unverified or unknown; that time is in no mean
    updates: int  # BookUpdate events applied to a verified book in this bar
    final: bool = False
    version: int = 0  # source position after which the row became final


class LiquidationBar(msgspec.Struct, gc=False):
    venue: str
    instrument: str
    interval: str
    start_ns: int
    long_base: float  # volume of liquidated longs (forced sells)
    short_base: float  # volume of liquidated shorts (forced buys)
    long_usd: float
    short_usd: float
    long_count: int
    short_count: int
    final: bool = False
    version: int = 0
