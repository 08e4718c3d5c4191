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
from typing import Any

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from tapeline.config import ClickHouseSettings
from tapeline.domain.aggregates import (
    AssetBar,
    AssetMetric,
    AssetObiBar,
    Bar,
    DerivBar,
    FootprintBar,
    FootprintLevel,
    LiquidationBar,
    ObiBar,
)
from tapeline.domain.assets import asset_of_instrument, market_kind
from tapeline.domain.errors import StoreError
from tapeline.domain.events import DerivTicker, Signal, Trade, TradeGap
from tapeline.domain.intervals import INTERVAL_NS
from tapeline.flow.oscillators import CMF_BARS, MFI_BARS
from tapeline.paths import schemas_dir

log = logging.getLogger(__name__)

BAR_COLUMNS = list(Bar.__struct_fields__)
FOOTPRINT_BAR_COLUMNS = list(FootprintBar.__struct_fields__)
OBI_COLUMNS = list(ObiBar.__struct_fields__)
LIQUIDATION_COLUMNS = list(LiquidationBar.__struct_fields__)
DERIV_BAR_COLUMNS = list(DerivBar.__struct_fields__)
DERIV_TICKER_COLUMNS = list(DerivTicker.__struct_fields__)
ASSET_BAR_COLUMNS = list(AssetBar.__struct_fields__)
ASSET_OBI_COLUMNS = list(AssetObiBar.__struct_fields__)
ASSET_METRIC_COLUMNS = list(AssetMetric.__struct_fields__)
SIGNAL_COLUMNS = list(Signal.__struct_fields__)
# per-level fields stored as arrays (the rest of a FootprintLevel is its bar's)
LEVEL_FIELDS = ["price", "buy_base", "sell_base", "buy_trades", "sell_trades", "delta_base", "buy_imbalance",
                "sell_imbalance"]  # fmt: skip
FOOTPRINT_COLUMNS = FOOTPRINT_BAR_COLUMNS + [f"level_{name}" for name in LEVEL_FIELDS]  # the footprints table
TRADE_GAP_COLUMNS = list(TradeGap.__struct_fields__)
TRADE_COLUMNS = ["venue", "instrument", "symbol", "ts_ns", "recv_ts_ns", "price", "qty_base", "notional_quote",
                 "side", "trade_id"]  # fmt: skip
OSCILLATOR_HISTORY = max(CMF_BARS, MFI_BARS + 1)  # final bars per series a restart needs for CMF/MFI
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
    """Apply the migrations not applied yet; returns their names. StoreError says which step failed."""
    try:
        client.command(f"CREATE DATABASE IF NOT EXISTS {database}")
        client.command(
            f"CREATE TABLE IF NOT EXISTS {database}.schema_migrations "
            "(version UInt32, name String, applied_at DateTime DEFAULT now()) ENGINE = MergeTree ORDER BY version"
        )
        done = {row[0] for row in client.query(f"SELECT version FROM {database}.schema_migrations").result_rows}
    except ClickHouseError as exc:
        raise StoreError(f"cannot read the applied migrations of {database}: {exc}") from exc
    applied = []
    for version, name, sql in migrations():
        if version in done:
            continue
        try:
            for statement in _statements(sql.replace("{database}", database)):
                client.command(statement)
            client.insert(f"{database}.schema_migrations", [[version, name]], column_names=["version", "name"])
        except ClickHouseError as exc:
            raise StoreError(f"migration {name} failed: {exc}") from exc
        applied.append(name)
        log.info("applied migration %s", name)
    return applied


def _statements(sql: str) -> list[str]:
    without_comments = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    return [s.strip() for s in without_comments.split(";") if s.strip()]


