"""Binance public data-archive files (data.binance.vision) -> Trade events, for backfill.

Formats (binance-public-data README):
- aggTrades: agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker
  [,is_best_match]. USD-M files have a header row and ms times; spot files have no header, the extra
  is_best_match column, and µs times from 2025-01-01.
- trades: id,price,qty,quote_qty,time,is_buyer_maker[,is_best_match].
Files may be plain CSV or the published .zip (one CSV inside). The time unit is detected per row
(µs values are 1000x larger than any ms epoch), so mixed archives need no flag.
"""

from __future__ import annotations

import csv
import io
import math
import zipfile
from collections.abc import Iterator
from pathlib import Path

from tapeline.domain.errors import BadMessage
from tapeline.domain.events import Trade
from tapeline.domain.instruments import split_symbol
from tapeline.venues.binance.instruments import usdm_instrument

MARKETS = {"usdm": "binance-usdm", "spot": "binance-spot"}
KINDS = ("aggTrades", "trades")
_US_THRESHOLD = 10**14  # ms epochs stay below this until the year 5138; µs epochs are above since 1973


def _instrument(market: str, symbol: str) -> str:
    if market == "usdm":
        return usdm_instrument(symbol)
    base, quote = split_symbol(symbol)
    return f"{base}-{quote}-SPOT"


def _lines(path: Path) -> Iterator[str]:
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            (member,) = [n for n in archive.namelist() if n.endswith(".csv")]
            with archive.open(member) as fh:
                yield from io.TextIOWrapper(fh, encoding="utf-8")
    else:
        with path.open(encoding="utf-8") as fh:
            yield from fh


def read_trades(path: Path, market: str, kind: str, symbol: str) -> Iterator[Trade]:
    """Trades of one archive file; a malformed row raises BadMessage naming the file and row."""
    if market not in MARKETS or kind not in KINDS:
        raise ValueError(f"market must be one of {list(MARKETS)} and kind one of {list(KINDS)}")
    venue, instrument = MARKETS[market], _instrument(market, symbol)
    # aggTrades: id, price, qty, first, last, time, maker; trades: id, price, qty, quote_qty, time, maker
    time_col, maker_col = (5, 6) if kind == "aggTrades" else (4, 5)
    for number, row in enumerate(csv.reader(_lines(path)), 1):
        if not row or not row[0].strip().isdigit():
            continue  # header row
        try:
            price, qty, ts = float(row[1]), float(row[2]), int(row[time_col])
            buyer_is_maker = row[maker_col].strip().lower() == "true"
        except (IndexError, ValueError) as exc:
            raise BadMessage(f"{path}:{number}: malformed {kind} row {row!r}: {exc}") from None
        if not (math.isfinite(price) and math.isfinite(qty)) or price <= 0 or qty <= 0:
            raise BadMessage(f"{path}:{number}: price and quantity must be positive: {row!r}")
        ts_ns = ts * 1_000 if ts >= _US_THRESHOLD else ts * 1_000_000
        yield Trade(
            venue=venue,
            symbol=symbol,
            instrument=instrument,
            ts_ns=ts_ns,
            recv_ts_ns=ts_ns,  # archives have no receive time
            price=price,
            qty_base=qty,
            notional_quote=round(price * qty, 10),
            side="sell" if buyer_is_maker else "buy",
            trade_id=row[0].strip(),
        )
