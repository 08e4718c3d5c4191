"""Footprint bars against hand-computed values for every definition of docs/DOMAIN.md, consistency with
the flow bars on real trades, an independent reference, and exactness across restarts."""

from __future__ import annotations

import io
import math
import random
from collections.abc import Callable
from decimal import Decimal

import fastavro
import msgspec
import pytest
from click.testing import CliRunner

from tapeline.cli import main
from tapeline.codec.avro import AvroCodec
from tapeline.codec.avro_writer import compile_writer
from tapeline.domain.aggregates import FootprintBar, FootprintLevel
from tapeline.domain.events import Trade, TradeGap, as_record
from tapeline.domain.intervals import INTERVAL_NS
from tapeline.flow.bars import BarAggregator
from tapeline.flow.footprint import BucketPolicy, FootprintAggregator, bucket_index, bucket_price, nice_step
from tapeline.io.capture import read_capture
from tapeline.io.store import BarStore
from tests.support.data import data_files
from tests.support.venues import usdm_capture_trades

S = 1_000_000_000
BTC = "BTC-USDT-PERP"


def trade(
    ts_s: float, price: float, qty: float, side: str, instrument: str = BTC, venue: str = "binance-usdm"
) -> Trade:
    return Trade(venue, "BTCUSDT", instrument, int(ts_s * S), 0, price, qty, price * qty, side, "1")


def footprint(spec: list[tuple[float, float, str]], bucket: float = 10.0, **kwargs) -> tuple[dict, FootprintBar]:
    """One 1m bar of trades (price, qty, side): its levels by price and its summary."""
    agg = FootprintAggregator(["1m"], 0, BucketPolicy({BTC: bucket}), **kwargs)
    for position, (price, qty, side) in enumerate(spec):
        agg.add(trade(1 + position / 1000, price, qty, side), position)
    agg.flush()
    levels, (bar,) = agg.drain()
    assert all(level.final for level in levels) and bar.final
    return {level.price: level for level in levels}, bar


def both(price: float, buy: float, sell: float) -> list[tuple[float, float, str]]:
    """Trades that leave `buy` and `sell` volume at `price` (zero volumes make no trade)."""
    return [(price, q, side) for q, side in ((buy, "buy"), (sell, "sell")) if q]


def profile(volumes: dict[float, tuple[float, float]], bucket: float = 10.0, **kwargs) -> tuple[dict, FootprintBar]:
    return footprint([t for p, (b, s) in volumes.items() for t in both(p, b, s)], bucket, **kwargs)


def imbalances(levels: dict) -> dict[float, tuple[bool, bool]]:
    return {p: (lv.buy_imbalance, lv.sell_imbalance) for p, lv in levels.items()}


# --- bucket size policy and bucket arithmetic ------------------------------------------------------


@pytest.mark.parametrize(
    ("price", "size"),
    [(60_000, 50.0), (100_000, 50.0), (61_700, 50.0), (40_000, 20.0), (50_000, 25.0), (20_000, 10.0),
     (3_000, 2.0), (150, 0.1), (0.5, 0.00025), (2.0, 0.001)],
)  # fmt: skip
def test_derived_bucket_is_smallest_nice_step_of_5_bp(price: float, size: float) -> None:
    assert nice_step(price * 5 / 10_000) == size
    assert BucketPolicy().size("okx", "X", price) == size


def test_derived_bucket_is_a_whole_number_of_ticks_when_the_tick_is_known() -> None:
    assert nice_step(0.075, tick_size=0.25) == 0.25  # 0.1 and 0.2 are not multiples of 0.25
    assert nice_step(0.25, tick_size=0.1) == 0.5  # 0.25 would put 3 ticks in one bucket and 2 in the next
    assert nice_step(1.5, tick_size=0.3) == 1.5  # no nice step is a multiple of 0.3: tick x ceil(1.5 / 0.3)
    assert BucketPolicy(tick_sizes={"X": 0.1}).size("okx", "X", 500.0) == 0.5
    with pytest.raises(ValueError):
        nice_step(0.0)


def test_bucket_size_is_fixed_at_first_price_configured_sizes_win_and_restore_pins() -> None:
    policy = BucketPolicy({"ETH-USDT-PERP": 1.0})
    assert policy.size("okx", BTC, 60_000.0) == 50.0
    assert policy.size("okx", BTC, 300_000.0) == 50.0  # not re-derived: fixed for the process lifetime
    assert policy.size("bybit-linear", BTC, 300_000.0) == 200.0  # per venue-instrument
    assert policy.size("okx", "ETH-USDT-PERP", 3_000.0) == 1.0
    policy.pin("okx", BTC, 20.0)  # already chosen: kept
    policy.pin("okx", "ETH-USDT-PERP", 20.0)  # configured: kept
    policy.pin("okx", "SOL-USDT-PERP", 0.05)  # restored: adopted instead of deriving
    assert policy.size("okx", BTC, 1.0) == 50.0
    assert policy.size("okx", "ETH-USDT-PERP", 1.0) == 1.0
    assert policy.size("okx", "SOL-USDT-PERP", 150.0) == 0.05


