"""Cross-venue asset bars, cross-venue OBI and daily net flow (flow/assets.py): the rules, by hand.

The SQL reference over every venue's stored bars is in tests/unit/io/test_reference_sql.py.
"""

from __future__ import annotations

import random
from collections import Counter

import msgspec
import pytest
from click.testing import CliRunner

from tapeline.cli import asset_bars, main
from tapeline.domain.aggregates import AssetBar, Bar, ObiBar
from tapeline.flow.assets import AssetBarAggregator, AssetObiAggregator
from tests.support.data import VENUE_TRADE_CAPTURES, data_files

S = 1_000_000_000
M = 60 * S
DAY = 86_400 * S
HORIZON = 5 * M


def bar(venue: str, instrument: str, start: int, o: float, h: float, low: float, c: float, buy: float, sell: float,
        version: int = 1, interval: str = "1m", incomplete: bool = False, final: bool = True) -> Bar:  # fmt: skip
    vwap = (o + c) / 2
    return Bar(venue, instrument, interval, start, o, h, low, c, buy, sell, buy * vwap, sell * vwap, buy - sell,
               (buy - sell) * vwap, 2, 0.0, vwap, final=final, version=version, incomplete=incomplete)  # fmt: skip


def newest(rows: list[AssetBar]) -> dict[tuple[str, str, int], AssetBar]:
    out: dict[tuple[str, str, int], AssetBar] = {}
    for row in rows:
        key = (row.asset, row.kind, row.start_ns)
        assert key not in out or row.version > out[key].version, f"{key}: versions must grow"
        out[key] = row
    return out


def test_multiples_join_their_asset_in_asset_units() -> None:
    """Bybit 1000PEPE and Hyperliquid kPEPE quote a thousand PEPE: quantities x 1000, prices / 1000."""
    agg = AssetBarAggregator(["1m"], HORIZON)
    agg.add(bar("bybit-linear", "1000PEPE-USDT-PERP", 0, 0.010, 0.012, 0.009, 0.011, 300.0, 100.0), 0)
    agg.add(bar("hyperliquid", "kPEPE-USDC-PERP", 0, 0.0102, 0.0125, 0.0101, 0.0112, 50.0, 150.0), 1)
    agg.add(bar("binance-spot", "PEPE-USDT-SPOT", 0, 0.0000101, 0.0000119, 0.0000099, 0.0000110, 2e5, 1e5), 2)
    agg.flush()
    rows = newest(agg.drain())
    perp, spot, every = rows[("PEPE", "perp", 0)], rows[("PEPE", "spot", 0)], rows[("PEPE", "all", 0)]
    assert perp.buy_base == pytest.approx(350_000.0) and perp.sell_base == pytest.approx(250_000.0)
    assert perp.delta_base == pytest.approx(100_000.0)
    assert perp.high == pytest.approx(0.0000125) and perp.low == pytest.approx(0.000009)
    # open/close: the venue prices per PEPE weighted by the venues' volumes in PEPE (400k and 200k)
    assert perp.open == pytest.approx((0.000010 * 400_000 + 0.0000102 * 200_000) / 600_000)
    assert perp.close == pytest.approx((0.000011 * 400_000 + 0.0000112 * 200_000) / 600_000)
    assert perp.venues == ["bybit-linear", "hyperliquid"]
    assert perp.instruments == ["bybit-linear/1000PEPE-USDT-PERP", "hyperliquid/kPEPE-USDC-PERP"]
    assert spot.buy_base == 2e5 and spot.venues == ["binance-spot"]
    assert every.buy_base == pytest.approx(550_000.0) and every.trades == 6
    quote = sum(r.buy_quote + r.sell_quote for r in (perp, spot))
    assert every.vwap == pytest.approx(quote / (600_000 + 300_000))
    assert every.venues == ["binance-spot", "bybit-linear", "hyperliquid"]
    assert not every.incomplete and every.final


