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
    __slots__ = ("venue", "instrument", "interval", "start_ns", "open", "high", "low", "close", "buy_base", "sell_base", "buy_quote", "sell_quote", "delta_base", "delta_quote", "trades", "cvd_base", "vwap", "buy_trades", "sell_trades", "first_ts_ns", "last_ts_ns", "buy_ratio", "max_delta_base", "min_delta_base", "final", "version")
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
    def __init__(self, venue: _Optional[str] = ..., instrument: _Optional[str] = ..., interval: _Optional[str] = ..., start_ns: _Optional[int] = ..., open: _Optional[float] = ..., high: _Optional[float] = ..., low: _Optional[float] = ..., close: _Optional[float] = ..., buy_base: _Optional[float] = ..., sell_base: _Optional[float] = ..., buy_quote: _Optional[float] = ..., sell_quote: _Optional[float] = ..., delta_base: _Optional[float] = ..., delta_quote: _Optional[float] = ..., trades: _Optional[int] = ..., cvd_base: _Optional[float] = ..., vwap: _Optional[float] = ..., buy_trades: _Optional[int] = ..., sell_trades: _Optional[int] = ..., first_ts_ns: _Optional[int] = ..., last_ts_ns: _Optional[int] = ..., buy_ratio: _Optional[float] = ..., max_delta_base: _Optional[float] = ..., min_delta_base: _Optional[float] = ..., final: _Optional[bool] = ..., version: _Optional[int] = ...) -> None: ...

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
