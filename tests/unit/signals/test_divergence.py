"""Divergence detector on hand-built bar sequences whose pivots and signals are worked out by hand, run
through the engine (rules, ids, versions)."""

from __future__ import annotations

import itertools
import random
from typing import Any

import msgspec
import pytest

from tapeline.domain.aggregates import AssetBar, Bar
from tapeline.domain.events import Signal
from tapeline.signals.engine import SignalEngine
from tapeline.signals.rules import Rules

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


def make_series(highs: list[float], lows: list[float] | float, cvds: dict[int, float], **kw: Any) -> list[Bar]:
    """Bars 0..n-1; a scalar `lows` is constant, which never forms a pivot low (ties on the right)."""
    lows_list = [lows] * len(highs) if isinstance(lows, int | float) else lows
    return [make_bar(i, h, lo, cvds.get(i, 0.0), **kw) for i, (h, lo) in enumerate(zip(highs, lows_list, strict=True))]


def engine(lookback: int = 3, max_distance: int = 60) -> SignalEngine:
    rule = {"detector": "divergence", "intervals": ["1m", "5m"],
            "params": {"lookback": lookback, "max_distance": max_distance}}  # fmt: skip
    return SignalEngine(Rules.parse([rule]))


def feed(eng: SignalEngine, bars: list[Bar]) -> list[Signal]:
    return eng.run(bars)


def per_bar(eng: SignalEngine, bars: list[Bar]) -> list[list[Signal]]:
    return [eng.add(b) for b in bars]


def variant(sig: Signal) -> str:
    return sig.kind.removeprefix("divergence_")


def prev_pivot(sig: Signal) -> int:
    return int(sig.detail["prev_pivot_ts_ms"] * 1e6)


def confirmed(sig: Signal) -> int:
    return sig.ts_ns - STEP  # ts_ns is the end of the confirming bar


# Pivot highs at 3 (10) and 10 (12); the lows are constant, so there are no pivot lows.
TWO_HIGHS = [1, 2, 3, 10, 3, 2, 1, 2, 3, 4, 12, 4, 3, 2]
# Pivot lows at 3 (1) and 10 (0); the highs are constant.
TWO_LOWS = [9, 8, 7, 1, 7, 8, 9, 8, 7, 6, 0, 6, 7, 8]


def test_regular_bearish_higher_high_lower_cvd() -> None:
    bars = make_series(TWO_HIGHS, 0.0, {3: 100.0, 10: 50.0})
    [sig] = feed(engine(), bars)
    assert (sig.kind, sig.direction, sig.status, sig.version) == ("divergence_regular", "bearish", "active", 1)
    assert (prev_pivot(sig), sig.pivot_ts_ns, confirmed(sig)) == (ts(3), ts(10), ts(13))
    assert tuple(sig.detail[k] for k in ("price_prev", "price_now", "cvd_prev", "cvd_now")) == (10, 12, 100.0, 50.0)
    assert (sig.venue, sig.instrument, sig.interval, sig.asset, sig.market) == (
        "binance-usdm",
        "BTC-USDT-PERP",
        "1m",
        "BTC",
        "perp",
    )


def test_hidden_bearish_lower_high_higher_cvd() -> None:
    highs = [*TWO_HIGHS[:10], 8, *TWO_HIGHS[11:]]  # second high 8 < 10
    [sig] = feed(engine(), make_series(highs, 0.0, {3: 100.0, 10: 150.0}))
    assert (variant(sig), sig.direction, sig.detail["price_prev"], sig.detail["price_now"]) == (
        "hidden",
        "bearish",
        10,
        8,
    )


def test_regular_bullish_lower_low_higher_cvd() -> None:
    [sig] = feed(engine(), make_series([20.0] * 14, TWO_LOWS, {3: -100.0, 10: -50.0}))
    assert (variant(sig), sig.direction) == ("regular", "bullish")
    assert (prev_pivot(sig), sig.pivot_ts_ns, confirmed(sig)) == (ts(3), ts(10), ts(13))
    assert tuple(sig.detail[k] for k in ("price_prev", "price_now", "cvd_prev", "cvd_now")) == (1, 0, -100.0, -50.0)


def test_hidden_bullish_higher_low_lower_cvd() -> None:
    lows = [*TWO_LOWS[:10], 2, *TWO_LOWS[11:]]  # second low 2 > 1
    [sig] = feed(engine(), make_series([20.0] * 14, lows, {3: -100.0, 10: -150.0}))
    assert (variant(sig), sig.direction, sig.detail["price_prev"], sig.detail["price_now"]) == (
        "hidden",
        "bullish",
        1,
        2,
    )


