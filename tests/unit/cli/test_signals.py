"""`tapeline evaluate-signals` arithmetic (forward returns, adverse moves, gaps) and its outputs."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from tapeline.cli import main
from tapeline.cli.signals import Outcome, outcomes, plot, render_table, series_points, summarize
from tapeline.domain.events import Signal
from tests.support.signals import MINUTE, T0, make_bar


def sig(i: int, direction: str = "bullish", kind: str = "absorption") -> Signal:
    return Signal(f"id{i}{direction}", 1, "active", kind, direction, "binance-usdm", "BTC-USDT-PERP", "BTC", "perp",
                  "1m", T0 + (i + 1) * MINUTE, None, 1.0, {}, kind)  # fmt: skip


def bars(closes: dict[int, float]) -> list:
    return [make_bar(i, high=c + 1, low=c - 2, close=c) for i, c in sorted(closes.items())]


def test_returns_are_signed_by_direction_and_adverse_moves_come_from_highs_and_lows() -> None:
    series = series_points(bars({0: 100.0, 1: 101.0, 2: 99.0, 3: 102.0, 4: 103.0, 5: 104.0, 6: 105.0}))
    up, down = outcomes([sig(0), sig(0, "bearish")], series, horizons=(1, 3))
    assert up.returns == {1: pytest.approx(0.01), 3: pytest.approx(0.02)}
    assert up.adverse == {1: pytest.approx(0.01), 3: pytest.approx(0.03)}  # lows 99, 97: 1% and 3% below 100
    assert down.returns == {1: pytest.approx(-0.01), 3: pytest.approx(-0.02)}
    assert down.adverse[3] == pytest.approx(0.03)  # highs up to 103


def test_a_horizon_past_the_data_or_across_a_gap_is_left_out() -> None:
    # bars 0..2, then another capture 1000 bars later
    series = series_points(bars({0: 100.0, 1: 101.0, 2: 102.0, 1000: 50.0, 1001: 51.0}))
    [o] = outcomes([sig(0)], series, horizons=(1, 2, 5))
    assert sorted(o.returns) == [1, 2]  # 5 bars later lies in the gap
    # a quiet window without a bar still counts as time: 3 bars later uses bar 2's close (bar 3 does not exist)
    series = series_points(bars({0: 100.0, 2: 102.0, 4: 104.0}))
    [o] = outcomes([sig(0)], series, horizons=(3,))
    assert o.returns == {3: pytest.approx(0.02)}


def test_summary_table_and_plot(tmp_path: Path) -> None:
    results = [Outcome(sig(0), {1: 0.01}, {1: 0.002}), Outcome(sig(1), {1: -0.03}, {1: 0.04}),
               Outcome(sig(2, kind="cmf_cross"), {}, {})]  # fmt: skip
    [absorption, cmf] = summarize(results, "kind", horizons=(1,))
    assert (absorption.group, absorption.count, absorption.evaluated[1]) == ("absorption", 2, 2)
    assert absorption.mean_return[1] == pytest.approx(-0.01) and absorption.hit_rate[1] == 0.5
    assert absorption.mean_adverse[1] == pytest.approx(0.021)
    assert (cmf.count, cmf.mean_return[1], cmf.hit_rate[1]) == (1, None, None)
    console = Console(width=100, record=True)
    console.print(render_table([absorption, cmf], "kind", horizons=(1,)))
    text = console.export_text()
    assert "absorption" in text and "-100.0" in text and "50%" in text
    path = tmp_path / "eval.png"
    plot([absorption, cmf], path, horizons=(1,))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_rules_are_usage_errors_naming_the_field(tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rule]]\ndetector = "divergence"\nparams = { lookback = 0 }\n')
    capture = tmp_path / "empty.jsonl"
    capture.write_text("")
    result = CliRunner().invoke(main, ["signals", "--venue", "binance-usdm", "--rules", str(rules), str(capture)])
    assert result.exit_code == 2
    assert "params.lookback" in result.output and "greater than or equal to 1" in result.output
    result = CliRunner().invoke(main, ["signals", "--venue", "binance-usdm", "--detector", "nope", str(capture)])
    assert result.exit_code == 2 and "no rule runs detector ['nope']" in result.output
