"""Venue modules: one package per venue, each with the same files over `base.py` and `common.py`.

    venues/<venue>/wire.py         structs mirroring the venue's JSON, and their decoders
    venues/<venue>/book.py         the venue's book sequencing rule, as a `VenueBook`
    venues/<venue>/instruments.py  canonical ids from symbols, instrument metadata answers
    venues/<venue>/session.py      the sans-I/O `VenueSession`: endpoints, subscriptions, messages -> events

Binance (USD-M and spot) and Bybit (linear and spot) serve two markets from one package: same JSON.
Pure: no I/O, no settings.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tapeline.venues.base import VenueSession

# Imported on first use, so a connector loads only its own venue.
SESSIONS = {
    "binance-usdm": "tapeline.venues.binance.session:BinanceUsdmSession",
    "binance-spot": "tapeline.venues.binance.session:BinanceSpotSession",
    "bybit-linear": "tapeline.venues.bybit.session:BybitLinearSession",
    "bybit-spot": "tapeline.venues.bybit.session:BybitSpotSession",
    "okx": "tapeline.venues.okx.session:OkxSession",
    "hyperliquid": "tapeline.venues.hyperliquid.session:HyperliquidSession",
}

# How a capture file names its venue: a directory in its path, or the host it was recorded from.
_CAPTURE_HINTS = {
    "binance_usdm": "binance-usdm",
    "fstream.binance.com": "binance-usdm",
    "binance_spot": "binance-spot",
    "stream.binance.com": "binance-spot",
    "okx": "okx",
    "okex": "okx",
    "hyperliquid": "hyperliquid",
}


def session_class(venue: str) -> type[VenueSession[Any]]:
    try:
        module, name = SESSIONS[venue].split(":")
    except KeyError:
        raise ValueError(f"unknown venue {venue!r}; supported: {', '.join(SESSIONS)}") from None
    cls: type[VenueSession[Any]] = getattr(importlib.import_module(module), name)
    return cls


def make_session(
    venue: str,
    symbols: Sequence[str] = (),
    channels: Sequence[str] | None = None,
    ws_base_url: str | None = None,
    rest_base_url: str | None = None,
) -> VenueSession[Any]:
    cls = session_class(venue)
    if channels is None:
        channels = cls.DEFAULT_CHANNELS or cls.CHANNELS
    return cls(symbols, list(channels), ws_base_url, rest_base_url)


def detect_venue(path: Path, conn: str | None = None) -> str | None:
    """The venue of a capture file, from its path or its recorded connection URL."""
    haystack = f"{path.resolve()} {conn or ''}".lower()
    if "bybit" in haystack:
        return "bybit-spot" if "spot" in haystack else "bybit-linear"
    return next((venue for hint, venue in _CAPTURE_HINTS.items() if hint in haystack), None)
