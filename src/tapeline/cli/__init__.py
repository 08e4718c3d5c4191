"""The `tapeline` command: capture tools (normalize, bars, obi, replay, record, import), migrations, queries."""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import click
import msgspec
from rich.progress import Progress

from tapeline.cli.query import query
from tapeline.config import Settings
from tapeline.domain.aggregates import AssetBar, AssetObiBar, Bar, FootprintLevel, ObiBar
from tapeline.domain.events import BookGap, BookUpdate, Event, Trade
from tapeline.domain.intervals import INTERVAL_NS
from tapeline.flow.assets import AssetBarAggregator, AssetObiAggregator, CrossVenueAggregator, In, Out
from tapeline.flow.bars import BarAggregator
from tapeline.flow.footprint import BucketPolicy, FootprintAggregator
from tapeline.flow.obi import ObiAggregator
from tapeline.flow.windows import newest_versions
from tapeline.io.capture import CaptureWriter, Rejected, read_capture, replay
from tapeline.venues import SESSIONS, detect_venue, make_session
from tapeline.venues.base import VenueSession

_json = msgspec.json.Encoder()


@click.group()
def main() -> None:
    """Tapeline: crypto order flow from venue websockets to bars, footprints and signals."""


main.add_command(query)


@main.command()
def migrate() -> None:
    """Apply pending ClickHouse migrations (embedded chdb or a server, per TAPELINE_CLICKHOUSE__DSN)."""
    from tapeline.io.store import connect
    from tapeline.io.store import migrate as apply

    settings = Settings().clickhouse
    applied = apply(connect(settings), settings.database)
    click.echo(f"{settings.dsn} / {settings.database}: applied {applied or 'nothing (up to date)'}")


_venue_option = click.option(
    "--venue", type=click.Choice(list(SESSIONS)), help="Venue of the captures (default: read from each file)."
)
_symbols_option = click.option(
    "--symbols",
    default="",
    help="Venue symbols of the captures, comma-separated (needed when a recorded REST "
    "answer does not say its symbol, e.g. a depth snapshot without its URL).",
)
_horizon_option = click.option(
    "--correction-horizon-ms", "horizon_ms", default=None, type=int,
    help="How long final bars take late-trade corrections (default: the processor's setting).",
)  # fmt: skip


def _by_option(instrument: str, asset: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """--by instrument|asset: the venue rows, or the cross-venue rows the asset stage makes of them."""
    return click.option("--by", "by", type=click.Choice(["instrument", "asset"]), default="instrument",
                        show_default=True, help=f"instrument: {instrument}; asset: {asset}.")  # fmt: skip


_captures_argument = click.argument("captures", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))


@main.command()
@_venue_option
@_symbols_option
@_captures_argument
def normalize(venue: str | None, symbols: str, captures: tuple[Path, ...]) -> None:
    """Print the normalized events of capture files as JSON lines, merged by receive time.

    Files of one venue share a session, so an instruments REST capture among them supplies contract
    values to the others.
    """
    out = sys.stdout.buffer
    for event in _events(captures, venue, symbols):
        out.write(_json.encode(event) + b"\n")


@main.command()
@click.option("--interval", "intervals", multiple=True, default=["1m"], show_default=True,
              type=click.Choice(list(INTERVAL_NS)), help="Bar interval; repeat for several.")  # fmt: skip
@click.option("--lateness-ms", default=None, type=int, help="Allowed lateness (default: the processor's setting).")
@_by_option("a bar per venue-instrument", "cross-venue bars per asset and kind (perp, spot, all) from those bars")
@_venue_option
@_captures_argument
@_horizon_option
def bars(intervals: tuple[str, ...], lateness_ms: int | None, horizon_ms: int | None, by: str, venue: str | None,
         captures: tuple[Path, ...]) -> None:  # fmt: skip
    """Print final bars of capture files as JSON lines, computed by the stream processor's code.

    Captures of several venues may be given together; with --by asset their bars of one asset are combined
    (asset units, e.g. Bybit 1000PEPE and Hyperliquid kPEPE as PEPE). At the end of the captures every venue
    counts as complete.
    """
    lateness_ns, horizon_ns = _windowing(lateness_ms, horizon_ms)
    aggregator = BarAggregator(intervals, lateness_ns, horizon_ns)
    late = 0
    trades = (e for e in _events(captures, venue) if isinstance(e, Trade))
    for position, trade in enumerate(trades):
        late += bool(aggregator.add(trade, position))
    aggregator.flush()
    out = sys.stdout.buffer
    venue_bars = newest_versions(aggregator.drain())
    rows: Sequence[msgspec.Struct] = venue_bars
    if by == "asset":
        rows = asset_bars(venue_bars, intervals, lateness_ns + horizon_ns)
    for row in rows:
        out.write(_json.encode(row) + b"\n")
    _report_late(late, aggregator.corrections)


