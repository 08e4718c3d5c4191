"""Exhaustion (signals/detectors/exhaustion.py): price extending bar over bar on a shrinking |delta|."""

from __future__ import annotations

import pytest

from tapeline.domain.aggregates import AssetBar, Bar
from tapeline.domain.intervals import INTERVAL_NS
from tapeline.signals.detectors.exhaustion import Exhaustion, ExhaustionParams
from tapeline.signals.rules import RuleError, Rules
from tests.support.data import VENUE_TRADE_CAPTURES
from tests.support.signals import Expected, assert_matches, by_series, capture_bars, engine, fired, make_bar, run


def series(highs: list[float], deltas: list[float], lows: list[float] | None = None) -> list[Bar]:
    """Bars with these highs and deltas (lows constant at 90 unless given: no down-extension)."""
    lows = lows or [90.0] * len(highs)
    return [make_bar(i, high=h, low=lo, buy_base=5.0 + d / 2, sell_base=5.0 - d / 2)
            for i, (h, lo, d) in enumerate(zip(highs, lows, deltas, strict=True))]  # fmt: skip


def test_three_higher_highs_on_shrinking_delta_is_bearish() -> None:
    [sig] = run("exhaustion", series([100, 101, 102], [4, 2, 1]))
    assert (sig.kind, sig.direction, sig.strength) == ("exhaustion_up", "bearish", 0.75)
    assert sig.ts_ns == make_bar(3).start_ns  # confirmed at the end of the third bar
    assert sig.detail == {"first_bar_ts_ms": make_bar(0).start_ns / 1e6, "bars": 3.0, "price_first": 100.0,
                          "price_last": 102.0, "delta_first": 4.0, "delta_last": 1.0}  # fmt: skip


def test_lower_lows_on_shrinking_delta_is_bullish_and_the_sign_of_delta_does_not_matter() -> None:
    [sig] = run("exhaustion", series([110, 110, 110], [-4, 3, -2], lows=[100, 99, 98]))
    assert (sig.kind, sig.direction, sig.strength) == ("exhaustion_down", "bullish", 0.5)


def test_widening_bars_exhaust_both_ways() -> None:
    records = run("exhaustion", series([100, 101, 102], [4, 2, 1], lows=[99, 98, 97]))
    assert sorted(fired(records)) == [("exhaustion_down", "bullish", 2), ("exhaustion_up", "bearish", 2)]


@pytest.mark.parametrize(
    ("highs", "deltas"),
    [
        ([100, 101, 101], [4, 2, 1]),  # an equal high does not extend
        ([100, 101, 102], [4, 2, 2]),  # an equal |delta| does not shrink
        ([100, 101, 102], [4, 2, 3]),  # delta grows again
        ([100, 102, 101], [4, 2, 1]),  # a lower high
        ([100, 101], [4, 2]),  # two bars only
    ],
)
def test_no_run(highs: list[float], deltas: list[float]) -> None:
    assert run("exhaustion", series(highs, deltas)) == []


def test_a_longer_streak_fires_once_and_a_new_streak_again() -> None:
    records = run("exhaustion", series([100, 101, 102, 103, 104, 100, 105, 106, 107], [9, 8, 7, 6, 5, 9, 8, 7, 6]))
    assert fired(records, "first_bar_ts_ms") == [
        ("exhaustion_up", "bearish", 2, make_bar(0).start_ns / 1e6),  # bars 3 and 4 continue it: nothing more
        ("exhaustion_up", "bearish", 7, make_bar(5).start_ns / 1e6),  # 5-6-7 (bar 5 breaks the earlier streak)
    ]


def test_the_run_starts_where_the_streak_starts() -> None:
    # bar 1 extends bar 0 but on a larger delta: the streak is 1-2-3
    [sig] = run("exhaustion", series([100, 101, 102, 103], [1, 3, 2, 1]))
    assert (sig.detail["first_bar_ts_ms"], fired([sig])) == (
        make_bar(1).start_ns / 1e6,
        [("exhaustion_up", "bearish", 3)],
    )


def test_bars_parameter_and_history() -> None:
    assert fired(run("exhaustion", series([100, 101], [4, 2]), {"bars": 2})) == [("exhaustion_up", "bearish", 1)]
    assert run("exhaustion", series([100, 101, 102], [4, 2, 1]), {"bars": 4}) == []
    assert Exhaustion(ExhaustionParams()).history(60 * 10**9) == 3
    for bad in ({"bars": 1}, {"run": 3}):
        with pytest.raises(RuleError, match="params"):
            Rules.parse([{"detector": "exhaustion", "params": bad}])


def test_a_corrected_bar_revises_or_withdraws_through_the_engine() -> None:
    bars = series([100, 100, 101, 102, 103], [9, 4, 3, 2, 1])  # bar 0 -> 1 does not extend: streak 1-2-3
    eng = engine("exhaustion")
    [first] = eng.run(bars)
    assert fired([first]) == [("exhaustion_up", "bearish", 3)]
    [revised] = eng.add(series([100, 100, 101, 102], [9, 4, 3, 1])[3])  # bar 3's delta 2 -> 1
    assert (revised.signal_id, revised.version, revised.status, revised.strength) == (first.signal_id, 2, "revised",
                                                                                       0.75)  # fmt: skip
    # bar 1 now extends bar 0: the streak starts at 0 and completes at bar 2 instead (a new signal)
    out = eng.add(series([100, 100.5], [9, 4])[1])
    assert sorted((r.status, r.version, fired([r])[0][2]) for r in out) == [("active", 1, 2), ("withdrawn", 3, 3)]
    assert [r.signal_id for r in out if r.status == "withdrawn"] == [first.signal_id]


# --- real captures -----------------------------------------------------------------------------------

BARS = 3


def reference(rows: list[Bar | AssetBar]) -> Expected:
    """Every window of BARS bars whose steps all extend on a smaller |delta|, unless the step before does too."""
    expected: Expected = {}
    for up in (True, False):
        steps = [j >= 1 and (rows[j].high > rows[j - 1].high if up else rows[j].low < rows[j - 1].low)
                 and abs(rows[j].delta_base) < abs(rows[j - 1].delta_base) for j in range(len(rows))]  # fmt: skip
        streak = 0  # consecutive steps ending at j
        for j, step in enumerate(steps):
            streak = streak + 1 if step else 0
            if streak == BARS - 1:  # exactly: a longer streak reached BARS bars earlier
                head, last = rows[j - BARS + 1], rows[j]
                key = ("exhaustion_up" if up else "exhaustion_down", "bearish" if up else "bullish",
                       last.start_ns + INTERVAL_NS[last.interval], head.start_ns / 1e6)  # fmt: skip
                expected[key] = (1 - abs(last.delta_base) / abs(head.delta_base), {"delta_first": head.delta_base})
    return expected


@pytest.mark.data
@pytest.mark.parametrize("venue", list(VENUE_TRADE_CAPTURES))
def test_real_captures_fire_exactly_where_the_definition_says(venue: str) -> None:
    venue_bars, asset_bars = capture_bars(venue)
    rows: list[Bar | AssetBar] = [*venue_bars, *asset_bars]
    records = engine("exhaustion", {"bars": BARS}, ["1s", "1m"]).run(rows)
    expected = {(key, *k): v for key, series in by_series(rows).items() for k, v in reference(series).items()}
    count = assert_matches(records, expected, ("first_bar_ts_ms",))
    if venue == "binance-usdm":
        assert count > 0 and {r.kind for r in records} == {"exhaustion_up", "exhaustion_down"}
