"""Bar arithmetic against hand-computed values, windowing rules, and exactness across restarts."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from tapeline.domain.aggregates import Bar
from tapeline.domain.events import Trade, TradeGap
from tapeline.flow.bars import BarAggregator
from tapeline.flow.windows import newest_versions
from tapeline.io.capture import read_capture
from tapeline.io.store import BarStore
from tests.support.data import data_files
from tests.support.venues import usdm_capture_trades

S = 1_000_000_000


def trade(ts_s: float, price: float, qty: float, side: str, instrument: str = "BTC-USDT-PERP") -> Trade:
    return Trade("binance-usdm", "BTCUSDT", instrument, int(ts_s * S), 0, price, qty, price * qty, side, "1")


def bars_of(trades: list[Trade], intervals=("1s",), lateness_s: float = 0.0) -> list[Bar]:
    agg = BarAggregator(intervals, int(lateness_s * S))
    for position, t in enumerate(trades):
        agg.add(t, position)
    agg.flush()
    return sorted(agg.drain(), key=lambda b: (b.interval, b.start_ns))


def test_one_bar_by_hand() -> None:
    (bar,) = bars_of(
        [
            trade(10.1, 100.0, 2.0, "buy"),
            trade(10.2, 103.0, 1.0, "sell"),
            trade(10.3, 99.0, 0.5, "sell"),
            trade(10.9, 101.0, 1.5, "buy"),
        ]
    )
    assert (bar.start_ns, bar.open, bar.high, bar.low, bar.close) == (10 * S, 100.0, 103.0, 99.0, 101.0)
    assert (bar.buy_base, bar.sell_base) == (3.5, 1.5)
    assert (bar.buy_quote, bar.sell_quote) == (200.0 + 151.5, 103.0 + 49.5)
    assert (bar.delta_base, bar.delta_quote) == (2.0, 199.0)
    assert (bar.trades, bar.buy_trades, bar.sell_trades) == (4, 2, 2)
    assert bar.vwap == pytest.approx((351.5 + 152.5) / 5.0)
    assert bar.cvd_base == 2.0
    assert (bar.first_ts_ns, bar.last_ts_ns) == (int(10.1 * S), int(10.9 * S))
    assert bar.buy_ratio == 0.7  # 3.5 / 5.0
    # running delta after each trade: +2.0, +1.0, +0.5, +2.0
    assert (bar.max_delta_base, bar.min_delta_base) == (2.0, 0.5)
    assert bar.final


def test_cvd_runs_across_bars_and_empty_windows_make_no_bar() -> None:
    bars = bars_of(
        [
            trade(0.5, 10, 1.0, "buy"),
            trade(1.5, 10, 3.0, "sell"),
            trade(4.2, 10, 0.5, "buy"),
            trade(4.3, 10, 0.25, "buy"),
        ]
    )
    assert [b.start_ns // S for b in bars] == [0, 1, 4]
    assert [b.delta_base for b in bars] == [1.0, -3.0, 0.75]
    assert [b.cvd_base for b in bars] == [1.0, -2.0, -1.25]


def test_windows_align_to_epoch_multiples() -> None:
    bars = bars_of([trade(59.999, 1, 1, "buy"), trade(60.0, 1, 1, "buy"), trade(119.5, 1, 1, "sell")], ("1m",))
    assert [(b.start_ns // S, b.trades) for b in bars] == [(0, 1), (60, 2)]


def test_out_of_order_within_lateness_keeps_time_order_for_open_and_close() -> None:
    (bar,) = bars_of([trade(5.5, 101, 1, "buy"), trade(5.1, 100, 1, "sell"), trade(5.7, 102, 1, "buy")], lateness_s=1)
    assert (bar.open, bar.close, bar.trades) == (100, 102, 3)


def test_late_trade_is_reported_not_applied() -> None:
    agg = BarAggregator(["1s", "1m"], allowed_lateness_ns=S)
    assert agg.add(trade(1.2, 10, 1, "buy"), 0) == []
    assert agg.add(trade(3.5, 10, 1, "buy"), 1) == []  # watermark 2.5 s: the [1, 2) bar is final
    assert agg.add(trade(1.9, 10, 7, "sell"), 2) == ["1s"]  # late for 1s, still on time for the 1m bar
    agg.flush()
    rows = agg.drain()
    one_s = [b for b in rows if b.interval == "1s"]
    (one_m,) = [b for b in rows if b.interval == "1m"]
    assert [b.sell_base for b in one_s] == [0.0, 0.0]
    assert one_m.sell_base == 7.0


def test_replayed_positions_are_not_counted_twice() -> None:
    agg = BarAggregator(["1s"])
    agg.add(trade(1.0, 10, 1, "buy"), 5)
    agg.add(trade(1.1, 10, 1, "buy"), 5)  # same position again: a replay
    agg.add(trade(1.2, 10, 1, "buy"), 4)
    agg.flush()
    (bar,) = agg.drain()
    assert bar.trades == 1


def test_open_rows_carry_running_cvd_and_final_rows_supersede_them() -> None:
    agg = BarAggregator(["1s"], allowed_lateness_ns=S)
    agg.add(trade(0.1, 10, 2, "buy"), 0)
    agg.add(trade(1.1, 10, 1, "sell"), 1)
    open_rows = agg.drain()
    assert [(b.start_ns // S, b.cvd_base, b.final) for b in open_rows] == [(0, 2.0, False), (1, 1.0, False)]
    agg.add(trade(2.5, 10, 1, "buy"), 2)  # watermark 1.5 s: bar 0 is final
    rows = agg.drain()
    final = [b for b in rows if b.final]
    assert [(b.start_ns // S, b.version) for b in final] == [(0, 2)]
    assert all(b.version > r.version for b in final for r in open_rows if r.start_ns == b.start_ns)


def test_idle_instruments_close_on_processing_time_only() -> None:
    agg = BarAggregator(["1s"], allowed_lateness_ns=S)
    agg.add(trade(10.2, 10, 1, "buy"), 0, now_ns=100 * S)
    agg.close_idle(now_ns=101 * S, idle_ns=3 * S)  # seen 1 s ago: a backlog may still be flowing
    assert not [b for b in agg.drain() if b.final]
    agg.close_idle(now_ns=104 * S, idle_ns=3 * S)
    assert [b.start_ns // S for b in agg.drain() if b.final] == [10]


def test_instruments_are_independent() -> None:
    bars = bars_of([trade(0.1, 10, 1, "buy", "A-USDT-PERP"), trade(0.2, 20, 2, "sell", "B-USDT-PERP")])
    assert sorted((b.instrument, b.delta_base) for b in bars) == [("A-USDT-PERP", 1.0), ("B-USDT-PERP", -2.0)]


def test_late_trade_within_the_horizon_corrects_its_bar_and_later_cvd() -> None:
    agg = BarAggregator(["1s"], allowed_lateness_ns=S, correction_horizon_ns=60 * S)
    agg.add(trade(0.5, 10, 2, "buy"), 0)
    agg.add(trade(1.5, 11, 1, "sell"), 1)
    agg.add(trade(3.5, 12, 1, "buy"), 2)  # watermark 2.5 s: bars 0 and 1 are final
    first = {b.start_ns // S: b for b in agg.drain() if b.final}
    assert [(s, b.cvd_base, b.version) for s, b in sorted(first.items())] == [(0, 2.0, 2), (1, 1.0, 2)]
    assert agg.add(trade(0.7, 9, 3, "sell"), 3) == []  # late for bar 0, within the horizon: applied
    assert agg.corrections == {"1s": 1}
    rows = agg.drain()
    corrected = {b.start_ns // S: b for b in rows if b.final}
    assert corrected[0].sell_base == 3.0 and corrected[0].low == 9 and corrected[0].trades == 2
    assert corrected[0].close == 9 and corrected[0].delta_base == -1.0
    assert [(s, b.cvd_base, b.version) for s, b in sorted(corrected.items())] == [(0, -1.0, 3), (1, -2.0, 3)]
    (open_bar,) = [b for b in rows if not b.final]  # the open bar's CVD moves too
    assert (open_bar.start_ns // S, open_bar.cvd_base) == (3, -1.0)


def test_late_trade_for_a_window_without_trades_creates_a_final_bar_in_the_cvd_chain() -> None:
    agg = BarAggregator(["1s"], allowed_lateness_ns=0, correction_horizon_ns=60 * S)
    for position, t in enumerate([trade(0.5, 10, 2, "buy"), trade(2.5, 10, 1, "sell"), trade(4.5, 10, 1, "buy")]):
        agg.add(t, position)
    agg.drain()
    agg.add(trade(1.5, 10, 5, "buy"), 3)  # bar 1 never had a trade
    corrected = sorted((b.start_ns // S, b.cvd_base) for b in agg.drain() if b.final)
    assert corrected == [(1, 7.0), (2, 6.0)]


def test_late_trade_past_the_horizon_is_handed_back_and_not_applied() -> None:
    agg = BarAggregator(["1s", "1m"], allowed_lateness_ns=0, correction_horizon_ns=10 * S)
    agg.add(trade(0.5, 10, 2, "buy"), 0)
    agg.add(trade(30.5, 10, 1, "buy"), 1)
    agg.drain()
    assert agg.add(trade(0.6, 10, 1, "sell"), 2) == ["1s"]  # bar 0 s ended 29.5 s before the watermark
    assert agg.corrections == {}
    agg.flush()
    bars = {(b.interval, b.start_ns // S): b for b in agg.drain()}
    assert bars[("1m", 0)].trades == 3  # the 1m bar was still open
    assert ("1s", 0) not in bars  # final before, not emitted again


def gap(from_s: float, to_s: float, instrument: str = "BTC-USDT-PERP") -> TradeGap:
    return TradeGap("binance-usdm", "BTCUSDT", instrument, int(from_s * S), int(to_s * S), "connection dropped")


def test_a_trade_gap_flags_every_bar_it_overlaps_existing_final_or_opened_later() -> None:
    agg = BarAggregator(["1s", "1m"], allowed_lateness_ns=0, correction_horizon_ns=60 * S)
    for position, t in enumerate([trade(0.5, 10, 1, "buy"), trade(1.5, 10, 1, "buy"), trade(2.5, 10, 1, "buy")]):
        agg.add(t, position)
    agg.drain()
    agg.add_gap(gap(1.6, 4.2), 3)  # bar 1 is final, bar 2 open, bars 3 and 4 not there yet
    reemitted = agg.drain()
    assert {(b.interval, b.start_ns // S, b.final, b.version) for b in reemitted if b.incomplete} == {
        ("1s", 1, True, 3), ("1s", 2, False, 3), ("1m", 0, False, 3)}  # fmt: skip
    agg.add(trade(4.5, 10, 1, "buy"), 4)  # opens bar 4, inside the gap's last second
    agg.add(trade(5.5, 10, 1, "buy"), 5)
    agg.add(trade(1.7, 10, 1, "sell"), 6)  # a late trade creating nothing new: bar 1 stays flagged
    agg.flush()
    latest: dict[tuple[str, int], Bar] = {}
    for b in agg.drain():
        latest[(b.interval, b.start_ns // S)] = b
    flagged = {key for key, b in latest.items() if b.incomplete}
    assert flagged == {("1s", 1), ("1s", 2), ("1s", 4), ("1m", 0)}
    assert latest[("1s", 1)].trades == 2


def test_a_replayed_trade_gap_is_not_applied_twice_and_restores_with_its_bars() -> None:
    agg = BarAggregator(["1s"], allowed_lateness_ns=S, correction_horizon_ns=60 * S)
    agg.add(trade(0.5, 10, 1, "buy"), 0)
    agg.add_gap(gap(0.2, 0.4), 1)
    (row,) = agg.drain()
    assert row.incomplete and row.version == 1
    restarted = BarAggregator(["1s"], allowed_lateness_ns=S, correction_horizon_ns=60 * S)
    restarted.restore([row])
    restarted.add_gap(gap(0.2, 0.4), 1)  # replayed from the last commit
    assert restarted.drain() == []
    restarted.flush()
    (final,) = restarted.drain()
    assert final.incomplete and final.final


def test_corrections_give_the_bars_of_the_time_ordered_stream() -> None:
    """Disorder beyond the lateness, within the horizon: the newest version of every bar is the bar of
    the same trades in time order (all but the running-delta extremes, which follow arrival order)."""
    rng = random.Random(7)
    trades = [
        trade(i * 0.37 + rng.random() * 0.01, 100 + rng.randint(-9, 9), rng.randint(1, 5), rng.choice(["buy", "sell"]))
        for i in range(400)
    ]
    shuffled = sorted(trades, key=lambda t: t.ts_ns + rng.uniform(0, 6 * S))
    agg = BarAggregator(["1s", "1m"], allowed_lateness_ns=S // 2, correction_horizon_ns=30 * S)
    rows: list[Bar] = []
    for position, t in enumerate(shuffled):
        assert agg.add(t, position) == []
        rows.extend(agg.drain())
    agg.flush()
    rows.extend(agg.drain())
    assert sum(agg.corrections.values()) > 50
    latest = {(bar.interval, bar.start_ns): bar for bar in newest_versions(rows)}
    assert all(bar.final for bar in latest.values())
    want = {(b.interval, b.start_ns): b for b in bars_of(trades, ("1s", "1m"), lateness_s=10**6)}
    ignore = {"max_delta_base", "min_delta_base", "version"}
    assert latest.keys() == want.keys()
    for key, bar in latest.items():
        got = {f: getattr(bar, f) for f in Bar.__struct_fields__ if f not in ignore}
        assert got == pytest.approx({f: getattr(want[key], f) for f in Bar.__struct_fields__ if f not in ignore})


@pytest.mark.parametrize("disorder_s, horizon_s", [(0, 0), (5, 60)])
def test_restarts_at_random_points_give_identical_bars(
    store_factory: Callable[[], BarStore], disorder_s: float, horizon_s: int
) -> None:
    """Crash anywhere, restore from the store, resume from a lagging commit: same rows as one run.

    With disorder beyond the lateness, late trades correct final bars; restarts must not change that.
    """
    (capture,) = data_files("binance_usdm/trade/hftbacktest_*.gz")
    trades = usdm_capture_trades(read_capture(capture))
    rng = random.Random(20261121)
    trades.sort(key=lambda t: t.ts_ns + rng.uniform(0, disorder_s * S))

    def run(store: BarStore, crash_probability: float) -> int:
        crashes, position, committed, agg = 0, 0, 0, None
        while True:
            if agg is None:
                agg = BarAggregator(["1s", "1m"], S, horizon_s * S)
                agg.restore(store.resume_state(horizon_s * S))
                position = committed  # the consumer resumes from the last commit, not the last write
            if position >= len(trades):
                break
            end = min(position + rng.randint(1, 2500), len(trades))
            for i in range(position, end):
                agg.add(trades[i], i)
            store.insert_bars(agg.drain())
            if rng.random() < 0.5:
                committed = end  # commits lag behind durable writes
            position = end
            if rng.random() < crash_probability:
                agg, crashes = None, crashes + 1
        agg.flush()
        store.insert_bars(agg.drain())
        return crashes

    clean, crashed = store_factory(), store_factory()
    run(clean, 0.0)
    assert run(crashed, 0.3) >= 3
    for interval in ("1s", "1m"):
        want = clean.get_bars("binance-usdm", "BTC-USDT-PERP", interval, 0, 2**62, 10**6)
        got = crashed.get_bars("binance-usdm", "BTC-USDT-PERP", interval, 0, 2**62, 10**6)
        assert len(want) > 5
        assert got == want
        assert sum(b.trades for b in want) == len(trades)  # late ones included, by correction


def test_the_largest_trade_by_notional_and_ties_go_to_the_first_to_arrive() -> None:
    (bar,) = bars_of(
        [
            trade(10.1, 100.0, 2.0, "buy"),  # 200
            trade(10.2, 50.0, 5.0, "sell"),  # 250, the largest
            trade(10.3, 125.0, 2.0, "buy"),  # 250 again: a tie, later
            trade(10.05, 10.0, 1.0, "buy"),  # earlier in trade time, smaller (within the lateness)
        ],
        lateness_s=1,
    )
    assert (bar.max_trade_quote, bar.max_trade_price, bar.max_trade_side, bar.max_trade_ts_ns) == (
        250.0, 50.0, "sell", int(10.2 * S))  # fmt: skip
    # the tie is decided by arrival, not by trade time: the same trades, the later-timed one first
    (bar,) = bars_of([trade(10.3, 125.0, 2.0, "buy"), trade(10.2, 50.0, 5.0, "sell")], lateness_s=1)
    assert (bar.max_trade_price, bar.max_trade_side, bar.max_trade_ts_ns) == (125.0, "buy", int(10.3 * S))
    (one,) = bars_of([trade(3.5, 7.0, 0.5, "sell")])  # a single trade is its bar's largest
    assert (one.max_trade_quote, one.max_trade_price, one.max_trade_side, one.max_trade_ts_ns) == (
        3.5, 7.0, "sell", int(3.5 * S))  # fmt: skip


def test_each_interval_has_its_own_largest_trade() -> None:
    bars = bars_of([trade(0.5, 10, 1, "buy"), trade(1.5, 10, 3, "sell"), trade(2.5, 10, 2, "buy")], ("1s", "1m"))
    assert [(b.interval, b.max_trade_quote, b.max_trade_side) for b in bars] == [
        ("1m", 30.0, "sell"), ("1s", 10.0, "buy"), ("1s", 30.0, "sell"), ("1s", 20.0, "buy")]  # fmt: skip


def test_a_late_trade_that_corrects_its_bar_can_become_its_largest_trade() -> None:
    agg = BarAggregator(["1s"], allowed_lateness_ns=0, correction_horizon_ns=60 * S)
    agg.add(trade(0.2, 10, 2, "buy"), 0)
    agg.add(trade(0.4, 10, 1, "sell"), 1)
    agg.add(trade(2.5, 10, 1, "buy"), 2)  # bar 0 is final
    (first,) = [b for b in agg.drain() if b.final and b.start_ns == 0]
    assert (first.max_trade_quote, first.max_trade_side, first.max_trade_ts_ns) == (20.0, "buy", int(0.2 * S))
    agg.add(trade(0.9, 11, 2, "sell"), 3)  # late, larger: the corrected bar's largest
    agg.add(trade(0.8, 11, 2, "buy"), 4)  # late, the same notional: arrived later, so not the largest
    agg.add(trade(1.5, 99, 1, "sell"), 5)  # late for a window without trades: a new final bar of its own
    rows = {(b.start_ns // S, b.version): b for b in agg.drain() if b.final}
    assert (rows[(0, 3)].max_trade_quote, rows[(0, 3)].max_trade_side) == (22.0, "sell")
    assert (rows[(0, 4)].max_trade_price, rows[(0, 4)].max_trade_side, rows[(0, 4)].max_trade_ts_ns) == (
        11.0, "sell", int(0.9 * S))  # fmt: skip
    assert (rows[(1, 5)].max_trade_quote, rows[(1, 5)].max_trade_price, rows[(1, 5)].max_trade_side) == (
        99.0, 99.0, "sell")  # fmt: skip


def test_the_largest_trade_survives_a_restore_through_the_store(store: BarStore) -> None:
    """An open bar and a final one (correctable) written, read back by resume_state and continued: the same rows as
    an uninterrupted run."""
    trades = [trade(0.2, 10, 5, "sell"), trade(0.6, 12, 1, "buy"), trade(1.3, 20, 2, "buy"), trade(1.5, 5, 1, "sell")]
    later = [trade(1.7, 11, 2, "sell"), trade(0.9, 30, 2, "buy"), trade(1.8, 20, 2, "sell"), trade(3.5, 1, 1, "buy")]
    whole = BarAggregator(["1s"], allowed_lateness_ns=S // 2, correction_horizon_ns=60 * S)
    for position, t in enumerate(trades + later):
        whole.add(t, position)
    whole.flush()
    first = BarAggregator(["1s"], allowed_lateness_ns=S // 2, correction_horizon_ns=60 * S)
    for position, t in enumerate(trades):
        first.add(t, position)
    written = first.drain()
    assert {(b.start_ns // S, b.final) for b in written} == {(0, True), (1, False)}
    store.insert_bars(written)
    resumed = store.resume_state(60 * S)
    assert sorted(resumed, key=lambda b: b.start_ns) == sorted(written, key=lambda b: b.start_ns)
    assert {b.start_ns // S: (b.max_trade_quote, b.max_trade_side) for b in resumed} == {0: (50.0, "sell"),
                                                                                        1: (40.0, "buy")}  # fmt: skip
    restored = BarAggregator(["1s"], allowed_lateness_ns=S // 2, correction_horizon_ns=60 * S)
    restored.restore(resumed)
    for position, t in enumerate(later, start=len(trades)):
        restored.add(t, position)
    restored.flush()
    got = {(b.start_ns, b.version): b for b in newest_versions(written + restored.drain())}
    want = {(b.start_ns, b.version): b for b in newest_versions(whole.drain())}
    assert got == want
    by_start = {start // S: b for (start, _), b in got.items()}
    assert (by_start[0].max_trade_quote, by_start[0].max_trade_side) == (60.0, "buy")  # the late trade corrected it
    # a tie after the restore (1.8 s, 40 sold): the first to arrive stays
    assert (by_start[1].max_trade_quote, by_start[1].max_trade_price, by_start[1].max_trade_ts_ns) == (
        40.0, 20.0, int(1.3 * S))  # fmt: skip
