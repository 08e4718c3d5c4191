"""Normalized domain events. Field names are the public contract (Avro, ClickHouse, JSON lines)."""

from __future__ import annotations

from typing import Any, TypeAlias

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


class TradeBatch(msgspec.Struct, tag="trade_batch", tag_field="type", gc=False):
    """Consecutive trades of one venue-instrument-symbol as one Kafka message (the trades topic carries both).

    The stream processor pays a fixed cost per Kafka message (~150 µs in Faust here), so connectors
    publish trades in small per-instrument batches; consumers read either shape. Stored column by
    column (element i of each list is trade i) because columns decode in bulk.
    """

    venue: str
    instrument: str
    symbol: str
    ts_ns: list[int]
    recv_ts_ns: list[int]
    price: list[float]
    qty_base: list[float]
    notional_quote: list[float]
    side: list[str]
    trade_id: list[str]

    @classmethod
    def of(cls, trades: list[Trade]) -> TradeBatch:
        """The batch of `trades`, which share the first one's venue, instrument and symbol."""
        first = trades[0]
        return cls(
            first.venue, first.instrument, first.symbol, [t.ts_ns for t in trades], [t.recv_ts_ns for t in trades],
            [t.price for t in trades], [t.qty_base for t in trades], [t.notional_quote for t in trades],
            [t.side for t in trades], [t.trade_id for t in trades],
        )  # fmt: skip


class TradeGap(msgspec.Struct, tag="trade_gap", tag_field="type", gc=False):
    """Trades of one instrument may be missing between two receive times (the connection dropped).

    Published on the trades topic after the reconnect, in order with the instrument's trades, so the
    processor flags the bars that span [from_ns, to_ns] as incomplete.
    """

    venue: str
    symbol: str
    instrument: str
    from_ns: int  # receive time of the last message before the drop
    to_ns: int  # time the feed was subscribed again
    reason: str


class BookUpdate(msgspec.Struct, tag="book", tag_field="type", gc=False):
    """L2 book change of a verified book: a full snapshot or absolute-size deltas (qty 0 removes a level).

    Levels are (price, qty_base) pairs; contract sizes are already converted to base units.
    """

    venue: str
    symbol: str
    instrument: str
    ts_ns: int  # venue event time
    recv_ts_ns: int
    is_snapshot: bool
    bids: list[tuple[float, float]]
    asks: list[tuple[float, float]]
    first_seq: int = -1  # venue sequence numbers of this message (-1: the venue has none)
    last_seq: int = -1
    prev_seq: int = -1  # what the venue says the previous message's last_seq was


class BookGap(msgspec.Struct, tag="book_gap", tag_field="type", gc=False):
    """The book of one instrument lost integrity; updates resume after a fresh snapshot."""

    venue: str
    symbol: str
    instrument: str
    ts_ns: int
    recv_ts_ns: int
    reason: str
    last_good_seq: int = -1
    first_bad_seq: int = -1


class Liquidation(msgspec.Struct, tag="liquidation", tag_field="type", gc=False):
    """A forced order. `position_side` is the liquidated position; `order_side` the forced order's side."""

    venue: str
    symbol: str
    instrument: str
    ts_ns: int
    recv_ts_ns: int
    position_side: str  # "long" | "short"
    order_side: str  # "sell" for a long liquidation, "buy" for a short one
    price: float
    qty_base: float
    notional_quote: float


class DerivTicker(msgspec.Struct, tag="deriv_ticker", tag_field="type", gc=False):
    """Derivatives state; a field is None when this message does not carry it."""

    venue: str
    symbol: str
    instrument: str
    ts_ns: int
    recv_ts_ns: int
    funding_rate: float | None = None
    next_funding_ts_ns: int | None = None
    mark_price: float | None = None
    index_price: float | None = None
    open_interest_base: float | None = None
    open_interest_usd: float | None = None


Event: TypeAlias = Trade | TradeGap | BookUpdate | BookGap | Liquidation | DerivTicker  # what venue sessions emit


class Instrument(msgspec.Struct, gc=False):
    """Venue instrument metadata, from the venue's instrument REST endpoint."""

    venue: str
    symbol: str
    instrument: str  # canonical id
    base: str
    quote: str
    kind: str  # "perp" | "future" | "spot"
    linear: bool = True  # inverse contracts are sized in quote currency
    contract_value: float = 1.0  # base units per contract (linear) or quote units per contract (inverse)
    tick_size: float = 0.0
    lot_size: float = 0.0
    expiry_ns: int | None = None


class Signal(msgspec.Struct, tag="signal", tag_field="type", gc=False):
    """One version of a detected pattern (signals/: a divergence, a net-flow alert, ...). A change to the bars
    it rests on publishes it again with the same id, the next version and status `revised` or `withdrawn`."""

    signal_id: str  # deterministic: a replay emits the same id
    version: int  # 1, 2, ...
    status: str  # "active" | "revised" | "withdrawn"
    kind: str  # e.g. "divergence_regular", "net_flow_threshold" (docs/signals.md lists them)
    direction: str  # "bullish" | "bearish"
    venue: str | None  # None for an asset signal
    instrument: str | None
    asset: str
    market: str  # the series' market kind: "perp" | "spot" | "all"
    interval: str
    ts_ns: int  # when it was confirmed: the end of the confirming bar
    pivot_ts_ns: int | None  # the swing it refers to, where one applies
    strength: float  # detector-defined (docs/signals.md)
    detail: dict[str, float]  # the numbers that triggered it (times in ms, as *_ts_ms)
    detector: str  # the rule that found it


class DeadLetter(msgspec.Struct, gc=False):
    """A message that could not be processed: the raw bytes, where they came from, and why."""

    source: str  # e.g. "connector:binance-usdm" or "processor"
    reason: str
    raw: bytes
    recv_ts_ns: int
    context: str = ""  # stream name, topic/partition/offset, ...


def as_record(event: msgspec.Struct) -> dict[str, Any]:
    """A dict with every field, including a tagged struct's `type` tag; nested structs (the rows of a batch)
    become dicts too, bytes stay bytes."""
    record = {name: _plain(getattr(event, name)) for name in event.__struct_fields__}
    tag = type(event).__struct_config__.tag
    if isinstance(tag, str):
        record["type"] = tag
    return record


def _plain(value: Any) -> Any:
    if isinstance(value, msgspec.Struct):
        return as_record(value)
    if isinstance(value, list) and value and isinstance(value[0], msgspec.Struct):
        return [as_record(item) for item in value]
    return value
