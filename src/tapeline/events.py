"""Normalized domain events. Field names are the public contract (Avro, ClickHouse, JSON lines)."""

from __future__ import annotations

import msgspec

VENUES = ("binance-usdm", "binance-spot", "bybit-linear", "bybit-spot", "okx", "hyperliquid")
SIDES = ("buy", "sell")


class Trade(msgspec.Struct, tag="trade", tag_field="type", gc=False):
    """One execution; `side` is the aggressor (taker) side."""

    venue: str
    symbol: str  # venue-native
    instrument: str  # canonical, e.g. BTC-USDT-PERP
    ts_ns: int  # venue trade time
    recv_ts_ns: int
    price: float
    qty_base: float
    notional_quote: float
    side: str
    trade_id: str


class Bar(msgspec.Struct, gc=False):
    """Event-time bar of one venue-instrument (fields up to cvd_base are Bar v1; the rest v2)."""

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
    final: bool = False  # the window closed (watermark passed); later rows only correct it
    version: int = 0  # source position of the last trade included; replays give the same version


class Signal(msgspec.Struct, tag="signal", tag_field="type", gc=False):
    """A detected pattern, e.g. a regular bearish price/CVD divergence."""

    signal_id: str  # deterministic: a replay emits the same id
    kind: str  # "divergence"
    variant: str  # "regular" | "hidden"
    direction: str  # "bullish" | "bearish"
    venue: str
    instrument: str
    interval: str
    pivot_ts_ns: int  # start of the bar that forms the newer swing
    prev_pivot_ts_ns: int  # start of the bar of the older swing
    confirmed_ts_ns: int  # start of the bar that confirmed the newer pivot (L bars later)
    price_prev: float
    price_now: float
    cvd_prev: float
    cvd_now: float


class DeadLetter(msgspec.Struct, gc=False):
    """A message that could not be processed: the raw bytes, where they came from, and why."""

    source: str  # e.g. "connector:binance-usdm" or "processor"
    reason: str
    raw: bytes
    recv_ts_ns: int
    context: str = ""  # stream name, topic/partition/offset, ...


def as_record(event: msgspec.Struct) -> dict:
    """A dict with every field, including a tagged struct's `type` tag."""
    record = msgspec.structs.asdict(event)
    tag = type(event).__struct_config__.tag
    if isinstance(tag, str):
        record["type"] = tag
    return record
