"""Absorption (signals/detectors/absorption.py): a large |delta| inside a small range, against the 20 bars before."""

from __future__ import annotations

import math

import pytest

from tapeline.domain.aggregates import AssetBar, Bar
from tapeline.domain.intervals import INTERVAL_NS
from tapeline.signals.detectors.absorption import Absorption, AbsorptionParams
from tapeline.signals.rules import RuleError, Rules
from tests.support.data import VENUE_TRADE_CAPTURES
from tests.support.signals import Expected, assert_matches, by_series, capture_bars, engine, fired, make_bar, run


def quiet(n: int) -> list[Bar]:
    """n bars of |delta| 1 (alternating sign) and range 2."""
    return [make_bar(i, buy_base=1.5 if i % 2 else 0.5, sell_base=0.5 if i % 2 else 1.5) for i in range(n)]


def bar(i: int, delta: float, high: float = 100.5, low: float = 99.5) -> Bar:
    return make_bar(i, high=high, low=low, buy_base=2.0 + delta / 2, sell_base=2.0 - delta / 2)


def test_buyers_absorbed_is_bearish_and_sellers_absorbed_bullish() -> None:
    [up] = run("absorption", [*quiet(20), bar(20, 2.5)])
    assert (up.kind, up.direction, up.strength) == ("absorption", "bearish", 2.5)
    assert up.detail == {"delta_base": 2.5, "mean_abs_delta_base": 1.0, "range": 1.0, "mean_range": 2.0,
                         "high": 100.5, "low": 99.5, "close": 100.0}  # fmt: skip
    assert up.ts_ns == make_bar(21).start_ns  # the end of the bar
    [down] = run("absorption", [*quiet(20), bar(20, -4.0, 100.2, 99.8)])
    assert (down.direction, down.strength) == ("bullish", 4.0)


@pytest.mark.parametrize(
    ("last", "fires"),
    [
        (bar(20, 2.5), True),  # both at their limits: >= 2.5 x, <= 0.5 x
        (bar(20, 2.49), False),  # |delta| just below 2.5 x the mean
        (bar(20, 3.0, 100.51, 99.5), False),  # range just above 0.5 x the mean
        (bar(20, 3.0, 100.0, 100.0), True),  # no range at all
        (bar(20, 30.0, 101.0, 99.0), False),  # a normal range: price moved, nothing was absorbed
    ],
)
def test_limits(last: Bar, fires: bool) -> None:
    assert len(run("absorption", [*quiet(20), last])) == fires


def test_needs_the_full_history_and_some_delta() -> None:
    assert run("absorption", [*quiet(19), bar(19, 10.0)]) == []  # 19 bars before it
    # bar 20 has its 20: bar 19 among them moves the means to 1.45 (|delta|) and 1.95 (range)
    then = run("absorption", [*quiet(19), bar(19, 10.0), bar(20, 10.0, 100.4, 99.6)])
    assert fired(then, "mean_abs_delta_base", "mean_range") == [("absorption", "bearish", 20, 1.45, 1.95)]
    flat = [make_bar(i) for i in range(20)]  # delta 0 throughout: no mean to compare with
    assert run("absorption", [*flat, bar(20, 5.0)]) == []
    assert fired(run("absorption", [*quiet(5), bar(5, 3.0)], {"bars": 5})) == [("absorption", "bearish", 5)]


def test_history_and_params() -> None:
    assert Absorption(AbsorptionParams()).history(60 * 10**9) == 20
    for bad in ({"bars": 0}, {"delta_multiple": 0}, {"range_ratio": -1}, {"mean": 3}):
        with pytest.raises(RuleError, match="params"):
            Rules.parse([{"detector": "absorption", "params": bad}])


def test_a_corrected_bar_revises_or_withdraws_through_the_engine() -> None:
    eng = engine("absorption")
    [first] = eng.run([*quiet(20), bar(20, 2.5)])
    [revised] = eng.add(bar(20, 5.0))
    assert (revised.signal_id, revised.version, revised.status, revised.strength) == (first.signal_id, 2, "revised",
                                                                                       5.0)  # fmt: skip
    # a bar of the window moves the mean: |delta| 1 -> 6 at bar 3 makes it 1.25, still absorbed at 4x
    [again] = eng.add(make_bar(3, buy_base=6.5, sell_base=0.5))
    assert (again.version, again.status, again.strength) == (3, "revised", 4.0)
    [gone] = eng.add(bar(20, 1.0))
    assert (gone.signal_id, gone.version, gone.status) == (first.signal_id, 4, "withdrawn")
    fresh = engine("absorption")
    fresh.run([*quiet(20), bar(20, 2.5)])
    [withdrawn] = fresh.add(bar(20, 2.0))
    assert (withdrawn.version, withdrawn.status) == (2, "withdrawn")


# --- real captures -----------------------------------------------------------------------------------

BARS, MULTIPLE, RATIO = 20, 2.0, 0.8
REAL = {"bars": BARS, "delta_multiple": MULTIPLE, "range_ratio": RATIO}


def reference(series: list[Bar | AssetBar]) -> Expected:
    n, multiple, ratio = BARS, MULTIPLE, RATIO
    expected: Expected = {}
    for i in range(n, len(series)):
        window = series[i - n : i]
        mean_delta = sum(abs(b.delta_base) for b in window) / n
        mean_range = sum(b.high - b.low for b in window) / n
        now = series[i]
        if mean_delta > 0 and abs(now.delta_base) >= multiple * mean_delta and now.high - now.low <= ratio * mean_range:
            end = now.start_ns + INTERVAL_NS[now.interval]
            key = ("absorption", "bearish" if now.delta_base > 0 else "bullish", end)
            expected[key] = (abs(now.delta_base) / mean_delta, {"mean_abs_delta_base": mean_delta,
                                                                "mean_range": mean_range})  # fmt: skip
    return expected


@pytest.mark.data
@pytest.mark.parametrize("venue", list(VENUE_TRADE_CAPTURES))
def test_real_captures_fire_exactly_where_the_definition_says(venue: str) -> None:
    venue_bars, asset_bars = capture_bars(venue)
    rows: list[Bar | AssetBar] = [*venue_bars, *asset_bars]
    records = engine("absorption", REAL, ["1s", "1m"]).run(rows)
    expected = {(key, *k): v for key, series in by_series(rows).items() for k, v in reference(series).items()}
    count = assert_matches(records, expected)
    if venue == "binance-usdm":  # the only capture with series longer than 20 bars and some absorption
        assert count > 0 and math.isfinite(sum(r.strength for r in records))