def asset_bars(venue_bars: Sequence[Bar], intervals: Sequence[str], horizon_ns: int) -> list[AssetBar]:
    """Asset bars of final venue bars, by the asset stage's code, newest version of each window, in series
    and time order."""
    return _cross_venue(AssetBarAggregator(intervals, horizon_ns), venue_bars)


def asset_obi_bars(venue_rows: Sequence[ObiBar], intervals: Sequence[str]) -> list[AssetObiBar]:
    """Cross-venue OBI of final venue OBI bars, by the asset stage's code, newest version of each window."""
    return _cross_venue(AssetObiAggregator(intervals, 0), venue_rows)


def _cross_venue(aggregator: CrossVenueAggregator[In, Out], rows: Sequence[In]) -> list[Out]:
    """A finite input through a cross-venue aggregator: the newest row of each window, by series and time."""
    for position, row in enumerate(rows):
        aggregator.add(row, position)
    aggregator.flush()
    newest = {}
    for out in aggregator.drain():  # in version order: the last row of a window is its newest
        newest[(out.asset, out.kind, out.interval, out.start_ns)] = out
    return sorted(newest.values(), key=lambda r: (r.asset, r.kind, INTERVAL_NS[r.interval], r.start_ns))


@main.command()
@click.option("--interval", "intervals", multiple=True, default=["1m"], show_default=True,
              type=click.Choice(list(INTERVAL_NS)), help="Bar interval; repeat for several.")  # fmt: skip
@click.option("--lateness-ms", default=None, type=int,
              help="Allowed lateness (default: the processor's setting). OBI bars are never corrected, so there "
                   "is no --correction-horizon-ms: a late book event is applied at the newest time.")  # fmt: skip
@_by_option("OBI bars per venue-instrument", "cross-venue OBI per asset and kind over the bps bands, from those bars")
@_venue_option
@_symbols_option
@_captures_argument
def obi(intervals: tuple[str, ...], lateness_ms: int | None, by: str, venue: str | None, symbols: str,
        captures: tuple[Path, ...]) -> None:  # fmt: skip
    """Print final order-book imbalance bars (ObiBar) of book captures as JSON lines, by the processor's code.

    The book events (BookUpdate, BookGap) of the captures, merged by receive time, go through the
    ObiAggregator in that order; each line is the newest version of a final bar. The time after an
    instrument's last event is unknown, so its last bars are incomplete.
    """
    rows, late = _obi_rows(captures, venue, symbols, intervals, lateness_ms)
    out = sys.stdout.buffer
    printed: Sequence[msgspec.Struct] = rows if by == "instrument" else asset_obi_bars(rows, intervals)
    for row in printed:
        out.write(_json.encode(row) + b"\n")
    if late:
        click.echo(f"{late} book events were older than the watermark; applied to the book at the newest time, "
                   "as the processor does", err=True)  # fmt: skip


def _obi_rows(captures: tuple[Path, ...], venue: str | None, symbols: str, intervals: tuple[str, ...],
              lateness_ms: int | None) -> tuple[list[ObiBar], int]:  # fmt: skip
    """The venues' final OBI bars of the captures (newest version of each) and how many events were late."""
    lateness_ns, _ = _windowing(lateness_ms, None)
    try:
        aggregator = ObiAggregator(intervals, lateness_ns)
    except ValueError as exc:  # intervals that do not nest
        raise click.BadParameter(str(exc), param_hint="--interval") from None
    late = 0
    books = (e for e in _events(captures, venue, symbols) if isinstance(e, BookUpdate | BookGap))
    for position, event in enumerate(books):
        late += not aggregator.add(event, position)
    aggregator.flush()
    return newest_versions(aggregator.drain()), late


