"""`tapeline signals` and `tapeline evaluate-signals`: the signal service's engine over capture files, and
what its signals were worth afterwards."""

from __future__ import annotations

import math
import sys
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import click
import msgspec
from rich.console import Console
from rich.table import Table

from tapeline.config import Settings, SignalSettings
from tapeline.domain.aggregates import AssetBar, Bar, DerivBar, FootprintBar, LiquidationBar
from tapeline.domain.events import DerivTicker, Event, Liquidation, Signal, Trade
from tapeline.domain.intervals import INTERVAL_NS
from tapeline.flow.bars import BarAggregator
from tapeline.flow.derivatives import DerivativesAggregator
from tapeline.flow.footprint import BucketPolicy, FootprintAggregator
from tapeline.flow.liquidations import LiquidationAggregator
from tapeline.flow.windows import newest_versions
from tapeline.signals.engine import SignalEngine
from tapeline.signals.model import FOOTPRINTS, Point, SeriesKey, asset_key, point_of, venue_key
from tapeline.signals.rules import RuleError, Rules

Row = Bar | AssetBar | FootprintBar | LiquidationBar | DerivBar
HORIZONS = (1, 5, 15, 60)  # bars after the confirming bar
_json = msgspec.json.Encoder()


def load_rules(rules_file: Path | None, detectors: Sequence[str], intervals: Sequence[str] = ()) -> Rules:
    """The settings' rules (or a rules file's), restricted to `detectors`, at `intervals` if given (instead of
    each rule's own); errors as click usage errors."""
    try:
        settings = SignalSettings(rules_file=rules_file) if rules_file else Settings().signals
        rules = settings.signal_rules()
        rules = rules.only(detectors) if detectors else rules
        return rules.at_intervals(intervals) if intervals else rules
    except (ValueError, RuleError) as exc:
        raise click.UsageError(str(exc)) from None


@dataclass
class SignalInputs:
    """The rows the signal service would read for some events, in the order it would most likely read them."""

    rows: list[Row] = field(default_factory=list)

    def venue_bars(self) -> list[Bar]:
        return [r for r in self.rows if isinstance(r, Bar)]

    def asset_bars(self) -> list[AssetBar]:
        return [r for r in self.rows if isinstance(r, AssetBar)]


def signal_inputs(events: Iterable[Event], rules: Rules, intervals: Sequence[str], lateness_ns: int,
                  horizon_ns: int) -> SignalInputs:  # fmt: skip
    """Final venue bars, asset bars and the side rows of `events`, by the stream processor's code, newest
    version of each window, ordered by window end, then side rows, venue bars, asset bars (the order the
    stages publish them in)."""
    from tapeline.cli import asset_bars  # the asset stage's offline runner

    settings = Settings().processor
    bars = BarAggregator(intervals, lateness_ns, horizon_ns)
    wants_footprints = any(FOOTPRINTS in d.uses for _rule, d in rules.pairs())
    footprints = FootprintAggregator(intervals, lateness_ns, BucketPolicy(settings.footprint_buckets,
                                     settings.footprint_target_bps), correction_horizon_ns=horizon_ns)  # fmt: skip
    liquidations = LiquidationAggregator(intervals, lateness_ns, horizon_ns)
    derivs = DerivativesAggregator(intervals, lateness_ns, horizon_ns)
    for position, event in enumerate(events):
        if isinstance(event, Trade):
            bars.add(event, position)
            if wants_footprints:
                footprints.add(event, position)
        elif isinstance(event, Liquidation):
            liquidations.add(event, position)
        elif isinstance(event, DerivTicker) and event.ts_ns is not None:
            derivs.add(event, position)
    for aggregator in (bars, footprints, liquidations, derivs):
        aggregator.flush()
    venue_bars = newest_versions(bars.drain())
    rows: list[tuple[tuple[int, int, str], Row]] = []
    side: list[FootprintBar | LiquidationBar | DerivBar] = [
        *newest_versions(footprints.drain()[1]), *newest_versions(liquidations.drain()),
        *newest_versions(derivs.drain()),
    ]  # fmt: skip
    for row in side:
        rows.append(((row.start_ns + INTERVAL_NS[row.interval], 0, f"{row.venue}/{row.instrument}"), row))
    for bar in venue_bars:
        rows.append(((bar.start_ns + INTERVAL_NS[bar.interval], 1, f"{bar.venue}/{bar.instrument}"), bar))
    for asset_bar in asset_bars(venue_bars, intervals, lateness_ns + horizon_ns):
        rows.append(((asset_bar.start_ns + INTERVAL_NS[asset_bar.interval], 2, asset_bar.asset), asset_bar))
    rows.sort(key=lambda item: item[0])  # stable: each series keeps its order
    return SignalInputs([row for _key, row in rows])


def current(signals: Iterable[Signal]) -> list[Signal]:
    """Each signal's newest version that is not withdrawn, in confirmation order."""
    newest: dict[str, Signal] = {}
    for sig in signals:
        if sig.signal_id not in newest or sig.version > newest[sig.signal_id].version:
            newest[sig.signal_id] = sig
    return sorted((s for s in newest.values() if s.status != "withdrawn"), key=lambda s: (s.ts_ns, s.signal_id))


