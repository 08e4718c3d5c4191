"""Divergence detector on hand-built bar sequences whose pivots and signals are worked out by hand."""

from __future__ import annotations

import random

import pytest

from tapeline.domain.aggregates import Bar
from tapeline.domain.events import Signal
from tapeline.signals.divergence import DivergenceDetector, SeriesDetectors, warmup_bars

T0 = 1_700_000_040_000_000_000  # a minute boundary
STEP = 60_000_000_000


def ts(i: int) -> int:
    return T0 + i * STEP


def make_bar(
    i: int, high: float, low: float, cvd: float, *, final: bool = True, instrument: str = "BTC-USDT-PERP",
    interval: str = "1m",
) -> Bar:  # fmt: skip
    mid = (high + low) / 2
    return Bar(
        venue="binance-usdm", instrument=instrument, interval=interval, start_ns=ts(i),
        open=mid, high=high, low=low, close=mid, buy_base=1.0, sell_base=1.0, buy_quote=mid, sell_quote=mid,
        delta_base=0.0, delta_quote=0.0, trades=2, cvd_base=cvd, final=final,
    )  # fmt: skip


def make_series(highs: list[float], lows: list[float] | float, cvds: dict[int, float], **kw: object) -> list[Bar]:
    """Bars 0..n-1; a scalar `lows` is constant, which never forms a pivot low (ties on the right)."""
    lows_list = [lows] * len(highs) if isinstance(lows, int | float) else lows
    return [make_bar(i, h, lo, cvds.get(i, 0.0), **kw) for i, (h, lo) in enumerate(zip(highs, lows_list, strict=True))]


def feed(detector: DivergenceDetector | SeriesDetectors, bars: list[Bar]) -> list[Signal]:
    return [s for bar in bars for s in detector.update(bar)]


# Pivot highs at 3 (10) and 10 (12); the lows are constant, so there are no pivot lows.
TWO_HIGHS = [1, 2, 3, 10, 3, 2, 1, 2, 3, 4, 12, 4, 3, 2]
# Pivot lows at 3 (1) and 10 (0); the highs are constant.
TWO_LOWS = [9, 8, 7, 1, 7, 8, 9, 8, 7, 6, 0, 6, 7, 8]


def test_regular_bearish_higher_high_lower_cvd() -> None:
    bars = make_series(TWO_HIGHS, 0.0, {3: 100.0, 10: 50.0})
    [sig] = feed(DivergenceDetector(), bars)
    assert (sig.kind, sig.variant, sig.direction) == ("divergence", "regular", "bearish")
    assert (sig.prev_pivot_ts_ns, sig.pivot_ts_ns, sig.confirmed_ts_ns) == (ts(3), ts(10), ts(13))
    assert (sig.price_prev, sig.price_now, sig.cvd_prev, sig.cvd_now) == (10, 12, 100.0, 50.0)
    assert (sig.venue, sig.instrument, sig.interval) == ("binance-usdm", "BTC-USDT-PERP", "1m")


def test_hidden_bearish_lower_high_higher_cvd() -> None:
    highs = [*TWO_HIGHS[:10], 8, *TWO_HIGHS[11:]]  # second high 8 < 10
    [sig] = feed(DivergenceDetector(), make_series(highs, 0.0, {3: 100.0, 10: 150.0}))
    assert (sig.variant, sig.direction, sig.price_prev, sig.price_now) == ("hidden", "bearish", 10, 8)


def test_regular_bullish_lower_low_higher_cvd() -> None:
    [sig] = feed(DivergenceDetector(), make_series([20.0] * 14, TWO_LOWS, {3: -100.0, 10: -50.0}))
    assert (sig.variant, sig.direction) == ("regular", "bullish")
    assert (sig.prev_pivot_ts_ns, sig.pivot_ts_ns, sig.confirmed_ts_ns) == (ts(3), ts(10), ts(13))
    assert (sig.price_prev, sig.price_now, sig.cvd_prev, sig.cvd_now) == (1, 0, -100.0, -50.0)


def test_hidden_bullish_higher_low_lower_cvd() -> None:
    lows = [*TWO_LOWS[:10], 2, *TWO_LOWS[11:]]  # second low 2 > 1
    [sig] = feed(DivergenceDetector(), make_series([20.0] * 14, lows, {3: -100.0, 10: -150.0}))
    assert (sig.variant, sig.direction, sig.price_prev, sig.price_now) == ("hidden", "bullish", 1, 2)