def test_bucket_boundaries() -> None:
    assert bucket_index(60_050.0, 50.0) == 1201
    assert bucket_index(60_049.9, 50.0) == 1200
    assert bucket_index(60_099.9, 50.0) == 1201
    assert bucket_index(0.3, 0.1) == 3  # 0.3 / 0.1 == 2.9999999999999996 in binary
    assert bucket_price(1201, 50.0) == 60_050.0
    assert (bucket_price(3, 0.1), bucket_price(7, 0.1)) == (0.3, 0.7)  # not 0.30000000000000004, 0.7000000000000001
    assert bucket_price(600_500, 0.1) == 60_050.0  # not 60050.000000000004
    assert bucket_price(-3, 0.5) == -1.5
    levels, _ = footprint([(60_049.9, 1, "buy"), (60_050.0, 2, "sell"), (60_099.9, 3, "buy")], bucket=50.0)
    assert {p: (lv.buy_base, lv.sell_base) for p, lv in levels.items()} == {60_000.0: (1, 0), 60_050.0: (3, 2)}
    assert {lv.bucket_size for lv in levels.values()} == {50.0}


@pytest.mark.parametrize("size", [0.1, 0.01, 0.5, 2.5, 50.0, 0.00025, 0.003])
def test_every_boundary_price_opens_its_bucket_and_one_tick_below_does_not(size: float) -> None:
    tick = float(Decimal(repr(size)) / 5)
    for index in range(1, 200_000, 997):
        price = bucket_price(index, size)
        below = float(Decimal(repr(price)) - Decimal(repr(tick)))
        assert bucket_index(price, size) == index, (price, size)
        assert bucket_index(below, size) == index - 1, (below, size)


# --- per bucket and POC ----------------------------------------------------------------------------


def test_levels_by_hand() -> None:
    levels, bar = footprint(
        [(101, 2.0, "buy"), (105, 0.5, "sell"), (109.99, 1.25, "buy"), (110, 0.75, "sell"), (131, 4, "sell")]
    )
    got = {p: (lv.buy_base, lv.sell_base, lv.buy_trades, lv.sell_trades, lv.delta_base) for p, lv in levels.items()}
    assert got == {100.0: (3.25, 0.5, 2, 1, 2.75), 110.0: (0, 0.75, 0, 1, -0.75), 130.0: (0, 4, 0, 1, -4)}
    assert (bar.volume_base, bar.delta_base, bar.bucket_size) == (8.5, -2.0, 10.0)
    assert bar.poc == 130.0
    assert bar.vwap == pytest.approx((202 + 52.5 + 137.4875 + 82.5 + 524) / 8.5)


def test_poc_tie_goes_to_the_bucket_nearest_the_vwap() -> None:
    # buckets 100 and 200 both hold 2; VWAP = (100*2 + 200*2 + 290) / 5 = 178: midpoint 225 is 47 away, 125 is 53
    _, bar = footprint([(100, 1, "buy"), (100, 1, "sell"), (200, 2, "sell"), (290, 1, "buy")], bucket=50.0)
    assert bar.vwap == 178.0
    assert bar.poc == 200.0


def test_poc_tie_at_equal_distance_goes_to_the_lower_bucket() -> None:
    # buckets 100 and 200 both hold 2; VWAP = (150*2 + 250*2) / 4 = 200, exactly between the midpoints 150 and 250
    _, bar = footprint([(150, 2, "buy"), (250, 1, "buy"), (250, 1, "sell")], bucket=100.0)
    assert bar.vwap == 200.0
    assert bar.poc == 100.0


# --- value area ------------------------------------------------------------------------------------


def test_value_area_tie_adds_the_bucket_above() -> None:
    # total 12.5, 70% = 8.75; POC 120 (6); neighbours 3 and 3 tie: above -> 9 >= 8.75
    _, bar = profile({100: (0.5, 0), 110: (3, 0), 120: (3, 3), 130: (0, 3)})
    assert (bar.poc, bar.val, bar.vah) == (120, 120, 130)


def test_value_area_grows_towards_the_larger_neighbour_counting_empty_buckets() -> None:
    # total 9, 70% = 6.3: 120 (4) -> +130 (1 > empty 110) -> +140 (1 > 0) = 6 -> above is the edge: +110 (0)
    # -> +100 (3) = 9. Skipping the empty 110 would have taken 100 (3) first and stopped at 120.
    _, bar = profile({100: (3, 0), 120: (2, 2), 130: (1, 0), 140: (0, 1)})
    assert (bar.poc, bar.val, bar.vah) == (120, 100, 140)


def test_value_area_stops_at_exactly_70_percent() -> None:
    _, bar = profile({110: (2, 0), 120: (3.5, 3.5), 130: (0, 1)})  # 7 of 10
    assert (bar.poc, bar.val, bar.vah) == (120, 120, 120)
    # 0.21 of 0.30; in binary 0.7 * (0.06 + 0.21 + 0.03) is 0.21000000000000002 > 0.21
    _, bar = profile({110: (0.06, 0), 120: (0, 0.21), 130: (0, 0.03)})
    assert (bar.poc, bar.val, bar.vah) == (120, 120, 120)
    _, bar = profile({110: (2, 0), 120: (3.5, 3.4), 130: (0, 1)})  # 6.9 of 9.9 < 70%: grows to 110
    assert (bar.poc, bar.val, bar.vah) == (120, 110, 120)


def test_one_bucket_above_70_percent_is_the_whole_value_area() -> None:
    _, bar = profile({110: (1, 0), 120: (5, 3), 130: (0, 1)})
    assert (bar.poc, bar.val, bar.vah) == (120, 120, 120)


