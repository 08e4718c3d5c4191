"""Venue modules. Each has the same shape: VENUE, WS_BASE_URL, stream_urls(), parse()."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from tapeline.venues import binance_usdm

VENUE_MODULES: dict[str, ModuleType] = {binance_usdm.VENUE: binance_usdm}

# How a capture file names its venue: a directory in its path, or the host it was recorded from.
_CAPTURE_HINTS = {"binance_usdm": binance_usdm.VENUE, "fstream.binance.com": binance_usdm.VENUE}


def venue_module(name: str) -> ModuleType:
    try:
        return VENUE_MODULES[name]
    except KeyError:
        raise ValueError(f"unknown venue {name!r}; supported: {', '.join(sorted(VENUE_MODULES))}") from None


def detect_venue(path: Path, conn: str | None = None) -> str | None:
    """The venue of a capture file, from its path or its recorded connection URL."""
    haystack = f"{path.resolve()} {conn or ''}"
    return next((venue for hint, venue in _CAPTURE_HINTS.items() if hint in haystack), None)
