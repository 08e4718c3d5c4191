"""Canonical assets: listed multiples (1000PEPE, kPEPE, 1MBABYDOGE) join their asset; other names stay."""

from __future__ import annotations

import json

import pytest

from tapeline.domain.assets import AssetOf, asset_of, asset_of_instrument, market_kind
from tapeline.io.capture import read_capture
from tests.support.data import data_files


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ("BTC", AssetOf("BTC", 1.0)),
        ("1000PEPE", AssetOf("PEPE", 1_000.0)),  # Binance, Bybit
        ("kPEPE", AssetOf("PEPE", 1_000.0)),  # Hyperliquid
        ("1000000BABYDOGE", AssetOf("BABYDOGE", 1_000_000.0)),  # Bybit
        ("1MBABYDOGE", AssetOf("BABYDOGE", 1_000_000.0)),  # Binance
        ("10000SATS", AssetOf("SATS", 10_000.0)),
        ("1INCH", AssetOf("1INCH", 1.0)),  # an asset whose name starts with a digit, not a multiple
        ("0G", AssetOf("0G", 1.0)),
        ("1000", AssetOf("1000", 1.0)),  # nothing after the prefix: not a multiple
        ("k", AssetOf("k", 1.0)),
        ("kas", AssetOf("kas", 1.0)),  # the Hyperliquid prefix is followed by an upper-case coin
    ],
)
def test_listed_bases_map_to_their_asset(base: str, expected: AssetOf) -> None:
    assert asset_of(base) == expected


def test_instrument_ids_and_market_kinds() -> None:
    assert asset_of_instrument("1000PEPE-USDT-PERP") == ("PEPE", 1_000.0)
    assert asset_of_instrument("kPEPE-USDC-PERP") == ("PEPE", 1_000.0)
    assert asset_of_instrument("BTC-USD-PERP") == ("BTC", 1.0)  # OKX inverse: the base is the asset already
    assert [market_kind(i) for i in ("BTC-USDT-SPOT", "BTC-USDT-PERP", "BTC-USDT-260925")] == ["spot", "perp", "perp"]


def test_every_multiple_listed_by_bybit_maps_to_an_asset_its_spot_market_also_lists() -> None:
    """Bybit's real instruments answer: each prefixed linear base is a spot coin once the prefix is taken off,
    wherever Bybit lists that coin on spot."""
    answers = {}
    for path in data_files("bybit_v5/rest_instruments/*.jsonl"):
        for line in read_capture(path):
            result = json.loads(line.raw)["result"]
            answers[result["category"]] = {item["baseCoin"] for item in result["list"]}
    multiples = {base for base in answers["linear"] if asset_of(base).multiplier != 1.0}
    assert {"1000PEPE", "1000BONK", "1000000MOG", "10000SATS"} <= multiples
    on_spot = {base: asset_of(base).asset for base in multiples if asset_of(base).asset in answers["spot"]}
    assert on_spot["1000PEPE"] == "PEPE" and on_spot["1000BONK"] == "BONK"
    plain = answers["linear"] - multiples
    assert {"1INCH", "0G", "BTC"} <= plain and all(asset_of(base).asset == base for base in plain)