def test_value_area_share_is_configurable() -> None:
    _, bar = profile({100: (1, 0), 110: (2, 0), 120: (4, 0), 130: (2, 0), 140: (1, 0)}, value_area=0.9)
    assert (bar.val, bar.vah) == (110, 140)  # 4, +130 (tie: above), +110 (2 > 1), +140 (tie: above): 9 of 10
    _, bar = profile({100: (1, 0), 110: (2, 0), 120: (4, 0), 130: (2, 0), 140: (1, 0)})
    assert (bar.val, bar.vah) == (110, 130)  # 70%: 4 + 2 + 2 = 8 of 10


# --- diagonal imbalance ----------------------------------------------------------------------------


def test_buy_imbalance_compares_with_sell_one_bucket_below_exactly() -> None:
    # 0.3 >= 3 x 0.1 exactly (binary 3 * 0.1 = 0.30000000000000004 would miss it)
    levels, _ = profile({100: (0.05, 0.1), 110: (0.3, 0.2)})
    assert imbalances(levels) == {100: (False, False), 110: (True, False)}
    levels, _ = profile({100: (0.05, 0.1), 110: (0.29, 0.2)})
    assert imbalances(levels)[110] == (False, False)


def test_sell_imbalance_compares_with_buy_one_bucket_above() -> None:
    levels, _ = profile({100: (0, 3), 110: (1, 5)})
    # 100: sell 3 >= 3 x buy(110) 1. 110 is the highest bucket: its partner is outside, no sell imbalance.
    assert imbalances(levels) == {100: (False, True), 110: (False, False)}
    levels, _ = profile({100: (0, 3), 110: (1, 5)}, imbalance_ratio=4.0)
    assert imbalances(levels)[100] == (False, False)


def test_partners_outside_the_bar_are_not_compared_and_zero_is_no_imbalance() -> None:
    # Against zero outside the bar both would be imbalances; 0 >= 3 x 0 at 110 (buy) / 100 (sell) is not one.
    levels, _ = profile({100: (5, 0), 110: (0, 5)})
    assert imbalances(levels) == {100: (False, False), 110: (False, False)}


def test_empty_buckets_inside_the_bar_compare_as_zero() -> None:
    levels, _ = profile({100: (1, 1), 120: (0.5, 1)})  # 110 saw no trade
    assert sorted(levels) == [100, 120]  # no row for the empty bucket
    assert imbalances(levels) == {100: (False, True), 120: (True, False)}


def test_imbalance_minimum_volume() -> None:
    levels, _ = profile({100: (1, 1), 120: (0.5, 1)}, imbalance_min_volume=0.6)
    assert imbalances(levels) == {100: (False, True), 120: (False, False)}  # buy 0.5 < 0.6; sell 1 >= 0.6
    levels, _ = profile({100: (1, 1), 120: (0.5, 1)}, imbalance_min_volume=0.5)
    assert imbalances(levels)[120] == (True, False)  # meeting the minimum is enough


# --- stacked imbalance and unfinished auctions --------------------------------------------------------


def test_three_stacked_buy_imbalances_make_a_run() -> None:
    levels, bar = profile({100: (0, 1), 110: (3, 1), 120: (3, 1), 130: (3, 1), 140: (1, 1)})
    assert [p for p, (b, _) in imbalances(levels).items() if b] == [110, 120, 130]
    assert (bar.stacked_buy, bar.stacked_sell) == (1, 0)
    assert bar.stacked_runs == [("buy", 110.0, 130.0)]
    assert (bar.stacked_directions, bar.stacked_lows, bar.stacked_highs) == (["buy"], [110.0], [130.0])


def test_two_stacked_imbalances_are_not_a_run() -> None:
    levels, bar = profile({100: (0, 1), 110: (3, 1), 120: (3, 1), 130: (2, 1), 140: (1, 1)})
    assert [p for p, (b, _) in imbalances(levels).items() if b] == [110, 120]
    assert (bar.stacked_buy, bar.stacked_sell, bar.stacked_runs) == (0, 0, [])


def test_stacked_sell_runs_and_runs_broken_by_an_empty_bucket() -> None:
    # each sell >= 3 x the buy one bucket above (130's partner 140 is empty, 170's is 0.3)
    volumes = {100: (1, 3), 110: (1, 3), 120: (1, 3), 130: (1, 3), 150: (0, 1), 160: (0, 1), 170: (0, 1), 180: (0.3, 0)}
    levels, bar = profile(volumes)
    assert [p for p, (_, s) in imbalances(levels).items() if s] == [100, 110, 120, 130, 150, 160, 170]
    assert not any(b for b, _ in imbalances(levels).values())
    # the empty 140 has no imbalance: two runs, 100-130 (4 buckets) and 150-170 (3)
    assert bar.stacked_runs == [("sell", 100.0, 130.0), ("sell", 150.0, 170.0)]
    assert (bar.stacked_buy, bar.stacked_sell) == (0, 2)
    # a buy run of 4; the lone sell imbalance at 140 (1 >= 3 x 0) makes no run
    levels, bar = profile({100: (0, 1), 110: (3, 0), 120: (3, 0), 130: (3, 0), 140: (3, 1), 150: (0, 4)})
    assert imbalances(levels)[140] == (True, True)
    assert bar.stacked_runs == [("buy", 110.0, 140.0)]
    assert (bar.stacked_buy, bar.stacked_sell) == (1, 0)


