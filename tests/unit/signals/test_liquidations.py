"""Liquidation spikes and sweep-and-reclaim, from liquidation bars: constructed series through the engine (side
rows before and after their bars, corrections), the real liquidation messages, and a stream generated in the
real message shape over real trade bars, checked against the definition."""

from __future__ import annotations

import json
import random

import msgspec
import pytest

from tapeline.domain.aggregates import Bar, LiquidationBar
from tapeline.domain.errors import BadMessage
from tapeline.domain.events import Liquidation
from tapeline.domain.intervals import INTERVAL_NS
from tapeline.flow.liquidations import LiquidationAggregator
from tapeline.flow.windows import newest_versions
from tapeline.io.capture import drive, read_capture
from tapeline.signals.detectors.liquidations import LiquidationParams
from tapeline.venues import make_session
from tapeline.venues.binance.session import BinanceUsdmSession
from tests.support.data import data_files
from tests.support.signals import (
    MINUTE,
    T0,
    Expected,
    assert_matches,
    capture_bars,
    engine,
    fired,
    in_start_order,
    make_bar,
    series_of_bar,
)


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


def test_a_corrected_liquidation_row_revises_the_spike() -> None:
    bars = [make_bar(i) for i in range(41)]
    eng = engine("liquidations")
    for i, bar in enumerate(bars):
        eng.add(bar)
        if i < 40:
            eng.add(liq(i, 10_000.0))
    [spike] = eng.add(liq(40, 60_000.0))
    [revised] = eng.add(liq(40, 80_000.0, 30_000.0))  # more, and now with shorts: still mostly longs
    assert (revised.signal_id, revised.version, revised.status) == (spike.signal_id, 2, "revised")
    assert (spike.strength, revised.strength) == (pytest.approx(6.0), pytest.approx(11.0))
    assert revised.detail["short_usd"] == 30_000.0 and revised.detail["mean_usd"] == pytest.approx(10_000.0)


def test_a_spike_row_arriving_after_the_reclaim_publishes_the_sweep_then() -> None:
    bars = _sweep_bars(reclaim_close=96.0, reclaim_buy=3.0)
    eng = engine("liquidations")
    out = []
    for i, bar in enumerate(bars):
        out += eng.add(bar)
        if i < 42:
            out += eng.add(liq(i, 10_000.0))
    assert out == []  # no spike row yet
    late = eng.add(liq(42, 200_000.0))  # the spike's row after its bar and after the reclaiming bar 43
    assert sorted(fired(late)) == [("liquidation_spike", "bearish", 42), ("liquidation_sweep_reclaim", "bullish", 43)]
    sweep = next(s for s in late if s.kind == "liquidation_sweep_reclaim")
    assert sweep.pivot_ts_ns == T0 + 35 * MINUTE and sweep.detail["spike_ts_ms"] == (T0 + 42 * MINUTE) / 1e6


def test_the_sweep_needs_the_pivot_confirmed_before_the_spike() -> None:
    # The only pivot low (bar 39, low 95) is confirmed at bar 42 = the spike bar itself: not before it.
    bars = []
    for i in range(46):
        low = 95.0 if i == 39 else 94.0 if i == 42 else 98.0
        close = 96.0 if i == 43 else 94.5 if i == 42 else 99.0
        bars.append(make_bar(i, high=101.0, low=low, close=close, buy_base=3.0 if i == 43 else 1.0))
    out = feed(bars, {i: liq(i, 10_000.0) for i in range(42)} | {42: liq(42, 200_000.0)})
    assert [s for s in out if s.kind == "liquidation_sweep_reclaim"] == []


def test_only_the_first_reclaiming_bar_fires() -> None:
    bars = _sweep_bars(reclaim_close=96.0, reclaim_buy=3.0)
    bars[44] = make_bar(44, high=101.0, low=98.0, close=97.0, buy_base=3.0)  # reclaims too, but second
    out = feed(bars, {i: liq(i, 10_000.0) for i in range(42)} | {42: liq(42, 200_000.0)})
    assert fired([s for s in out if s.kind == "liquidation_sweep_reclaim"]) == [
        ("liquidation_sweep_reclaim", "bullish", 43)
    ]


def test_a_short_squeeze_above_a_pivot_high_reclaimed_with_selling_is_bearish() -> None:
    bars = []
    for i in range(46):
        high = 105.0 if i == 35 else 106.0 if i == 42 else 102.0
        close = 104.0 if i == 43 else 105.5 if i == 42 else 101.0
        sell = 3.0 if i == 43 else 1.0
        bars.append(make_bar(i, high=high, low=99.0, close=close, buy_base=1.0, sell_base=sell))
    out = feed(bars, {i: liq(i, 0.0, 10_000.0) for i in range(42)} | {42: liq(42, 0.0, 200_000.0)})
    assert sorted(fired(out)) == [("liquidation_spike", "bullish", 42), ("liquidation_sweep_reclaim", "bearish", 43)]