@pytest.mark.parametrize(
    ("highs", "lows", "cvds"),
    [
        (TWO_HIGHS, 0.0, {3: 100.0, 10: 150.0}),  # higher high, higher CVD: confirmation, not divergence
        (TWO_HIGHS, 0.0, {3: 100.0, 10: 100.0}),  # higher high, equal CVD
        ([20.0] * 14, TWO_LOWS, {3: -100.0, 10: -150.0}),  # lower low, lower CVD
    ],
)
def test_no_signal_when_price_and_cvd_agree(highs: list[float], lows: list[float] | float, cvds: dict) -> None:
    assert feed(engine(), make_series(highs, lows, cvds)) == []


def test_pivot_is_confirmed_exactly_lookback_bars_late() -> None:
    outputs = per_bar(engine(lookback=3), make_series(TWO_HIGHS, 0.0, {3: 100.0, 10: 50.0}))
    assert [i for i, out in enumerate(outputs) if out] == [13]  # pivot 10 + L
    # With L=2 the same shape (pivots at 2 and 6) confirms at 6 + 2.
    outputs = per_bar(engine(lookback=2), make_series([1, 2, 10, 2, 1, 2, 12, 2, 1], 0.0, {2: 100.0, 6: 50.0}))
    assert [i for i, out in enumerate(outputs) if out] == [8]
    [sig] = outputs[8]
    assert (sig.pivot_ts_ns, prev_pivot(sig), confirmed(sig)) == (ts(6), ts(2), ts(8))


def _peaks(positions: dict[int, float]) -> list[float]:
    """Highs of 1 with peaks at the given positions, plus 3 trailing bars to confirm the last one."""
    highs = [1.0] * (max(positions) + 4)
    for i, value in positions.items():
        highs[i] = value
    return highs


@pytest.mark.parametrize(("distance", "expected"), [(10, 1), (11, 0)])
def test_max_distance_is_respected(distance: int, expected: int) -> None:
    bars = make_series(_peaks({3: 10, 3 + distance: 12}), 0.0, {3: 100.0, 3 + distance: 50.0})
    assert len(feed(engine(max_distance=10), bars)) == expected


def test_pivot_too_far_away_still_becomes_the_previous_pivot() -> None:
    # 3 -> 14 is too far (11 > 10), 14 -> 19 is compared: lower high, higher CVD = hidden bearish.
    bars = make_series(_peaks({3: 10, 14: 12, 19: 11}), 0.0, {3: 100.0, 14: 50.0, 19: 80.0})
    [sig] = feed(engine(max_distance=10), bars)
    assert (variant(sig), sig.direction, prev_pivot(sig), sig.pivot_ts_ns) == ("hidden", "bearish", ts(14), ts(19))


def test_equal_highs_the_last_bar_of_the_run_is_the_pivot() -> None:
    # Bars 3 and 4 both reach 10: 3 has an equal bar on its right (not a pivot), 4 is the pivot.
    highs = [1, 2, 3, 10, 10, 2, 1, 2, 3, 12, 3, 2, 1]
    [sig] = feed(engine(), make_series(highs, 0.0, {3: 999.0, 4: 100.0, 9: 50.0}))
    assert (prev_pivot(sig), sig.detail["cvd_prev"], sig.pivot_ts_ns) == (ts(4), 100.0, ts(9))


def test_outside_bar_is_both_pivots_and_can_give_two_signals() -> None:
    highs, lows = [5.0] * 14, [4.0] * 14
    highs[3], lows[3] = 10.0, 0.0
    highs[10], lows[10] = 12.0, 1.0  # higher high and higher low, CVD lower
    outputs = per_bar(engine(), make_series(highs, lows, {3: 100.0, 10: 50.0}))
    assert {(variant(s), s.direction) for s in outputs[13]} == {("regular", "bearish"), ("hidden", "bullish")}
    assert sum(len(out) for out in outputs) == 2


def test_signal_ids_are_deterministic_and_distinct() -> None:
    bars = make_series(TWO_HIGHS, 0.0, {3: 100.0, 10: 50.0})
    first, again = feed(engine(), bars), feed(engine(), bars)
    assert first == again and len(first) == 1
    other_instrument = feed(engine(), make_series(TWO_HIGHS, 0.0, {3: 100.0, 10: 50.0}, instrument="ETH-USDT-PERP"))
    other_interval = feed(engine(), make_series(TWO_HIGHS, 0.0, {3: 100.0, 10: 50.0}, interval="5m"))
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
    assert feed(engine(), noisy) == feed(engine(), clean) != []


