"""ClickHouse edge: connection (embedded chdb or a server), migrations, bar and trade I/O.

The same DDL and queries run on both. The embedded engine admits one process per data directory
and one directory per process, so a process opens it once (`connect` caches the client) and all
threads share it behind a lock.
"""

from __future__ import annotations

import logging
import re
import threading
import weakref
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from tapeline.config import ClickHouseSettings
from tapeline.domain.aggregates import Bar, FootprintBar, FootprintLevel, LiquidationBar, ObiBar
from tapeline.domain.errors import StoreError
from tapeline.domain.events import Trade, TradeGap
from tapeline.domain.intervals import INTERVAL_NS
from tapeline.flow.windows import MAX_GAPS
from tapeline.paths import schemas_dir

log = logging.getLogger(__name__)

BAR_COLUMNS = list(Bar.__struct_fields__)
FOOTPRINT_BAR_COLUMNS = list(FootprintBar.__struct_fields__)
OBI_COLUMNS = list(ObiBar.__struct_fields__)
LIQUIDATION_COLUMNS = list(LiquidationBar.__struct_fields__)
# per-level fields stored as arrays (the rest of a FootprintLevel is its bar's)
LEVEL_FIELDS = ["price", "buy_base", "sell_base", "buy_trades", "sell_trades", "delta_base", "buy_imbalance",
                "sell_imbalance"]  # fmt: skip
TRADE_GAP_COLUMNS = list(TradeGap.__struct_fields__)
TRADE_COLUMNS = ["venue", "instrument", "symbol", "ts_ns", "recv_ts_ns", "price", "qty_base", "notional_quote",
                 "side", "trade_id"]  # fmt: skip
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def connect(settings: ClickHouseSettings) -> Client:
    if not _IDENTIFIER.match(settings.database):
        raise StoreError(f"database name {settings.database!r} is not a plain identifier")
    if settings.embedded:
        return _embedded_client(settings.dsn)
    password = settings.password.get_secret_value() if settings.password else ""
    try:
        return clickhouse_connect.get_client(dsn=settings.dsn, username=settings.username or None, password=password)
    except ClickHouseError as exc:
        raise StoreError(f"cannot reach ClickHouse at {settings.dsn}: {exc}") from exc


@cache
def _embedded_client(dsn: str) -> Client:
    path = Path(dsn.removeprefix("chdb://"))
    path.mkdir(parents=True, exist_ok=True)
    try:
        return clickhouse_connect.get_client(dsn=f"chdb://{path}")
    except Exception as exc:  # chdb raises its own types; say what it means for the user
        raise StoreError(
            f"cannot open embedded ClickHouse at {path} ({exc}); only one process may open it at a time"
        ) from exc


_locks: weakref.WeakKeyDictionary[Client, threading.Lock] = weakref.WeakKeyDictionary()
_locks_guard = threading.Lock()


def _client_lock(client: Client) -> threading.Lock:
    """One lock per client: stores on different databases of one embedded engine share its client."""
    with _locks_guard:
        return _locks.setdefault(client, threading.Lock())


def migrations(directory: Path | None = None) -> list[tuple[int, str, str]]:
    """(version, name, sql) of every `NNN_name.sql`, in order."""
    directory = directory or schemas_dir() / "clickhouse"
    found = []
    for path in sorted(directory.glob("[0-9][0-9][0-9]_*.sql")):
        found.append((int(path.name[:3]), path.stem, path.read_text()))
    return found


def migrate(client: Client, database: str) -> list[str]:
    """Apply the migrations not applied yet; returns their names."""
    client.command(f"CREATE DATABASE IF NOT EXISTS {database}")
    client.command(
        f"CREATE TABLE IF NOT EXISTS {database}.schema_migrations "
        "(version UInt32, name String, applied_at DateTime DEFAULT now()) ENGINE = MergeTree ORDER BY version"
    )
    done = {row[0] for row in client.query(f"SELECT version FROM {database}.schema_migrations").result_rows}
    applied = []
    for version, name, sql in migrations():
        if version in done:
            continue
        for statement in _statements(sql.replace("{database}", database)):
            try:
                client.command(statement)
            except ClickHouseError as exc:
                raise StoreError(f"migration {name} failed: {exc}") from exc
        client.insert(f"{database}.schema_migrations", [[version, name]], column_names=["version", "name"])
        applied.append(name)
        log.info("applied migration %s", name)
    return applied


def _statements(sql: str) -> list[str]:
    without_comments = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    return [s.strip() for s in without_comments.split(";") if s.strip()]


