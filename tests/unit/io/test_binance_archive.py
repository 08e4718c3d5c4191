"""Binance data-archive CSV import: both markets, both kinds, header handling, time units, bad rows."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from tapeline.domain.errors import BadMessage
from tapeline.io.binance_archive import read_trades

USDM_AGG = """agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker
2081196420,61800.30,0.006,5266583935,5266583935,1723161256322,false
2081196421,61800.20,1.250,5266583936,5266583940,1723161256344,true
"""
# Spot: no header, extra is_best_match, microseconds from 2025-01-01.
SPOT_AGG = """3379423081,97000.01000000,0.00120000,4300000001,4300000002,1735689600123456,True,True
3379423082,96999.99000000,0.50000000,4300000003,4300000003,1735689600223456,False,True
"""
USDM_TRADES = """id,price,qty,quote_qty,time,is_buyer_maker
5266583935,61800.30,0.006,370.8018,1723161256322,false
"""


def test_usdm_aggtrades(tmp_path: Path) -> None:
    path = tmp_path / "BTCUSDT-aggTrades-2024-08-08.csv"
    path.write_text(USDM_AGG)
    first, second = read_trades(path, "usdm", "aggTrades", "BTCUSDT")
    assert (first.venue, first.instrument, first.side, first.trade_id) == (
        "binance-usdm",
        "BTC-USDT-PERP",
        "buy",
        "2081196420",
    )
    assert (first.ts_ns, first.price, first.qty_base, first.notional_quote) == (
        1723161256322_000000,
        61800.3,
        0.006,
        370.8018,
    )
    assert second.side == "sell"  # the buyer was the maker: the aggressor sold


def test_spot_aggtrades_from_zip_in_microseconds(tmp_path: Path) -> None:
    path = tmp_path / "BTCUSDT-aggTrades-2025-01-01.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("BTCUSDT-aggTrades-2025-01-01.csv", SPOT_AGG)
    trades = list(read_trades(path, "spot", "aggTrades", "BTCUSDT"))
    assert [t.instrument for t in trades] == ["BTC-USDT-SPOT"] * 2
    assert [t.ts_ns for t in trades] == [1735689600123456_000, 1735689600223456_000]
    assert [t.side for t in trades] == ["sell", "buy"]


def test_usdm_trades_columns(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(USDM_TRADES)
    (trade,) = read_trades(path, "usdm", "trades", "BTCUSDT")
    assert (trade.trade_id, trade.ts_ns, trade.side, trade.qty_base) == (
        "5266583935",
        1723161256322_000000,
        "buy",
        0.006,
    )


@pytest.mark.parametrize("row", ["1,abc,1,1,1,1723161256322,false", "1,-5,1,1,1,1723161256322,false", "1,5,1"])
def test_bad_rows_name_file_and_row(tmp_path: Path, row: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(USDM_AGG + row + "\n")
    with pytest.raises(BadMessage, match=r"bad\.csv:4"):
        list(read_trades(path, "usdm", "aggTrades", "BTCUSDT"))