_detector_option = click.option(
    "--detector",
    "detectors",
    multiple=True,
    help="Only this detector (or rule name); repeat for several. Default: every rule.",
)
_rules_option = click.option(
    "--rules",
    "rules_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A rules file ([[rule]] tables, docs/signals.md). Default: the settings' rules.",
)
_interval_option = click.option("--interval", "intervals", multiple=True, type=click.Choice(list(INTERVAL_NS)),
                                help="Run every rule at this bar interval (repeat for several) instead of the "
                                     "rules' own intervals.")  # fmt: skip


def _inputs(captures: tuple[Path, ...], venue: str | None, rules: Rules, lateness_ms: int | None,
            horizon_ms: int | None) -> SignalInputs:  # fmt: skip
    from tapeline.cli import _events, _windowing

    lateness_ns, horizon_ns = _windowing(lateness_ms, horizon_ms)
    chosen = sorted(rules.intervals, key=INTERVAL_NS.__getitem__)
    events = (e for e in _events(captures, venue) if isinstance(e, Trade | Liquidation | DerivTicker))
    return signal_inputs(events, rules, chosen, lateness_ns, horizon_ns)


def _common(command: click.Command) -> click.Command:
    from tapeline.cli import _captures_argument, _horizon_option, _venue_option

    for decorate in (_horizon_option, _captures_argument, _venue_option, _rules_option, _detector_option,
                     click.option("--lateness-ms", default=None, type=int,
                                  help="Allowed lateness (default: the processor's setting)."),
                     _interval_option):  # fmt: skip
        command = decorate(command)
    return command


@click.command("signals")
@click.option(
    "--current",
    "only_current",
    is_flag=True,
    help="Print each signal's newest version only (withdrawn ones left out), not every version.",
)
def signals_command(only_current: bool, **options: object) -> None:
    """Print the signals of capture files as JSON lines: every version the signal service would publish for
    the same input (same engine, same rules), in order. Signal rows: docs/signals.md."""
    rules = load_rules(options["rules_file"], options["detectors"], options["intervals"])  # type: ignore[arg-type]
    inputs = _inputs(options["captures"], options["venue"], rules,  # type: ignore[arg-type]
                     options["lateness_ms"], options["horizon_ms"])  # type: ignore[arg-type]  # fmt: skip
    records = SignalEngine(rules).run(inputs.rows)
    out = sys.stdout.buffer
    for sig in current(records) if only_current else records:
        out.write(_json.encode(sig) + b"\n")


signals_command = _common(signals_command)


# ------------------------------------------------------------------ evaluation


@dataclass
class Outcome:
    """Forward results of one signal: the direction-signed return and the worst move against it, per horizon."""

    signal: Signal
    returns: dict[int, float]
    adverse: dict[int, float]


def series_points(inputs: Iterable[Bar | AssetBar]) -> dict[SeriesKey, list[Point]]:
    by_series: dict[SeriesKey, list[Point]] = {}
    for bar in inputs:
        key = asset_key(bar) if isinstance(bar, AssetBar) else venue_key(bar)
        by_series.setdefault(key, []).append(point_of(bar))
    for points in by_series.values():
        points.sort(key=lambda p: p.start_ns)
    return by_series


def _key_of(sig: Signal) -> SeriesKey:
    if sig.venue is None or sig.instrument is None:
        return SeriesKey("asset", sig.asset, sig.market, sig.interval)
    return SeriesKey("venue", sig.asset, sig.market, sig.interval, sig.venue, sig.instrument)


def outcomes(signals: Sequence[Signal], series: dict[SeriesKey, list[Point]],
             horizons: Sequence[int] = HORIZONS) -> list[Outcome]:  # fmt: skip
    """Entry at the close of the confirming bar; k bars later (k intervals of time: windows without trades have
    no bar) the close of the series' last bar that starts by then gives the return, signed by the direction
    (bullish: up is a gain), and the bars in between the largest move against it (highs/lows), both as
    fractions of the entry. A horizon the data does not reach (no bar within k intervals after it: the capture
    ended, or a gap to another capture) is left out for that signal, so a gap never counts as a move."""
    results = []
    for sig in signals:
        points = series.get(_key_of(sig))
        if not points:
            continue
        width = INTERVAL_NS[sig.interval]
        start = sig.ts_ns - width
        starts = [p.start_ns for p in points]
        i = bisect_left(starts, start)
        if i >= len(points) or starts[i] != start or not points[i].close:
            continue
        entry, sign = points[i].close, 1.0 if sig.direction == "bullish" else -1.0
        returns, adverse = {}, {}
        for k in horizons:
            until = start + k * width
            last = bisect_right(starts, until) - 1
            reached = bisect_left(starts, until)  # the first bar at or after the horizon
            if last <= i or reached >= len(points) or starts[reached] > until + k * width:
                continue  # nothing traded in between, or the data stops (or jumps to another capture) before it
            after = points[i + 1 : last + 1]
            returns[k] = sign * (after[-1].close / entry - 1)
            worst = min(p.low for p in after) if sign > 0 else max(p.high for p in after)
            adverse[k] = max(0.0, -sign * (worst / entry - 1))
        results.append(Outcome(sig, returns, adverse))
    return results