class BarStore:
    """Reads and writes bars and trades; thread-safe (the embedded engine needs one caller at a time)."""

    def __init__(self, client: Client, database: str) -> None:
        self.client = client
        self.database = database
        self._lock = _client_lock(client)

    @classmethod
    def open(cls, settings: ClickHouseSettings, apply_migrations: bool = True) -> BarStore:
        client = connect(settings)
        if apply_migrations:
            migrate(client, settings.database)
        return cls(client, settings.database)

    def insert_bars(self, bars: Sequence[Bar]) -> None:
        if not bars:
            return
        columns = [[getattr(b, name) for b in bars] for name in BAR_COLUMNS]
        with self._lock:
            self.client.insert(f"{self.database}.bars", columns, column_names=BAR_COLUMNS, column_oriented=True)

    def insert_trades(self, trades: Sequence[Trade]) -> None:
        self.insert_trade_columns({name: [getattr(t, name) for t in trades] for name in TRADE_COLUMNS})

    def insert_trade_columns(self, columns: Mapping[str, list]) -> None:
        """Trades column by column, a list per name of TRADE_COLUMNS (the processor decodes them so)."""
        if not columns or not columns["ts_ns"]:
            return
        data = [columns[name] for name in TRADE_COLUMNS]
        with self._lock:
            self.client.insert(f"{self.database}.trades", data, column_names=TRADE_COLUMNS, column_oriented=True)

    def get_bars(self, venue: str, instrument: str, interval: str, from_ns: int, to_ns: int, limit: int) -> list[Bar]:
        """Bars with from_ns <= start_ns < to_ns, oldest first, at most `limit`."""
        rows = self._range("bars", BAR_COLUMNS, venue, instrument, interval, from_ns, to_ns, limit)
        return [Bar(*row) for row in rows]

    def _range(self, table: str, columns: list[str], venue: str, instrument: str, interval: str, from_ns: int,
               to_ns: int, limit: int) -> list[tuple]:  # fmt: skip
        """Latest rows of one series with from_ns <= start_ns < to_ns, oldest first, at most `limit`."""
        sql = (
            f"SELECT {', '.join(columns)} FROM {self.database}.{table} FINAL "
            "WHERE venue = {venue:String} AND instrument = {instrument:String} AND interval = {interval:String} "
            "AND start_ns >= {from_ns:Int64} AND start_ns < {to_ns:Int64} ORDER BY start_ns LIMIT {limit:UInt64}"
        )
        params = {"venue": venue, "instrument": instrument, "interval": interval, "from_ns": from_ns,
                  "to_ns": to_ns, "limit": limit}  # fmt: skip
        with self._lock:
            return self.client.query(sql, parameters=params).result_rows

    def resume_state(self, horizon_ns: int = 0) -> list[Bar]:
        """What the processor needs after a restart: every open bar and each series' final bars from the
        last one back to the correction horizon (see `_resume_sql`)."""
        with self._lock:
            rows = self.client.query(self._resume_sql("bars", BAR_COLUMNS, horizon_ns)).result_rows
        return [Bar(*row) for row in rows]

    def _resume_sql(self, table: str, columns: list[str], horizon_ns: int) -> str:
        """Open rows, and final rows starting at most `horizon_ns` + one interval before their series' last.

        That is every final window the aggregator may still correct (it prunes the rest itself): those
        ending after watermark - horizon, where the watermark is at or past the last final window's end.
        """
        select = ", ".join(columns)
        names = list(INTERVAL_NS)
        widths = [INTERVAL_NS[name] for name in names]
        return (
            f"SELECT {select} FROM {self.database}.{table} FINAL WHERE NOT final UNION ALL "
            f"SELECT {select} FROM (SELECT *, max(start_ns) OVER (PARTITION BY venue, instrument, interval) AS last "
            f"FROM {self.database}.{table} FINAL WHERE final) "
            f"WHERE start_ns >= last - {int(horizon_ns)} - transform(interval, {names}, {widths}, 0)"
        )

    def insert_footprints(self, summaries: Sequence[FootprintBar], levels: Sequence[FootprintLevel]) -> None:
        """One row per footprint bar, its levels as arrays: summary and levels land in one atomic insert."""
        if not summaries:
            return
        by_bar: dict[tuple, list[FootprintLevel]] = {}
        for level in levels:
            by_bar.setdefault((level.venue, level.instrument, level.interval, level.start_ns), []).append(level)
        rows = []
        for bar in summaries:
            bar_levels = sorted(by_bar.get((bar.venue, bar.instrument, bar.interval, bar.start_ns), ()),
                                key=lambda lv: lv.price)  # fmt: skip
            rows.append([getattr(bar, name) for name in FOOTPRINT_BAR_COLUMNS]
                        + [[getattr(lv, name) for lv in bar_levels] for name in LEVEL_FIELDS])  # fmt: skip
        columns = FOOTPRINT_BAR_COLUMNS + [f"level_{name}" for name in LEVEL_FIELDS]
        with self._lock:
            self.client.insert(f"{self.database}.footprints", rows, column_names=columns)

    def get_footprints(
        self, venue: str, instrument: str, interval: str, from_ns: int, to_ns: int, limit: int
    ) -> list[tuple[FootprintBar, list[FootprintLevel]]]:
        """Footprint bars with from_ns <= start_ns < to_ns, oldest first, with their levels."""
        columns = FOOTPRINT_BAR_COLUMNS + [f"level_{name}" for name in LEVEL_FIELDS]
        rows = self._range("footprints", columns, venue, instrument, interval, from_ns, to_ns, limit)
        return [_footprint_from_row(row) for row in rows]

    def resume_footprints(self, horizon_ns: int = 0) -> tuple[list[FootprintLevel], list[FootprintBar]]:
        """Open footprint bars with their levels, and final ones back to the correction horizon (at least
        each series' last, for its bucket size)."""
        columns = FOOTPRINT_BAR_COLUMNS + [f"level_{name}" for name in LEVEL_FIELDS]
        with self._lock:
            result = self.client.query(self._resume_sql("footprints", columns, horizon_ns)).result_rows
        levels, summaries = [], []
        for row in result:
            bar, bar_levels = _footprint_from_row(row)
            summaries.append(bar)
            levels.extend(bar_levels)
        return levels, summaries

    def insert_obi(self, rows: Sequence[ObiBar]) -> None:
        if rows:
            columns = [[getattr(r, name) for r in rows] for name in OBI_COLUMNS]
            with self._lock:
                self.client.insert(f"{self.database}.obi_bars", columns, column_names=OBI_COLUMNS,
                                   column_oriented=True)  # fmt: skip

    def resume_obi(self) -> list[ObiBar]:
        """Each OBI series' last final bar: where the aggregator continues after a restart."""
        sql = (
            f"SELECT {', '.join(OBI_COLUMNS)} FROM {self.database}.obi_bars FINAL "
            "ORDER BY start_ns DESC LIMIT 1 BY venue, instrument, interval"
        )
        with self._lock:
            return [ObiBar(*row) for row in self.client.query(sql).result_rows]

    def get_obi(self, venue: str, instrument: str, interval: str, from_ns: int, to_ns: int, limit: int) -> list[ObiBar]:
        rows = self._range("obi_bars", OBI_COLUMNS, venue, instrument, interval, from_ns, to_ns, limit)
        return [ObiBar(*row) for row in rows]

    def insert_trade_gaps(self, gaps: Sequence[TradeGap]) -> None:
        if gaps:
            columns = [[getattr(g, name) for g in gaps] for name in TRADE_GAP_COLUMNS]
            with self._lock:
                self.client.insert(f"{self.database}.trade_gaps", columns, column_names=TRADE_GAP_COLUMNS,
                                   column_oriented=True)  # fmt: skip

    def resume_trade_gaps(self) -> list[TradeGap]:
        """Each instrument's latest gaps (as many as an aggregator remembers), for windows that open later."""
        sql = (
            f"SELECT {', '.join(TRADE_GAP_COLUMNS)} FROM {self.database}.trade_gaps FINAL "
            f"ORDER BY to_ns DESC LIMIT {MAX_GAPS} BY venue, instrument"
        )
        with self._lock:
            return [
                TradeGap(**dict(zip(TRADE_GAP_COLUMNS, row, strict=True))) for row in self.client.query(sql).result_rows
            ]

    def insert_liquidation_bars(self, rows: Sequence[LiquidationBar]) -> None:
        if rows:
            columns = [[getattr(r, name) for r in rows] for name in LIQUIDATION_COLUMNS]
            with self._lock:
                self.client.insert(f"{self.database}.liquidation_bars", columns, column_names=LIQUIDATION_COLUMNS,
                                   column_oriented=True)  # fmt: skip

    def resume_liquidations(self, horizon_ns: int = 0) -> list[LiquidationBar]:
        """Open liquidation bars and final ones back to the correction horizon (at least each series' last)."""
        sql = self._resume_sql("liquidation_bars", LIQUIDATION_COLUMNS, horizon_ns)
        with self._lock:
            return [LiquidationBar(*row) for row in self.client.query(sql).result_rows]

    def instruments(self) -> list[tuple[str, str, str]]:
        """(venue, instrument, interval) that have bars."""
        with self._lock:
            rows = self.client.query(
                f"SELECT DISTINCT venue, instrument, interval FROM {self.database}.bars ORDER BY 1, 2, 3"
            ).result_rows
        return [tuple(r) for r in rows]


def _footprint_from_row(row: Sequence) -> tuple[FootprintBar, list[FootprintLevel]]:
    """A `footprints` row (summary columns, then the level arrays) -> the bar and its levels."""
    width = len(FOOTPRINT_BAR_COLUMNS)
    bar = FootprintBar(*row[:width])
    levels = [
        FootprintLevel(bar.venue, bar.instrument, bar.interval, bar.start_ns, bucket_size=bar.bucket_size,
                       final=bar.final, version=bar.version, **dict(zip(LEVEL_FIELDS, values, strict=True)))
        for values in zip(*row[width:], strict=True)
    ]  # fmt: skip
    return bar, levels
