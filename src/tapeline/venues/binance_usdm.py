"""Binance USD-M futures: endpoints, wire structs mirroring the venue's JSON, parse -> domain events.

Two entry points:

- `parse(payload, recv_ts_ns=None) -> [Trade]` and `stream_urls(...)`: the trade-only module shape the
  connector uses (aggTrade and trade messages, bare or in the combined-stream envelope).
- `BinanceUsdmSession`: the sans-I/O session (venues/base.py) for every channel: aggTrade, trade,
  depth (local books), forceOrder (liquidations), markPrice and openInterest (derivatives tickers), and
  instrument metadata from exchangeInfo.

Streams are routed by path (2026): /market carries aggTrade, markPrice, forceOrder; /public carries
depth, bookTicker and trade. A subscription on the wrong path fails silently, so there is one
combined-stream connection per path (and per 200 streams). Field semantics: ../shared/data/SCHEMAS.md §1.

Decisions worth knowing:

- Depth: the USD-M bridging rule (drop u < lastUpdateId; first event U <= lastUpdateId <= u; then
  pu == previous u), see `_binance.DiffBook`. Update ids are not contiguous between events, so only `pu`
  chaining is valid (the spot rule would resync forever on 4 of the recorded pairs).
- forceOrder: `S` is the side of the liquidation ORDER (SELL liquidates a long). The quantity is `z`, the
  accumulated filled quantity: what actually traded, and the quantity that `ap` (average fill price)
  averages over. `q` is what the engine tried to close; an IOC liquidation can expire partly filled, and
  then only `z` traded. Every real message seen is FILLED with z == q. tardis-node's current mapper
  also takes z and ap (its older snapshot in ../shared/data/_oracles still shows p). `l` (last fill) is
  not the order's volume (one vector even has l > z). `z` = 0 (nothing filled yet; never seen) falls back
  to `q`; the price is `ap` when non-zero, else the order price `p`. COIN-M payloads (`st` 2, quantities
  in contracts) are rejected rather than mis-sized.
- markPrice: funding rate `r` and next funding time `T` are None on delivery contracts (`r` "" or
  `T` 0; a USD-M quarterly sends r "0.00000000" with T 0, which is "no funding", not a zero rate).
- openInterest: REST only (GET /fapi/v1/openInterest), asked for by `startup()` (which the connector
  repeats on its refresh period) and by `poll()`. open_interest_usd = base x the latest mark price
  from the markPrice stream, None until one is known.
- exchangeInfo: no capture of it exists in ../shared/data; the parser follows the documented shape
  (symbols[].{symbol, pair, contractType, deliveryDate, baseAsset, quoteAsset, filters[PRICE_FILTER
  tickSize, LOT_SIZE stepSize]}); perpetuals carry deliveryDate 4133404800000 (year 2100), not an expiry.
"""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from tapeline.domain.errors import BadMessage
from tapeline.domain.events import DerivTicker, Instrument, Liquidation
from tapeline.domain.instruments import binance_usdm_instrument
from tapeline.venues._binance import (
    MS,
    NOTIONAL_DECIMALS,
    AggTrade,
    BinanceSession,
    DepthSnapshot,
    DepthUpdate,
    RawTrade,
    SymbolFilter,
    batched_stream_urls,
    decode_rest,
    make_trade_parser,
    notional,
    number,
    tick_and_lot,
)
from tapeline.venues.base import Output, RestRequest

__all__ = [
    "CHANNEL_PATH", "MS", "NOTIONAL_DECIMALS", "VENUE", "AggTrade", "BinanceUsdmSession", "DepthSnapshot",
    "DepthUpdate", "ForceOrder", "MarkPriceUpdate", "RawTrade", "parse", "parse_exchange_info", "stream_urls",
]  # fmt: skip

