"""Stacked imbalances from footprint bars: constructed rows and the footprints of a real Binance capture."""

from __future__ import annotations

import pytest

from tapeline.domain.aggregates import FootprintBar
from tapeline.domain.assets import asset_of_instrument
from tapeline.domain.intervals import INTERVAL_NS
from tapeline.flow.footprint import BucketPolicy, FootprintAggregator
from tapeline.flow.windows import newest_versions
from tapeline.signals.rules import RuleError
from tests.support.data import venue_trades
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
)


def footprint(i: int, runs: list[tuple[str, float, float]], poc: float = 100.0, bucket: float = 1.0) -> FootprintBar:
    return FootprintBar("binance-usdm", "BTC-USDT-PERP", "1m", T0 + i * MINUTE, bucket, poc, poc + 2, poc - 2, 10.0,
                        0.0, sum(d == "buy" for d, _l, _h in runs), sum(d == "sell" for d, _l, _h in runs),
                        [d for d, _l, _h in runs], [lo for _d, lo, _h in runs], [h for _d, _l, h in runs],
                        False, False, final=True)  # fmt: skip


def test_each_run_with_enough_levels_is_a_signal() -> None:
    eng = engine("stacked_imbalance", {"min_levels": 4})
    eng.add(make_bar(0))
    out = eng.add(footprint(0, [("buy", 101.0, 104.0), ("sell", 95.0, 97.0), ("sell", 90.0, 93.0)]))
    assert fired(out, "levels", "beyond_poc") == [("stacked_imbalance", "bullish", 0, 4.0, 1.0),
                                                  ("stacked_imbalance", "bearish", 0, 4.0, 1.0)]  # fmt: skip
    assert [s.detail["low"] for s in out] == [101.0, 90.0]


def test_no_footprint_or_short_runs_give_nothing() -> None:
    eng = engine("stacked_imbalance")
    assert eng.add(make_bar(0)) == []
    assert eng.add(footprint(0, [("buy", 101.0, 102.0)])) == []  # two levels


def test_below_and_above_the_poc() -> None:
    eng = engine("stacked_imbalance")
    eng.add(make_bar(0))
    out = eng.add(footprint(0, [("buy", 90.0, 92.0), ("buy", 99.0, 101.0), ("sell", 103.0, 105.0)]))
    assert fired(out, "low", "below_poc", "above_poc", "beyond_poc") == [
        ("stacked_imbalance", "bullish", 0, 90.0, 1.0, 0.0, 0.0),  # buyers under value
        ("stacked_imbalance", "bullish", 0, 99.0, 0.0, 0.0, 0.0),  # through the POC: neither
        ("stacked_imbalance", "bearish", 0, 103.0, 0.0, 1.0, 0.0),  # sellers above value
    ]  # fmt: skip


def test_a_footprint_before_its_bar_then_corrections_revise_and_withdraw() -> None:
    eng = engine("stacked_imbalance")
    assert eng.add(footprint(0, [("buy", 101.0, 103.0)])) == []  # no bar yet: kept for it
    [sig] = eng.add(make_bar(0))
    [revised] = eng.add(footprint(0, [("buy", 101.0, 103.0)], poc=102.0))  # the POC moved into the run
    assert (revised.signal_id, revised.version, revised.status) == (sig.signal_id, 2, "revised")
    assert (sig.detail["beyond_poc"], revised.detail["beyond_poc"]) == (1.0, 0.0)
    [gone] = eng.add(footprint(0, []))  # corrected: no run left
    assert (gone.signal_id, gone.version, gone.status) == (sig.signal_id, 3, "withdrawn")


def test_min_levels_below_three_is_refused() -> None:
    with pytest.raises(RuleError, match="min_levels"):
        engine("stacked_imbalance", {"min_levels": 2})


@pytest.mark.data
@pytest.mark.parametrize("min_levels", [3, 4])
def test_real_footprints_match_the_definition(min_levels: int) -> None:
    """The footprints of the real Binance USD-M trades (1s and 1m; BTCUSDT and the 2021 altcoins) with the bars
    of the same trades. Buckets of 0.5 bp (not the default 5 bp, where a bar has too few rows for runs of 3) so
    that the capture has runs."""
    intervals = ("1s", "1m")
    aggregator = FootprintAggregator(intervals, 10**15, BucketPolicy({}, 0.5))
    for position, trade in enumerate(venue_trades("binance-usdm")):
        aggregator.add(trade, position)
    aggregator.flush()
    rows = [r for r in newest_versions(aggregator.drain()[1]) if r.final]
    bars = [b for b in capture_bars("binance-usdm")[0] if b.interval in intervals]
    assert {(b.instrument, b.interval, b.start_ns) for b in bars} >= {(r.instrument, r.interval, r.start_ns)
                                                                     for r in rows}  # fmt: skip
    out = engine("stacked_imbalance", {"min_levels": min_levels}, intervals).run(in_start_order(bars, rows))
    expected: Expected = {}
    for r in rows:
        for direction, low, high in zip(r.stacked_directions, r.stacked_lows, r.stacked_highs, strict=True):
            levels = round((high - low) / r.bucket_size) + 1
            if levels < min_levels:
                continue
            series = (r.venue, r.instrument, asset_of_instrument(r.instrument).asset, "perp", r.interval)
            key = (series, "stacked_imbalance", "bullish" if direction == "buy" else "bearish",
                   r.start_ns + INTERVAL_NS[r.interval], low)  # fmt: skip
            detail = {"high": high, "levels": float(levels), "poc": r.poc, "below_poc": float(high < r.poc),
                      "above_poc": float(low > r.poc)}  # fmt: skip
            expected[key] = (float(levels), detail)
    assert assert_matches(out, expected, ("low",)) > 0
