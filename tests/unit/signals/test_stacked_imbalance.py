"""Stacked imbalances from footprint bars: constructed rows and the footprints of a real Binance capture."""

from __future__ import annotations

import pytest

from tapeline.domain.aggregates import FootprintBar
from tapeline.domain.events import Trade
from tapeline.flow.footprint import BucketPolicy, FootprintAggregator
from tapeline.flow.windows import newest_versions
from tests.support.data import venue_trades
from tests.support.signals import MINUTE, T0, engine, fired, make_bar


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


@pytest.mark.data
def test_real_footprints_fire_one_signal_per_run() -> None:
    trades = [t for t in venue_trades("binance-usdm") if isinstance(t, Trade)]
    aggregator = FootprintAggregator(["1m"], 10**15, BucketPolicy({}, 0.5))
    for position, trade in enumerate(trades):
        aggregator.add(trade, position)
    aggregator.flush()
    rows = [r for r in newest_versions(aggregator.drain()[1]) if r.final]
    eng = engine("stacked_imbalance", {"min_levels": 3})
    out = []
    for row in rows:
        out += eng.add(make_bar(0, instrument=row.instrument, start_ns=row.start_ns))
        out += eng.add(row)
    expected = sorted((r.start_ns, d, lo) for r in rows for d, lo, hi in
                      zip(r.stacked_directions, r.stacked_lows, r.stacked_highs, strict=True)
                      if round((hi - lo) / r.bucket_size) + 1 >= 3)  # fmt: skip
    got = sorted((s.ts_ns - MINUTE, "buy" if s.direction == "bullish" else "sell", s.detail["low"]) for s in out)
    assert got == expected
    assert len(got) > 0, "the capture has stacked imbalances at 0.5 bp buckets"