@pytest.mark.parametrize(
    ("highs", "lows", "cvds"),
    [
        (TWO_HIGHS, 0.0, {3: 100.0, 10: 150.0}),  # higher high, higher CVD: confirmation, not divergence
        (TWO_HIGHS, 0.0, {3: 100.0, 10: 100.0}),  # higher high, equal CVD
        ([20.0] * 14, TWO_LOWS, {3: -100.0, 10: -150.0}),  # lower low, lower CVD
    ],
)
def test_no_signal_when_price_and_cvd_agree(highs: list[float], lows: list[float] | float, cvds: dict) -> None:
    detector = DivergenceDetector()
    assert feed(detector, make_series(highs, lows, cvds)) == []
    assert detector.last_high is not None or detector.last_low is not None  # pivots were found, just no signal


def test_pivot_is_confirmed_exactly_lookback_bars_late() -> None:
    detector = DivergenceDetector(lookback=3)
    outputs = [detector.update(b) for b in make_series(TWO_HIGHS, 0.0, {3: 100.0, 10: 50.0})]
    assert [i for i, out in enumerate(outputs) if out] == [13]  # pivot 10 + L
    # With L=2 the same shape (pivots at 2 and 6) confirms at 6 + 2.
    detector = DivergenceDetector(lookback=2)
    outputs = [detector.update(b) for b in make_series([1, 2, 10, 2, 1, 2, 12, 2, 1], 0.0, {2: 100.0, 6: 50.0})]
    assert [i for i, out in enumerate(outputs) if out] == [8]
    [sig] = outputs[8]
    assert (sig.pivot_ts_ns, sig.prev_pivot_ts_ns, sig.confirmed_ts_ns) == (ts(6), ts(2), ts(8))


def _peaks(positions: dict[int, float]) -> list[float]:
    """Highs of 1 with peaks at the given positions, plus 3 trailing bars to confirm the last one."""
    highs = [1.0] * (max(positions) + 4)
    for i, value in positions.items():
        highs[i] = value
    return highs


@pytest.mark.parametrize(("distance", "expected"), [(10, 1), (11, 0)])
def test_max_distance_is_respected(distance: int, expected: int) -> None:
    bars = make_series(_peaks({3: 10, 3 + distance: 12}), 0.0, {3: 100.0, 3 + distance: 50.0})
    assert len(feed(DivergenceDetector(max_distance=10), bars)) == expected


def test_pivot_too_far_away_still_becomes_the_previous_pivot() -> None:
    # 3 -> 14 is too far (11 > 10), 14 -> 19 is compared: lower high, higher CVD = hidden bearish.
    bars = make_series(_peaks({3: 10, 14: 12, 19: 11}), 0.0, {3: 100.0, 14: 50.0, 19: 80.0})
    [sig] = feed(DivergenceDetector(max_distance=10), bars)
    assert (sig.variant, sig.direction, sig.prev_pivot_ts_ns, sig.pivot_ts_ns) == ("hidden", "bearish", ts(14), ts(19))


def test_equal_highs_the_last_bar_of_the_run_is_the_pivot() -> None:
    # Bars 3 and 4 both reach 10: 3 has an equal bar on its right (not a pivot), 4 is the pivot.
    highs = [1, 2, 3, 10, 10, 2, 1, 2, 3, 12, 3, 2, 1]
    [sig] = feed(DivergenceDetector(), make_series(highs, 0.0, {3: 999.0, 4: 100.0, 9: 50.0}))
    assert (sig.prev_pivot_ts_ns, sig.cvd_prev, sig.pivot_ts_ns) == (ts(4), 100.0, ts(9))


def test_outside_bar_is_both_pivots_and_can_give_two_signals() -> None:
    highs, lows = [5.0] * 14, [4.0] * 14
    highs[3], lows[3] = 10.0, 0.0
    highs[10], lows[10] = 12.0, 1.0  # higher high and higher low, CVD lower
    detector = DivergenceDetector()
    outputs = [detector.update(b) for b in make_series(highs, lows, {3: 100.0, 10: 50.0})]
    assert {(s.variant, s.direction) for s in outputs[13]} == {("regular", "bearish"), ("hidden", "bullish")}
    assert sum(len(out) for out in outputs) == 2


def test_signal_ids_are_deterministic_and_distinct() -> None:
    bars = make_series(TWO_HIGHS, 0.0, {3: 100.0, 10: 50.0})
    first, again = feed(DivergenceDetector(), bars), feed(DivergenceDetector(), bars)
    assert first == again and len(first) == 1
    other_instrument = feed(DivergenceDetector(), make_series(TWO_HIGHS, 0.0, {3: 100.0, 10: 50.0}, instrument="X"))
    other_interval = feed(DivergenceDetector(), make_series(TWO_HIGHS, 0.0, {3: 100.0, 10: 50.0}, interval="5m"))
    ids = {first[0].signal_id, other_instrument[0].signal_id, other_interval[0].signal_id}
    assert len(ids) == 3
    assert all(len(i) == 40 and int(i, 16) >= 0 for i in ids)  # sha1 hex