def test_cvd_runs_from_the_first_window_and_from_each_utc_day() -> None:
    agg = AssetBarAggregator(["1h"], HORIZON)
    starts = [DAY - 2 * 3600 * S, DAY - 3600 * S, DAY, DAY + 3600 * S]
    for i, start in enumerate(starts):
        agg.add(bar("okx", "BTC-USDT-PERP", start, 1, 1, 1, 1, 2.0 + i, 1.0, interval="1h"), i)
    agg.flush()
    rows = newest(agg.drain())
    deltas = [1.0, 2.0, 3.0, 4.0]
    assert [rows[("BTC", "perp", s)].cvd_base for s in starts] == [1.0, 3.0, 6.0, 10.0]
    assert [rows[("BTC", "perp", s)].cvd_daily_base for s in starts] == [1.0, 3.0, 3.0, 7.0]
    assert [rows[("BTC", "perp", s)].delta_base for s in starts] == deltas


def test_a_window_is_final_once_every_venue_passed_it() -> None:
    agg = AssetBarAggregator(["1m"], HORIZON)
    agg.add(bar("binance-usdm", "BTC-USDT-PERP", 0, 1, 1, 1, 1, 1.0, 0.0), 0, now_ns=1)
    agg.add(bar("okx", "BTC-USDT-PERP", 0, 1, 1, 1, 1, 1.0, 0.0), 1, now_ns=1)
    agg.add(bar("binance-usdm", "BTC-USDT-PERP", M, 1, 1, 1, 1, 1.0, 0.0), 2, now_ns=1)
    rows = newest(agg.drain(now_ns=1))
    assert rows[("BTC", "perp", 0)].final  # both venues delivered minute 0
    assert not rows[("BTC", "perp", M)].final  # okx has not passed minute 1: it may still come
    # okx had no trade in minute 1: its watermark says it is past it
    agg.add_watermark("okx", "BTC-USDT-PERP", 2 * M + 1, 3, now_ns=2)
    rows = newest(agg.drain(now_ns=2))
    assert rows[("BTC", "perp", M)].final and not rows[("BTC", "perp", M)].incomplete
    assert rows[("BTC", "perp", M)].venues == ["binance-usdm"]


def test_a_late_venue_is_listed_then_revises_the_window() -> None:
    agg = AssetBarAggregator(["1m"], HORIZON, settle_ns=5 * S)
    agg.add(bar("okx", "ETH-USDT-PERP", 0, 1, 1, 1, 1, 1.0, 0.0), 0, now_ns=0)
    agg.add(bar("bybit-linear", "ETH-USDT-PERP", 0, 1, 1, 1, 1, 1.0, 0.0), 1, now_ns=0)
    agg.drain(now_ns=0)
    agg.add(bar("okx", "ETH-USDT-PERP", M, 2, 2, 2, 2, 3.0, 0.0), 2, now_ns=10 * S)  # bybit is behind
    first = newest(agg.drain(now_ns=10 * S))[("ETH", "perp", M)]
    assert not first.final
    agg.settle(now_ns=14 * S)
    assert not agg.drain(now_ns=14 * S)  # not yet settle_ns since okx passed it
    agg.settle(now_ns=16 * S)
    settled = newest(agg.drain(now_ns=16 * S))[("ETH", "perp", M)]
    assert settled.final and settled.incomplete and settled.incomplete_venues == ["bybit-linear"]
    assert settled.version > first.version
    agg.add(bar("bybit-linear", "ETH-USDT-PERP", M, 2, 2, 2, 2, 1.0, 0.5), 3, now_ns=17 * S)
    revised = newest(agg.drain(now_ns=17 * S))[("ETH", "perp", M)]
    assert revised.final and not revised.incomplete and revised.incomplete_venues == []
    assert revised.buy_base == 4.0 and revised.version > settled.version
    assert revised.cvd_base == pytest.approx(2.0 + 3.5)


