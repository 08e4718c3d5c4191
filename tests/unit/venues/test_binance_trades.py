"""Binance USD-M parser against the real captures, checked by an independent reading of the raw JSON."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from tapeline.domain.errors import BadMessage
from tapeline.io.capture import read_capture
from tapeline.venues.binance.session import usdm_stream_urls
from tests.support.data import data_files
from tests.support.venues import usdm_trades


def _independent(raw: str) -> dict:
    msg = json.loads(raw)
    data = msg.get("data", msg)
    return data


@pytest.mark.parametrize("pattern", ["binance_usdm/aggTrade/*.jsonl", "binance_usdm/trade/*"])
def test_trades_match_raw_messages(pattern: str) -> None:
    for path in data_files(pattern):
        lines = list(read_capture(path))
        expected = {"n": 0, "buy": Decimal(0), "sell": Decimal(0), "buy_quote": Decimal(0), "sell_quote": Decimal(0)}
        got = dict.fromkeys(expected, Decimal(0))
        got["n"] = 0
        for line in lines:
            data = _independent(line.raw)
            side = "sell" if data["m"] else "buy"  # m: buyer is maker -> the taker sold
            qty, price = Decimal(data["q"]), Decimal(data["p"])
            expected["n"] += 1
            expected[side] += qty
            expected[f"{side}_quote"] += qty * price
            (trade,) = usdm_trades(line.raw, line.recv_ts_ns)
            assert trade.ts_ns == data["T"] * 1_000_000
            assert trade.symbol == data["s"]
            assert trade.side == side
            got["n"] += 1
            got[trade.side] += Decimal(repr(trade.qty_base))
            got[f"{trade.side}_quote"] += Decimal(repr(trade.notional_quote))
        assert got["n"] == expected["n"] == len(lines), path
        assert got["buy"] == expected["buy"] and got["sell"] == expected["sell"], path
        # notional is price x qty rounded to 10 decimals per trade
        assert abs(got["buy_quote"] - expected["buy_quote"]) <= Decimal("1e-9") * expected["n"], path
        assert abs(got["sell_quote"] - expected["sell_quote"]) <= Decimal("1e-9") * expected["n"], path


def test_known_message_fields() -> None:
    raw = (
        '{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":1791283227690,"a":3476465318,"s":"BTCUSDT",'
        '"p":"86000.00","q":"4.577","nq":"4.571","f":8149533714,"l":8149533773,"T":1791283227688,"m":true,"st":1}}'
    )
    (trade,) = usdm_trades(raw, 5)
    assert (trade.venue, trade.instrument, trade.side, trade.trade_id) == (
        "binance-usdm",
        "BTC-USDT-PERP",
        "sell",
        "3476465318",
    )
    assert (trade.price, trade.qty_base, trade.notional_quote) == (86000.0, 4.577, 393622.0)
    assert (trade.ts_ns, trade.recv_ts_ns) == (1791283227688_000000, 5)


def test_delivery_contract_instrument() -> None:
    raw = '{"e":"aggTrade","E":1,"a":1,"s":"BTCUSDT_210625","p":"1","q":"1","f":1,"l":1,"T":1,"m":false}'
    assert usdm_trades(raw)[0].instrument == "BTC-USDT-210625"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("not json", "invalid JSON"),
        ('{"stream":"btcusdt@depth","data":{"e":"depthUpdate","E":1}}', "unsupported"),
        ('{"e":"aggTrade","E":1,"s":"BTCUSDT","p":"NaN","q":"1","T":1,"m":true}', "price 'NaN' is not finite"),
        ('{"e":"aggTrade","E":1,"s":"BTCUSDT","p":"-1","q":"1","T":1,"m":true}', "price '-1' must be > 0"),
        ('{"e":"aggTrade","E":1,"s":"BTCUSDT","p":"1","q":"0","T":1,"m":true}', "quantity '0' must be > 0"),
        ('{"e":"aggTrade","E":1,"s":"BTCUSDT","p":"abc","q":"1","T":1,"m":true}', "price 'abc' is not a number"),
        ('{"e":"aggTrade","E":1,"s":"BTCUSDT","q":"1","T":1,"m":true}', "malformed"),
    ],
)
def test_bad_messages_say_why(raw: str, reason: str) -> None:
    with pytest.raises(BadMessage, match=reason):
        usdm_trades(raw)


def test_stream_urls_route_by_path() -> None:
    urls = usdm_stream_urls("wss://fstream.binance.com", ["BTCUSDT", "ETHUSDT"], ["aggTrade", "trade"])
    assert urls == [
        "wss://fstream.binance.com/market/stream?streams=btcusdt@aggTrade/ethusdt@aggTrade",
        "wss://fstream.binance.com/public/stream?streams=btcusdt@trade/ethusdt@trade",
    ]
    with pytest.raises(ValueError, match="unknown Binance USD-M channel"):
        usdm_stream_urls("wss://x", ["BTCUSDT"], ["klines"])
