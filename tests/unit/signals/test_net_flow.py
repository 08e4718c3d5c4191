"""Net-flow alerts (signals/detectors/net_flow.py): flips, absolute and share crossings over time windows."""

from __future__ import annotations

import math
import time
from typing import Any

import pytest

from tapeline.domain.aggregates import AssetBar, Bar
from tapeline.domain.assets import usd_quoted
from tapeline.domain.intervals import INTERVAL_NS
from tapeline.signals.detectors.net_flow import NetFlow, NetFlowParams
from tapeline.signals.rules import RuleError, Rules
from tests.support.data import VENUE_TRADE_CAPTURES
from tests.support.signals import (
    Expected,
    assert_matches,
    bar_index,
    by_series,
    capture_bars,
    engine,
    fired,
    make_bar,
    run,
)

S = 1_000_000_000


def flow_bar(i: int, flow: float, volume: float = 1000.0, **kw: object) -> Bar:
    """Bar i with net flow `flow` (delta_quote) out of `volume` quote traded."""
    return make_bar(i, buy_quote=(volume + flow) / 2, sell_quote=(volume - flow) / 2, **kw)  # type: ignore[arg-type]


def flows(values: list[float], volume: float = 1000.0, **kw: object) -> list[Bar]:
    return [flow_bar(i, f, volume, **kw) for i, f in enumerate(values)]


# a 3-minute window (bars i-2..i at 1m), no share alerts (a volume window longer than the tests)
SMALL = {"windows_s": [180], "threshold_usd": 100.0, "volume_window_s": 10**6}


def test_threshold_fires_once_per_excursion_and_flip_on_sign_change() -> None:
    # window sums: 50, 100, 100, 50, 0, 60, 100, 110, -150
    records = run("net_flow", flows([50, 50, 0, 0, 0, 60, 40, 10, -200]), SMALL)
    assert fired(records, "net_flow_usd") == [
        ("net_flow_threshold", "bullish", 1, 100.0),  # >= the threshold, from below
        ("net_flow_threshold", "bullish", 6, 100.0),  # the second excursion
        ("net_flow_flip", "bearish", 8, -150.0),  # still beyond the threshold (|-150|): no new crossing
    ]
    threshold = records[0]
    assert threshold.strength == 1.0
    assert threshold.detail["prev_net_flow_usd"] == 50.0 and threshold.detail["window_s"] == 180.0
    flip = records[2]
    assert flip.detail["prev_net_flow_usd"] == 110.0
    assert flip.strength == pytest.approx(150 / 3000)  # |flow| / the window's volume


def test_just_below_the_threshold_and_zero_flows_do_not_fire() -> None:
    assert run("net_flow", flows([50, 49.5, 0, 0]), SMALL) == []  # 99.5 < 100
    # a sign change through an exact zero is no flip: both must be non-zero
    assert run("net_flow", flows([10, -10, -10, 20]), SMALL) == []  # sums 10, 0, -10, 0


def test_flip_needs_the_previous_bar_and_goes_both_ways() -> None:
    records = run("net_flow", flows([-10, 30, 0, -50, 0, 0, 40]), SMALL)  # sums -10, 20, 20, -20, -50, -50, 40
    assert fired(records) == [("net_flow_flip", "bullish", 1), ("net_flow_flip", "bearish", 3),
                              ("net_flow_flip", "bullish", 6)]  # fmt: skip


def test_window_is_time_based_and_covered_seconds_tell_the_history() -> None:
    # bars at minutes 0, 1, 2 then 6, 7: at minute 6 the 3-minute window holds that bar alone
    bars = [flow_bar(i, f) for i, f in [(0, 40), (1, 40), (2, 40), (6, -120), (7, 20)]]
    records = run("net_flow", bars, SMALL)
    # sums: 40, 80, 120 (threshold, 3 bars, 180 s of history), -120 (flip; 1 bar), -100 (minutes 6, 7)
    assert fired(records, "bars", "covered_s") == [
        ("net_flow_threshold", "bullish", 2, 3.0, 180.0),
        ("net_flow_flip", "bearish", 6, 1.0, 180.0),
    ]
    fresh = run("net_flow", flows([0, 2_000_000]), {"volume_window_s": 10**6})  # default 1h and 24h windows
    assert fired(fresh, "window_s", "covered_s") == [
        ("net_flow_threshold", "bullish", 1, 3600.0, 120.0),
        ("net_flow_threshold", "bullish", 1, 86400.0, 120.0),
    ]