def _sweep_bars(reclaim_close: float, reclaim_buy: float) -> list:
    bars = []
    for i in range(46):
        low = 95.0 if i == 35 else 94.0 if i == 42 else 98.0
        close = reclaim_close if i == 43 else 94.5 if i == 42 else 99.0
        buy = reclaim_buy if i == 43 else 1.0
        bars.append(make_bar(i, high=101.0, low=low, close=close, buy_base=buy, sell_base=1.0))
    return bars


# ------------------------------------------------------------------------------------------------
# Real liquidation messages. The captures hold single messages only (../shared/data/README.md "Known gaps"),
# so (1) each real message is checked alone as a spike against a quiet history, and (2) a stream is
# generated in the exact shape of the real Binance forceOrder message over the real Binance BTCUSDT trade
# bars (1s), parsed by the venue session and aggregated by LiquidationAggregator like live data.

REAL_LIQUIDATIONS = [("binance-usdm", "binance_usdm/forceOrder/*"), ("bybit-linear", "bybit_v5/allLiquidation/*"),
                     ("bybit-linear", "bybit_v5/liquidation_deprecated/*")]  # fmt: skip


def _real_liquidations() -> list[Liquidation]:
    """The Liquidation events of the real messages the sessions accept (OKX's only ones are of an inverse dated
    future whose contract value no capture gives; a Binance COIN-M and a Bybit inverse one are refused)."""
    events = []
    for venue, pattern in REAL_LIQUIDATIONS:
        session = make_session(venue)
        for path in data_files(pattern):
            for line in read_capture(path):
                try:
                    events += [e for e in drive(session, line).events if isinstance(e, Liquidation)]
                except BadMessage:
                    continue
    return events


def _liquidation_bars(events: list[Liquidation], interval: str) -> list[LiquidationBar]:
    aggregator = LiquidationAggregator([interval], 10**15)
    for position, event in enumerate(events):
        aggregator.add(event, position)
    aggregator.flush()
    return [r for r in newest_versions(aggregator.drain()) if r.final]


@pytest.mark.data
def test_each_real_liquidation_is_a_spike_on_its_side_against_a_quiet_history() -> None:
    events = _real_liquidations()
    assert {(e.venue, e.instrument, e.position_side) for e in events} == {
        ("binance-usdm", "BTC-USDT-PERP", "long"), ("binance-usdm", "BTC-USDT-PERP", "short"),
        ("bybit-linear", "PIPPIN-USDT-PERP", "short"), ("bybit-linear", "GALA-USDT-PERP", "long"),
    }  # fmt: skip
    for event in events:
        (row,) = _liquidation_bars([event], "1m")
        history = [
            make_bar(0, instrument=row.instrument, start_ns=row.start_ns - k * MINUTE) for k in range(40, -1, -1)
        ]
        bars = [msgspec.structs.replace(b, venue=row.venue) for b in history]
        # A mean of 0 before it: a spike when it reaches min_usd, lowered to 50 USD for these small real orders.
        out = engine("liquidations", {"min_usd": 50.0}).run([*bars, row])
        [spike] = out
        longs = event.position_side == "long"  # a long liquidated is a forced SELL
        assert (spike.kind, spike.direction) == ("liquidation_spike", "bearish" if longs else "bullish")
        assert spike.ts_ns == row.start_ns + MINUTE and spike.strength == pytest.approx(event.notional_quote / 50)
        assert spike.detail["long_usd" if longs else "short_usd"] == pytest.approx(event.notional_quote)
        assert engine("liquidations", {"min_usd": event.notional_quote * 1.001}).run([*bars, row]) == []