VENUE = "binance-usdm"
WS_BASE_URL = "wss://fstream.binance.com"
REST_BASE_URL = "https://fapi.binance.com"
MAX_STREAMS_PER_CONNECTION = 200  # venue limit is 1024; stay well inside it
CHANNEL_PATH = {"aggTrade": "market", "markPrice": "market", "forceOrder": "market",
                "trade": "public", "depth": "public", "bookTicker": "public"}  # fmt: skip
CHANNEL_STREAM = {"depth": "depth@100ms", "markPrice": "markPrice@1s"}  # stream name when not the channel's
PERPETUAL_DELIVERY_MS = 4133404800000  # deliveryDate of every perpetual (2100-12-25)
FUTURE_CONTRACT_TYPES = frozenset({"CURRENT_MONTH", "NEXT_MONTH", "CURRENT_QUARTER", "NEXT_QUARTER",
                                   "CURRENT_QUARTER_DELIVERING", "NEXT_QUARTER_DELIVERING"})  # fmt: skip


# ----------------------------------------------------------------------------------------- wire structs


class ForceOrderOrder(msgspec.Struct, kw_only=True, gc=False):
    s: str
    S: str  # side of the liquidation ORDER: SELL closes a long
    o: str = ""  # order type (LIMIT)
    f: str = ""  # time in force (IOC)
    q: str  # original quantity
    p: str  # order price
    ap: str = "0"  # average fill price
    X: str = ""  # order status (FILLED)
    l: str = "0"  # noqa: E741 - last filled quantity
    z: str = "0"  # accumulated filled quantity
    T: int  # trade time, ms
    st: int = 1  # 1 USD-M, 2 COIN-M (seen in 2026 payloads)


class ForceOrder(msgspec.Struct, tag="forceOrder", tag_field="e", kw_only=True, gc=False):
    E: int
    o: ForceOrderOrder


class MarkPriceUpdate(msgspec.Struct, tag="markPriceUpdate", tag_field="e", kw_only=True, gc=False):
    E: int
    s: str
    p: str  # mark price
    i: str = ""  # index price (absent in 2019 payloads)
    r: str = ""  # funding rate; "" on delivery contracts
    T: int = 0  # next funding time, ms; 0 on delivery contracts


class OpenInterest(msgspec.Struct, gc=False):
    """GET /fapi/v1/openInterest?symbol=S"""

    symbol: str
    openInterest: str
    time: int = 0


class FuturesSymbol(msgspec.Struct, kw_only=True, gc=False):
    symbol: str
    pair: str = ""
    contractType: str = ""
    deliveryDate: int = 0
    status: str = ""
    baseAsset: str
    quoteAsset: str
    marginAsset: str = ""
    filters: list[SymbolFilter] = []


class ExchangeInfo(msgspec.Struct, gc=False):
    """GET /fapi/v1/exchangeInfo (only what Tapeline reads)."""

    symbols: list[FuturesSymbol]


WireEvent = AggTrade | RawTrade | DepthUpdate | ForceOrder | MarkPriceUpdate | list[MarkPriceUpdate]


class Envelope(msgspec.Struct, gc=False):
    data: WireEvent  # a list for !markPrice@arr


_exchange_info = msgspec.json.Decoder(ExchangeInfo)
_open_interest = msgspec.json.Decoder(OpenInterest)

parse = make_trade_parser(VENUE, binance_usdm_instrument)


def stream_urls(base_url: str, symbols: list[str], channels: list[str]) -> list[str]:
    """Combined-stream URLs, one per routed path and per batch of streams."""
    by_path: dict[str, list[str]] = {}
    for channel in channels:
        if channel not in CHANNEL_PATH:
            raise ValueError(f"unknown Binance USD-M channel {channel!r}; known: {sorted(CHANNEL_PATH)}")
        stream = CHANNEL_STREAM.get(channel, channel)
        by_path.setdefault(CHANNEL_PATH[channel], []).extend(f"{s.lower()}@{stream}" for s in symbols)
    return batched_stream_urls(base_url, by_path, MAX_STREAMS_PER_CONNECTION)


