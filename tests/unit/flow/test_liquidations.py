"""Liquidation bars: long/short volume and counts per window, lateness, restart, idle closing."""

from __future__ import annotations

from tapeline.domain.aggregates import LiquidationBar
from tapeline.domain.events import Liquidation
from tapeline.flow.liquidations import LiquidationAggregator

S = 1_000_000_000


def liq(ts_s: float, position_side: str, qty: float, price: float = 100.0, venue: str = "okx") -> Liquidation:
    order_side = "sell" if position_side == "long" else "buy"
    return Liquidation(venue, "X", "BTC-USDT-PERP", int(ts_s * S), 0, position_side, order_side, price, qty,
                       price * qty)  # fmt: skip


def run(events: list[Liquidation], intervals=("1m",), lateness_s: float = 1.0) -> list[LiquidationBar]:
    agg = LiquidationAggregator(intervals, int(lateness_s * S))
    for position, event in enumerate(events):
        agg.add(event, position)
    agg.flush()
    return sorted(agg.drain(), key=lambda b: (b.interval, b.start_ns))


def test_sums_by_liquidated_side() -> None:
    (bar,) = run([liq(1, "long", 2.0, 99.0), liq(2, "short", 0.5, 101.0), liq(30, "long", 1.0, 98.0)])
    assert (bar.long_base, bar.short_base, bar.long_count, bar.short_count) == (3.0, 0.5, 2, 1)
    assert (bar.long_usd, bar.short_usd) == (99.0 * 2 + 98.0, 50.5)
    assert bar.final and bar.start_ns == 0


def test_windows_and_late_events() -> None:
    agg = LiquidationAggregator(["1m"], S)
    assert agg.add(liq(10, "long", 1.0), 0) == []
    assert agg.add(liq(65, "short", 1.0), 1) == []  # watermark 64 s: the first minute is final
    assert agg.add(liq(59, "long", 5.0), 2) == ["1m"]  # late: reported, not applied
    agg.flush()
    bars = sorted(agg.drain(), key=lambda b: b.start_ns)
    assert [(b.start_ns // S, b.long_base, b.short_base) for b in bars] == [(0, 1.0, 0.0), (60, 0.0, 1.0)]


def test_late_event_within_the_horizon_corrects_the_final_bar_also_after_a_restart() -> None:
    def feed(agg: LiquidationAggregator, events: list[Liquidation], first: int) -> list[LiquidationBar]:
        for position, event in enumerate(events, first):
            assert agg.add(event, position) == []
        return agg.drain()

    agg = LiquidationAggregator(["1m"], S, correction_horizon_ns=600 * S)
    persisted = {row.start_ns: row for row in feed(agg, [liq(10, "long", 1.0), liq(65, "short", 1.0)], 0)}
    assert persisted[0].final and persisted[0].long_base == 1.0
    restarted = LiquidationAggregator(["1m"], S, correction_horizon_ns=600 * S)
    restarted.restore(persisted.values())
    for row in feed(restarted, [liq(59, "long", 5.0)], 2):  # late for the final first minute
        persisted[row.start_ns] = row
    bar = persisted[0]
    assert (bar.final, bar.long_base, bar.long_count, bar.version) == (True, 6.0, 2, 2)
    assert restarted.corrections == {"1m": 1}


def test_restart_replays_without_double_counting() -> None:
    events = [liq(t, "long" if t % 2 else "short", 1.0) for t in range(0, 200, 7)]
    want = run(events)
    agg = LiquidationAggregator(["1m"], S)
    persisted: dict[tuple, LiquidationBar] = {}
    for position, event in enumerate(events[:15]):
        agg.add(event, position)
    for row in agg.drain():
        persisted[(row.interval, row.start_ns)] = row
    restarted = LiquidationAggregator(["1m"], S)
    restarted.restore(persisted.values())
    for position, event in enumerate(events):  # the consumer resumes from offset 0: replays are skipped
        restarted.add(event, position)
    restarted.flush()
    for row in restarted.drain():
        persisted[(row.interval, row.start_ns)] = row
    assert sorted(persisted.values(), key=lambda b: b.start_ns) == want


def test_idle_closing_waits_for_quiet_instruments() -> None:
    agg = LiquidationAggregator(["1m"], S)
    agg.add(liq(10, "long", 1.0), 0, now_ns=1000 * S)
    agg.close_idle(now_ns=1001 * S, idle_ns=3 * S)  # seen a second ago: may still be catching up
    assert not [b for b in agg.drain() if b.final]
    agg.close_idle(now_ns=1004 * S, idle_ns=3 * S)
    assert [b.final for b in agg.drain()] == [True]