def test_share_waits_for_a_full_volume_window_then_fires_on_crossings() -> None:
    params = {"windows_s": [120], "share": 0.2, "volume_window_s": 300, "threshold_usd": 1e9}
    # each bar trades 100; 2-bar sums: 0, 100, 100, 0, 0, 0, 100, 200, 100, 0; the 5-bar volume is 500 from bar 4
    records = run("net_flow", flows([0, 100, 0, 0, 0, 0, 100, 100, 0, 0], volume=100.0), params)
    assert fired(records, "net_flow_usd", "volume_usd", "volume_covered_s") == [
        ("net_flow_share", "bullish", 6, 100.0, 500.0, 300.0)  # 100 >= 0.2 x 500; bars 1-2 had no full window
    ]
    assert records[0].strength == pytest.approx(0.2)
    below = run("net_flow", flows([0, 0, 0, 0, 0, 0, 99, 0], volume=100.0), params)
    assert below == []  # 99 < 0.2 x 500


def test_a_fresh_series_does_not_fire_shares_on_a_few_minutes_of_volume() -> None:
    defaults = engine("net_flow")
    assert defaults.run(flows([900, 900, 900, 900, 900])) == []  # 90% of the "24h volume", yet only 5 minutes
    # a full day of balanced bars (1000 a minute), then one-sided ones (5000 a minute, all bought): the 1h and
    # 24h flows are 5000 k after k such bars, the 24h volume 1440000 + 4000 k: 10% from k = 32 (bar 1471) on
    day = flows([0.0] * 1440) + [flow_bar(1440 + k, 5000.0, 5000.0) for k in range(200)]
    started = time.perf_counter()
    records = defaults.run(day)
    elapsed = time.perf_counter() - started
    shares = [r for r in records if r.kind == "net_flow_share"]
    assert [(r.detail["window_s"], bar_index(r)) for r in shares] == [(3600.0, 1471), (86400.0, 1471)]
    for record in shares:
        i = bar_index(record)
        window = int(record.detail["window_s"]) // 60
        flow = sum(b.delta_quote for b in day[i - window + 1 : i + 1])
        volume = sum(b.buy_quote + b.sell_quote for b in day[i - 1439 : i + 1])
        assert (record.detail["net_flow_usd"], record.detail["volume_usd"]) == (flow, volume) == (160000, 1568000)
        assert record.detail["volume_covered_s"] == 86400.0
    assert elapsed < 10, f"{len(day)} bars of 1m with a 24h window took {elapsed:.1f}s"


def test_non_usd_instruments_have_no_threshold_alerts_but_flip() -> None:
    bars = flows([50, 50, -300], instrument="FUN-BTC-SPOT")
    assert fired(run("net_flow", bars, SMALL)) == [("net_flow_flip", "bearish", 2)]


def test_history_and_params() -> None:
    detector = NetFlow(NetFlowParams())
    assert detector.history(INTERVAL_NS["1m"]) == 1441
    assert detector.history(INTERVAL_NS["1h"]) == 25
    assert NetFlow(NetFlowParams(windows_s=(90,), volume_window_s=60)).history(INTERVAL_NS["1m"]) == 3
    bad: dict[str, Any]
    for bad in ({"windows_s": [3600, 3600]}, {"windows_s": []}, {"share": 0}, {"share": 1.5}, {"threshold_usd": -1},
                {"window": 60}):  # fmt: skip
        with pytest.raises(RuleError, match="params"):
            Rules.parse([{"detector": "net_flow", "params": bad}])