def test_a_corrected_venue_bar_revises_it_and_moves_later_cvd() -> None:
    agg = AssetBarAggregator(["1m"], HORIZON)
    for i in range(4):
        agg.add(bar("okx", "SOL-USDT-PERP", i * M, 1, 1, 1, 1, 1.0, 0.0, version=10 + i), i)
    agg.drain()
    agg.add(bar("okx", "SOL-USDT-PERP", M, 1, 1, 1, 1, 3.0, 0.0, version=20), 4)  # a late trade corrected it
    rows = newest(agg.drain())
    assert sorted(s for (_, k, s) in rows if k == "perp") == [M, 2 * M, 3 * M]  # it, and the later ones
    assert [rows[("SOL", "perp", s)].cvd_base for s in (M, 2 * M, 3 * M)] == [4.0, 5.0, 6.0]
    agg.add(bar("okx", "SOL-USDT-PERP", M, 1, 1, 1, 1, 1.0, 0.0, version=11), 5)  # an older version: no change
    assert agg.drain() == []


def test_rows_for_forgotten_windows_are_too_late() -> None:
    agg = AssetBarAggregator(["1m"], horizon_ns=2 * M)
    for i in range(10):
        agg.add(bar("okx", "BTC-USDT-PERP", i * M, 1, 1, 1, 1, 1.0, 0.0), i)
        agg.drain()
    assert not agg.add(bar("okx", "BTC-USDT-PERP", 2 * M, 1, 1, 1, 1, 1.0, 0.0, version=99), 10)
    assert agg.too_late == 1
    assert agg.add(bar("okx", "BTC-USDT-PERP", 8 * M, 1, 1, 1, 1, 2.0, 0.0, version=99), 11)


def test_open_venue_rows_are_not_inputs() -> None:
    agg = AssetBarAggregator(["1m"], HORIZON)
    agg.add(bar("okx", "BTC-USDT-PERP", 0, 1, 1, 1, 1, 1.0, 0.0, final=False), 0)
    agg.flush()
    assert agg.drain() == []


def test_daily_net_flow_per_exchange_at_the_cross_venue_close() -> None:
    agg = AssetBarAggregator(["1d"], HORIZON)
    agg.add(bar("binance-usdm", "BTC-USDT-PERP", 0, 100, 110, 90, 100, 5.0, 2.0, interval="1d"), 0)
    agg.add(bar("binance-spot", "BTC-USDT-SPOT", 0, 100, 110, 90, 104, 1.0, 3.0, interval="1d"), 1)
    agg.add(bar("hyperliquid", "BTC-USDC-PERP", 0, 100, 110, 90, 106, 2.0, 1.0, interval="1d"), 2)
    agg.flush()
    day = newest(agg.drain())[("BTC", "all", 0)]
    close = (100 * 7 + 104 * 4 + 106 * 3) / 14
    assert day.close == pytest.approx(close)
    metrics = {(m.metric): m for m in agg.drain_metrics() if m.final and m.version == day.version}
    assert metrics["FlowNetBNBNtv"].value == pytest.approx(3.0 - 2.0)  # usdm +3, spot -2
    assert metrics["FlowNetHYPNtv"].value == pytest.approx(1.0)
    assert metrics["FlowNetBNBUSD"].value == pytest.approx(round(1.0 * close, 2))
    assert metrics["FlowNetHYPUSD"].exchange == "HYP" and metrics["FlowNetHYPUSD"].day_ns == 0
    assert set(metrics) == {"FlowNetBNBNtv", "FlowNetBNBUSD", "FlowNetHYPNtv", "FlowNetHYPUSD"}