@main.command()
@click.option("--interval", "intervals", multiple=True, default=["1m"], show_default=True,
              type=click.Choice(list(INTERVAL_NS)), help="Bar interval; repeat for several.")  # fmt: skip
@click.option("--bucket", "buckets", multiple=True, metavar="INSTRUMENT=SIZE",
              help="Price bucket size of an instrument, e.g. BTC-USDT-PERP=10; repeat for several. "
                   "Default: the smallest 1/2/2.5/5 x 10^n >= 5 bp of the instrument's first price.")  # fmt: skip
@click.option("--levels", is_flag=True, help="Also print each bar's price levels, after the bar.")
@click.option("--imbalance-ratio", default=3.0, show_default=True, help="Diagonal imbalance ratio.")
@click.option("--imbalance-min-volume", default=0.0, show_default=True, help="Minimum base volume of an imbalance.")
@click.option("--lateness-ms", default=None, type=int, help="Allowed lateness (default: the processor's setting).")
@_venue_option
@_captures_argument
@_horizon_option
def footprint(intervals: tuple[str, ...], buckets: tuple[str, ...], levels: bool, imbalance_ratio: float,
              imbalance_min_volume: float, lateness_ms: int | None, horizon_ms: int | None, venue: str | None,
              captures: tuple[Path, ...]) -> None:  # fmt: skip
    """Print final footprint bars of capture files as JSON lines (FootprintBar; with --levels, FootprintLevel too)."""
    sizes = {}
    for spec in buckets:
        instrument, _, size = spec.partition("=")
        try:
            sizes[instrument] = float(size)
        except ValueError:
            raise click.BadParameter(f"{spec!r} is not INSTRUMENT=SIZE", param_hint="--bucket") from None
        if not sizes[instrument] > 0 or not instrument:
            raise click.BadParameter(f"{spec!r}: need an instrument and a positive size", param_hint="--bucket")
    lateness_ns, horizon_ns = _windowing(lateness_ms, horizon_ms)
    aggregator = FootprintAggregator(intervals, lateness_ns, BucketPolicy(sizes), imbalance_ratio,
                                     imbalance_min_volume, correction_horizon_ns=horizon_ns)  # fmt: skip
    late = 0
    trades = (e for e in _events(captures, venue) if isinstance(e, Trade))
    for position, trade in enumerate(trades):
        late += bool(aggregator.add(trade, position))
    aggregator.flush()
    level_rows, bar_rows = aggregator.drain()
    by_bar: dict[tuple[str, str, str, int, int], list[FootprintLevel]] = {}
    for level in level_rows:
        key = (level.venue, level.instrument, level.interval, level.start_ns, level.version)
        by_bar.setdefault(key, []).append(level)
    out = sys.stdout.buffer
    for bar in newest_versions(bar_rows):
        out.write(_json.encode(bar) + b"\n")
        if levels:
            key = (bar.venue, bar.instrument, bar.interval, bar.start_ns, bar.version)
            for level in sorted(by_bar[key], key=lambda x: x.price):
                out.write(_json.encode(level) + b"\n")
    _report_late(late, aggregator.corrections)


@main.command()
@click.option("--interval", "intervals", multiple=True, default=["1m"], show_default=True,
              type=click.Choice(list(INTERVAL_NS)), help="Bar interval; repeat for several.")  # fmt: skip
