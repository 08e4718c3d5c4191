"""Shortcuts for tests that need a venue's events without caring about the session around them."""

from __future__ import annotations

from collections.abc import Iterable

from tapeline.domain.events import Trade
from tapeline.io.capture import CaptureLine
from tapeline.venues.binance.session import BinanceUsdmSession


def usdm_trades(payload: bytes | str, recv_ts_ns: int | None = None) -> list[Trade]:
    """The trades of one Binance USD-M trade message, through the session the connector runs."""
    return BinanceUsdmSession([], ["aggTrade", "trade"]).on_ws(payload, recv_ts_ns).events  # type: ignore[return-value]


def usdm_capture_trades(lines: Iterable[CaptureLine]) -> list[Trade]:
    """The trades of a Binance USD-M trade capture, in order, through one session."""
    session = BinanceUsdmSession([], ["aggTrade", "trade"])
    return [t for line in lines for t in session.on_ws(line.raw, line.recv_ts_ns).events]  # type: ignore[misc]
