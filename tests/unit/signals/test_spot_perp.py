"""Spot versus perp CVD disagreement on asset series: constructed perp and spot series."""

from __future__ import annotations

from tests.support.signals import fired
from tests.unit.signals.test_divergence import make_asset_bar


def series(kind: str, cvds: list[float]) -> list:
    return [make_asset_bar(i, 101.0, 99.0, cvd, kind=kind) for i, cvd in enumerate(cvds)]


def run(perp: list[float], spot: list[float] | None) -> list:
    from tests.support.signals import engine

    eng = engine("spot_perp")
    out = []
    for i, bar in enumerate(series("perp", perp)):
        if spot is not None:
            out += eng.add(series("spot", spot)[i])
        out += eng.add(bar)
    return out


RISING = [float(i) for i in range(100)]  # slope 15 per 15 bars


def test_perp_selling_while_spot_buys_fires_once_bullish() -> None:
    perp = [float(i) if i < 80 else 80.0 - 10 * (i - 80) for i in range(100)]
    spot = [float(i) if i < 80 else 80.0 + 10 * (i - 80) for i in range(100)]
    out = run(perp, spot)
    assert [(k, d) for k, d, _i in fired(out)] == [("spot_perp_disagreement", "bullish")]
    [sig] = out
    assert sig.detail["perp_slope"] < -15 and sig.detail["spot_slope"] > 15 and sig.strength > 1
    assert (sig.venue, sig.market) == (None, "perp")


def test_agreeing_slopes_or_no_spot_series_do_not_fire() -> None:
    assert run(RISING, RISING) == []
    assert run([float(i) if i < 80 else 80.0 - 10 * (i - 80) for i in range(100)], None) == []


def test_a_spot_bar_after_the_perp_bar_re_evaluates() -> None:
    from tests.support.signals import engine

    perp = [float(i) if i < 80 else 80.0 - 10 * (i - 80) for i in range(100)]
    spot = [float(i) if i < 80 else 80.0 + 10 * (i - 80) for i in range(100)]
    eng = engine("spot_perp")
    out = []
    for bar in series("perp", perp):
        out += eng.add(bar)
    assert out == []  # no spot yet
    for bar in series("spot", spot):
        out += eng.add(bar)
    assert [(k, d) for k, d, _i in fired(out)] == [("spot_perp_disagreement", "bullish")]