@click.option("--lateness-ms", default=None, type=int, help="Allowed lateness (default: the processor's setting).")
@_venue_option
@_captures_argument
@_horizon_option
def derivs(intervals: tuple[str, ...], lateness_ms: int | None, horizon_ms: int | None, venue: str | None,
           captures: tuple[Path, ...]) -> None:  # fmt: skip
    """Print final derivatives bars (DerivBar: funding, mark, index, basis, open-interest OHLC) of capture files
    as JSON lines, computed from their DerivTicker events by the stream processor's code."""
    from tapeline.domain.events import DerivTicker
    from tapeline.flow.derivatives import DerivativesAggregator

    lateness_ns, horizon_ns = _windowing(lateness_ms, horizon_ms)
    aggregator = DerivativesAggregator(intervals, lateness_ns, horizon_ns)
    late = untimed = 0
    tickers = (e for e in _events(captures, venue) if isinstance(e, DerivTicker))
    for position, ticker in enumerate(tickers):
        if ticker.ts_ns is None:  # a line recorded without a receive time, of a message without a venue time
            untimed += 1
            continue
        late += bool(aggregator.add(ticker, position))
    aggregator.flush()
    out = sys.stdout.buffer
    for bar in newest_versions(aggregator.drain()):
        out.write(_json.encode(bar) + b"\n")
    if untimed:
        click.echo(f"{untimed} tickers without a time (no venue time, no receive time) are left out", err=True)
    if aggregator.corrections:
        click.echo(f"{sum(aggregator.corrections.values())} late ticker-bar updates corrected final bars: "
                   f"{dict(aggregator.corrections)}", err=True)  # fmt: skip
    if late:
        click.echo(f"{late} tickers arrived past the correction horizon and are left out "
                   "(raise --lateness-ms or --correction-horizon-ms to include them)", err=True)  # fmt: skip


def _windowing(lateness_ms: int | None, horizon_ms: int | None) -> tuple[int, int]:
    """Allowed lateness and correction horizon in ns; unset ones are the processor's settings."""
    processor = Settings().processor
    lateness_ms = processor.allowed_lateness_ms if lateness_ms is None else lateness_ms
    horizon_ms = processor.correction_horizon_ms if horizon_ms is None else horizon_ms
    return lateness_ms * 1_000_000, horizon_ms * 1_000_000


def _report_late(late: int, corrections: Counter[str]) -> None:
    if corrections:
        click.echo(f"{sum(corrections.values())} late trade-bar updates corrected final bars: {dict(corrections)}",
                   err=True)  # fmt: skip
    if late:
        click.echo(f"{late} trades arrived past the correction horizon and are left out "
                   "(raise --lateness-ms or --correction-horizon-ms to include them)", err=True)  # fmt: skip


@main.command("replay")
@click.option("--pace", type=click.Choice(["fast", "recorded"]), default="fast", show_default=True)
@click.option("--speed", default=1.0, show_default=True, help="With --pace recorded: how many times faster.")
@_venue_option
@_symbols_option
@_captures_argument
def replay_command(pace: str, speed: float, venue: str | None, symbols: str, captures: tuple[Path, ...]) -> None:
    """Feed captures through the connector code into Kafka (REST lines in them answer its REST requests)."""
    from tapeline.io.kafka import DeadLetters, EventPublisher, ensure_topics, make_producer

    settings = Settings()
    ensure_topics(settings, settings.topics.venue_topics)
    producer = make_producer(settings)
    publisher = EventPublisher(producer, settings.topics)
    dead_letters = DeadLetters(producer, settings.topics.dead_letter, "replay")
    total = sum(1 for path in captures for _ in read_capture(path))
    first_recv = started = None
    with Progress() as progress:
        task = progress.add_task("replaying", total=total)
        for path, line, result in replay(_sessions(captures, venue, symbols), captures):
            if pace == "recorded" and line.recv_ts_ns:
                first_recv = first_recv or line.recv_ts_ns
                started = started or time.monotonic()
                delay = (line.recv_ts_ns - first_recv) / 1e9 / speed - (time.monotonic() - started)
                if delay > 0:
                    time.sleep(delay)
            if isinstance(result, Rejected):
                dead_letters.send(line.raw, result.reason, f"{path}:{line.line}")
            else:
                publisher.publish(result)
            publisher.flush_due()
            producer.poll(0)
            progress.advance(task)
    publisher.flush_all()
    producer.flush()
    click.echo(
        f"published {publisher.published} events to {settings.topics.prefix}*, dead-lettered {dead_letters.count}"
    )