def test_unfinished_auction_at_high_and_at_low() -> None:
    _, bar = profile({100: (0, 2), 110: (1, 1), 120: (1, 1)})
    assert (bar.unfinished_high, bar.unfinished_low) == (True, False)
    _, bar = profile({100: (2, 1), 110: (1, 1), 120: (1, 0)})
    assert (bar.unfinished_high, bar.unfinished_low) == (False, True)
    _, bar = profile({100: (2, 1), 120: (1, 1)})
    assert (bar.unfinished_high, bar.unfinished_low) == (True, True)


def test_single_bucket_bar() -> None:
    levels, bar = footprint([(101, 1, "buy"), (104, 2, "sell"), (109.9, 0.5, "buy")])
    assert list(levels) == [100.0]
    assert imbalances(levels) == {100.0: (False, False)}  # both partners are outside the bar
    assert (bar.poc, bar.val, bar.vah) == (100.0, 100.0, 100.0)
    assert (bar.unfinished_high, bar.unfinished_low, bar.stacked_runs) == (True, True, [])
    _, bar = footprint([(101, 1, "buy")])
    assert (bar.unfinished_high, bar.unfinished_low) == (False, False)


# --- windowing, lateness, versions: the conventions of BarAggregator -----------------------------------


def test_windows_lateness_and_replays_follow_the_bar_aggregator() -> None:
    policy = BucketPolicy({BTC: 1.0})
    agg = FootprintAggregator(["1s", "1m"], S, policy)
    bars = BarAggregator(["1s", "1m"], S)
    script = [(1.2, 10, 1, "buy", 0), (3.5, 10, 1, "buy", 1), (1.9, 10, 7, "sell", 2), (3.6, 11, 1, "sell", 2),
              (3.7, 11, 2, "sell", 1), (59.999, 12, 1, "buy", 3), (60.0, 12, 1, "buy", 4),
              (58.2, 12, 1, "sell", 5)]  # fmt: skip
    for ts, price, qty, side, position in script:
        assert agg.add(trade(ts, price, qty, side), position) == bars.add(trade(ts, price, qty, side), position)
    agg.close_idle(10**6 * S, S)
    bars.close_idle(10**6 * S, S)
    levels, summaries = agg.drain()
    want = {(b.interval, b.start_ns): (b.buy_base, b.sell_base, b.trades, b.version) for b in bars.drain()}
    got = {}
    for s in summaries:
        mine = [lv for lv in levels if (lv.interval, lv.start_ns) == (s.interval, s.start_ns)]
        got[(s.interval, s.start_ns)] = (sum(lv.buy_base for lv in mine), sum(lv.sell_base for lv in mine),
                                         sum(lv.buy_trades + lv.sell_trades for lv in mine), s.version)  # fmt: skip
    assert got == want
    # The 1.9 s sell is late for 1s (closed by position 1), on time for 1m. Position 2 again (3.6 s) is a replay
    # for 1m but not for 1s, which never applied position 2; position 1 again (3.7 s) is a replay for both.
    assert got[("1s", 1 * S)] == (1, 0, 1, 1)
    assert got[("1s", 3 * S)] == (1, 1, 2, 3)
    assert got[("1m", 0)] == (3, 8, 5, 5)
    assert got[("1s", 60 * S)] == (1, 0, 1, 5)  # closed idle: at the newest position of the instrument


