"""The rows the flow layer computes: bars, footprints, order-book imbalance, liquidation bars.

Field names are the public contract (Avro, ClickHouse, gRPC, JSON lines of the offline commands). Every
row carries `final` (its window closed) and `version` (the source position of the last event it
includes): a sink keeps the highest version of each (venue, instrument, interval, start_ns).
"""

from __future__ import annotations

import msgspec


class Bar(msgspec.Struct, gc=False):
    """Event-time bar of one venue-instrument (fields up to cvd_base are Bar v1, then the additions of v2 to v6)."""

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
    asset: str = ""  # canonical asset of the instrument (domain/assets.py): 1000PEPE-USDT-PERP -> PEPE (v5)
    cmf: float | None = None  # CMF(21) of the series up to this bar; None until 21 bars exist (v5)
    mfi: float | None = None  # MFI(14); None until 15 bars exist (v5)
    # The largest single trade of the bar by notional_quote (ties: the first to arrive), 0 / "" in rows before v6.
    max_trade_quote: float = 0.0  # its notional_quote (v6)
    max_trade_price: float = 0.0  # its price (v6)
    max_trade_side: str = ""  # its aggressor side, "buy" | "sell" (v6)
    max_trade_ts_ns: int = 0  # its trade time (v6)


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
    """OBI of one venue-instrument over one event-time bar (Avro ObiBar v2, ClickHouse obi_bars)."""

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
    # ObiBar v2: resting quantity (base units) within +/- b bps of the mid, the inputs of cross-venue OBI.
    # mean: time-weighted over the time the band was defined (verified, uncrossed, both sides non-empty);
    # last: at the bar end. None when never defined in the bar (or undefined at its end, for last).
    bps10_bid_mean: float | None = None
    bps10_ask_mean: float | None = None
    bps10_bid_last: float | None = None
    bps10_ask_last: float | None = None
    bps25_bid_mean: float | None = None
    bps25_ask_mean: float | None = None
    bps25_bid_last: float | None = None
    bps25_ask_last: float | None = None
    bps50_bid_mean: float | None = None
    bps50_ask_mean: float | None = None
    bps50_bid_last: float | None = None
    bps50_ask_last: float | None = None


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


class DerivBar(msgspec.Struct, gc=False):
    """Derivatives context of one venue-instrument over one event-time bar, from its DerivTicker events
    (flow/derivatives.py; docs/DOMAIN.md "Derivatives bars"). A value no ticker of the window carried is the
    previous bar's (named in `carried`); None: not known yet. Open interest is in base units, *_usd in USD.
    """

    venue: str
    instrument: str
    interval: str
    start_ns: int
    funding_rate: float | None  # last value at or before the window end
    mark_price: float | None
    index_price: float | None
    basis: float | None  # (mark - index) / index
    oi_open: float | None  # first value in the window, else the previous bar's oi_close
    oi_high: float | None
    oi_low: float | None
    oi_close: float | None
    oi_delta: float | None  # oi_close - the previous bar's oi_close (first bar: oi_close - oi_open)
    oi_open_usd: float | None
    oi_high_usd: float | None
    oi_low_usd: float | None
    oi_close_usd: float | None
    next_funding_ts_ns: int | None
    updates: int  # DerivTicker events in the window
    final: bool = False
    version: int = 0
    # What a restarted aggregator needs to continue bit-identically: the newest ticker time in the window
    # (its watermark) and which DerivTicker fields the window carried from the previous bar rather than
    # had from its own tickers (so a correction of an earlier bar moves them, also after a restart).
    last_ts_ns: int = 0
    carried: list[str] = msgspec.field(default_factory=list)


class AssetBar(msgspec.Struct, gc=False):
    """Cross-venue bar of one asset and market kind (`perp`, `spot` or `all`) over one window (flow/assets.py).

    Quantities are in asset units (qty x the instrument's multiplier, domain/assets.py), prices per asset unit,
    quote amounts in USD (USDT/USDC/USD alike). `venues` lists the venues whose bars are in it; a venue expected
    for the window whose bar is incomplete, or had not arrived when the window was settled, is in
    `incomplete_venues` (and makes the bar `incomplete`). `version` grows with every revision of a contributing
    venue bar, so a sink keeps the newest.
    """

    asset: str
    kind: str  # "perp" | "spot" | "all"
    interval: str
    start_ns: int
    open: float  # volume-weighted mean of the venue opens
    high: float  # highest venue high
    low: float  # lowest venue low
    close: float  # volume-weighted mean of the venue closes
    buy_base: float  # asset units
    sell_base: float
    buy_quote: float  # USD
    sell_quote: float
    delta_base: float
    delta_quote: float
    trades: int
    cvd_base: float  # running sum of delta_base from the first asset bar of the series
    cvd_daily_base: float  # running sum of delta_base from the first bar of the UTC day
    vwap: float
    buy_ratio: float
    venues: list[str]
    instruments: list[str]  # "venue/instrument" of every contributing venue bar
    incomplete_venues: list[str]
    incomplete: bool
    cmf: float | None = None
    mfi: float | None = None
    final: bool = False
    version: int = 0


class AssetObiBar(msgspec.Struct, gc=False):
    """Cross-venue order-book imbalance of one asset and market kind over one window (flow/assets.py).

    For each band b (10, 25, 50 bps around each venue's own mid): `bps<b>_bid`/`_ask` are the venues' mean
    resting quantities summed in asset units, `bps<b>_mean` = (bid - ask) / (bid + ask) of those sums, and
    `bps<b>_last` the same of the quantities at the window end. Only venues with verified book time count.
    """

    asset: str
    kind: str
    interval: str
    start_ns: int
    bps10_mean: float | None
    bps10_last: float | None
    bps10_bid: float | None
    bps10_ask: float | None
    bps25_mean: float | None
    bps25_last: float | None
    bps25_bid: float | None
    bps25_ask: float | None
    bps50_mean: float | None
    bps50_last: float | None
    bps50_bid: float | None
    bps50_ask: float | None
    venues: list[str]
    instruments: list[str]
    incomplete_venues: list[str]
    incomplete: bool
    final: bool = False
    version: int = 0


class AssetMetric(msgspec.Struct, gc=False):
    """One value of a daily per-exchange metric in the Coin Metrics style (e.g. FlowNetBNBNtv), long format."""

    asset: str
    exchange: str  # BNB, BIT, OKX, HYP
    day_ns: int  # start of the UTC day
    metric: str  # FlowNet<EXCHANGE>Ntv (asset units) | FlowNet<EXCHANGE>USD
    value: float
    final: bool = False
    version: int = 0


class BarWatermark(msgspec.Struct, gc=False):
    """A venue-instrument's bars ending at or before `watermark_ns` are final (the processor's event clock).

    The processor publishes it with the final bars on the by-asset topic: an instrument without a bar in a
    window had no trades there, and the asset stage learns so from this without waiting for its next trade.
    """

    venue: str
    instrument: str
    asset: str
    watermark_ns: int


class AssetInputs(msgspec.Struct, gc=False):
    """One Kafka message of the by-asset topic: what one write of the bar stage has for one asset, in order.

    Faust costs ~150 µs per message, so rows travel in batches, not one message each (as trades do): final venue
    bars (corrections included), final OBI bars, then the watermarks those bars moved. A row's position is the
    message offset << 16 | its index here (bars, then OBI bars, then watermarks).
    """

    asset: str
    bars: list[Bar] = msgspec.field(default_factory=list)
    obi_bars: list[ObiBar] = msgspec.field(default_factory=list)
    watermarks: list[BarWatermark] = msgspec.field(default_factory=list)