class BarStore:
    """Reads and writes bars and trades; thread-safe (the embedded engine needs one caller at a time).

    Every call to ClickHouse goes through `_rows` or `_insert`, which take the lock and turn the driver's
    errors (chdb and server alike raise clickhouse-connect's ClickHouseError) into StoreError naming the
    table: callers catch the project's exception, never a driver's or a bare Exception.
    """

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

    # -- the one way in and out ------------------------------------------------------------------------

    def _insert(self, table: str, columns: Sequence[str], data: Sequence[Sequence[Any]], column_oriented: bool) -> None:
        with self._lock:
            try:
                self.client.insert(f"{self.database}.{table}", data, column_names=list(columns),
                                   column_oriented=column_oriented)  # fmt: skip
            except ClickHouseError as exc:
                raise StoreError(f"writing {self.database}.{table} failed: {exc}") from exc

    def _insert_structs(self, table: str, columns: Sequence[str], rows: Sequence[Any]) -> None:
        """Rows (msgspec structs with these fields) column by column: the fastest insert."""
        if rows:
            self._insert(table, columns, [[getattr(r, name) for r in rows] for name in columns], column_oriented=True)

    def _rows(self, table: str, sql: str, parameters: dict[str, Any] | None = None) -> Sequence[Sequence[Any]]:
        with self._lock:
            try:
                return self.client.query(sql, parameters=parameters).result_rows
            except ClickHouseError as exc:
                raise StoreError(f"reading {self.database}.{table} failed: {exc}") from exc

    # -- trades and bars ----------------------------------------------------------------------------------

    def insert_bars(self, bars: Sequence[Bar]) -> None:
        self._insert_structs("bars", BAR_COLUMNS, bars)

    def insert_trades(self, trades: Sequence[Trade]) -> None:
        self.insert_trade_columns({name: [getattr(t, name) for t in trades] for name in TRADE_COLUMNS})

    def insert_trade_columns(self, columns: Mapping[str, list[Any]]) -> None:
        """Trades column by column, a list per name of TRADE_COLUMNS (the processor decodes them so)."""
        if columns and columns["ts_ns"]:
            self._insert("trades", TRADE_COLUMNS, [columns[name] for name in TRADE_COLUMNS], column_oriented=True)

    def get_bars(self, venue: str, instrument: str, interval: str, from_ns: int, to_ns: int, limit: int) -> list[Bar]:
        """Bars with from_ns <= start_ns < to_ns, oldest first, at most `limit`."""
        rows = self._range("bars", BAR_COLUMNS, venue, instrument, interval, from_ns, to_ns, limit)
        return [Bar(*row) for row in rows]

    def _range(self, table: str, columns: list[str], venue: str, instrument: str, interval: str, from_ns: int,
               to_ns: int, limit: int) -> Sequence[Sequence[Any]]:  # fmt: skip
        """Latest rows of one series with from_ns <= start_ns < to_ns, oldest first, at most `limit`."""
        sql = (
            f"SELECT {', '.join(columns)} FROM {self.database}.{table} FINAL "
            "WHERE venue = {venue:String} AND instrument = {instrument:String} AND interval = {interval:String} "
            "AND start_ns >= {from_ns:Int64} AND start_ns < {to_ns:Int64} ORDER BY start_ns LIMIT {limit:UInt64}"
        )
        params = {"venue": venue, "instrument": instrument, "interval": interval, "from_ns": from_ns,
                  "to_ns": to_ns, "limit": limit}  # fmt: skip
        return self._rows(table, sql, params)

    def resume_state(self, horizon_ns: int = 0, history_bars: int = OSCILLATOR_HISTORY) -> list[Bar]:
        """What the processor needs after a restart: every open bar and each series' final bars from the
        last one back to the correction horizon, and at least its last `history_bars` (the money-flow
        oscillators run over them; see `_resume_sql`)."""
        sql = self._resume_sql("bars", BAR_COLUMNS, horizon_ns, history_bars)
        return [Bar(*row) for row in self._rows("bars", sql)]

    def _resume_sql(self, table: str, columns: list[str], horizon_ns: int, keep_last: int = 0,
                    series: str = "venue, instrument, interval", where: str = "true",
                    open_rows: bool = True) -> str:  # fmt: skip
        """Open rows (if `open_rows`), and final rows starting at most `horizon_ns` + one interval before their
        series' last, or among its last `keep_last`; only rows matching `where`.

        That is every final window the aggregator may still correct (it prunes the rest itself): those
        ending after watermark - horizon, where the watermark is at or past the last final window's end.
        """
        select = ", ".join(columns)
        names = list(INTERVAL_NS)
        widths = [INTERVAL_NS[name] for name in names]
        by = f"PARTITION BY {series}"
        finals = (
            f"SELECT {select} FROM (SELECT *, max(start_ns) OVER ({by}) AS last, "
            f"row_number() OVER ({by} ORDER BY start_ns DESC) AS rank "
            f"FROM {self.database}.{table} FINAL WHERE final AND ({where})) "
            f"WHERE start_ns >= last - {int(horizon_ns)} - transform(interval, {names}, {widths}, 0) "
            f"OR rank <= {int(keep_last)}"
        )
        if not open_rows:
            return finals
        return f"SELECT {select} FROM {self.database}.{table} FINAL WHERE NOT final AND ({where}) UNION ALL {finals}"

    # -- asset bars, cross-venue OBI, asset metrics --------------------------------------------------------

    def insert_asset_bars(self, rows: Sequence[AssetBar]) -> None:
        self._insert_structs("asset_bars", ASSET_BAR_COLUMNS, rows)

    def insert_asset_obi(self, rows: Sequence[AssetObiBar]) -> None:
        self._insert_structs("asset_obi_bars", ASSET_OBI_COLUMNS, rows)

    def insert_asset_metrics(self, rows: Sequence[AssetMetric]) -> None:
        self._insert_structs("asset_metrics", ASSET_METRIC_COLUMNS, rows)

    def resume_asset(self, asset: str, horizon_ns: int) -> tuple[list[AssetBar], list[Bar]]:
        """What the asset stage needs to continue one asset after a restart: its stored asset bars (open ones,
        those within the horizon and each series' last `OSCILLATOR_HISTORY`) and the final venue bars of the
        windows it may still revise: from its last final window (the slowest kind's) back by the horizon, and
        every later one (the bar stage may be ahead of it). Nothing stored for the asset: nothing to resume."""
        params = {"asset": asset}
        asset_sql = self._resume_sql("asset_bars", ASSET_BAR_COLUMNS, horizon_ns, OSCILLATOR_HISTORY,
                                     "asset, kind, interval", "asset = {asset:String}")  # fmt: skip
        asset_rows = [AssetBar(*row) for row in self._rows("asset_bars", asset_sql, params)]
        venue_sql = self._revisable_sql("bars", BAR_COLUMNS, "asset_bars", horizon_ns, "b.asset = {asset:String}")
        return asset_rows, [Bar(*row) for row in self._rows("bars", venue_sql, params)]

    def _revisable_sql(self, table: str, columns: list[str], asset_table: str, horizon_ns: int, where: str) -> str:
        """Final rows of `table` (alias b) matching `where`, in the windows an asset series may still revise."""
        names, widths = list(INTERVAL_NS), list(INTERVAL_NS.values())
        return (
            f"SELECT {', '.join('b.' + c for c in columns)} FROM {self.database}.{table} AS b FINAL "
            f"INNER JOIN (SELECT interval, min(last) AS last FROM (SELECT kind, interval, max(start_ns) AS last "
            f"FROM {self.database}.{asset_table} FINAL WHERE asset = {{asset:String}} AND final "
            f"GROUP BY kind, interval) GROUP BY interval) AS cut ON b.interval = cut.interval "
            f"WHERE b.final AND ({where}) "
            f"AND b.start_ns >= cut.last - {int(horizon_ns)} - transform(b.interval, {names}, {widths}, 0)"
        )

    def resume_asset_obi(
        self, asset: str, instruments: Sequence[str], horizon_ns: int
    ) -> tuple[list[AssetObiBar], list[ObiBar]]:
        """As `resume_asset`, for cross-venue OBI: stored rows, and the final OBI bars of the asset's
        `instruments` (OBI bars carry no asset) in the windows it may still revise."""
        params = {"asset": asset, "instruments": list(instruments)}
        asset_sql = self._resume_sql("asset_obi_bars", ASSET_OBI_COLUMNS, horizon_ns, 1, "asset, kind, interval",
                                     "asset = {asset:String}")  # fmt: skip
        venue_sql = self._revisable_sql("obi_bars", OBI_COLUMNS, "asset_obi_bars", horizon_ns,
                                        "has({instruments:Array(String)}, b.instrument)")  # fmt: skip
        asset_rows = [AssetObiBar(*row) for row in self._rows("asset_obi_bars", asset_sql, params)]
        return asset_rows, [ObiBar(*row) for row in self._rows("obi_bars", venue_sql, params)]

    def insert_instrument_assets(self, instruments: Sequence[tuple[str, str]]) -> None:
        """(venue, instrument) pairs with their asset, multiplier and kind (domain/assets.py) for SQL joins."""
        rows = []
        for venue, instrument in instruments:
            asset, multiplier = asset_of_instrument(instrument)
            rows.append([venue, instrument, asset, multiplier, market_kind(instrument)])
        if rows:
            self._insert("instrument_assets", ["venue", "instrument", "asset", "multiplier", "kind"], rows,
                         column_oriented=False)  # fmt: skip

    def obi_instruments(self, asset: str) -> set[str]:
        """Instruments with OBI bars whose asset is `asset` (OBI rows carry no asset column)."""
        rows = self._rows("obi_bars", f"SELECT DISTINCT instrument FROM {self.database}.obi_bars")
        return {row[0] for row in rows if asset_of_instrument(row[0]).asset == asset}

    def get_asset_bars(self, asset: str, kind: str, interval: str, from_ns: int, to_ns: int,
                       limit: int) -> list[AssetBar]:  # fmt: skip
        """Asset bars with from_ns <= start_ns < to_ns, oldest first, at most `limit`."""
        sql = (
            f"SELECT {', '.join(ASSET_BAR_COLUMNS)} FROM {self.database}.asset_bars FINAL "
            "WHERE asset = {asset:String} AND kind = {kind:String} AND interval = {interval:String} "
            "AND start_ns >= {from_ns:Int64} AND start_ns < {to_ns:Int64} ORDER BY start_ns LIMIT {limit:UInt64}"
        )
        params = {"asset": asset, "kind": kind, "interval": interval, "from_ns": from_ns, "to_ns": to_ns,
                  "limit": limit}  # fmt: skip
        return [AssetBar(*row) for row in self._rows("asset_bars", sql, params)]

    # -- footprints ------------------------------------------------------------------------------------

    def insert_footprints(self, summaries: Sequence[FootprintBar], levels: Sequence[FootprintLevel]) -> None:
        """One row per footprint bar, its levels as arrays: summary and levels land in one atomic insert."""
        if not summaries:
            return
        by_bar: dict[tuple[str, str, str, int], list[FootprintLevel]] = {}
        for level in levels:
            by_bar.setdefault((level.venue, level.instrument, level.interval, level.start_ns), []).append(level)
        rows = []
        for bar in summaries:
            bar_levels = sorted(by_bar.get((bar.venue, bar.instrument, bar.interval, bar.start_ns), ()),
                                key=lambda lv: lv.price)  # fmt: skip
            rows.append([getattr(bar, name) for name in FOOTPRINT_BAR_COLUMNS]
                        + [[getattr(lv, name) for lv in bar_levels] for name in LEVEL_FIELDS])  # fmt: skip
        self._insert("footprints", FOOTPRINT_COLUMNS, rows, column_oriented=False)

    def get_footprints(
        self, venue: str, instrument: str, interval: str, from_ns: int, to_ns: int, limit: int
    ) -> list[tuple[FootprintBar, list[FootprintLevel]]]:
        """Footprint bars with from_ns <= start_ns < to_ns, oldest first, with their levels."""
        rows = self._range("footprints", FOOTPRINT_COLUMNS, venue, instrument, interval, from_ns, to_ns, limit)
        return [_footprint_from_row(row) for row in rows]

    def resume_footprints(self, horizon_ns: int = 0) -> tuple[list[FootprintLevel], list[FootprintBar]]:
        """Open footprint bars with their levels, and final ones back to the correction horizon (at least
        each series' last, for its bucket size)."""
        levels, summaries = [], []
        for row in self._rows("footprints", self._resume_sql("footprints", FOOTPRINT_COLUMNS, horizon_ns)):
            bar, bar_levels = _footprint_from_row(row)
            summaries.append(bar)
            levels.extend(bar_levels)
        return levels, summaries

    # -- order-book imbalance, trade gaps, liquidations ----------------------------------------------------

    def insert_obi(self, rows: Sequence[ObiBar]) -> None:
        self._insert_structs("obi_bars", OBI_COLUMNS, rows)

    def resume_obi(self) -> list[ObiBar]:
        """Each OBI series' last final bar: where the aggregator continues after a restart."""
        sql = (
            f"SELECT {', '.join(OBI_COLUMNS)} FROM {self.database}.obi_bars FINAL "
            "ORDER BY start_ns DESC LIMIT 1 BY venue, instrument, interval"
        )
        return [ObiBar(*row) for row in self._rows("obi_bars", sql)]

    def get_obi(self, venue: str, instrument: str, interval: str, from_ns: int, to_ns: int, limit: int) -> list[ObiBar]:
        rows = self._range("obi_bars", OBI_COLUMNS, venue, instrument, interval, from_ns, to_ns, limit)
        return [ObiBar(*row) for row in rows]

    def insert_trade_gaps(self, gaps: Sequence[TradeGap]) -> None:
        self._insert_structs("trade_gaps", TRADE_GAP_COLUMNS, gaps)

    def resume_trade_gaps(self, per_instrument: int) -> list[TradeGap]:
        """Each instrument's latest `per_instrument` gaps, newest first, for windows that open later."""
        sql = (
            f"SELECT {', '.join(TRADE_GAP_COLUMNS)} FROM {self.database}.trade_gaps FINAL "
            f"ORDER BY to_ns DESC LIMIT {int(per_instrument)} BY venue, instrument"
        )
        return [TradeGap(**dict(zip(TRADE_GAP_COLUMNS, row, strict=True))) for row in self._rows("trade_gaps", sql)]

    def insert_liquidation_bars(self, rows: Sequence[LiquidationBar]) -> None:
        self._insert_structs("liquidation_bars", LIQUIDATION_COLUMNS, rows)

    def resume_liquidations(self, horizon_ns: int = 0) -> list[LiquidationBar]:
        """Open liquidation bars and final ones back to the correction horizon (at least each series' last)."""
        sql = self._resume_sql("liquidation_bars", LIQUIDATION_COLUMNS, horizon_ns)
        return [LiquidationBar(*row) for row in self._rows("liquidation_bars", sql)]

    def insert_deriv_bars(self, rows: Sequence[DerivBar]) -> None:
        self._insert_structs("deriv_bars", DERIV_BAR_COLUMNS, rows)

    # -- signals ------------------------------------------------------------------------------------------

    def insert_signals(self, signals: Sequence[Signal]) -> None:
        self._insert_structs("signals", SIGNAL_COLUMNS, signals)

    def current_signals(self, *, include_withdrawn: bool = False) -> list[Signal]:
        """Each signal's newest version, oldest confirmation first (withdrawn ones only if asked)."""
        where = "" if include_withdrawn else "WHERE status != 'withdrawn'"
        sql = (
            f"SELECT * FROM (SELECT {', '.join(SIGNAL_COLUMNS)} FROM {self.database}.signals FINAL "
            f"ORDER BY signal_id, version DESC LIMIT 1 BY signal_id) {where} ORDER BY ts_ns, signal_id"
        )
        return [Signal(*row) for row in self._rows("signals", sql)]

    def signal_versions(self) -> list[Signal]:
        """Every stored version, by signal and version."""
        sql = f"SELECT {', '.join(SIGNAL_COLUMNS)} FROM {self.database}.signals FINAL ORDER BY signal_id, version"
        return [Signal(*row) for row in self._rows("signals", sql)]

    def insert_deriv_tickers(self, tickers: Sequence[DerivTicker]) -> None:
        self._insert_structs("deriv_tickers", DERIV_TICKER_COLUMNS, tickers)

    def resume_derivs(self, horizon_ns: int = 0) -> list[DerivBar]:
        """Open derivatives bars and final ones back to the correction horizon (at least each series' last), and
        the final bar before those: a derivatives bar carries values over from the one before it, so correcting
        the oldest correctable bar needs its predecessor."""
        sql = self._resume_sql("deriv_bars", DERIV_BAR_COLUMNS, horizon_ns)
        names = list(INTERVAL_NS)
        widths = [INTERVAL_NS[name] for name in names]
        before = (
            f"SELECT {', '.join(DERIV_BAR_COLUMNS)} FROM (SELECT *, max(start_ns) OVER "
            f"(PARTITION BY venue, instrument, interval) AS last FROM {self.database}.deriv_bars FINAL WHERE final) "
            f"WHERE start_ns < last - {int(horizon_ns)} - transform(interval, {names}, {widths}, 0) "
            "ORDER BY start_ns DESC LIMIT 1 BY venue, instrument, interval"
        )
        return [DerivBar(*row) for query in (sql, before) for row in self._rows("deriv_bars", query)]

    def instruments(self) -> list[tuple[str, str, str]]:
        """(venue, instrument, interval) that have bars."""
        sql = f"SELECT DISTINCT venue, instrument, interval FROM {self.database}.bars ORDER BY 1, 2, 3"
        return [(str(v), str(i), str(n)) for v, i, n in self._rows("bars", sql)]


def _footprint_from_row(row: Sequence[Any]) -> tuple[FootprintBar, list[FootprintLevel]]:
    """A `footprints` row (summary columns, then the level arrays) -> the bar and its levels."""
    width = len(FOOTPRINT_BAR_COLUMNS)
    bar = FootprintBar(*row[:width])
    levels = [
        FootprintLevel(bar.venue, bar.instrument, bar.interval, bar.start_ns, bucket_size=bar.bucket_size,
                       final=bar.final, version=bar.version, **dict(zip(LEVEL_FIELDS, values, strict=True)))
        for values in zip(*row[width:], strict=True)
    ]  # fmt: skip
    return bar, levels
