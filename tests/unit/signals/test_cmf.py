"""CMF levels (signals/detectors/cmf.py): zero-line crosses and entries beyond +/-extreme of the bars' CMF."""

from __future__ import annotations

from itertools import pairwise

import pytest

from tapeline.domain.aggregates import AssetBar, Bar
from tapeline.domain.intervals import INTERVAL_NS
from tapeline.signals.detectors.cmf import Cmf, CmfParams
from tapeline.signals.rules import RuleError, Rules
from tests.support.data import VENUE_TRADE_CAPTURES
from tests.support.signals import Expected, assert_matches, by_series, capture_bars, engine, fired, make_bar, run


def cmfs(values: list[float | None]) -> list[Bar]:
    return [make_bar(i, cmf=v) for i, v in enumerate(values)]


def test_zero_line_crosses() -> None:
    records = run("cmf", cmfs([None, -0.1, 0.05, 0.02, -0.01]))
    assert fired(records, "prev_cmf") == [("cmf_cross", "bullish", 2, -0.1), ("cmf_cross", "bearish", 4, 0.02)]
    assert [r.strength for r in records] == [0.05, 0.01]
    assert records[0].detail == {"cmf": 0.05, "prev_cmf": -0.1, "extreme": 0.2}


@pytest.mark.parametrize(
    "values",
    [
        [-0.1, 0.0, 0.1],  # a touch of exactly zero is no cross (either way)
        [None, 0.1],  # the first bar with a CMF has nothing to cross from
        [None, 0.3],  # ... nor to enter from
        [0.1, 0.19999],  # just below the level
        [0.25, 0.3, 0.2],  # beyond throughout: entered before these bars
        [-0.25, -0.21, -0.2],
        [0.15, None, 0.25],  # a CMF gone missing (a reset series) breaks the comparison
    ],
)
def test_no_signal(values: list[float | None]) -> None:
    assert run("cmf", cmfs(values)) == []


def test_entries_beyond_the_extremes_fire_once_per_excursion() -> None:
    records = run("cmf", cmfs([0.1, 0.2, 0.3, 0.1, 0.25, 0.1, -0.1, -0.2, -0.3, -0.19, -0.5]))
    assert fired(records) == [
        ("cmf_extreme", "bullish", 1),  # reaching the level counts as beyond it
        ("cmf_extreme", "bullish", 4),  # a new excursion after leaving it
        ("cmf_cross", "bearish", 6),
        ("cmf_extreme", "bearish", 7),
        ("cmf_extreme", "bearish", 10),
    ]
    assert [r.strength for r in records if r.kind == "cmf_extreme"] == [0.2, 0.25, 0.2, 0.5]


def test_a_jump_through_both_levels_is_a_cross_and_an_entry() -> None:
    records = run("cmf", cmfs([0.3, -0.3]))
    assert sorted(fired(records)) == [("cmf_cross", "bearish", 1), ("cmf_extreme", "bearish", 1)]


def test_extreme_parameter_and_history() -> None:
    assert fired(run("cmf", cmfs([0.3, 0.45, 0.5]), {"extreme": 0.5})) == [("cmf_extreme", "bullish", 2)]
    assert Cmf(CmfParams()).history(60 * 10**9) == 1
    for bad in ({"extreme": 0}, {"extreme": 1}, {"level": 0.2}):
        with pytest.raises(RuleError, match="params"):
            Rules.parse([{"detector": "cmf", "params": bad}])


def test_a_corrected_bar_revises_or_withdraws_through_the_engine() -> None:
    eng = engine("cmf")
    [first] = eng.run(cmfs([0.1, 0.25, 0.3]))
    [revised] = eng.add(make_bar(1, cmf=0.28))
    assert (revised.signal_id, revised.version, revised.status, revised.strength) == (first.signal_id, 2, "revised",
                                                                                       0.28)  # fmt: skip
    # bar 1 falls short of the level: the entry moves to bar 2 (a new signal) and the old one is withdrawn
    out = eng.add(make_bar(1, cmf=0.15))
    assert sorted((r.status, r.version, fired([r])[0][2]) for r in out) == [("active", 1, 2), ("withdrawn", 3, 1)]


# --- real captures -----------------------------------------------------------------------------------

EXTREME = 0.2


def reference(rows: list[Bar | AssetBar]) -> Expected:
    expected: Expected = {}
    for before, now in pairwise(rows):
        a, b = before.cmf, now.cmf
        if a is None or b is None:
            continue
        end = now.start_ns + INTERVAL_NS[now.interval]
        if a * b < 0:
            expected[("cmf_cross", "bullish" if b > 0 else "bearish", end)] = (abs(b), {"prev_cmf": a})
        if b >= EXTREME and not a >= EXTREME:
            expected[("cmf_extreme", "bullish", end)] = (b, {"prev_cmf": a})
        if b <= -EXTREME and not a <= -EXTREME:
            expected[("cmf_extreme", "bearish", end)] = (-b, {"prev_cmf": a})
    return expected


@pytest.mark.data
@pytest.mark.parametrize("venue", list(VENUE_TRADE_CAPTURES))
def test_real_captures_fire_exactly_where_the_definition_says(venue: str) -> None:
    venue_bars, asset_bars = capture_bars(venue)
    rows: list[Bar | AssetBar] = [*venue_bars, *asset_bars]
    records = engine("cmf", {"extreme": EXTREME}, ["1s", "1m"]).run(rows)
    expected = {(key, *k): v for key, series in by_series(rows).items() for k, v in reference(series).items()}
    count = assert_matches(records, expected)
    if venue == "binance-usdm":  # the only capture with series longer than CMF's 21 bars
        assert count > 0 and {r.kind for r in records} == {"cmf_cross", "cmf_extreme"}