def _random_inputs(seed: int) -> list[Bar]:
    """Final venue bars of three venues, in arrival order, with corrections and a slow venue."""
    rng = random.Random(seed)
    rows: list[Bar] = []
    versions: dict[tuple[str, int], int] = {}
    for minute in range(40):
        for venue, instrument, lag in (("binance-usdm", "BTC-USDT-PERP", 0), ("okx", "BTC-USDT-SWAP", 1),
                                       ("bybit-spot", "BTC-USDT-SPOT", 2)):  # fmt: skip
            start = (minute - lag) * M
            if start < 0 or rng.random() < 0.2:
                continue  # no trades in that minute
            versions[(venue, start)] = versions.get((venue, start), 0) + rng.randint(1, 5)
            price = 100 + rng.uniform(-5, 5)
            rows.append(bar(venue, instrument.replace("SWAP", "PERP"), start, price, price + 1, price - 1,
                            price + rng.uniform(-1, 1), rng.uniform(0, 3), rng.uniform(0, 3),
                            version=versions[(venue, start)]))  # fmt: skip
            if rng.random() < 0.1 and start >= 2 * M:  # a correction of an earlier bar
                earlier = start - 2 * M
                versions[(venue, earlier)] = versions.get((venue, earlier), 0) + 10
                rows.append(bar(venue, instrument.replace("SWAP", "PERP"), earlier, 100, 101, 99, 100, 1, 2,
                                version=versions[(venue, earlier)]))  # fmt: skip
    return rows


@pytest.mark.parametrize("seed", range(5))
def test_restarts_continue_with_the_same_rows(seed: int) -> None:
    """A stage restarted from what it stored (its asset rows, the venue rows) ends with the same asset bars as
    one that never stopped, whatever the cut; inputs replayed after the restart change nothing."""
    inputs = _random_inputs(seed)
    whole = AssetBarAggregator(["1m"], HORIZON)
    emitted: list[AssetBar] = []
    for position, row in enumerate(inputs):
        whole.add(row, position)
        emitted.extend(whole.drain())
    whole.flush()
    expected = newest([*emitted, *whole.drain()])
    rng = random.Random(seed)
    cut = rng.randrange(1, len(inputs) - 1)
    first = AssetBarAggregator(["1m"], HORIZON)
    stored: list[AssetBar] = []
    for position, row in enumerate(inputs[:cut]):
        first.add(row, position)
        stored.extend(first.drain())
    restarted = AssetBarAggregator(["1m"], HORIZON)
    latest = list(newest(stored).values())
    restarted.restore(latest, inputs[:cut])
    out = list(stored)
    replay_from = max(0, cut - rng.randrange(1, 10))  # the committed offset lags the stored rows
    for position, row in enumerate(inputs[replay_from:], start=replay_from):
        restarted.add(row, position)
        out.extend(restarted.drain())
    restarted.flush()
    out.extend(restarted.drain())
    got = {}
    for row in sorted(out, key=lambda r: r.version):  # as a versioned sink keeps them
        got[(row.asset, row.kind, row.start_ns)] = row
    assert set(got) == set(expected)
    for key, row in expected.items():
        mine = got[key]
        assert (mine.buy_base, mine.sell_base, mine.cvd_base, mine.open, mine.close, mine.venues, mine.final) == (
            row.buy_base, row.sell_base, row.cvd_base, row.open, row.close, row.venues, row.final), key  # fmt: skip
        assert (mine.cmf, mine.mfi, mine.cvd_daily_base) == (row.cmf, row.mfi, row.cvd_daily_base), key


def _obi(venue: str, instrument: str, start: int, bid: float | None, ask: float | None, bid_last: float | None,
         ask_last: float | None, incomplete: bool = False) -> ObiBar:  # fmt: skip
    values = dict.fromkeys(
        [f"{m}_{s}" for m in ("top1", "top5", "top10", "top20", "bps10", "bps25", "bps50")
         for s in ("mean", "last", "min", "max")]
    )  # fmt: skip
    bands = {f"bps{b}_{side}_{stat}": value for b in (10, 25, 50)
             for side, stat, value in (("bid", "mean", bid), ("ask", "mean", ask), ("bid", "last", bid_last),
                                       ("ask", "last", ask_last))}  # fmt: skip
    return ObiBar(venue, instrument, "1m", start, **values, verified_ns=M, incomplete=incomplete, updates=5,
                  final=True, version=1, **bands)  # type: ignore[arg-type]  # fmt: skip