def test_redelivered_bars_publish_nothing_again() -> None:
    clean = make_series(TWO_HIGHS, 0.0, {3: 100.0, 10: 50.0})
    eng = engine()
    got = feed(eng, clean[:9])
    got += feed(eng, clean)  # a restart re-delivers from the start: unchanged bars publish nothing
    assert got == feed(engine(), clean) and len(got) == 1


def test_a_corrected_bar_revises_then_withdraws_and_restores_the_signal() -> None:
    clean = make_series(TWO_HIGHS, 0.0, {3: 100.0, 10: 50.0})
    eng = engine()
    [first] = feed(eng, clean)
    # The newer pivot's CVD moves but stays lower: same swings, new numbers -> revised, version 2.
    [revised] = eng.add(make_bar(10, 12.0, 0.0, 60.0))
    assert (revised.signal_id, revised.version, revised.status) == (first.signal_id, 2, "revised")
    assert revised.detail["cvd_now"] == 60.0 and revised.ts_ns == first.ts_ns
    # Its CVD rises above the older pivot's: no divergence any more -> withdrawn, version 3.
    [withdrawn] = eng.add(make_bar(10, 12.0, 0.0, 150.0))
    assert (withdrawn.signal_id, withdrawn.version, withdrawn.status) == (first.signal_id, 3, "withdrawn")
    # Back: active again with the next version.
    [back] = eng.add(make_bar(10, 12.0, 0.0, 50.0))
    assert (back.signal_id, back.version, back.status) == (first.signal_id, 4, "active")
    assert msgspec.structs.replace(back, version=1) == first


def test_a_correction_that_moves_the_pivot_withdraws_one_id_and_publishes_another() -> None:
    clean = make_series(TWO_HIGHS, 0.0, {3: 100.0, 9: 40.0, 10: 50.0})
    eng = engine()
    [first] = feed(eng, clean)
    # Bar 9 becomes the highest: bar 9 is the pivot now (and bar 10 is not), so the swing pair changes.
    out = eng.add(make_bar(9, 13.0, 0.0, 40.0))
    assert sorted((s.status, s.version) for s in out) == [("active", 1), ("withdrawn", 2)]
    withdrawn = next(s for s in out if s.status == "withdrawn")
    new = next(s for s in out if s.status == "active")
    assert withdrawn.signal_id == first.signal_id != new.signal_id
    assert new.pivot_ts_ns == ts(9)


def test_a_bar_arriving_out_of_order_is_placed_by_its_start() -> None:
    bars = make_series(TWO_HIGHS, 0.0, {3: 100.0, 10: 50.0})
    shuffled = bars[:5] + bars[6:] + [bars[5]]
    # Without bar 5 the pivots are one bar closer: published, then revised when bar 5 arrives.
    first, late = feed(engine(), shuffled)
    [in_order] = feed(engine(), bars)
    assert (first.status, late.status, late.version) == ("active", "revised", 2)
    assert (first.detail["bars_apart"], late.detail["bars_apart"]) == (6.0, 7.0)
    assert msgspec.structs.replace(late, version=1, status="active") == in_order


def test_series_are_kept_apart() -> None:
    a = make_series(TWO_HIGHS, 0.0, {3: 100.0, 10: 50.0}, instrument="BTC-USDT-PERP")  # regular bearish
    b = make_series(TWO_HIGHS, 0.0, {3: 100.0, 10: 150.0}, instrument="ETH-USDT-PERP")  # no divergence
    c = make_series(TWO_HIGHS, 0.0, {3: 100.0, 10: 50.0}, instrument="BTC-USDT-PERP", interval="5m")
    interleaved = [bar for triple in zip(a, b, c, strict=True) for bar in triple]
    signals = feed(engine(), interleaved)
    assert sorted((s.instrument, s.interval) for s in signals) == [("BTC-USDT-PERP", "1m"), ("BTC-USDT-PERP", "5m")]


def test_intervals_outside_the_rules_are_not_evaluated() -> None:
    bars = make_series(TWO_HIGHS, 0.0, {3: 100.0, 10: 50.0}, interval="15m")
    eng = engine()
    assert feed(eng, bars) == [] and not eng.series


