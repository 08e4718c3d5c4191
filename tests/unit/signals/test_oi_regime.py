"""OI/price regimes over a window of bars, from derivatives bars; constructed cases and Bybit's real tickers."""

from __future__ import annotations

import pytest

from tapeline.signals.model import DerivPoint
from tests.support.signals import engine, fired, make_bar
from tests.unit.signals.test_funding import deriv

W = 3  # a short window keeps the cases readable


def feed(closes: list[float], ois: list[float | None], **params: float) -> list:
    eng = engine("oi_regime", {"window": W, **params})
    out = []
    for i, (close, oi) in enumerate(zip(closes, ois, strict=True)):
        out += eng.add(make_bar(i, high=close + 1, low=close - 1, close=close))
        out += eng.add(deriv(i, 0.0001, oi))
    return out


@pytest.mark.parametrize(
    ("price_step", "oi_step", "kind", "direction"),
    [(1, 10, "oi_new_longs", "bullish"), (1, -10, "oi_short_covering", "bearish"),
     (-1, 10, "oi_new_shorts", "bearish"), (-1, -10, "oi_long_liquidation", "bullish")],
)  # fmt: skip
def test_each_regime_fires_when_entered(price_step: float, oi_step: float, kind: str, direction: str) -> None:
    closes = [100.0 + price_step * max(0, i - 1) for i in range(8)]  # flat, then 1% a bar
    ois = [1000.0 + oi_step * max(0, i - 1) for i in range(8)]
    out = feed(closes, ois)
    assert fired(out) == [(kind, direction, 3)]  # bar 3: window 0..3 moved 2 steps, beyond 0.5% both
    assert out[0].detail["price_change"] == pytest.approx(closes[3] / closes[0] - 1)
    assert out[0].detail["oi_change"] == pytest.approx(ois[3] / ois[0] - 1)  # and it holds on without firing again


def test_moves_below_the_threshold_or_without_oi_do_not_fire() -> None:
    closes = [100.0 + 0.1 * i for i in range(8)]  # 0.3% over the window
    assert feed(closes, [1000.0 + 10 * i for i in range(8)]) == []
    assert feed([100.0 + i for i in range(8)], [None] * 8) == []
    # OI missing at the window's far end, then known: the regime is entered once both ends are known
    out = feed([100.0 + i for i in range(8)], [None, None, 1000.0, 1010.0, 1020.0, 1030.0, 1040.0, 1050.0])
    assert fired(out) == [("oi_new_longs", "bullish", 5)]


def test_a_regime_change_fires_again() -> None:
    closes = [100, 101, 102, 103, 104, 105, 106, 107, 108, 109]
    ois = [1000, 1010, 1020, 1030, 1040, 1030, 1020, 1010, 1000, 990]
    kinds = [k for k, _d, _i in fired(feed([float(c) for c in closes], [float(o) for o in ois]))]
    assert kinds == ["oi_new_longs", "oi_short_covering"]


def test_the_derivs_side_rows_reach_the_detector() -> None:
    assert DerivPoint(0.0001, 1.0, 1.0, 1.0).funding_interval_h == 8.0