# -------------------------------------------------------------------------------------------- session


class BinanceUsdmSession(BinanceSession):
    """Binance USD-M: trades, local books, liquidations, mark/funding/open interest, instruments.

    `startup()` asks for exchangeInfo and open interest (calling it again refreshes both); `poll()` asks
    for open interest alone, for a caller that wants it more often (POLL_INTERVAL_S). Depth books resync
    themselves: their snapshot requests come back in `Output.requests`.
    """

    VENUE = VENUE
    WS_BASE_URL = WS_BASE_URL
    REST_BASE_URL = REST_BASE_URL
    CHANNELS = ("aggTrade", "trade", "depth", "forceOrder", "markPrice", "openInterest")
    # aggTrade, not also trade: both describe the same executions and would count volume twice
    DEFAULT_CHANNELS = ("aggTrade", "depth", "forceOrder", "markPrice", "openInterest")
    REST_CHANNELS = ("openInterest",)
    FUTURES = True
    DEPTH_PATH = "/fapi/v1/depth"
    INSTRUMENTS_PATH = "/fapi/v1/exchangeInfo"
    OPEN_INTEREST_PATH = "/fapi/v1/openInterest"
    WIRE_TYPE = WireEvent
    POLL_INTERVAL_S = 60.0
    _envelope = msgspec.json.Decoder(Envelope, strict=False)
    _bare = msgspec.json.Decoder(WireEvent, strict=False)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.marks: dict[str, float] = {}  # latest mark price per symbol, for open interest in USD

    def stream_urls(self, channels: list[str]) -> list[str]:
        return stream_urls(self.ws_base_url, self.symbols, channels)

    def default_instrument(self, symbol: str) -> str:
        return binance_usdm_instrument(symbol)

    def startup(self) -> Output:
        return super().startup().extend(self.poll())

    def poll(self) -> Output:
        """Periodic requests (open interest), every POLL_INTERVAL_S."""
        if "openInterest" not in self.channels:
            return Output()
        return Output(requests=[self._oi_request(s) for s in self.symbols])

    def _oi_request(self, symbol: str) -> RestRequest:
        return RestRequest(f"openInterest:{symbol}", f"{self.rest_base_url}{self.OPEN_INTEREST_PATH}?symbol={symbol}")

    def _request_for_other(self, path: str, symbol: str) -> RestRequest | None:
        return self._oi_request(symbol) if path.endswith(self.OPEN_INTEREST_PATH) and symbol else None

    # -- events other than trades and depth -------------------------------------------------------------

    def _other(self, data: object, recv_ts_ns: int) -> Output:
        kind = type(data)
        if kind is MarkPriceUpdate:
            return Output([self._ticker(data, recv_ts_ns)], [])
        if kind is ForceOrder:
            return Output([self._liquidation(data, recv_ts_ns)], [])
        if kind is list:
            return Output([self._ticker(m, recv_ts_ns) for m in data], [])
        return super()._other(data, recv_ts_ns)

    def _ticker(self, m: MarkPriceUpdate, recv_ts_ns: int) -> DerivTicker:
        mark = number(VENUE, "mark price", m.p)
        if mark <= 0:
            raise BadMessage(f"{VENUE}: mark price {m.p!r} must be positive")
        index = number(VENUE, "index price", m.i) if m.i else None
        funding = number(VENUE, "funding rate", m.r) if m.r and m.T else None  # delivery contracts: no funding
        self.marks[m.s] = mark
        return DerivTicker(
            VENUE, m.s, self.instrument(m.s), m.E * MS, recv_ts_ns,
            funding_rate=funding, next_funding_ts_ns=m.T * MS if m.T else None, mark_price=mark, index_price=index,
        )  # fmt: skip

    def _liquidation(self, fo: ForceOrder, recv_ts_ns: int) -> Liquidation:
        o = fo.o
        if o.st == 2:
            raise BadMessage(f"{VENUE}: COIN-M forceOrder for {o.s} (st=2, sized in contracts) on the USD-M session")
        if o.S not in ("SELL", "BUY"):
            raise BadMessage(f"{VENUE}: forceOrder side {o.S!r} is neither BUY nor SELL")
        filled, avg = number(VENUE, "filled quantity", o.z), number(VENUE, "average price", o.ap)
        qty = filled if filled > 0 else number(VENUE, "quantity", o.q)
        price = avg if avg > 0 else number(VENUE, "price", o.p)
        if not (qty > 0 and price > 0):
            raise BadMessage(f"{VENUE}: forceOrder quantity {o.z!r}/{o.q!r}, price {o.ap!r}/{o.p!r} must be positive")
        sell = o.S == "SELL"
        return Liquidation(
            VENUE, o.s, self.instrument(o.s), o.T * MS, recv_ts_ns,
            position_side="long" if sell else "short", order_side="sell" if sell else "buy",
            price=price, qty_base=qty, notional_quote=notional(price, qty),
        )  # fmt: skip

    # -- REST -------------------------------------------------------------------------------------------

    def _rest_other(self, kind: str, symbol: str, request: RestRequest, body: bytes | str, recv_ts_ns: int) -> Output:
        if kind == "openInterest":
            oi = decode_rest(VENUE, _open_interest, body, request)
            base = number(VENUE, "open interest", oi.openInterest)
            if base < 0:
                raise BadMessage(f"{VENUE}: open interest {oi.openInterest!r} is negative")
            mark = self.marks.get(oi.symbol)
            ticker = DerivTicker(
                VENUE, oi.symbol, self.instrument(oi.symbol), oi.time * MS or recv_ts_ns, recv_ts_ns,
                open_interest_base=base, open_interest_usd=notional(base, mark) if mark is not None else None,
            )  # fmt: skip
            return Output([ticker], [])
        if kind == "instruments":
            for instrument in parse_exchange_info(decode_rest(VENUE, _exchange_info, body, request)):
                self.instruments[instrument.symbol] = instrument
                self._ids[instrument.symbol] = instrument.instrument
            return Output()
        return super()._rest_other(kind, symbol, request, body, recv_ts_ns)


