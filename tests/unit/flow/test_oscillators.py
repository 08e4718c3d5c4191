"""CMF and MFI of bar series (flow/oscillators.py) against a plain reading of their definitions.

The reference (tests/support/oscillators.py) shares nothing with the oscillator: it takes a series' newest
final bars in start order and evaluates docs/DOMAIN.md "Money-flow oscillators" literally, window by window.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest

from tapeline.domain.aggregates import Bar
from tapeline.domain.events import Trade
from tapeline.flow.bars import BarAggregator
from tapeline.flow.oscillators import MoneyFlow
from tapeline.flow.windows import newest_versions
from tests.support.data import VENUE_TRADE_CAPTURES, venue_trades
from tests.support.oscillators import reference

S = 1_000_000_000


def assert_matches_reference(rows: list[Bar], cmf_n: int, mfi_n: int) -> int:
    """Every series of `rows` (newest final versions) carries the reference values; returns how many were set."""
    series: dict[tuple[str, str, str], list[Bar]] = {}
    for bar in newest_versions(rows):
        assert bar.final
        series.setdefault((bar.venue, bar.instrument, bar.interval), []).append(bar)
    checked = 0
    for key, bars in series.items():
        for bar, (cmf, mfi) in zip(bars, reference(bars, cmf_n, mfi_n), strict=True):
            assert (bar.cmf is None) == (cmf is None), (key, bar.start_ns)
            assert (bar.mfi is None) == (mfi is None), (key, bar.start_ns)
            if cmf is not None:
                assert bar.cmf == pytest.approx(cmf, rel=1e-9, abs=1e-12), (key, bar.start_ns)
                assert -1.0 <= bar.cmf <= 1.0
                checked += 1
            if mfi is not None:
                assert bar.mfi == pytest.approx(mfi, rel=1e-9, abs=1e-9), (key, bar.start_ns)
                assert 0.0 <= bar.mfi <= 100.0
                checked += 1
    return checked


@pytest.mark.data
@pytest.mark.parametrize("venue", list(VENUE_TRADE_CAPTURES))
@pytest.mark.parametrize(("cmf_n", "mfi_n"), [(21, 14), (3, 2)])
def test_every_venue_equals_the_definitions(venue: str, cmf_n: int, mfi_n: int) -> None:
    trades = venue_trades(venue)
    agg = BarAggregator(["1s", "1m"], 10**15, cmf_bars=cmf_n, mfi_bars=mfi_n)
    for position, trade in enumerate(trades):
        agg.add(trade, position)
    agg.flush()
    rows = agg.drain()
    checked = assert_matches_reference(rows, cmf_n, mfi_n)
    longest = max(Counter((r.venue, r.instrument, r.interval) for r in newest_versions(rows)).values())
    assert checked > 0 or longest < mfi_n + 1, f"{longest} bars in a series, yet no value was checked"
    if (cmf_n, mfi_n) == (3, 2):
        assert checked > 0  # every venue's capture is long enough for the short lengths


def _trade(ts: int, price: float, qty: float, side: str, position: int) -> Trade:
    return Trade("binance-usdm", "BTCUSDT", "BTC-USDT-PERP", ts, ts, price, qty, price * qty, side, str(position))


def test_values_are_null_until_the_window_holds_n_bars() -> None:
    agg = BarAggregator(["1s"], 0, cmf_bars=3, mfi_bars=2)
    prices = [100.0, 101.0, 100.5, 102.0, 102.0]
    for i, price in enumerate(prices):
        agg.add(_trade(i * S + 1, price, 1.0, "buy", i), i)
    agg.flush()
    rows = newest_versions(agg.drain())
    assert [r.cmf is None for r in rows] == [True, True, False, False, False]
    assert [r.mfi is None for r in rows] == [True, True, False, False, False]  # MFI(2) needs 3 bars
    # one trade per bar: H = L, so every money-flow multiplier is 0
    assert [r.cmf for r in rows[2:]] == [0.0, 0.0, 0.0]
    # TP: 100, 101, 100.5, 102, 102 -> bar 2: +101, -100.5; bar 3: -100.5, +102; bar 4: +102, equal (neither)
    assert rows[2].mfi == pytest.approx(100 - 100 / (1 + 101 / 100.5))
    assert rows[3].mfi == pytest.approx(100 - 100 / (1 + 102 / 100.5))
    assert rows[4].mfi == 100.0  # no negative flow in its window


def test_a_late_trade_moves_the_values_of_later_bars() -> None:
    """A correction changes the corrected bar's OHLCV, so the CMF/MFI of the bars after it within n change too;
    the bar aggregator emits those again (CVD moves), and the newest versions equal the reference."""
    rng = random.Random(7)
    agg = BarAggregator(["1s"], 0, correction_horizon_ns=60 * S, cmf_bars=4, mfi_bars=3)
    rows: list[Bar] = []
    position = 0
    for second in range(30):
        for k in range(3):
            ts = second * S + k * 100_000_000
            agg.add(_trade(ts, 100 + rng.uniform(-2, 2), rng.uniform(0.1, 2), rng.choice(["buy", "sell"]), position),
                    position)  # fmt: skip
            position += 1
        if second in (12, 20):  # a trade for a bar 5 seconds back, already final
            agg.add(_trade((second - 5) * S + 1, 110.0, 5.0, "buy", position), position)
            position += 1
        rows.extend(agg.drain())
    agg.flush()
    rows.extend(agg.drain())
    assert agg.corrections["1s"] == 2
    assert assert_matches_reference([r for r in rows if r.final], 4, 3) > 40


def test_restore_continues_to_the_bit() -> None:
    """A MoneyFlow restored from the rows a series stored gives the values the uninterrupted one gives."""
    trades = [_trade(i * S // 3, 100 + (i * 7919 % 13) / 10, 0.5 + i % 4, "buy" if i % 3 else "sell", i)
              for i in range(300)]  # fmt: skip
    whole = BarAggregator(["1s"], 0)
    for i, t in enumerate(trades):
        whole.add(t, i)
    whole.flush()
    expected = newest_versions(whole.drain())
    for cut in (40, 150, 299):
        first = BarAggregator(["1s"], 0)
        for i, t in enumerate(trades[:cut]):
            first.add(t, i)
        stored = newest_versions(first.drain())
        second = BarAggregator(["1s"], 0)
        second.restore(stored)
        for i, t in enumerate(trades[cut:], start=cut):
            second.add(t, i)
        second.flush()
        got = {(r.start_ns): r for r in newest_versions([*stored, *second.drain()])}
        assert [(got[r.start_ns].cmf, got[r.start_ns].mfi) for r in expected] == [(r.cmf, r.mfi) for r in expected]


def test_history_is_bounded() -> None:
    flow = MoneyFlow(horizon_ns=5 * S, cmf_bars=3, mfi_bars=2)
    for i in range(1000):
        bar = Bar("v", "I", "1s", i * S, 1.0, 2.0, 0.5, 1.5, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 2, 0.0, final=True)
        flow.apply(("v", "I", "1s"), bar)
    history = flow._series[("v", "I", "1s")]
    assert len(history.starts) == len(history.points) <= 3 + 7  # n before the oldest bar that can still change
