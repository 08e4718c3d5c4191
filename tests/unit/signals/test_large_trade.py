"""Large trades (signals/detectors/large_trade.py): a bar's largest trade against an absolute size and the mean."""

from __future__ import annotations

import pytest

from tapeline.domain.aggregates import Bar
from tapeline.domain.assets import usd_quoted
from tapeline.domain.intervals import INTERVAL_NS
from tapeline.signals.detectors.large_trade import LargeTrade, LargeTradeParams
from tapeline.signals.rules import RuleError, Rules
from tests.support.data import VENUE_TRADE_CAPTURES
from tests.support.signals import Expected, assert_matches, by_series, capture_bars, engine, fired, make_bar, run


def usual(n: int, start: int = 0, **kw: object) -> list[Bar]:
    """n bars of 2 trades and 200 USD (a mean trade of 100), their largest trade 150."""
    return [make_bar(i, max_trade_quote=150.0, max_trade_side="buy", max_trade_price=100.0, **kw)  # type: ignore[arg-type]
            for i in range(start, start + n)]  # fmt: skip


def big(i: int, usd: float, side: str = "buy", **kw: object) -> Bar:
    return make_bar(i, max_trade_quote=usd, max_trade_side=side, max_trade_price=101.5, **kw)  # type: ignore[arg-type]


def test_the_absolute_threshold_needs_no_history() -> None:
    [sig] = run("large_trade", [big(0, 1_000_000.0)])
    assert (sig.kind, sig.direction, sig.strength) == ("large_trade", "bullish", 1.0)  # no mean yet: / threshold
    assert sig.detail == {"trade_usd": 1_000_000.0, "trade_price": 101.5, "trade_ts_ms": (big(0, 1).start_ns + 1) / 1e6,
                          "mean_trade_usd": 0.0, "by_threshold": 1.0, "by_multiple": 0.0}  # fmt: skip
    assert run("large_trade", [big(0, 999_999.0)]) == []


def test_the_multiple_of_the_mean_trade_of_the_bars_before() -> None:
    [sig] = run("large_trade", [*usual(60), big(60, 5000.0, "sell")])
    assert (sig.direction, sig.strength, sig.detail["mean_trade_usd"]) == ("bearish", 50.0, 100.0)
    assert (sig.detail["by_threshold"], sig.detail["by_multiple"]) == (0.0, 1.0)
    assert run("large_trade", [*usual(60), big(60, 4999.0)]) == []
    # the bar's own volume is not in the mean: a huge bar around the trade changes nothing
    assert len(run("large_trade", [*usual(60), big(60, 5000.0, buy_quote=1e6, trades=3)])) == 1
    # one earlier bar is enough
    assert fired(run("large_trade", [*usual(1), big(1, 5000.0)]), "mean_trade_usd") == [("large_trade", "bullish", 1,
                                                                                          100.0)]  # fmt: skip


def test_the_mean_covers_mean_bars_bars() -> None:
    # 10 bars of 2 trades averaging 1000 USD, then 60 usual bars: only the 60 make the mean (100)
    dear = [make_bar(i, buy_quote=1000.0, sell_quote=1000.0) for i in range(10)]
    assert fired(run("large_trade", [*dear, *usual(60, 10), big(70, 5000.0)])) == [("large_trade", "bullish", 70)]
    # with 70 bars in the mean: (10 x 2000 + 60 x 200) / (10 x 2 + 60 x 2) USD per trade, 5000 is not 50 x that
    assert run("large_trade", [*dear, *usual(60, 10), big(70, 5000.0)], {"mean_bars": 70}) == []
    [sig] = run("large_trade", [*dear, *usual(60, 10), big(70, 5000.0)], {"mean_bars": 70, "multiple": 20})
    assert sig.detail["mean_trade_usd"] == pytest.approx(32000 / 140)


@pytest.mark.parametrize(
    "bar",
    [
        make_bar(60, max_trade_quote=0.0, max_trade_side="buy"),  # not known (a bar before v6)
        make_bar(60, max_trade_quote=1e7, max_trade_side=""),  # no side: not a trade we can read
    ],
)
def test_unknown_trades_never_fire(bar: Bar) -> None:
    assert run("large_trade", [*usual(60), bar]) == []


