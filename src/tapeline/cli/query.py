"""`tapeline query ...`: read bars from the query service as a table or JSON lines."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import click
import msgspec
from rich.console import Console
from rich.table import Table
from rich.text import Text

from tapeline.config import Settings
from tapeline.domain.aggregates import Bar
from tapeline.io.rpc.client import QueryClient, QueryError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_UNIT_NS = {"s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000, "d": 86_400_000_000_000}
_DURATION = re.compile(r"^(\d+)([smhd])$")
_INT64_MAX = 2**63 - 1


class Duration(click.ParamType):
    """`90s`, `15m`, `4h`, `2d` -> nanoseconds."""

    name = "duration"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        match = _DURATION.match(str(value).strip())
        if not match or int(match[1]) == 0:
            self.fail(f"{value!r} is not a positive duration like 30s, 15m, 4h or 1d", param, ctx)
        return int(match[1]) * _UNIT_NS[match[2]]


class Timestamp(click.ParamType):
    """ISO 8601 (naive means UTC) or integer nanoseconds since the epoch -> nanoseconds."""

    name = "time"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip()
        if re.fullmatch(r"-?\d+", text):
            ns = int(text)
        else:
            try:
                moment = datetime.fromisoformat(text)
            except ValueError:
                self.fail(f"{text!r} is neither ISO 8601 (2024-05-01T12:00:00Z) nor ns since the epoch", param, ctx)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            ns = (moment - _EPOCH) // timedelta(microseconds=1) * 1000
        if abs(ns) > _INT64_MAX:
            self.fail(f"{text!r} is out of the int64 nanosecond range", param, ctx)
        return ns


def _default_target() -> str:
    settings = Settings().query
    # The server may bind every interface; a client reaches it locally then.
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "[::]", "") else settings.host
    return f"{host}:{settings.port}"


@contextmanager
def _reported_errors() -> Iterator[None]:
    """Query failures become one stderr line with the gRPC code and a non-zero exit, no traceback."""
    try:
        yield
    except QueryError as exc:
        click.echo(f"error: {exc.code.name}: {exc.details}", err=True)
        raise click.exceptions.Exit(1) from None


_target_option = click.option(
    "--target", default=None, help="host:port of the query service [default: from TAPELINE_QUERY__HOST/PORT]"
)
_json_option = click.option("--json", "as_json", is_flag=True, help="One JSON object per line instead of a table.")


@click.group()
def query() -> None:
    """Read bars from the gRPC query service."""


@query.command()
@click.option("--venue", required=True, help="e.g. binance-usdm")
@click.option("--instrument", required=True, help="canonical, e.g. BTC-USDT-PERP")
@click.option("--interval", required=True, help="e.g. 1s, 1m, 1h")
@click.option("--since", type=Duration(), default=None, help="The window of this length ending at --to [default: 1h]")
@click.option("--from", "from_ns", type=Timestamp(), default=None, help="First bar start: ISO 8601 (UTC) or ns")
@click.option("--to", "to_ns", type=Timestamp(), default=None, help="End (exclusive): ISO 8601 or ns [default: now]")
@click.option("--limit", type=click.IntRange(0, 2**32 - 1), default=0, help="At most N bars [default: server max]")
@_target_option
@_json_option
def bars(venue: str, instrument: str, interval: str, since: int | None, from_ns: int | None, to_ns: int | None,
         limit: int, target: str | None, as_json: bool) -> None:  # fmt: skip
    """Bars of one series with --from <= start < --to, oldest first."""
    if since is not None and from_ns is not None:
        raise click.UsageError("give either --since or --from, not both")
    if to_ns is None:
        to_ns = time.time_ns()
    if from_ns is None:
        from_ns = to_ns - (since or _UNIT_NS["h"])
    with _reported_errors(), QueryClient(target or _default_target()) as client:
        page = client.get_bars_page(venue, instrument, interval, from_ns, to_ns, limit)
    if as_json:
        for bar in page.bars:
            click.echo(msgspec.json.encode(bar).decode())
    else:
        _print_table(_bar_table(page.bars, f"{venue} {instrument} {interval}"))
    if page.truncated:
        next_from = page.bars[-1].start_ns + 1
        click.echo(f"truncated after {len(page.bars)} bars; continue with --from {next_from}", err=True)


@query.command()
@_target_option
@_json_option
def series(target: str | None, as_json: bool) -> None:
    """Every venue/instrument/interval that has bars."""
    with _reported_errors(), QueryClient(target or _default_target()) as client:
        rows = client.list_series()
    if as_json:
        for venue, instrument, interval in rows:
            click.echo(msgspec.json.encode({"venue": venue, "instrument": instrument, "interval": interval}).decode())
        return
    table = Table("venue", "instrument", "interval", title=f"{len(rows)} series")
    for row in rows:
        table.add_row(*row)
    _print_table(table)


def _bar_table(rows: list[Bar], title: str) -> Table:
    table = Table(title=f"{title}: {len(rows)} bars")
    table.add_column("time (UTC)")
    for name in ("open", "high", "low", "close", "buy base", "sell base", "delta base", "delta quote", "trades",
                 "CVD base"):  # fmt: skip
        table.add_column(name, justify="right")
    table.add_column("final")
    for bar in rows:
        start = _EPOCH + timedelta(microseconds=bar.start_ns // 1000)
        table.add_row(
            start.strftime("%Y-%m-%d %H:%M:%S"),
            *(repr(x) for x in (bar.open, bar.high, bar.low, bar.close, bar.buy_base, bar.sell_base)),
            _signed(bar.delta_base),
            _signed(bar.delta_quote),
            str(bar.trades),
            _signed(bar.cvd_base),
            "yes" if bar.final else "no",
        )
    return table


def _signed(value: float) -> Text:
    return Text(repr(value), style="green" if value > 0 else "red" if value < 0 else "")


def _print_table(table: Table) -> None:
    console = Console()
    # Off a terminal (pipes, files) there is no width to fit: print at full width rather than cut numbers.
    if not console.is_terminal:
        console.width = console.measure(table, options=console.options.update_width(10_000)).maximum
    console.print(table)
