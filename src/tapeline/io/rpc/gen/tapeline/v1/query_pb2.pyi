from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetBarsRequest(_message.Message):
    __slots__ = ("venue", "instrument", "interval", "from_ns", "to_ns", "limit")
    VENUE_FIELD_NUMBER: _ClassVar[int]
    INSTRUMENT_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_FIELD_NUMBER: _ClassVar[int]
    FROM_NS_FIELD_NUMBER: _ClassVar[int]
    TO_NS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    venue: str
    instrument: str
    interval: str
    from_ns: int
    to_ns: int
    limit: int
    def __init__(self, venue: _Optional[str] = ..., instrument: _Optional[str] = ..., interval: _Optional[str] = ..., from_ns: _Optional[int] = ..., to_ns: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class GetBarsResponse(_message.Message):
    __slots__ = ("bars", "truncated")
    BARS_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    bars: _containers.RepeatedCompositeFieldContainer[Bar]
    truncated: bool
    def __init__(self, bars: _Optional[_Iterable[_Union[Bar, _Mapping]]] = ..., truncated: _Optional[bool] = ...) -> None: ...

class Bar(_message.Message):
    __slots__ = ("venue", "instrument", "interval", "start_ns", "open", "high", "low", "close", "buy_base", "sell_base", "buy_quote", "sell_quote", "delta_base", "delta_quote", "trades", "cvd_base", "vwap", "buy_trades", "sell_trades", "first_ts_ns", "last_ts_ns", "buy_ratio", "max_delta_base", "min_delta_base", "final", "version", "incomplete", "asset", "cmf", "mfi", "max_trade_quote", "max_trade_price", "max_trade_side", "max_trade_ts_ns")
    VENUE_FIELD_NUMBER: _ClassVar[int]
    INSTRUMENT_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_FIELD_NUMBER: _ClassVar[int]
    START_NS_FIELD_NUMBER: _ClassVar[int]
    OPEN_FIELD_NUMBER: _ClassVar[int]
    HIGH_FIELD_NUMBER: _ClassVar[int]
    LOW_FIELD_NUMBER: _ClassVar[int]
    CLOSE_FIELD_NUMBER: _ClassVar[int]
    BUY_BASE_FIELD_NUMBER: _ClassVar[int]
    SELL_BASE_FIELD_NUMBER: _ClassVar[int]
    BUY_QUOTE_FIELD_NUMBER: _ClassVar[int]
    SELL_QUOTE_FIELD_NUMBER: _ClassVar[int]
    DELTA_BASE_FIELD_NUMBER: _ClassVar[int]
    DELTA_QUOTE_FIELD_NUMBER: _ClassVar[int]
    TRADES_FIELD_NUMBER: _ClassVar[int]
    CVD_BASE_FIELD_NUMBER: _ClassVar[int]
    VWAP_FIELD_NUMBER: _ClassVar[int]
    BUY_TRADES_FIELD_NUMBER: _ClassVar[int]
    SELL_TRADES_FIELD_NUMBER: _ClassVar[int]
    FIRST_TS_NS_FIELD_NUMBER: _ClassVar[int]
    LAST_TS_NS_FIELD_NUMBER: _ClassVar[int]
    BUY_RATIO_FIELD_NUMBER: _ClassVar[int]
    MAX_DELTA_BASE_FIELD_NUMBER: _ClassVar[int]
    MIN_DELTA_BASE_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    INCOMPLETE_FIELD_NUMBER: _ClassVar[int]
    ASSET_FIELD_NUMBER: _ClassVar[int]
    CMF_FIELD_NUMBER: _ClassVar[int]
    MFI_FIELD_NUMBER: _ClassVar[int]
    MAX_TRADE_QUOTE_FIELD_NUMBER: _ClassVar[int]
    MAX_TRADE_PRICE_FIELD_NUMBER: _ClassVar[int]
    MAX_TRADE_SIDE_FIELD_NUMBER: _ClassVar[int]
    MAX_TRADE_TS_NS_FIELD_NUMBER: _ClassVar[int]
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
    vwap: float
    buy_trades: int
    sell_trades: int
    first_ts_ns: int
    last_ts_ns: int
    buy_ratio: float
    max_delta_base: float
    min_delta_base: float
    final: bool
    version: int
    incomplete: bool
    asset: str
    cmf: float
    mfi: float
    max_trade_quote: float
    max_trade_price: float
    max_trade_side: str
    max_trade_ts_ns: int
    def __init__(self, venue: _Optional[str] = ..., instrument: _Optional[str] = ..., interval: _Optional[str] = ..., start_ns: _Optional[int] = ..., open: _Optional[float] = ..., high: _Optional[float] = ..., low: _Optional[float] = ..., close: _Optional[float] = ..., buy_base: _Optional[float] = ..., sell_base: _Optional[float] = ..., buy_quote: _Optional[float] = ..., sell_quote: _Optional[float] = ..., delta_base: _Optional[float] = ..., delta_quote: _Optional[float] = ..., trades: _Optional[int] = ..., cvd_base: _Optional[float] = ..., vwap: _Optional[float] = ..., buy_trades: _Optional[int] = ..., sell_trades: _Optional[int] = ..., first_ts_ns: _Optional[int] = ..., last_ts_ns: _Optional[int] = ..., buy_ratio: _Optional[float] = ..., max_delta_base: _Optional[float] = ..., min_delta_base: _Optional[float] = ..., final: _Optional[bool] = ..., version: _Optional[int] = ..., incomplete: _Optional[bool] = ..., asset: _Optional[str] = ..., cmf: _Optional[float] = ..., mfi: _Optional[float] = ..., max_trade_quote: _Optional[float] = ..., max_trade_price: _Optional[float] = ..., max_trade_side: _Optional[str] = ..., max_trade_ts_ns: _Optional[int] = ...) -> None: ...

class ListSeriesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Series(_message.Message):
    __slots__ = ("venue", "instrument", "interval")
    VENUE_FIELD_NUMBER: _ClassVar[int]
    INSTRUMENT_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_FIELD_NUMBER: _ClassVar[int]
    venue: str
    instrument: str
    interval: str
    def __init__(self, venue: _Optional[str] = ..., instrument: _Optional[str] = ..., interval: _Optional[str] = ...) -> None: ...

class ListSeriesResponse(_message.Message):
    __slots__ = ("series",)
    SERIES_FIELD_NUMBER: _ClassVar[int]
    series: _containers.RepeatedCompositeFieldContainer[Series]
    def __init__(self, series: _Optional[_Iterable[_Union[Series, _Mapping]]] = ...) -> None: ...

class GetFootprintsRequest(_message.Message):
    __slots__ = ("venue", "instrument", "interval", "from_ns", "to_ns", "limit")
    VENUE_FIELD_NUMBER: _ClassVar[int]
    INSTRUMENT_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_FIELD_NUMBER: _ClassVar[int]
    FROM_NS_FIELD_NUMBER: _ClassVar[int]
    TO_NS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    venue: str
    instrument: str
    interval: str
    from_ns: int
    to_ns: int
    limit: int
    def __init__(self, venue: _Optional[str] = ..., instrument: _Optional[str] = ..., interval: _Optional[str] = ..., from_ns: _Optional[int] = ..., to_ns: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class FootprintLevel(_message.Message):
    __slots__ = ("price", "buy_base", "sell_base", "buy_trades", "sell_trades", "delta_base", "buy_imbalance", "sell_imbalance")
    PRICE_FIELD_NUMBER: _ClassVar[int]
    BUY_BASE_FIELD_NUMBER: _ClassVar[int]
    SELL_BASE_FIELD_NUMBER: _ClassVar[int]
    BUY_TRADES_FIELD_NUMBER: _ClassVar[int]
    SELL_TRADES_FIELD_NUMBER: _ClassVar[int]
    DELTA_BASE_FIELD_NUMBER: _ClassVar[int]
    BUY_IMBALANCE_FIELD_NUMBER: _ClassVar[int]
    SELL_IMBALANCE_FIELD_NUMBER: _ClassVar[int]
    price: float
    buy_base: float
    sell_base: float
    buy_trades: int
    sell_trades: int
    delta_base: float
    buy_imbalance: bool
    sell_imbalance: bool
    def __init__(self, price: _Optional[float] = ..., buy_base: _Optional[float] = ..., sell_base: _Optional[float] = ..., buy_trades: _Optional[int] = ..., sell_trades: _Optional[int] = ..., delta_base: _Optional[float] = ..., buy_imbalance: _Optional[bool] = ..., sell_imbalance: _Optional[bool] = ...) -> None: ...

class Footprint(_message.Message):
    __slots__ = ("venue", "instrument", "interval", "start_ns", "bucket_size", "poc", "vah", "val", "volume_base", "delta_base", "stacked_buy", "stacked_sell", "stacked_directions", "stacked_lows", "stacked_highs", "unfinished_high", "unfinished_low", "volume_quote", "vwap", "last_ts_ns", "final", "version", "levels", "incomplete")
    VENUE_FIELD_NUMBER: _ClassVar[int]
    INSTRUMENT_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_FIELD_NUMBER: _ClassVar[int]
    START_NS_FIELD_NUMBER: _ClassVar[int]
    BUCKET_SIZE_FIELD_NUMBER: _ClassVar[int]
    POC_FIELD_NUMBER: _ClassVar[int]
    VAH_FIELD_NUMBER: _ClassVar[int]
    VAL_FIELD_NUMBER: _ClassVar[int]
    VOLUME_BASE_FIELD_NUMBER: _ClassVar[int]
    DELTA_BASE_FIELD_NUMBER: _ClassVar[int]
    STACKED_BUY_FIELD_NUMBER: _ClassVar[int]
    STACKED_SELL_FIELD_NUMBER: _ClassVar[int]
    STACKED_DIRECTIONS_FIELD_NUMBER: _ClassVar[int]
    STACKED_LOWS_FIELD_NUMBER: _ClassVar[int]
    STACKED_HIGHS_FIELD_NUMBER: _ClassVar[int]
    UNFINISHED_HIGH_FIELD_NUMBER: _ClassVar[int]
    UNFINISHED_LOW_FIELD_NUMBER: _ClassVar[int]
    VOLUME_QUOTE_FIELD_NUMBER: _ClassVar[int]
    VWAP_FIELD_NUMBER: _ClassVar[int]
    LAST_TS_NS_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    LEVELS_FIELD_NUMBER: _ClassVar[int]
    INCOMPLETE_FIELD_NUMBER: _ClassVar[int]
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
    stacked_buy: int
    stacked_sell: int
    stacked_directions: _containers.RepeatedScalarFieldContainer[str]
    stacked_lows: _containers.RepeatedScalarFieldContainer[float]
    stacked_highs: _containers.RepeatedScalarFieldContainer[float]
    unfinished_high: bool
    unfinished_low: bool
    volume_quote: float
    vwap: float
    last_ts_ns: int
    final: bool
    version: int
    levels: _containers.RepeatedCompositeFieldContainer[FootprintLevel]
    incomplete: bool
    def __init__(self, venue: _Optional[str] = ..., instrument: _Optional[str] = ..., interval: _Optional[str] = ..., start_ns: _Optional[int] = ..., bucket_size: _Optional[float] = ..., poc: _Optional[float] = ..., vah: _Optional[float] = ..., val: _Optional[float] = ..., volume_base: _Optional[float] = ..., delta_base: _Optional[float] = ..., stacked_buy: _Optional[int] = ..., stacked_sell: _Optional[int] = ..., stacked_directions: _Optional[_Iterable[str]] = ..., stacked_lows: _Optional[_Iterable[float]] = ..., stacked_highs: _Optional[_Iterable[float]] = ..., unfinished_high: _Optional[bool] = ..., unfinished_low: _Optional[bool] = ..., volume_quote: _Optional[float] = ..., vwap: _Optional[float] = ..., last_ts_ns: _Optional[int] = ..., final: _Optional[bool] = ..., version: _Optional[int] = ..., levels: _Optional[_Iterable[_Union[FootprintLevel, _Mapping]]] = ..., incomplete: _Optional[bool] = ...) -> None: ...

class GetFootprintsResponse(_message.Message):
    __slots__ = ("footprints", "truncated")
    FOOTPRINTS_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    footprints: _containers.RepeatedCompositeFieldContainer[Footprint]
    truncated: bool
    def __init__(self, footprints: _Optional[_Iterable[_Union[Footprint, _Mapping]]] = ..., truncated: _Optional[bool] = ...) -> None: ...

class ObiBar(_message.Message):
    __slots__ = ("venue", "instrument", "interval", "start_ns", "top1_mean", "top1_last", "top1_min", "top1_max", "top5_mean", "top5_last", "top5_min", "top5_max", "top10_mean", "top10_last", "top10_min", "top10_max", "top20_mean", "top20_last", "top20_min", "top20_max", "bps10_mean", "bps10_last", "bps10_min", "bps10_max", "bps25_mean", "bps25_last", "bps25_min", "bps25_max", "bps50_mean", "bps50_last", "bps50_min", "bps50_max", "verified_ns", "incomplete", "updates", "final", "version", "bps10_bid_mean", "bps10_ask_mean", "bps10_bid_last", "bps10_ask_last", "bps25_bid_mean", "bps25_ask_mean", "bps25_bid_last", "bps25_ask_last", "bps50_bid_mean", "bps50_ask_mean", "bps50_bid_last", "bps50_ask_last")
    VENUE_FIELD_NUMBER: _ClassVar[int]
    INSTRUMENT_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_FIELD_NUMBER: _ClassVar[int]
    START_NS_FIELD_NUMBER: _ClassVar[int]
    TOP1_MEAN_FIELD_NUMBER: _ClassVar[int]
    TOP1_LAST_FIELD_NUMBER: _ClassVar[int]
    TOP1_MIN_FIELD_NUMBER: _ClassVar[int]
    TOP1_MAX_FIELD_NUMBER: _ClassVar[int]
    TOP5_MEAN_FIELD_NUMBER: _ClassVar[int]
    TOP5_LAST_FIELD_NUMBER: _ClassVar[int]
    TOP5_MIN_FIELD_NUMBER: _ClassVar[int]
    TOP5_MAX_FIELD_NUMBER: _ClassVar[int]
    TOP10_MEAN_FIELD_NUMBER: _ClassVar[int]
    TOP10_LAST_FIELD_NUMBER: _ClassVar[int]
    TOP10_MIN_FIELD_NUMBER: _ClassVar[int]
    TOP10_MAX_FIELD_NUMBER: _ClassVar[int]
    TOP20_MEAN_FIELD_NUMBER: _ClassVar[int]
    TOP20_LAST_FIELD_NUMBER: _ClassVar[int]
    TOP20_MIN_FIELD_NUMBER: _ClassVar[int]
    TOP20_MAX_FIELD_NUMBER: _ClassVar[int]
    BPS10_MEAN_FIELD_NUMBER: _ClassVar[int]
    BPS10_LAST_FIELD_NUMBER: _ClassVar[int]
    BPS10_MIN_FIELD_NUMBER: _ClassVar[int]
    BPS10_MAX_FIELD_NUMBER: _ClassVar[int]
    BPS25_MEAN_FIELD_NUMBER: _ClassVar[int]
    BPS25_LAST_FIELD_NUMBER: _ClassVar[int]
    BPS25_MIN_FIELD_NUMBER: _ClassVar[int]
    BPS25_MAX_FIELD_NUMBER: _ClassVar[int]
    BPS50_MEAN_FIELD_NUMBER: _ClassVar[int]
    BPS50_LAST_FIELD_NUMBER: _ClassVar[int]
    BPS50_MIN_FIELD_NUMBER: _ClassVar[int]
    BPS50_MAX_FIELD_NUMBER: _ClassVar[int]
    VERIFIED_NS_FIELD_NUMBER: _ClassVar[int]
    INCOMPLETE_FIELD_NUMBER: _ClassVar[int]
    UPDATES_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    BPS10_BID_MEAN_FIELD_NUMBER: _ClassVar[int]
    BPS10_ASK_MEAN_FIELD_NUMBER: _ClassVar[int]
    BPS10_BID_LAST_FIELD_NUMBER: _ClassVar[int]
    BPS10_ASK_LAST_FIELD_NUMBER: _ClassVar[int]
    BPS25_BID_MEAN_FIELD_NUMBER: _ClassVar[int]
    BPS25_ASK_MEAN_FIELD_NUMBER: _ClassVar[int]
    BPS25_BID_LAST_FIELD_NUMBER: _ClassVar[int]
    BPS25_ASK_LAST_FIELD_NUMBER: _ClassVar[int]
    BPS50_BID_MEAN_FIELD_NUMBER: _ClassVar[int]
    BPS50_ASK_MEAN_FIELD_NUMBER: _ClassVar[int]
    BPS50_BID_LAST_FIELD_NUMBER: _ClassVar[int]
    BPS50_ASK_LAST_FIELD_NUMBER: _ClassVar[int]
    venue: str
    instrument: str
    interval: str
    start_ns: int
    top1_mean: float
    top1_last: float
    top1_min: float
    top1_max: float
    top5_mean: float
    top5_last: float
    top5_min: float
    top5_max: float
    top10_mean: float
    top10_last: float
    top10_min: float
    top10_max: float
    top20_mean: float
    top20_last: float
    top20_min: float
    top20_max: float
    bps10_mean: float
    bps10_last: float
    bps10_min: float
    bps10_max: float
    bps25_mean: float
    bps25_last: float
    bps25_min: float
    bps25_max: float
    bps50_mean: float
    bps50_last: float
    bps50_min: float
    bps50_max: float
    verified_ns: int
    incomplete: bool
    updates: int
    final: bool
    version: int
    bps10_bid_mean: float
    bps10_ask_mean: float
    bps10_bid_last: float
    bps10_ask_last: float
    bps25_bid_mean: float
    bps25_ask_mean: float
    bps25_bid_last: float
    bps25_ask_last: float
    bps50_bid_mean: float
    bps50_ask_mean: float
    bps50_bid_last: float
    bps50_ask_last: float
    def __init__(self, venue: _Optional[str] = ..., instrument: _Optional[str] = ..., interval: _Optional[str] = ..., start_ns: _Optional[int] = ..., top1_mean: _Optional[float] = ..., top1_last: _Optional[float] = ..., top1_min: _Optional[float] = ..., top1_max: _Optional[float] = ..., top5_mean: _Optional[float] = ..., top5_last: _Optional[float] = ..., top5_min: _Optional[float] = ..., top5_max: _Optional[float] = ..., top10_mean: _Optional[float] = ..., top10_last: _Optional[float] = ..., top10_min: _Optional[float] = ..., top10_max: _Optional[float] = ..., top20_mean: _Optional[float] = ..., top20_last: _Optional[float] = ..., top20_min: _Optional[float] = ..., top20_max: _Optional[float] = ..., bps10_mean: _Optional[float] = ..., bps10_last: _Optional[float] = ..., bps10_min: _Optional[float] = ..., bps10_max: _Optional[float] = ..., bps25_mean: _Optional[float] = ..., bps25_last: _Optional[float] = ..., bps25_min: _Optional[float] = ..., bps25_max: _Optional[float] = ..., bps50_mean: _Optional[float] = ..., bps50_last: _Optional[float] = ..., bps50_min: _Optional[float] = ..., bps50_max: _Optional[float] = ..., verified_ns: _Optional[int] = ..., incomplete: _Optional[bool] = ..., updates: _Optional[int] = ..., final: _Optional[bool] = ..., version: _Optional[int] = ..., bps10_bid_mean: _Optional[float] = ..., bps10_ask_mean: _Optional[float] = ..., bps10_bid_last: _Optional[float] = ..., bps10_ask_last: _Optional[float] = ..., bps25_bid_mean: _Optional[float] = ..., bps25_ask_mean: _Optional[float] = ..., bps25_bid_last: _Optional[float] = ..., bps25_ask_last: _Optional[float] = ..., bps50_bid_mean: _Optional[float] = ..., bps50_ask_mean: _Optional[float] = ..., bps50_bid_last: _Optional[float] = ..., bps50_ask_last: _Optional[float] = ...) -> None: ...

class GetObiRequest(_message.Message):
    __slots__ = ("venue", "instrument", "interval", "from_ns", "to_ns", "limit")
    VENUE_FIELD_NUMBER: _ClassVar[int]
    INSTRUMENT_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_FIELD_NUMBER: _ClassVar[int]
    FROM_NS_FIELD_NUMBER: _ClassVar[int]
    TO_NS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    venue: str
    instrument: str
    interval: str
    from_ns: int
    to_ns: int
    limit: int
    def __init__(self, venue: _Optional[str] = ..., instrument: _Optional[str] = ..., interval: _Optional[str] = ..., from_ns: _Optional[int] = ..., to_ns: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class GetObiResponse(_message.Message):
    __slots__ = ("bars", "truncated")
    BARS_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    bars: _containers.RepeatedCompositeFieldContainer[ObiBar]
    truncated: bool
    def __init__(self, bars: _Optional[_Iterable[_Union[ObiBar, _Mapping]]] = ..., truncated: _Optional[bool] = ...) -> None: ...