def test_non_usd_instruments_use_the_multiple_only() -> None:
    assert run("large_trade", [big(0, 2e6, instrument="FUN-BTC-SPOT")]) == []
    records = run("large_trade", [*usual(5, instrument="FUN-BTC-SPOT"), big(5, 5000.0, instrument="FUN-BTC-SPOT")])
    assert fired(records) == [("large_trade", "bullish", 5)]


def test_venue_series_only_history_and_params() -> None:
    assert LargeTrade(LargeTradeParams()).history(60 * 10**9) == 60
    for bad in ({"mean_bars": 0}, {"multiple": 0}, {"threshold_usd": 0}, {"size": 1}):
        with pytest.raises(RuleError, match="params"):
            Rules.parse([{"detector": "large_trade", "params": bad}])
    with pytest.raises(RuleError, match="venue"):
        Rules.parse([{"detector": "large_trade", "scopes": ["asset"]}])


def test_a_corrected_bar_revises_or_withdraws_through_the_engine() -> None:
    eng = engine("large_trade")
    [first] = eng.run([*usual(60), big(60, 6000.0)])
    [revised] = eng.add(big(60, 7000.0))
    assert (revised.signal_id, revised.version, revised.status, revised.strength) == (first.signal_id, 2, "revised",
                                                                                       70.0)  # fmt: skip
    # an earlier bar is corrected upwards: the mean grows and the trade is no longer 50 x it
    [gone] = eng.add(make_bar(30, buy_quote=20_000.0, max_trade_quote=150.0, max_trade_side="buy"))
    assert (gone.signal_id, gone.version, gone.status) == (first.signal_id, 3, "withdrawn")


# --- real captures -----------------------------------------------------------------------------------

REAL = {"threshold_usd": 1_000_000.0, "multiple": 20.0, "mean_bars": 30}


def reference(rows: list[Bar]) -> Expected:
    expected: Expected = {}
    threshold, multiple, n = REAL["threshold_usd"], REAL["multiple"], int(REAL["mean_bars"])
    for i, bar in enumerate(rows):
        before = rows[max(0, i - n) : i]
        count = sum(b.trades for b in before)
        mean = sum(b.buy_quote + b.sell_quote for b in before) / count if count else 0.0
        trade = bar.max_trade_quote
        if trade <= 0 or bar.max_trade_side not in ("buy", "sell"):
            continue
        absolute = usd_quoted(bar.instrument) and trade >= threshold
        relative = mean > 0 and trade >= multiple * mean
        if absolute or relative:
            key = ("large_trade", "bullish" if bar.max_trade_side == "buy" else "bearish",
                   bar.start_ns + INTERVAL_NS[bar.interval])  # fmt: skip
            detail = {
                "trade_usd": trade,
                "trade_price": bar.max_trade_price,
                "mean_trade_usd": mean,
                "trade_ts_ms": bar.max_trade_ts_ns / 1e6,
                "by_threshold": float(absolute),
                "by_multiple": float(relative),
            }
            expected[key] = (trade / mean if mean else trade / threshold, detail)
    return expected


@pytest.mark.data
@pytest.mark.parametrize("venue", list(VENUE_TRADE_CAPTURES))
def test_real_captures_fire_exactly_where_the_definition_says(venue: str) -> None:
    venue_bars, asset_bars = capture_bars(venue)
    assert all(b.max_trade_quote > 0 and b.max_trade_side in ("buy", "sell") for b in venue_bars)
    records = engine("large_trade", REAL, ["1s", "1m"]).run([*venue_bars, *asset_bars])
    expected: Expected = {}
    for key, series in by_series(venue_bars).items():
        bars = [b for b in series if isinstance(b, Bar)]
        expected.update({(key, *k): v for k, v in reference(bars).items()})
    count = assert_matches(records, expected)
    if venue == "binance-usdm":  # the BTC capture has trades of over 1M USD
        assert count > 0 and {r.detail["by_threshold"] for r in records} == {0.0, 1.0}