@dataclass
class Summary:
    group: str
    count: int
    mean_return: dict[int, float | None]
    hit_rate: dict[int, float | None]
    mean_adverse: dict[int, float | None]
    evaluated: dict[int, int]


def summarize(results: Sequence[Outcome], by: str = "kind", horizons: Sequence[int] = HORIZONS) -> list[Summary]:
    groups: dict[str, list[Outcome]] = {}
    for outcome in results:
        groups.setdefault(getattr(outcome.signal, by), []).append(outcome)
    summaries = []
    for name in sorted(groups):
        members = groups[name]
        mean_return, hit_rate, mean_adverse, evaluated = {}, {}, {}, {}
        for k in horizons:
            values = [o.returns[k] for o in members if k in o.returns]
            evaluated[k] = len(values)
            mean_return[k] = math.fsum(values) / len(values) if values else None
            hit_rate[k] = sum(v > 0 for v in values) / len(values) if values else None
            worst = [o.adverse[k] for o in members if k in o.adverse]
            mean_adverse[k] = math.fsum(worst) / len(worst) if worst else None
        summaries.append(Summary(name, len(members), mean_return, hit_rate, mean_adverse, evaluated))
    return summaries


def _bps(value: float | None) -> str:
    return "-" if value is None else f"{value * 1e4:+.1f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def render_table(summaries: Sequence[Summary], by: str, horizons: Sequence[int] = HORIZONS) -> Table:
    """A row per group and horizon: readable in 80 columns."""
    table = Table(title="What followed the signals (mean return signed by direction: + is a gain; mean adverse move)")
    table.add_column(by, no_wrap=True)
    for name in ("signals", "after bars", "n", "return bps", "hit rate", "adverse bps"):
        table.add_column(name, justify="right")
    for s in summaries:
        for n, k in enumerate(horizons):
            table.add_row(s.group if n == 0 else "", str(s.count) if n == 0 else "", str(k), str(s.evaluated[k]),
                          _bps(s.mean_return[k]), _pct(s.hit_rate[k]), _bps(s.mean_adverse[k]),
                          end_section=n == len(horizons) - 1)  # fmt: skip
    return table


def plot(summaries: Sequence[Summary], path: Path, horizons: Sequence[int] = HORIZONS) -> None:
    """Mean forward return (bars) and hit rate (markers) per group and horizon, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    fig, (ax_ret, ax_hit) = plt.subplots(2, 1, figsize=(max(8, len(summaries) * 1.2), 8), sharex=True)
    width = 0.8 / len(horizons)
    xs = range(len(summaries))
    for n, k in enumerate(horizons):
        offsets = [x + (n - (len(horizons) - 1) / 2) * width for x in xs]
        ax_ret.bar(offsets, [(s.mean_return[k] or 0.0) * 1e4 for s in summaries], width, label=f"{k} bars")
        ax_hit.bar(offsets, [(s.hit_rate[k] or 0.0) * 100 for s in summaries], width, label=f"{k} bars")
    ax_ret.axhline(0, color="black", linewidth=0.8)
    ax_ret.set_ylabel("mean forward return (bps, signed)")
    ax_hit.axhline(50, color="grey", linewidth=0.8, linestyle="--")
    ax_hit.set_ylabel("hit rate (%)")
    ax_hit.set_xticks(list(xs), [f"{s.group}\n(n={s.count})" for s in summaries], rotation=30, ha="right")
    ax_ret.legend(title="after")
    ax_ret.set_title("Tapeline signals: what followed them")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


@click.command("evaluate-signals")
@click.option(
    "--by",
    "by",
    type=click.Choice(["kind", "detector"]),
    default="kind",
    show_default=True,
    help="Group the table by signal kind or by detector (rule).",
)
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path), help="Also write a PNG here.")
def evaluate_command(by: str, plot_path: Path | None, **options: object) -> None:
    """Per detector: count, forward return after 1/5/15/60 bars of the signal's own series, hit rate and mean
    adverse move, for the signals of capture files (each signal's newest version, withdrawn ones left out)."""
    rules = load_rules(options["rules_file"], options["detectors"], options["intervals"])  # type: ignore[arg-type]
    inputs = _inputs(options["captures"], options["venue"], rules,  # type: ignore[arg-type]
                     options["lateness_ms"], options["horizon_ms"])  # type: ignore[arg-type]  # fmt: skip
    signals = current(SignalEngine(rules).run(inputs.rows))
    series = series_points([*inputs.venue_bars(), *inputs.asset_bars()])
    summaries = summarize(outcomes(signals, series), by)
    console = Console()
    console.print(render_table(summaries, by))
    console.print(f"{len(signals)} signals; horizons past the end of the data are left out of their columns.")
    if plot_path is not None:
        plot(summaries, plot_path)
        console.print(f"plot: {plot_path}")


evaluate_command = _common(evaluate_command)