def test_non_final_bars_are_ignored() -> None:
    clean = make_series(TWO_HIGHS, 0.0, {3: 100.0, 10: 50.0})
    noisy: list[Bar] = []
    for i, bar in enumerate(clean):
        # An open update with an extreme high before each final bar would break every pivot if counted.
        noisy.append(make_bar(i, 1000.0, -1000.0, -1e9, final=False))
        noisy.append(bar)
    detector = DivergenceDetector()
    assert feed(detector, noisy) == feed(DivergenceDetector(), clean) != []
    assert detector.bars_seen == len(clean)


def test_redelivered_and_corrected_bars_are_ignored() -> None:
    clean = make_series(TWO_HIGHS, 0.0, {3: 100.0, 10: 50.0})
    expected = feed(DivergenceDetector(), clean)
    detector = DivergenceDetector()
    got = feed(detector, clean[:9])
    got += feed(detector, clean)  # a restart re-delivers from the start: 0..8 must not count twice
    # A "correction" of an already-seen bar (new numbers, same start) does not re-trigger anything.
    corrected = make_bar(10, 50.0, 0.0, -500.0)
    assert detector.update(corrected) == []
    assert got == expected and len(got) == 1
    assert detector.bars_seen == len(clean)


def test_series_detectors_keep_series_apart() -> None:
    detectors = SeriesDetectors()
    a = make_series(TWO_HIGHS, 0.0, {3: 100.0, 10: 50.0}, instrument="A")  # regular bearish
    b = make_series(TWO_HIGHS, 0.0, {3: 100.0, 10: 150.0}, instrument="B")  # no divergence
    c = make_series(TWO_HIGHS, 0.0, {3: 100.0, 10: 50.0}, instrument="A", interval="5m")
    interleaved = [bar for triple in zip(a, b, c, strict=True) for bar in triple]
    signals = feed(detectors, interleaved)
    assert sorted((s.instrument, s.interval) for s in signals) == [("A", "1m"), ("A", "5m")]
    assert len(detectors) == 3


def test_series_detectors_drop_forgets_state_and_open_bars_create_nothing() -> None:
    detectors = SeriesDetectors()
    assert detectors.update(make_bar(0, 1.0, 0.0, 0.0, final=False)) == []
    assert len(detectors) == 0
    bars = make_series(TWO_HIGHS, 0.0, {3: 100.0, 10: 50.0})
    feed(detectors, bars[:8])
    detectors.drop(("binance-usdm", "BTC-USDT-PERP", "1m"))
    assert feed(detectors, bars[8:]) == []  # the first pivot (bar 3) is forgotten


@pytest.mark.parametrize("seed", range(5))
def test_warmup_bars_of_history_reproduce_a_long_running_detector(seed: int) -> None:
    rng = random.Random(seed)
    price, bars = 100.0, []
    for i in range(400):
        price += rng.gauss(0, 1)
        cvd = rng.gauss(0, 50)
        bars.append(make_bar(i, price + rng.random(), price - rng.random(), cvd))
    lookback, distance = 3, 20
    need = warmup_bars(lookback, distance)
    full = DivergenceDetector(lookback, distance)
    per_bar = [full.update(b) for b in bars]
    assert sum(map(len, per_bar)) > 10  # the random walk has divergences to reproduce
    for cut in range(need, len(bars), 7):
        warm = DivergenceDetector(lookback, distance)
        feed(warm, bars[cut - need : cut])  # warm-up, output discarded
        assert feed(warm, bars[cut:]) == [s for out in per_bar[cut:] for s in out], cut


def test_one_bar_less_than_warmup_bars_can_miss_a_signal() -> None:
    # Previous pivot exactly max_distance before the new one, which is confirmed by the first live bar.
    lookback, distance = 3, 10
    bars = make_series(_peaks({3: 10, 13: 12}), 0.0, {3: 100.0, 13: 50.0})
    cut = 16  # the bar confirming pivot 13
    need = warmup_bars(lookback, distance)
    assert cut - need == 0

    def live(history: int) -> list[Signal]:
        detector = DivergenceDetector(lookback, distance)
        feed(detector, bars[cut - history : cut])
        return feed(detector, bars[cut:])

    assert len(live(need)) == 1
    assert live(need - 1) == []