def parse_exchange_info(info: ExchangeInfo) -> list[Instrument]:
    """exchangeInfo symbols -> Instrument metadata (canonical ids from baseAsset/quoteAsset).

    Delivery contracts (contractType CURRENT_QUARTER etc., symbol BTCUSDT_250627) become BTC-USDT-250627
    with their deliveryDate as expiry; everything else (PERPETUAL, TRADIFI_PERPETUAL, ...) is a perpetual.
    """
    out = []
    for s in info.symbols:
        code = s.symbol.partition("_")[2]
        dated = 0 < s.deliveryDate < PERPETUAL_DELIVERY_MS
        future = s.contractType in FUTURE_CONTRACT_TYPES or (not s.contractType and code.isdigit() and dated)
        if future and not (len(code) == 6 and code.isdigit()):
            code = datetime.fromtimestamp(s.deliveryDate / 1000, UTC).strftime("%y%m%d")
        tick_size, lot_size = tick_and_lot(s.filters)
        out.append(
            Instrument(
                venue=VENUE,
                symbol=s.symbol,
                instrument=f"{s.baseAsset}-{s.quoteAsset}-{code if future else 'PERP'}",
                base=s.baseAsset,
                quote=s.quoteAsset,
                kind="future" if future else "perp",
                linear=True,  # USD-M: sized in the base asset, margined in the quote
                contract_value=1.0,
                tick_size=tick_size,
                lot_size=lot_size,
                expiry_ns=s.deliveryDate * MS if future and dated else None,
            )
        )
    return out
