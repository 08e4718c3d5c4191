"""OI/price regimes over a window of bars, from derivatives bars; constructed cases and Bybit's real tickers."""

from __future__ import annotations

import pytest

from tapeline.domain.intervals import INTERVAL_NS
from tapeline.signals.model import DerivPoint
from tests.support.signals import (
    Expected,
    assert_matches,
    bar_index,
    by_series,
    capture_bars,
    engine,
    fired,
    in_start_order,
    make_bar,
    series_of_bar,
)
from tests.unit.signals.test_funding import deriv

W = 3  # a short window keeps the cases readable


def feed(closes: list[float], ois: list[float | None], **params: float) -> list:
    eng = engine("oi_regime", {"window": W, **params})
    out = []
    for i, (close, oi) in enumerate(zip(closes, ois, strict=True)):
        out += eng.add(make_bar(i, high=close + 1, low=close - 1, close=close))
        out += eng.add(deriv(i, 0.0001, oi))
    return out


@pytest.mark.parametrize(
    ("price_step", "oi_step", "kind", "direction"),
    [(1, 10, "oi_new_longs", "bullish"), (1, -10, "oi_short_covering", "bearish"),
     (-1, 10, "oi_new_shorts", "bearish"), (-1, -10, "oi_long_liquidation", "bullish")],
)  # fmt: skip
def test_each_regime_fires_when_entered(price_step: float, oi_step: float, kind: str, direction: str) -> None:
    closes = [100.0 + price_step * max(0, i - 1) for i in range(8)]  # flat, then 1% a bar
    ois = [1000.0 + oi_step * max(0, i - 1) for i in range(8)]
    out = feed(closes, ois)
    assert fired(out) == [(kind, direction, 3)]  # bar 3: window 0..3 moved 2 steps, beyond 0.5% both
    assert out[0].detail["price_change"] == pytest.approx(closes[3] / closes[0] - 1)
    assert out[0].detail["oi_change"] == pytest.approx(ois[3] / ois[0] - 1)  # and it holds on without firing again


def test_moves_below_the_threshold_or_without_oi_do_not_fire() -> None:
    closes = [100.0 + 0.1 * i for i in range(8)]  # 0.3% over the window
    assert feed(closes, [1000.0 + 10 * i for i in range(8)]) == []
    assert feed([100.0 + i for i in range(8)], [None] * 8) == []
    # OI missing at the window's far end, then known: the regime is entered once both ends are known
    out = feed([100.0 + i for i in range(8)], [None, None, 1000.0, 1010.0, 1020.0, 1030.0, 1040.0, 1050.0])
    assert fired(out) == [("oi_new_longs", "bullish", 5)]


def test_a_regime_change_fires_again() -> None:
    closes = [100, 101, 102, 103, 104, 105, 106, 107, 108, 109]
    ois = [1000, 1010, 1020, 1030, 1040, 1030, 1020, 1010, 1000, 990]
    kinds = [k for k, _d, _i in fired(feed([float(c) for c in closes], [float(o) for o in ois]))]
    assert kinds == ["oi_new_longs", "oi_short_covering"]


def test_the_derivs_side_rows_reach_the_detector() -> None:
    assert DerivPoint(0.0001, 1.0, 1.0, 1.0).funding_interval_h == 8.0


def test_just_below_the_threshold_and_too_little_history_do_not_fire() -> None:
    # Over the window: price +0.499%, OI +1%: the price change is not beyond 0.5%.
    closes, ois = [100.0] * 4 + [100.499] * 4, [1000.0] * 4 + [1010.0] * 4
    assert feed(closes, ois) == []
    assert fired(feed([100.0] * 4 + [100.51] * 4, ois)) == [("oi_new_longs", "bullish", 4)]  # 0.51%: fires
    assert feed([100.0, 100.0, 100.0], [1000.0, 1000.0, 1100.0]) == []  # 3 bars: no bar has a window behind it


def test_derivatives_rows_after_their_bars_publish_then_a_correction_revises_and_withdraws() -> None:
    eng = engine("oi_regime", {"window": W})
    closes = [100.0 + max(0, i - 1) for i in range(6)]
    for i, close in enumerate(closes):
        assert eng.add(make_bar(i, high=close + 1, low=close - 1, close=close)) == []  # no rows yet
    out = []
    for i in range(6):
        out += eng.add(deriv(i, 0.0001, 1000.0 + 10 * max(0, i - 1)))
    [sig] = out  # the row of bar 3 arrives after bar 3: the engine evaluates bar 3 (and what reads it) again
    assert fired(out) == [("oi_new_longs", "bullish", 3)]
    [revised] = eng.add(deriv(3, 0.0001, 1030.0))  # bar 3's OI corrected upwards: the same regime, new numbers
    assert (revised.signal_id, revised.version, revised.status) == (sig.signal_id, 2, "revised")
    assert revised.detail["oi_change"] == pytest.approx(0.03)
    out = eng.add(deriv(3, 0.0001, 1001.0))  # corrected to +0.1%: no regime at bar 3, so bar 4 enters it
    assert sorted((s.status, s.version, bar_index(s)) for s in out) == [("active", 1, 4), ("withdrawn", 3, 3)]


@pytest.mark.data
@pytest.mark.parametrize("window", [1, 2, 3])
def test_real_bybit_tickers_and_trades_match_the_definition(window: int) -> None:
    from tests.support.derivs import bybit_linear_tickers, run_derivs

    bars = [b for b in capture_bars("bybit-linear")[0] if b.interval == "1s"]
    rows = [r for r in run_derivs(bybit_linear_tickers(), ["1s"], 0) if r.final]
    # A ~44 s capture: BTC's price and OI move by 1e-6 to 1e-4 over a few seconds, so the threshold is lowered
    # from 0.5% to 1e-6 and the window from 15 bars to 1-3 (ETH trades only in windows without a ticker row).
    threshold = 1e-6
    out = engine("oi_regime", {"window": window, "threshold": threshold}, ["1s"]).run(in_start_order(bars, rows))
    expected: Expected = {}
    oi = {(r.instrument, r.start_ns): r.oi_close for r in rows}
    for series in by_series(bars).values():

        def regime(j: int, series: list = series) -> tuple[str, float, float] | None:
            if j < window or oi.get((series[j].instrument, series[j].start_ns)) is None:
                return None
            then = oi.get((series[j].instrument, series[j - window].start_ns))
            if not then:
                return None
            price = series[j].close / series[j - window].close - 1
            change = oi[(series[j].instrument, series[j].start_ns)] / then - 1
            if abs(price) < threshold or abs(change) < threshold:
                return None
            names = {(True, True): "oi_new_longs", (True, False): "oi_short_covering",
                     (False, True): "oi_new_shorts", (False, False): "oi_long_liquidation"}  # fmt: skip
            name = names[(price > 0, change > 0)]
            return name, price, change

        for i in range(len(series)):
            now = regime(i)
            if now is None or (regime(i - 1) or ("",))[0] == now[0]:
                continue
            direction = "bullish" if now[0] in ("oi_new_longs", "oi_long_liquidation") else "bearish"
            key = (series_of_bar(series[i]), now[0], direction, series[i].start_ns + INTERVAL_NS["1s"])
            expected[key] = (min(abs(now[1]), abs(now[2])) / threshold, {"price_change": now[1], "oi_change": now[2]})
    assert assert_matches(out, expected) > 0
