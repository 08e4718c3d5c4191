"""Liquidation spikes and sweep-and-reclaim, from liquidation bars: constructed series."""

from __future__ import annotations

import pytest

from tapeline.domain.aggregates import LiquidationBar
from tests.support.signals import MINUTE, T0, engine, fired, make_bar


def liq(i: int, long_usd: float, short_usd: float = 0.0) -> LiquidationBar:
    return LiquidationBar("binance-usdm", "BTC-USDT-PERP", "1m", T0 + i * MINUTE, long_usd / 100, short_usd / 100,
                          long_usd, short_usd, int(long_usd > 0), int(short_usd > 0), final=True)  # fmt: skip


def feed(bars: list, liqs: dict[int, LiquidationBar], **params: float) -> list:
    eng = engine("liquidations", params)
    out = []
    for i, bar in enumerate(bars):
        if i in liqs:
            out += eng.add(liqs[i])
        out += eng.add(bar)
    return out


def spikes(out: list) -> list:
    return [f for f in fired(out) if f[0] == "liquidation_spike"]


@pytest.mark.parametrize(("value", "fires"), [(50_000.0, True), (49_999.0, False)])
def test_a_spike_is_five_times_the_rolling_mean(value: float, fires: bool) -> None:
    bars = [make_bar(i) for i in range(41)]
    liqs = {i: liq(i, 10_000.0) for i in range(40)} | {40: liq(40, value)}
    assert spikes(feed(bars, liqs)) == ([("liquidation_spike", "bearish", 40)] if fires else [])


def test_short_liquidations_are_bullish_and_a_zero_mean_needs_the_minimum() -> None:
    bars = [make_bar(i) for i in range(42)]
    assert spikes(feed(bars, {40: liq(40, 0.0, 150_000.0)})) == [("liquidation_spike", "bullish", 40)]
    assert spikes(feed(bars, {40: liq(40, 99_999.0)})) == []


def test_too_little_history_gives_no_spike() -> None:
    bars = [make_bar(i) for i in range(30)]
    assert spikes(feed(bars, {28: liq(28, 1e9)})) == []  # 28 bars before it, 30 needed


def _sweep(reclaim_close: float, reclaim_buy: float) -> list:
    bars = []
    for i in range(46):
        low = 95.0 if i == 35 else 94.0 if i == 42 else 98.0
        close = reclaim_close if i == 43 else 94.5 if i == 42 else 99.0
        buy = reclaim_buy if i == 43 else 1.0
        bars.append(make_bar(i, high=101.0, low=low, close=close, buy_base=buy, sell_base=1.0))
    liqs = {i: liq(i, 10_000.0) for i in range(42)} | {42: liq(42, 200_000.0)}
    return feed(bars, liqs)


def test_a_long_liquidation_sweep_below_a_pivot_low_then_a_reclaim_with_buying() -> None:
    out = _sweep(reclaim_close=96.0, reclaim_buy=3.0)
    sweeps = [s for s in out if s.kind == "liquidation_sweep_reclaim"]
    assert fired(sweeps, "level") == [("liquidation_sweep_reclaim", "bullish", 43, 95.0)]
    [sweep] = [s for s in out if s.kind == "liquidation_sweep_reclaim"]
    assert sweep.strength == pytest.approx(20.0)  # 200k against a mean of 10k


@pytest.mark.parametrize(("close", "buy"), [(94.8, 3.0), (96.0, 0.5)])
def test_no_reclaim_without_the_close_back_inside_or_with_selling(close: float, buy: float) -> None:
    assert [s for s in _sweep(close, buy) if s.kind == "liquidation_sweep_reclaim"] == []


def test_a_late_liquidation_row_publishes_then_a_correction_withdraws() -> None:
    bars = [make_bar(i) for i in range(41)]
    eng = engine("liquidations")
    for i, bar in enumerate(bars):
        eng.add(bar)
        if i < 40:
            eng.add(liq(i, 10_000.0))
    [spike] = eng.add(liq(40, 100_000.0))  # after its bar
    [gone] = eng.add(liq(40, 20_000.0))
    assert (gone.signal_id, gone.version, gone.status) == (spike.signal_id, 2, "withdrawn")