def test_a_corrected_bar_revises_or_withdraws_through_the_engine() -> None:
    bars = flows([50, 50, 0, 0])
    eng = engine("net_flow", SMALL)
    [first] = eng.run(bars)
    assert (first.kind, first.version, first.status, bar_index(first)) == ("net_flow_threshold", 1, "active", 1)
    [revised] = eng.add(flow_bar(1, 80))  # same start, more flow: the same signal, stronger
    assert (revised.signal_id, revised.version, revised.status) == (first.signal_id, 2, "revised")
    assert revised.detail["net_flow_usd"] == 130.0
    assert eng.add(flow_bar(1, 80)) == []  # a re-delivery changes nothing
    out = eng.add(flow_bar(1, 10))  # the crossing is gone
    assert [(r.signal_id, r.version, r.status) for r in out] == [(first.signal_id, 3, "withdrawn")]
    fresh = engine("net_flow", SMALL)
    fresh.run(bars)
    [gone] = fresh.add(flow_bar(1, 10))
    assert (gone.signal_id, gone.version, gone.status) == (first.signal_id, 2, "withdrawn")


# --- real captures -----------------------------------------------------------------------------------

WINDOWS, THRESHOLD, SHARE, VOLUME_S = [10, 60], 200_000.0, 0.15, 120
REAL = {"windows_s": WINDOWS, "threshold_usd": THRESHOLD, "share": SHARE, "volume_window_s": VOLUME_S}


def reference(series: list[Bar | AssetBar], width: int, usd: bool) -> Expected:
    """The definition, bar by bar: plain loops over the whole series."""
    windows, threshold, share, volume_s = WINDOWS, THRESHOLD, SHARE, VOLUME_S

    def window(i: int, seconds: int) -> list[Bar | AssetBar]:
        start = series[i].start_ns
        return [b for b in series[: i + 1] if start - seconds * S < b.start_ns <= start]

    def flow(i: int, seconds: int) -> float:
        return math.fsum(b.delta_quote for b in window(i, seconds))

    def volume(i: int, seconds: int) -> float:
        return math.fsum(b.buy_quote + b.sell_quote for b in window(i, seconds))

    expected: Expected = {}
    first_start = series[0].start_ns
    for i in range(1, len(series)):
        end = series[i].start_ns + width
        full_volume = end - first_start >= volume_s * S
        for seconds in windows:
            now, before = flow(i, seconds), flow(i - 1, seconds)
            direction = "bullish" if now > 0 else "bearish"
            detail = {"net_flow_usd": now, "prev_net_flow_usd": before, "volume_usd": volume(i, volume_s),
                      "covered_s": min(seconds, (end - first_start) / S), "bars": len(window(i, seconds))}  # fmt: skip
            hits = []
            if now * before < 0:
                hits.append(("net_flow_flip", abs(now) / volume(i, seconds)))
            if usd and abs(now) >= threshold and abs(before) < threshold:
                hits.append(("net_flow_threshold", abs(now) / threshold))
            vol_now, vol_before = volume(i, volume_s), volume(i - 1, volume_s)
            if full_volume and abs(now) >= share * vol_now and not abs(before) >= share * vol_before:
                hits.append(("net_flow_share", abs(now) / vol_now))
            for kind, strength in hits:
                expected[(kind, direction, end, float(seconds))] = (strength, detail)
    return expected


@pytest.mark.data
@pytest.mark.parametrize("venue", list(VENUE_TRADE_CAPTURES))
def test_real_captures_fire_exactly_where_the_definition_says(venue: str) -> None:
    venue_bars, asset_bars = capture_bars(venue)
    rows: list[Bar | AssetBar] = [*venue_bars, *asset_bars]
    records = engine("net_flow", REAL, ["1s", "1m"]).run(rows)
    expected: Expected = {}
    for key, series in by_series(rows).items():
        usd = key[0] is None or usd_quoted(str(key[1]))
        for (kind, direction, ts, window), value in reference(series, INTERVAL_NS[key[4]], usd).items():
            expected[(key, kind, direction, ts, window)] = value
    count = assert_matches(records, expected, ("window_s",))
    kinds = {r.kind for r in records}
    if venue == "binance-usdm":  # the only capture long enough for every kind
        assert count > 0 and kinds == {"net_flow_flip", "net_flow_threshold", "net_flow_share"}, (count, kinds)
