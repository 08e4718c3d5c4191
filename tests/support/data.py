"""Recorded market data in ../shared/data (never copied into the project)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tapeline.domain.errors import BadMessage
from tapeline.domain.events import Trade
from tapeline.io.capture import drive, merge_tagged
from tapeline.venues import make_session

REPO_ROOT = Path(__file__).resolve().parents[2]  # the checkout
DATA_DIR = REPO_ROOT.parent / "shared" / "data"


def data_files(pattern: str) -> list[Path]:
    """Files under ../shared/data matching `pattern`; skips the test with the reason when absent."""
    if not DATA_DIR.is_dir():
        pytest.skip(f"recorded market data not found at {DATA_DIR} (clone ../shared beside the project)")
    files = sorted(DATA_DIR.glob(pattern))
    if not files:
        pytest.skip(f"no files match {pattern} under {DATA_DIR}")
    return files


VENUE_TRADE_CAPTURES = {  # every venue's trade captures (OKX's with its instruments, for contract values)
    "binance-usdm": ["binance_usdm/aggTrade/cryptofeed_*.jsonl", "binance_usdm/trade/hftbacktest_*.gz"],
    "bybit-linear": ["bybit_v5/publicTrade/cryptofeed_v3_*linear.jsonl"],
    "bybit-spot": ["bybit_v5/publicTrade/cryptofeed_v3_*spot.jsonl"],
    "okx": ["okx_v5/rest_instruments/cryptofeed_*.jsonl", "okx_v5/trades/cryptofeed_*.jsonl"],
    "hyperliquid": ["hyperliquid/trades/hftbacktest_*.jsonl"],
}


def venue_trades(venue: str) -> list[Trade]:
    """The normalized trades of a venue's captures, merged in receive order (skips when absent)."""
    files = [f for pattern in VENUE_TRADE_CAPTURES[venue] for f in data_files(pattern)]
    session = make_session(venue)
    trades = []
    for _, line in merge_tagged(files):
        try:
            trades += [e for e in drive(session, line).events if isinstance(e, Trade)]
        except BadMessage:  # e.g. an OKX option trade: out of scope, not a trade of ours
            continue
    return trades