def test_drain_emits_changed_open_bars_and_final_rows_supersede_them() -> None:
    agg = FootprintAggregator(["1s"], S, BucketPolicy({BTC: 1.0}))
    agg.add(trade(0.1, 10, 2, "buy"), 0)
    agg.add(trade(1.1, 10, 1, "sell"), 1)
    levels, bars = agg.drain()
    assert [(b.start_ns // S, b.final, b.version) for b in bars] == [(0, False, 1), (1, False, 1)]
    assert [(lv.start_ns // S, lv.price, lv.final, lv.version) for lv in levels] == [
        (0, 10, False, 1),
        (1, 10, False, 1),
    ]
    assert agg.drain() == ([], [])  # nothing changed
    agg.add(trade(1.2, 11, 1, "buy"), 2)
    levels, bars = agg.drain()
    assert [(b.start_ns // S, b.final, b.version) for b in bars] == [(1, False, 2)]  # bar 0 took no trade
    assert [(lv.price, lv.version) for lv in levels] == [(10, 2), (11, 2)]  # all levels of the changed bar
    agg.add(trade(2.5, 10, 1, "buy"), 3)  # watermark 1.5 s: bar 0 is final
    levels, bars = agg.drain()
    assert [(b.start_ns // S, b.final, b.version) for b in bars] == [(0, True, 3), (2, False, 3)]
    assert [(lv.start_ns // S, lv.final, lv.version) for lv in levels] == [(0, True, 3), (2, False, 3)]
    assert agg.open_rows()[1][0].start_ns == S


def test_idle_instruments_close_on_processing_time_only() -> None:
    agg = FootprintAggregator(["1s"], S)
    agg.add(trade(10.2, 10, 1, "buy"), 0, now_ns=100 * S)
    agg.close_idle(now_ns=101 * S, idle_ns=3 * S)
    assert not [b for b in agg.drain()[1] if b.final]
    agg.close_idle(now_ns=104 * S, idle_ns=3 * S)
    assert [b.start_ns // S for b in agg.drain()[1] if b.final] == [10]


def test_restore_keeps_the_watermark() -> None:
    agg = FootprintAggregator(["1s"], S, BucketPolicy({BTC: 1.0}))
    agg.add(trade(0.5, 10, 1, "buy"), 0)
    agg.add(trade(5.5, 10, 1, "buy"), 1)  # watermark 4.5 s
    restored = FootprintAggregator(["1s"], S, BucketPolicy({BTC: 1.0}))
    restored.restore(*agg.drain())
    # [2, 3) never had a trade, so it has no final row; the watermark alone makes a 2.5 s trade late
    assert agg.add(trade(2.5, 10, 1, "sell"), 2) == restored.add(trade(2.5, 10, 1, "sell"), 2) == ["1s"]


def test_restore_keeps_bars_closed_by_idleness_closed() -> None:
    agg = FootprintAggregator(["1s"], 10 * S, BucketPolicy({BTC: 1.0}))
    agg.add(trade(1.0, 10, 1, "buy"), 0, now_ns=0)
    agg.close_idle(now_ns=100 * S, idle_ns=5 * S)  # the clock jumps to 85 s: [1, 2) is final
    levels, bars = agg.drain()
    assert [b.final for b in bars] == [True]
    restored = FootprintAggregator(["1s"], 10 * S, BucketPolicy({BTC: 1.0}))
    restored.restore(levels, bars)
    assert restored.add(trade(1.5, 10, 1, "buy"), 1) == ["1s"]  # within the lateness, but its bar is final
    assert restored.add(trade(2.5, 10, 1, "buy"), 2) == []


def test_instruments_and_venues_are_independent_with_their_own_bucket_sizes() -> None:
    agg = FootprintAggregator(["1s"])
    agg.add(trade(0.1, 60_010, 1, "buy"), 0)
    agg.add(trade(0.2, 3_001, 2, "sell", "ETH-USDT-PERP"), 1)
    agg.add(trade(0.3, 3_001, 1, "sell", "ETH-USDT-PERP", venue="okx"), 2)
    agg.flush()
    got = sorted((b.venue, b.instrument, b.bucket_size, b.poc, b.delta_base) for b in agg.drain()[1])
    assert got == [("binance-usdm", BTC, 50.0, 60_000.0, 1.0), ("binance-usdm", "ETH-USDT-PERP", 2.0, 3_000.0, -2.0),
                   ("okx", "ETH-USDT-PERP", 2.0, 3_000.0, -1.0)]  # fmt: skip


# --- real trades ------------------------------------------------------------------------------------


def real_trades() -> list[Trade]:
    (capture,) = data_files("binance_usdm/trade/hftbacktest_*.gz")
    return usdm_capture_trades(read_capture(capture))


@pytest.mark.data
@pytest.mark.parametrize("bucket", [None, 0.5, 5.0])
def test_footprints_agree_with_bars_on_real_trades(bucket: float | None) -> None:
    # The capture is in trade-time order; receiving it with up to 2 s of disorder makes late trades.
    rng = random.Random(3)
    trades = sorted(real_trades(), key=lambda t: t.ts_ns + rng.randrange(2 * S))
    intervals = ["1s", "15s", "1m", "5m"]
    agg = FootprintAggregator(intervals, S, BucketPolicy({BTC: bucket} if bucket else {}))
    bars = BarAggregator(intervals, S)
    late = 0
    for position, t in enumerate(trades):
        got = agg.add(t, position)
        assert got == bars.add(t, position)
        late += bool(got)
    agg.flush()
    bars.flush()
    levels, summaries = agg.drain()
    by_bar: dict[tuple[str, int], list[FootprintLevel]] = {}
    for level in levels:
        by_bar.setdefault((level.interval, level.start_ns), []).append(level)
    want = {(b.interval, b.start_ns): b for b in bars.drain()}
    assert {(s.interval, s.start_ns) for s in summaries} == set(want) == set(by_bar)
    size = bucket or 50.0
    imbalanced = stacked = 0
    for s in summaries:
        bar, mine = want[(s.interval, s.start_ns)], sorted(by_bar[(s.interval, s.start_ns)], key=lambda lv: lv.price)
        assert round(sum(lv.buy_base for lv in mine), 9) == round(bar.buy_base, 9)
        assert round(sum(lv.sell_base for lv in mine), 9) == round(bar.sell_base, 9)
        assert sum(lv.buy_trades for lv in mine) == bar.buy_trades
        assert sum(lv.sell_trades for lv in mine) == bar.sell_trades
        assert round(s.volume_base, 9) == round(bar.buy_base + bar.sell_base, 9)
        assert round(s.delta_base, 9) == round(bar.delta_base, 9)
        assert s.vwap == pytest.approx(bar.vwap, rel=1e-12)
        assert s.last_ts_ns == bar.last_ts_ns and (s.final, s.version) == (bar.final, bar.version)
        low, high = bucket_price(bucket_index(bar.low, size), size), bucket_price(bucket_index(bar.high, size), size)
        assert (mine[0].price, mine[-1].price) == (low, high)
        assert low <= s.val <= s.poc <= s.vah <= high
        assert {s.bucket_size} | {lv.bucket_size for lv in mine} == {size}
        imbalanced += sum(lv.buy_imbalance + lv.sell_imbalance for lv in mine)
        stacked += s.stacked_buy + s.stacked_sell
    assert late > 1000  # the late rule was exercised, identically on both sides
    if bucket == 0.5:
        assert imbalanced > 100 and stacked > 10  # the finer profile exercises the imbalance rules


@pytest.mark.data
def test_one_real_bar_against_an_independent_reference() -> None:
    """The busiest real 1m bar recomputed here with plain dicts and decimals, not with the module."""
    trades = real_trades()
    size = Decimal("2.5")
    agg = FootprintAggregator(["1m"], 3600 * S, BucketPolicy({BTC: float(size)}))
    for position, t in enumerate(trades):
        assert agg.add(t, position) == []
    agg.flush()
    levels, summaries = agg.drain()
    width = 60 * S
    counts: dict[int, int] = {}
    for t in trades:
        counts[t.ts_ns - t.ts_ns % width] = counts.get(t.ts_ns - t.ts_ns % width, 0) + 1
    start = max(counts, key=counts.get)
    mine = [t for t in trades if t.ts_ns - t.ts_ns % width == start]

    buy: dict[int, list[float]] = {}
    sell: dict[int, list[float]] = {}
    n_buy: dict[int, int] = {}
    n_sell: dict[int, int] = {}
    for t in mine:
        k = math.floor(Decimal(repr(t.price)) / size)  # exact decimal division: no epsilon needed here
        (buy if t.side == "buy" else sell).setdefault(k, []).append(t.qty_base)
        (n_buy if t.side == "buy" else n_sell)[k] = (n_buy if t.side == "buy" else n_sell).get(k, 0) + 1
    keys = sorted(set(buy) | set(sell))
    lo, hi = keys[0], keys[-1]
    b = {k: Decimal(repr(round(math.fsum(buy.get(k, [])), 10))) for k in range(lo, hi + 1)}
    s = {k: Decimal(repr(round(math.fsum(sell.get(k, [])), 10))) for k in range(lo, hi + 1)}
    v = {k: b[k] + s[k] for k in b}
    total = sum(v.values())
    vwap = math.fsum(t.notional_quote for t in mine) / float(total)
    ranked = sorted(keys, key=lambda k: (-v[k], abs((k + 0.5) * float(size) - vwap), k))
    poc = ranked[0]
    area, top, bottom = v[poc], poc, poc
    while area < Decimal("0.7") * total:
        candidates = []
        if top < hi:
            candidates.append((v[top + 1], 1, top + 1))
        if bottom > lo:
            candidates.append((v[bottom - 1], 0, bottom - 1))
        volume, above, k = max(candidates)  # larger volume, ties: above
        area += volume
        top, bottom = (k, bottom) if above else (top, k)
    buy_imb = {k for k in keys if k > lo and b[k] > 0 and b[k] >= 3 * s[k - 1]}
    sell_imb = {k for k in keys if k < hi and s[k] > 0 and s[k] >= 3 * b[k + 1]}
    runs = []
    for direction, marked in (("buy", buy_imb), ("sell", sell_imb)):
        run: list[int] = []
        for k in range(lo, hi + 2):
            if k in marked:
                run.append(k)
                continue
            if len(run) >= 3:
                runs.append((run[0], direction, run[-1]))
            run = []
    price = lambda k: float(k * size)  # noqa: E731

    got = [lv for lv in levels if lv.start_ns == start]
    assert len(got) == len(keys) > 30
    assert [(lv.price, lv.buy_base, lv.sell_base, lv.buy_trades, lv.sell_trades) for lv in got] == [
        (price(k), float(b[k]), float(s[k]), n_buy.get(k, 0), n_sell.get(k, 0)) for k in keys
    ]
    assert [(lv.buy_imbalance, lv.sell_imbalance) for lv in got] == [(k in buy_imb, k in sell_imb) for k in keys]
    assert buy_imb and sell_imb
    (bar,) = [x for x in summaries if x.start_ns == start]
    assert (bar.poc, bar.val, bar.vah) == (price(poc), price(bottom), price(top))
    assert bar.val < bar.vah
    assert bar.volume_base == float(total)
    assert bar.stacked_runs == [(d, price(a), price(z)) for a, d, z in sorted(runs)]
    assert (bar.unfinished_high, bar.unfinished_low) == (b[hi] > 0 and s[hi] > 0, b[lo] > 0 and s[lo] > 0)


class DictStore:
    """ReplacingMergeTree(version) in a dict: per key the row with the highest version, ties the last written."""

    def __init__(self) -> None:
        self.levels: dict[tuple, FootprintLevel] = {}
        self.bars: dict[tuple, FootprintBar] = {}

    def insert(self, rows: tuple[list[FootprintLevel], list[FootprintBar]]) -> None:
        levels, bars = rows
        for table, key_rows in ((self.levels, ((lv, lv.price) for lv in levels)), (self.bars, ((b, 0) for b in bars))):
            for row, price in key_rows:
                key = (row.venue, row.instrument, row.interval, row.start_ns, price)
                if key not in table or row.version >= table[key].version:
                    table[key] = row

    def resume_state(self, minimal: bool, horizon_ns: int = 0) -> tuple[list[FootprintLevel], list[FootprintBar]]:
        """Everything, or like BarStore.resume_footprints: open bars (with their levels) and final bars from
        each series' last one back to the correction horizon."""
        if not minimal:
            return list(self.levels.values()), list(self.bars.values())
        last_final: dict[tuple, int] = {}
        for b in self.bars.values():
            key = (b.venue, b.instrument, b.interval)
            if b.final:
                last_final[key] = max(last_final.get(key, b.start_ns), b.start_ns)

        def kept(row: FootprintLevel | FootprintBar) -> bool:
            last = last_final.get((row.venue, row.instrument, row.interval))
            return not row.final or row.start_ns >= last - horizon_ns - INTERVAL_NS[row.interval]

        return [lv for lv in self.levels.values() if kept(lv)], [b for b in self.bars.values() if kept(b)]


@pytest.mark.data
@pytest.mark.parametrize(
    "policy",
    [
        # 8.1 bp of 61,700 is exactly 50: the first price (61,800.3) gives 100-wide buckets, later prices
        # (down to 61,590) would give 50 if a restarted process re-derived the size instead of restoring it
        lambda: BucketPolicy(target_bps=50 / 61_700 * 10_000),
        lambda: BucketPolicy({BTC: 1.0}),
    ],
    ids=["derived", "explicit"],
)
@pytest.mark.parametrize("horizon_s", [0, 60], ids=["no-corrections", "corrections"])
def test_restarts_at_random_points_give_identical_footprints(
    policy: Callable[[], BucketPolicy], horizon_s: int
) -> None:
    """Crash anywhere, restore from the persisted rows, resume from a lagging commit: same rows as one run.

    Late trades are left out without a correction horizon and correct their final bars within one.
    """
    rng = random.Random(20261122)
    # received with up to 2 s of disorder: which trades are late depends on the restored watermark
    trades = sorted(real_trades(), key=lambda t: t.ts_ns + rng.randrange(2 * S))

    def run(store: DictStore, crash_probability: float) -> tuple[int, int]:
        crashes, position, committed, agg, late = 0, 0, 0, None, 0
        while True:
            if agg is None:
                agg = FootprintAggregator(["1s", "1m"], S, policy(), correction_horizon_ns=horizon_s * S)
                agg.restore(*store.resume_state(minimal=rng.random() < 0.5, horizon_ns=horizon_s * S))
                position = committed  # the consumer resumes from the last commit, not the last write
            if position >= len(trades):
                break
            end = min(position + rng.randint(1, 2500), len(trades))
            for i in range(position, end):
                late += "1m" in agg.add(trades[i], i)
            store.insert(agg.drain())
            if rng.random() < 0.5:
                committed = end  # commits lag behind durable writes
            position = end
            if rng.random() < crash_probability:
                agg, crashes = None, crashes + 1
        agg.flush()
        store.insert(agg.drain())
        return crashes, late

    clean, crashed = DictStore(), DictStore()
    _, late = run(clean, 0.0)
    assert run(crashed, 0.3)[0] >= 3
    assert len(clean.bars) > 300 and len(clean.levels) > len(clean.bars)
    assert all(row.final for row in [*clean.bars.values(), *clean.levels.values()])
    assert crashed.bars == clean.bars
    assert crashed.levels == clean.levels
    if horizon_s:
        assert late == 0
        assert sum(b.buy_trades + b.sell_trades for b in clean.levels.values() if b.interval == "1m") == len(trades)
    else:
        assert late > 0
    assert sum(lv.buy_trades + lv.sell_trades for lv in clean.levels.values() if lv.interval == "1m") + late == len(
        trades
    )
    assert len({b.bucket_size for b in clean.bars.values()}) == 1


# --- Avro, ClickHouse, CLI -------------------------------------------------------------------------


def sample_rows() -> tuple[list[FootprintLevel], list[FootprintBar]]:
    agg = FootprintAggregator(["1s"], 0, BucketPolicy({BTC: 10.0}))
    spec = [(100, 0, 1), (110, 3, 1), (120, 3, 1), (130, 3, 1), (140, 0, 4), (150, 1, 3), (170, 0.5, 0)]
    position = 0
    for price, b, s in spec:
        for q, side in ((b, "buy"), (s, "sell")):
            if q:
                agg.add(trade(5.5, price, q, side), position)
                position += 1
    open_rows = agg.drain()
    agg.add(trade(7.0, 100, 1, "buy"), position)  # closes the 5 s bar with a version above its open rows'
    agg.add(trade(7.0, 99_999.5, 0.001, "sell", "ETH-USDT-PERP"), position + 1)
    agg.flush()
    final_rows = agg.drain()
    return open_rows[0] + final_rows[0], open_rows[1] + final_rows[1]


def test_footprint_records_encode_with_compiled_writers_like_fastavro() -> None:
    codec = AvroCodec()
    levels, bars = sample_rows()
    assert any(b.stacked_runs for b in bars) and any(not b.stacked_runs for b in bars)
    for name, schema_id, version in (("FootprintLevel", 10, 1), ("FootprintBar", 18, 2)):
        reg = codec.registry.latest(name)
        assert (reg.schema_id, reg.version) == (schema_id, version)
        assert compile_writer(reg.parsed) is not None
    # a FootprintBar v1 frame (id 11, before `incomplete`) reads as a complete bar
    bar = next(b for b in bars if b.stacked_runs)
    v1 = codec.registry.by_id[11]
    body = io.BytesIO()
    fastavro.schemaless_writer(body, v1.parsed, {k: v for k, v in as_record(bar).items() if k != "incomplete"})
    old = msgspec.convert(codec.decode(b"\x00" + (11).to_bytes(4, "big") + body.getvalue()), FootprintBar)
    assert old == msgspec.structs.replace(bar, incomplete=False)
    for row in [*levels, *bars]:
        reg = codec.registry.latest(type(row).__name__)
        frame = codec.encode_event(row)
        fast = io.BytesIO(frame[:5])
        fast.seek(5)
        fastavro.schemaless_writer(fast, reg.parsed, as_record(row))
        assert frame == fast.getvalue()
        assert msgspec.convert(codec.decode(frame), type(row)) == row
    assert [f["name"] for f in codec.registry.latest("FootprintBar").parsed["fields"]] == list(
        FootprintBar.__struct_fields__
    )
    assert [f["name"] for f in codec.registry.latest("FootprintLevel").parsed["fields"]] == list(
        FootprintLevel.__struct_fields__
    )


def test_clickhouse_keeps_the_latest_version_per_bar_and_its_levels(store: BarStore) -> None:
    agg = FootprintAggregator(["1s"], 0, BucketPolicy({BTC: 10.0}))
    expected = DictStore()
    for price, b, s_ in [(100, 0, 1), (110, 3, 1), (120, 3, 1), (130, 3, 1), (140, 0, 4)]:
        agg.add(trade(5.5, price, b or s_, "buy" if b else "sell"), price)
    first = agg.drain()  # open rows, one insert per drain as the processor does
    store.insert_footprints(first[1], first[0])
    expected.insert(first)
    agg.add(trade(7.0, 100, 1, "buy"), 1000)  # closes the 5 s bar with a higher version
    agg.flush()
    second = agg.drain()
    store.insert_footprints(second[1], second[0])
    expected.insert(second)
    restored_levels, got_bars = store.resume_footprints()
    last_final = max((b for b in expected.bars.values() if b.final), key=lambda b: b.start_ns)
    assert got_bars == [last_final]  # no open bar left; the newest final one carries the bucket size
    assert restored_levels == sorted((lv for lv in expected.levels.values() if lv.start_ns == last_final.start_ns),
                                     key=lambda lv: lv.price)  # fmt: skip
    view = store.client.query(
        f"SELECT start_ns, price, buy_base, sell_base, final, version FROM {store.database}.footprint_levels "
        "ORDER BY start_ns, price"
    ).result_rows
    want = sorted((lv.start_ns, lv.price, lv.buy_base, lv.sell_base, lv.final, lv.version)
                  for lv in expected.levels.values())  # fmt: skip
    assert view == want and all(row[4] for row in view)  # the open version was replaced by the final one
    assert len(first[1]) == 1 and not first[1][0].final


@pytest.mark.data
def test_cli_prints_the_aggregators_rows() -> None:
    (capture,) = data_files("binance_usdm/trade/hftbacktest_*.gz")
    result = CliRunner().invoke(main, ["footprint", "--interval", "1m", "--lateness-ms", "1000",
                                       "--bucket", f"{BTC}=5", "--levels", str(capture)])  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = [msgspec.json.decode(line) for line in result.stdout.splitlines()]
    agg = FootprintAggregator(["1m"], S, BucketPolicy({BTC: 5.0}))
    for position, t in enumerate(real_trades()):
        agg.add(t, position)
    agg.flush()
    levels, bars = agg.drain()
    want = []
    for bar in sorted(bars, key=lambda b: b.start_ns):
        want.append(msgspec.to_builtins(bar))
        want += [msgspec.to_builtins(lv) for lv in sorted(levels, key=lambda x: x.price) if lv.start_ns == bar.start_ns]
    assert lines == want
    assert {line.get("bucket_size") for line in lines} == {5.0}
    bad = CliRunner().invoke(main, ["footprint", "--bucket", "BTC-USDT-PERP", str(capture)])
    assert bad.exit_code == 2 and "INSTRUMENT=SIZE" in bad.output


def test_a_trade_gap_flags_footprint_bars_existing_final_or_opened_later_and_restores() -> None:
    gap = TradeGap("binance-usdm", "BTCUSDT", BTC, 70 * S, 130 * S, "connection dropped")
    agg = FootprintAggregator(["1m"], 0, BucketPolicy({BTC: 10.0}), correction_horizon_ns=600 * S)
    for position, ts in enumerate([10, 70, 100]):
        agg.add(trade(ts, 100.0, 1.0, "buy"), position)
    agg.drain()  # bar 0 is final, bar 1 open
    agg.add_gap(gap, 3)
    _, flagged = agg.drain()
    assert {(b.start_ns // S, b.final, b.version) for b in flagged} == {(60, False, 3)}  # bar 0 ends before it
    agg.add(trade(130, 100.0, 1.0, "buy"), 4)  # closes bar 1, opens bar 2 inside the gap
    agg.add(trade(190, 100.0, 1.0, "buy"), 5)  # opens bar 3, after it
    _, summaries = agg.drain()
    latest = {b.start_ns // S: b for b in summaries}
    assert (latest[60].incomplete, latest[60].final) == (True, True)
    assert latest[120].incomplete and not latest[180].incomplete
    restarted = FootprintAggregator(["1m"], 0, BucketPolicy({BTC: 10.0}), correction_horizon_ns=600 * S)
    levels, summaries = agg.open_rows()
    restarted.restore(levels, summaries)
    assert [b.incomplete for b in restarted.open_rows()[1]] == [False]
    restarted.remember_gap("binance-usdm", BTC, 200 * S, 250 * S)  # a gap read back from the store
    restarted.add(trade(245, 100.0, 1.0, "buy"), 6)
    restarted.flush()
    assert {b.start_ns // S: b.incomplete for b in restarted.drain()[1]} == {180: False, 240: True}
