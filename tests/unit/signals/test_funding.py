"""Extreme funding, from derivatives bars: constructed cases, the side-row wiring, and Bybit's real tickers."""

from __future__ import annotations

import pytest

from tapeline.domain.aggregates import DerivBar
from tapeline.signals.engine import SignalEngine
from tapeline.signals.rules import Rules
from tests.support.signals import MINUTE, T0, engine, fired, make_bar


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
        bar = make_bar(i, instrument="BTC-USDC-PERP")
        out += eng.add(bar.__class__(**{**{f: getattr(bar, f) for f in bar.__struct_fields__}, "venue": "hyperliquid"}))
        out += eng.add(deriv(i, rate, venue="hyperliquid", instrument="BTC-USDC-PERP"))
    assert fired(out, "rate_8h") == [("funding_extreme", "bearish", 1, pytest.approx(0.0008))]


def test_a_derivatives_row_before_its_bar_and_a_corrected_row() -> None:
    eng = engine("funding")
    assert eng.add(deriv(0, 0.0001)) == [] and eng.add(deriv(1, 0.0009)) == []  # no bars yet
    assert eng.add(make_bar(0)) == []
    [sig] = eng.add(make_bar(1))  # the rows were kept: the bar finds them
    [gone] = eng.add(deriv(1, 0.0002))  # corrected below the threshold
    assert (gone.signal_id, gone.version, gone.status) == (sig.signal_id, 2, "withdrawn")