def _generated_stream(bars: list[Bar], seed: int = 7) -> list[Liquidation]:
    """forceOrder messages in the real message's shape, one in ~60% of the bars: the side follows the bar
    (forced sells, i.e. longs liquidated, in a falling bar), sizes lognormal with a cascade x40 now and then."""
    (template,) = [json.loads(line.raw) for path in data_files("binance_usdm/forceOrder/*")
                   for line in read_capture(path) if '"s":"BTCUSDT","S":"SELL"' in line.raw]  # fmt: skip
    rng = random.Random(seed)
    session = BinanceUsdmSession(["BTCUSDT"], ["forceOrder"])
    events: list[Liquidation] = []
    for bar in bars:
        if rng.random() > 0.6:
            continue
        qty = max(0.001, round(rng.lognormvariate(-4, 1), 3))
        if rng.random() < 0.04:
            qty = round(qty * 40, 3)
        message = json.loads(json.dumps(template))
        order = message["data"]["o"]
        ts_ms = bar.start_ns // 1_000_000 + rng.randint(0, 999)
        order.update(S="SELL" if bar.close < bar.open else "BUY", q=f"{qty:.3f}", l=f"{qty:.3f}", z=f"{qty:.3f}",
                     p=f"{bar.close:.2f}", ap=f"{bar.close:.2f}", T=ts_ms)  # fmt: skip
        message["data"]["E"] = ts_ms + 3
        events += session.on_ws(json.dumps(message), (ts_ms + 5) * 1_000_000).events
    return events


def _reference(bars: list[Bar], rows: list[LiquidationBar], p: dict[str, float]) -> tuple[Expected, Expected]:
    """The definitions read straight off the rows: (spikes, sweeps) keyed as assert_matches wants them."""
    m, k, min_usd, reclaim, reach, n = int(p["mean_bars"]), p["spike_multiple"], p["min_usd"], 3, 60, 3
    by_start = {r.start_ns: r for r in rows}
    usd = [by_start[b.start_ns].long_usd + by_start[b.start_ns].short_usd if b.start_ns in by_start else 0.0
           for b in bars]  # fmt: skip
    longs = [b.start_ns in by_start and by_start[b.start_ns].long_usd > by_start[b.start_ns].short_usd for b in bars]
    series = series_of_bar(bars[0])
    width = INTERVAL_NS[bars[0].interval]
    spike_strength: dict[int, float] = {}
    spikes: Expected = {}
    for i in range(len(bars)):
        window = usd[max(0, i - m) : i]
        if usd[i] <= 0 or len(window) < m / 2:
            continue
        mean = sum(window) / len(window)
        if (mean > 0 and usd[i] >= k * mean) or (mean == 0 and usd[i] >= min_usd):
            spike_strength[i] = usd[i] / mean if mean > 0 else usd[i] / min_usd
            key = (series, "liquidation_spike", "bearish" if longs[i] else "bullish", bars[i].start_ns + width)
            spikes[key] = (spike_strength[i], {"mean_usd": mean})
    lows, highs = [b.low for b in bars], [b.high for b in bars]
    pivot_lows = [q for q in range(n, len(bars) - n) if min(lows[q - n : q]) >= lows[q] < min(lows[q + 1 : q + n + 1])]
    pivot_highs = [q for q in range(n, len(bars) - n)
                   if max(highs[q - n : q]) <= highs[q] > max(highs[q + 1 : q + n + 1])]  # fmt: skip
    sweeps: Expected = {}
    for s, strength in spike_strength.items():
        candidates = [q for q in (pivot_lows if longs[s] else pivot_highs) if max(n, s - reach) <= q <= s - n - 1]
        if not candidates:
            continue
        level = lows[candidates[-1]] if longs[s] else highs[candidates[-1]]
        if not (bars[s].low < level if longs[s] else bars[s].high > level):
            continue
        for r in range(s + 1, min(len(bars), s + reclaim + 1)):
            bar = bars[r]
            if (bar.close > level and bar.delta_base > 0) if longs[s] else (bar.close < level and bar.delta_base < 0):
                key = (series, "liquidation_sweep_reclaim", "bullish" if longs[s] else "bearish", bar.start_ns + width,
                       bars[s].start_ns / 1e6)  # fmt: skip
                sweeps[key] = (strength, {"level": level})
                break
    return spikes, sweeps


@pytest.mark.data
@pytest.mark.parametrize("params", [{}, {"spike_multiple": 3.0, "mean_bars": 20}])
def test_generated_liquidations_over_real_trade_bars_match_the_definition(params: dict[str, float]) -> None:
    bars = [b for b in capture_bars("binance-usdm")[0] if b.interval == "1s" and b.instrument == "BTC-USDT-PERP"]
    rows = _liquidation_bars(_generated_stream(bars), "1s")
    assert len(bars) > 300 and len(rows) > 150
    out = engine("liquidations", params, ["1s"]).run(in_start_order(bars, rows))
    spikes, sweeps = _reference(bars, rows, {**LiquidationParams().model_dump(), **params})
    assert assert_matches([s for s in out if s.kind == "liquidation_spike"], spikes) > 0
    # The defaults give one sweep-and-reclaim on this stream (the 2nd parameter set: 3).
    assert assert_matches([s for s in out if s.kind != "liquidation_spike"], sweeps, ("spike_ts_ms",)) > 0