def _reference(bars: list[Bar], lookback: int, distance: int) -> list[tuple[str, str, int, int]]:
    """The definition, read straight: every pivot, each compared with the nearest earlier one."""
    n = lookback
    highs = [b.high for b in bars]
    lows = [b.low for b in bars]
    out = []
    for key, values, is_high in (("high", highs, True), ("low", lows, False)):
        pivots = []
        for m in range(n, len(bars) - n):
            left, right = values[m - n : m], values[m + 1 : m + n + 1]
            if is_high and max(left) <= values[m] and max(right) < values[m]:
                pivots.append(m)
            if not is_high and min(left) >= values[m] and min(right) > values[m]:
                pivots.append(m)
        for k, m in itertools.pairwise(pivots):
            if m - k > distance:
                continue
            dp, dc = values[m] - values[k], bars[m].cvd_base - bars[k].cvd_base
            if is_high:
                kind = "regular" if dp > 0 and dc < 0 else "hidden" if dp < 0 and dc > 0 else None
            else:
                kind = "regular" if dp < 0 and dc > 0 else "hidden" if dp > 0 and dc < 0 else None
            if kind:
                out.append((kind, key, bars[k].start_ns, bars[m].start_ns))
    return sorted(out)


@pytest.mark.parametrize("seed", range(8))
def test_random_walks_match_the_definition(seed: int) -> None:
    rng = random.Random(seed)
    price, cvd, bars = 100.0, 0.0, []
    for i in range(600):
        price += rng.gauss(0, 1)
        cvd += rng.gauss(0, 50)
        bars.append(make_bar(i, round(price + rng.random(), 1), round(price - rng.random(), 1), round(cvd, 1)))
    got = sorted((variant(s), "high" if s.direction == "bearish" else "low", prev_pivot(s), s.pivot_ts_ns)
                 for s in feed(engine(3, 20), bars))  # fmt: skip
    assert got == _reference(bars, 3, 20)
    assert len(got) > 10


def make_asset_bar(i: int, high: float, low: float, cvd: float, kind: str = "perp") -> AssetBar:
    mid = (high + low) / 2
    return AssetBar(
        asset="BTC", kind=kind, interval="1m", start_ns=ts(i), open=mid, high=high, low=low, close=mid,
        buy_base=2.0, sell_base=2.0, buy_quote=2 * mid, sell_quote=2 * mid, delta_base=0.0, delta_quote=0.0,
        trades=4, cvd_base=cvd, cvd_daily_base=cvd, vwap=mid, buy_ratio=0.5, venues=["binance-usdm", "bybit-linear"],
        instruments=[], incomplete_venues=[], incomplete=False, final=True,
    )  # fmt: skip


def _venue_series(venue: str, cvds: dict[int, float]) -> list[Bar]:
    return [msgspec.structs.replace(b, venue=venue) for b in make_series(TWO_HIGHS, 0.0, cvds)]


def _asset_series() -> list[AssetBar]:
    cvds = {3: 100.0, 10: 50.0}
    return [make_asset_bar(i, h, 0.0, cvds.get(i, 0.0)) for i, h in enumerate(TWO_HIGHS)]


def test_an_asset_divergence_says_on_how_many_venues_it_holds() -> None:
    diverging = _venue_series("binance-usdm", {3: 100.0, 10: 50.0})
    agreeing = _venue_series("bybit-linear", {3: 100.0, 10: 150.0})  # CVD confirms the higher high there
    eng = engine()
    assert len(eng.run([*diverging, *agreeing])) == 1  # binance's own signal
    [asset] = eng.run(_asset_series())
    assert (asset.venue, asset.asset, asset.market, asset.kind) == (None, "BTC", "perp", "divergence_regular")
    assert (asset.detail["venues"], asset.detail["venues_confirming"]) == (2.0, 1.0)


def test_a_venue_bar_after_the_asset_bar_revises_the_venue_count() -> None:
    eng = engine()
    [asset] = eng.run(_asset_series())
    assert (asset.detail["venues"], asset.detail["venues_confirming"]) == (0.0, 0.0)
    records = eng.run(_venue_series("binance-usdm", {3: 100.0, 10: 50.0}))
    revised = [r for r in records if r.signal_id == asset.signal_id]
    assert revised, records
    last = revised[-1]
    assert (last.status, last.detail["venues"], last.detail["venues_confirming"]) == ("revised", 1.0, 1.0)
    assert last.version == len(revised) + 1  # each venue bar that moved the count published a version
