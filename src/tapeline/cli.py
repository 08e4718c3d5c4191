"""The `tapeline` command: offline tools over capture files, migrations, local broker, queries."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import click
import msgspec

from tapeline.capture import merge_tagged, read_capture
from tapeline.config import INTERVAL_NS, Settings
from tapeline.errors import BadMessage
from tapeline.events import Trade
from tapeline.flow.bars import BarAggregator
from tapeline.rpc.commands import query
from tapeline.venues import VENUE_MODULES, detect_venue, venue_module

_json = msgspec.json.Encoder()


@click.group()
def main() -> None:
    """Tapeline: crypto order flow from venue websockets to bars, footprints and signals."""


@main.command()
def migrate() -> None:
    """Apply pending ClickHouse migrations (embedded chdb or a server, per TAPELINE_CLICKHOUSE__DSN)."""
    from tapeline.store.clickhouse import connect
    from tapeline.store.clickhouse import migrate as apply

    settings = Settings().clickhouse
    applied = apply(connect(settings), settings.database)
    click.echo(f"{settings.dsn} / {settings.database}: applied {applied or 'nothing (up to date)'}")


_venue_option = click.option(
    "--venue", type=click.Choice(sorted(VENUE_MODULES)), help="Venue of the captures (default: read from each file)."
)
_captures_argument = click.argument("captures", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))


@main.command()
@_venue_option
@_captures_argument
def normalize(venue: str | None, captures: tuple[Path, ...]) -> None:
    """Print the normalized events of capture files as JSON lines (merged by receive time)."""
    out = sys.stdout.buffer
    for trade in _trades(captures, venue):
        out.write(_json.encode(trade) + b"\n")


@main.command()
@click.option("--interval", "intervals", multiple=True, default=["1m"], show_default=True,
              type=click.Choice(list(INTERVAL_NS)), help="Bar interval; repeat for several.")  # fmt: skip
@click.option("--lateness-ms", default=None, type=int, help="Allowed lateness (default: the processor's setting).")
@_venue_option
@_captures_argument
def bars(intervals: tuple[str, ...], lateness_ms: int | None, venue: str | None, captures: tuple[Path, ...]) -> None:
    """Print final bars of capture files as JSON lines, computed by the stream processor's code."""
    if lateness_ms is None:
        lateness_ms = Settings().processor.allowed_lateness_ms
    aggregator = BarAggregator(intervals, lateness_ms * 1_000_000)
    late = 0
    for position, trade in enumerate(_trades(captures, venue)):
        late += bool(aggregator.add(trade, position))
    aggregator.flush()
    rows = sorted(aggregator.drain(), key=lambda b: (b.venue, b.instrument, INTERVAL_NS[b.interval], b.start_ns))
    out = sys.stdout.buffer
    for bar in rows:
        out.write(_json.encode(bar) + b"\n")
    if late:
        click.echo(f"{late} trades arrived after their bar was final (raise --lateness-ms to include them)", err=True)


def _trades(captures: tuple[Path, ...], venue: str | None) -> Iterator[Trade]:
    """Trades of the captures merged by receive time; bad lines are reported on stderr, once per reason."""
    parsers = {path: venue_module(venue or _capture_venue(path)).parse for path in captures}
    reasons: dict[str, int] = {}
    for path, line in merge_tagged(captures):
        try:
            yield from parsers[path](line.raw, line.recv_ts_ns)
        except BadMessage as exc:
            if exc.reason not in reasons:
                click.echo(f"{path}:{line.line or '?'}: skipped: {exc.reason}", err=True)
            reasons[exc.reason] = reasons.get(exc.reason, 0) + 1
    if reasons:
        click.echo(f"skipped {sum(reasons.values())} lines that are not trades of a supported channel", err=True)


def _capture_venue(path: Path) -> str:
    first = next(read_capture(path), None)
    name = detect_venue(path, first.conn if first else None)
    if name is None:
        raise click.UsageError(f"cannot tell the venue of {path}; pass --venue")
    return name


main.add_command(query)
