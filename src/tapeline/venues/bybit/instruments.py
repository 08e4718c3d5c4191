"""Bybit instrument ids and metadata: canonical ids from symbols, and the instruments-info answer.

Inverse contracts are out of scope: their sizes are USD contracts, so linear symbols that cannot be proven
base-sized (a quote other than USDT/USDC) are refused rather than mis-scaled.
"""

from __future__ import annotations

from datetime import UTC, datetime

from tapeline.domain.errors import BadMessage
from tapeline.domain.events import Instrument
from tapeline.domain.instruments import split_symbol
from tapeline.venues.bybit.wire import InstrumentInfo
from tapeline.venues.common import MS, listing, number, step_size

LINEAR, SPOT = "bybit-linear", "bybit-spot"
LINEAR_QUOTES = ("USDT", "USDC")  # linear contracts are sized in base coin; anything else may be inverse
# Bybit spot quote coins (2026 instruments answer), longest first: BTCRLUSD is BTC/RLUSD, USDTUSD is USDT/USD.
SPOT_QUOTES = ("RLUSD", "XUSD", "USDT", "USDC", "USDE", "USD1", "EUR", "BTC", "BRL", "GBP", "AED", "PLN", "TRY",
               "USD", "ETH", "SOL")  # fmt: skip
MONTHS = {m: i for i, m in enumerate(("JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                      "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1)}  # fmt: skip


def _expiry_code(ddmmmyy: str) -> str:
    """14AUG26 -> 260814 (the symbol suffix of Bybit dated futures)."""
    month = MONTHS.get(ddmmmyy[2:5])
    if len(ddmmmyy) != 7 or month is None or not (ddmmmyy[:2] + ddmmmyy[5:]).isdigit():
        raise BadMessage(f"bybit: cannot read the expiry {ddmmmyy!r}")
    return f"{ddmmmyy[5:]}{month:02d}{ddmmmyy[:2]}"


def linear_instrument(symbol: str) -> str:
    """Canonical id of a linear symbol without metadata: BTCUSDT -> BTC-USDT-PERP, BTCPERP -> BTC-USDC-PERP,
    BTCUSDT-14AUG26 -> BTC-USDT-260814, BTC-14AUG26 (USDC futures) -> BTC-USDC-260814.

    A quote other than USDT/USDC (e.g. BTCUSD) is refused: it would be an inverse contract sized in USD.
    """
    pair, _, expiry = symbol.partition("-")
    if not expiry and pair.endswith("PERP") and len(pair) > 4:
        return f"{pair[:-4]}-USDC-PERP"
    try:
        base, quote = split_symbol(pair)
    except BadMessage:
        if not expiry:
            raise BadMessage(f"bybit-linear: cannot split {symbol!r} into base and quote") from None
        base, quote = pair, "USDC"  # USDC futures are named BASE-DDMMMYY
    if quote not in LINEAR_QUOTES:
        raise BadMessage(f"bybit-linear: {symbol!r} is not a USDT/USDC linear contract (inverse is out of scope)")
    return f"{base}-{quote}-{_expiry_code(expiry) if expiry else 'PERP'}"


def spot_instrument(symbol: str) -> str:
    """BTCUSDT -> BTC-USDT-SPOT from the quote suffix; the instruments answer is authoritative when loaded."""
    for quote_coin in SPOT_QUOTES:
        if symbol.endswith(quote_coin) and len(symbol) > len(quote_coin):
            return f"{symbol[: -len(quote_coin)]}-{quote_coin}-SPOT"
    raise BadMessage(f"bybit-spot: cannot split {symbol!r} into base and quote (no instrument metadata)")


def linear_metadata(info: InstrumentInfo) -> Instrument | None:
    """A linear instruments row -> Instrument; None for contracts out of scope (inverse, unknown types)."""
    where = f"{LINEAR}: instrument {info.symbol}"
    if info.contractType == "LinearPerpetual":
        kind, suffix, expiry_ns = "perp", "PERP", None
    elif info.contractType == "LinearFutures":
        delivery_ms = int(number(info.deliveryTime, "deliveryTime", where, at_least=0))
        kind, suffix, expiry_ns = "future", _yymmdd(delivery_ms), delivery_ms * MS
    else:
        return None
    if info.quoteCoin not in LINEAR_QUOTES:
        return None
    return listing(LINEAR, info.symbol, info.baseCoin, info.quoteCoin, kind, suffix, linear=True, contract_value=1.0,
                   tick_size=step_size(info.priceFilter.tickSize, "tickSize", where),  # sizes are base coin
                   lot_size=step_size(info.lotSizeFilter.qtyStep, "qtyStep", where), expiry_ns=expiry_ns)  # fmt: skip


def spot_metadata(info: InstrumentInfo) -> Instrument:
    """A spot instruments row -> Instrument (spot has no qtyStep: the lot is basePrecision)."""
    where = f"{SPOT}: instrument {info.symbol}"
    return listing(SPOT, info.symbol, info.baseCoin, info.quoteCoin, "spot", "SPOT",
                   tick_size=step_size(info.priceFilter.tickSize, "tickSize", where),
                   lot_size=step_size(info.lotSizeFilter.basePrecision, "basePrecision", where))  # fmt: skip


def _yymmdd(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%y%m%d")