def test_cross_venue_obi_sums_band_quantities_in_asset_units() -> None:
    agg = AssetObiAggregator(["1m"], HORIZON)
    agg.add(_obi("bybit-linear", "1000PEPE-USDT-PERP", 0, 3.0, 1.0, 2.0, 2.0), 0)  # x 1000
    agg.add(_obi("okx", "PEPE-USDT-PERP", 0, 1000.0, 5000.0, 500.0, 1500.0), 1)
    agg.add(_obi("binance-usdm", "1000PEPE-USDT-PERP", 0, None, None, None, None, incomplete=True), 2)  # unverified
    agg.flush()
    (row,) = [r for r in agg.drain() if r.kind == "perp"]
    assert row.bps10_bid == pytest.approx(4000.0) and row.bps10_ask == pytest.approx(6000.0)
    assert row.bps10_mean == pytest.approx((4000 - 6000) / 10000)
    assert row.bps10_last == pytest.approx((2500 - 3500) / 6000)
    assert row.venues == ["binance-usdm", "bybit-linear", "okx"] and row.incomplete_venues == ["binance-usdm"]


ASSET_ROW_CONTRACT = {
    "asset", "kind", "interval", "start_ns", "buy_base", "sell_base", "buy_quote", "sell_quote", "delta_base",
    "delta_quote", "cvd_base", "vwap", "open", "high", "low", "close", "venues",
}  # fmt: skip


@pytest.mark.data
def test_cli_bars_by_asset_prints_the_asset_stage_rows() -> None:
    """`tapeline bars --by asset` over Bybit's linear and spot captures: the contract fields, the rows the
    aggregator gives for the venue bars the same command prints without --by, and CMF/MFI on venue rows."""
    files = [str(f) for p in (*VENUE_TRADE_CAPTURES["bybit-linear"], *VENUE_TRADE_CAPTURES["bybit-spot"])
             for f in data_files(p)]  # fmt: skip
    args = ["bars", "--interval", "1s", "--interval", "1m", "--lateness-ms", "0"]
    venue_out = CliRunner().invoke(main, [*args, *files])
    assert venue_out.exit_code == 0, venue_out.output
    venue_rows = [msgspec.json.decode(line, type=Bar) for line in venue_out.stdout.splitlines()]
    as_json = [msgspec.json.decode(line) for line in venue_out.stdout.splitlines()]
    assert all({"asset", "cmf", "mfi"} <= set(row) for row in as_json)
    assert {r.asset for r in venue_rows} == {"BTC", "ETH"}
    longest = max(Counter((r.instrument, r.interval) for r in venue_rows).values())
    assert longest < 21 or any(r.cmf is not None for r in venue_rows)  # values: tests/unit/flow/test_oscillators.py
    result = CliRunner().invoke(main, [*args, "--by", "asset", *files])
    assert result.exit_code == 0, result.output
    lines = [msgspec.json.decode(line) for line in result.stdout.splitlines()]
    assert all(set(line) >= ASSET_ROW_CONTRACT for line in lines) and lines
    assert {line["kind"] for line in lines} == {"perp", "spot", "all"}
    assert lines == [msgspec.to_builtins(r) for r in asset_bars(venue_rows, ["1s", "1m"], HORIZON)]
    both = [line for line in lines if line["kind"] == "all" and len(line["venues"]) == 2]
    assert both, "linear and spot trade in the same windows"
    for line in both:
        parts = [r for r in venue_rows if (r.asset, r.interval, r.start_ns) == (line["asset"], line["interval"],
                                                                                  line["start_ns"])]  # fmt: skip
        assert line["buy_base"] == pytest.approx(sum(r.buy_base for r in parts))
        assert line["delta_quote"] == pytest.approx(sum(r.delta_quote for r in parts), abs=1e-6)
