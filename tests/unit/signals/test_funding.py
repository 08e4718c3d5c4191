"""Extreme funding, from derivatives bars: constructed cases, the side-row wiring, and Bybit's real tickers."""

from __future__ import annotations

import itertools

import msgspec
import pytest

from tapeline.domain.aggregates import DerivBar
from tapeline.signals.engine import SignalEngine
from tapeline.signals.rules import Rules
from tests.support.signals import MINUTE, T0, bar_index, engine, fired, make_bar


def deriv(i: int, rate: float | None, oi: float | None = 1000.0, venue: str = "binance-usdm",
          interval: str = "1m", instrument: str = "BTC-USDT-PERP") -> DerivBar:  # fmt: skip
    return DerivBar(venue, instrument, interval, T0 + i * MINUTE, rate, 100.0, 100.0, 0.0, oi, oi, oi, oi, 0.0,
                    oi, oi, oi, oi, None, 1, final=True)  # fmt: skip


def test_fires_on_entry_only_with_the_sign_giving_the_direction() -> None:
    eng = engine("funding")
    rates = [0.0001, 0.0004, 0.0006, 0.0007, 0.0001, -0.0005, -0.0009]
    out = []
    for i, rate in enumerate(rates):
        out += eng.add(make_bar(i))
        out += eng.add(deriv(i, rate))
    assert fired(out, "rate_8h") == [("funding_extreme", "bearish", 2, 0.0006),
                                     ("funding_extreme", "bullish", 5, -0.0005)]  # fmt: skip
    assert out[0].strength == pytest.approx(1.2)


def test_just_below_the_threshold_and_missing_rates_do_not_fire() -> None:
    eng = engine("funding")
    out = []
    for i, rate in enumerate([0.0001, 0.000499, None, 0.0009]):
        out += eng.add(make_bar(i))
        out += eng.add(deriv(i, rate))
    assert out == []  # 0.0009 follows a bar without a rate: not an entry that was seen


def test_hyperliquid_rates_are_hourly_and_compared_per_8h() -> None:
    eng = SignalEngine(Rules.parse([{"detector": "funding"}]))
    out = []
    for i, rate in enumerate([0.00001, 0.0001]):  # 0.01% per hour = 0.08% per 8h
        bar = msgspec.structs.replace(make_bar(i, instrument="BTC-USDC-PERP"), venue="hyperliquid")
        out += eng.add(bar)
        out += eng.add(deriv(i, rate, venue="hyperliquid", instrument="BTC-USDC-PERP"))
    assert fired(out, "rate_8h") == [("funding_extreme", "bearish", 1, pytest.approx(0.0008))]


def test_a_derivatives_row_before_its_bar_and_a_corrected_row() -> None:
    eng = engine("funding")
    assert eng.add(deriv(0, 0.0001)) == [] and eng.add(deriv(1, 0.0009)) == []  # no bars yet
    assert eng.add(make_bar(0)) == []
    [sig] = eng.add(make_bar(1))  # the rows were kept: the bar finds them
    [gone] = eng.add(deriv(1, 0.0002))  # corrected below the threshold
    assert (gone.signal_id, gone.version, gone.status) == (sig.signal_id, 2, "withdrawn")


@pytest.mark.data
def test_real_bybit_tickers_fire_where_the_rates_enter_beyond_the_threshold() -> None:
    from tests.support.derivs import bybit_linear_tickers, run_derivs

    rows = [r for r in run_derivs(bybit_linear_tickers(), ["1s"], 0) if r.final]
    # The real rates are tiny and change once in the capture (ETH: 4.617e-05 -> 4.709e-05): a threshold between
    # the two makes that change an entry, and BTC's constant 0.0001 a level seen from its first bar on.
    eth = sorted({abs(r.funding_rate) for r in rows if r.funding_rate is not None and r.instrument.startswith("ETH")})
    threshold = (eth[0] + eth[-1]) / 2
    eng = engine("funding", {"threshold": threshold}, ["1s"])
    out = []
    for row in rows:
        bar = make_bar(0, instrument=row.instrument, interval="1s", start_ns=row.start_ns)
        out += eng.add(msgspec.structs.replace(bar, venue=row.venue))
        out += eng.add(row)
    expected = []  # the definition, read straight off the rows of each instrument
    for instrument in sorted({r.instrument for r in rows}):
        series = sorted((r for r in rows if r.instrument == instrument), key=lambda r: r.start_ns)
        for before, now in itertools.pairwise(series):
            if before.funding_rate is None or now.funding_rate is None:
                continue
            if abs(now.funding_rate) >= threshold > abs(before.funding_rate):
                expected.append((instrument, now.start_ns, "bearish" if now.funding_rate > 0 else "bullish"))
    got = [(s.instrument, s.ts_ns - 1_000_000_000, s.direction) for s in out]
    assert sorted(got) == sorted(expected)
    assert [i for i, _t, _d in got] == ["ETH-USDT-PERP"]


def test_a_corrected_rate_still_beyond_the_threshold_revises() -> None:
    eng = engine("funding")
    for i, rate in enumerate([0.0001, 0.0002]):
        eng.add(make_bar(i))
        eng.add(deriv(i, rate))
    eng.add(make_bar(2))
    [sig] = eng.add(deriv(2, 0.0006))  # the row after its bar
    [revised] = eng.add(deriv(2, 0.0010))
    assert (revised.signal_id, revised.version, revised.status) == (sig.signal_id, 2, "revised")
    assert (sig.strength, revised.strength) == (pytest.approx(1.2), pytest.approx(2.0))
    # bar 1's rate corrected beyond the threshold: the entry is at bar 1 now, bar 2 only stays there
    out = eng.add(deriv(1, 0.0007))
    assert sorted((s.status, s.version, bar_index(s)) for s in out) == [("active", 1, 1), ("withdrawn", 3, 2)]