@main.command()
@click.option("--venue", type=click.Choice(list(SESSIONS)), required=True)
@click.option("--symbols", required=True, help="Comma-separated venue symbols, e.g. BTCUSDT,ETHUSDT.")
@click.option("--channels", default=None, help="Comma-separated channels (default: all the venue offers).")
@click.option("--out", "out_path", type=click.Path(path_type=Path), required=True, help="Capture file to append to.")
@click.option("--duration", default=0.0, help="Stop after this many seconds (0: until Ctrl-C).")
def record(venue: str, symbols: str, channels: str | None, out_path: Path, duration: float) -> None:
    """Record a venue's websocket messages and the REST answers used, in the capture format."""
    import signal

    from tapeline.runtime.connector import Connector

    settings = Settings()
    session = make_session(venue, symbols.split(","), channels.split(",") if channels else None,
                           settings.connector.ws_base_url, settings.connector.rest_base_url)  # fmt: skip
    writer = CaptureWriter(out_path, f"tapeline-record:{venue}")
    counts: Counter[str] = Counter()

    def count(events: Sequence[Event]) -> None:
        counts.update(type(e).__name__ for e in events)

    def reject(raw: bytes | str, reason: str, context: str) -> None:
        counts["rejected"] += 1

    async def run() -> None:
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        if duration:
            asyncio.get_running_loop().call_later(duration, stop.set)
        await Connector(session, settings.connector, count, reject, writer).run(stop)

    try:
        asyncio.run(run())
    finally:
        writer.close()
    click.echo(f"recorded to {out_path}: {dict(counts)}")


@main.command("import-binance")
@click.option("--market", type=click.Choice(["usdm", "spot"]), required=True)
@click.option("--kind", type=click.Choice(["aggTrades", "trades"]), required=True)
@click.option("--symbol", required=True, help="Venue symbol of the files, e.g. BTCUSDT.")
@click.option("--dry-run", is_flag=True, help="Print the trades as JSON lines instead of publishing them.")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
def import_binance(market: str, kind: str, symbol: str, dry_run: bool, files: tuple[Path, ...]) -> None:
    """Backfill Binance data-archive CSV files (plain or .zip) into the trades topic."""
    from tapeline.io.binance_archive import read_trades

    trades = (t for path in files for t in read_trades(path, market, kind, symbol))
    if dry_run:
        for trade in trades:
            sys.stdout.buffer.write(_json.encode(trade) + b"\n")
        return
    from tapeline.io.kafka import EventPublisher, ensure_topics, make_producer

    settings = Settings()
    ensure_topics(settings, [settings.topics.trades])
    producer = make_producer(settings)
    publisher = EventPublisher(producer, settings.topics)
    batch: list[Trade] = []
    for trade in trades:
        batch.append(trade)
        if len(batch) >= 10_000:
            publisher.publish(batch)
            producer.poll(0)
            batch.clear()
    publisher.publish(batch)
    publisher.flush_all()
    producer.flush()
    click.echo(f"published {publisher.published} trades to {settings.topics.trades}")


def _sessions(captures: tuple[Path, ...], venue: str | None, symbols: str = "") -> dict[Path, VenueSession[Any]]:
    """One session per venue, shared by that venue's files."""
    by_venue: dict[str, VenueSession[Any]] = {}
    sessions = {}
    for path in captures:
        name = venue or _capture_venue(path)
        if name not in by_venue:
            by_venue[name] = make_session(name, [s for s in symbols.split(",") if s])
        sessions[path] = by_venue[name]
    return sessions


def _events(captures: tuple[Path, ...], venue: str | None, symbols: str = "") -> Iterator[msgspec.Struct]:
    """Normalized events of the captures; rejected lines are reported on stderr, once per reason."""
    reasons: Counter[str] = Counter()
    for _, _, result in replay(_sessions(captures, venue, symbols), captures):
        if isinstance(result, Rejected):
            if result.reason not in reasons:
                click.echo(f"{result.path}:{result.line.line or '?'}: skipped: {result.reason}", err=True)
            reasons[result.reason] += 1
        else:
            yield from result
    if reasons:
        click.echo(f"skipped {sum(reasons.values())} lines that are not events of a supported channel", err=True)


def _capture_venue(path: Path) -> str:
    first = next(read_capture(path), None)
    name = detect_venue(path, first.conn if first else None)
    if name is None:
        raise click.UsageError(f"cannot tell the venue of {path}; pass --venue")
    return name


# after the shared options above, which these commands reuse
from tapeline.cli.signals import evaluate_command, signals_command  # noqa: E402

main.add_command(signals_command)
main.add_command(evaluate_command)
