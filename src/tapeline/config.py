"""Settings: one pydantic-settings model per concern, read from the environment.

Every variable starts with ``TAPELINE_``; nested fields use ``__``, e.g.
``TAPELINE_KAFKA__BOOTSTRAP_SERVERS=broker:9092`` or ``TAPELINE_CLICKHOUSE__DSN=http://ch:8123``.
Nothing else in the package reads ``os.environ``.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, ClassVar, overload

from pydantic import BaseModel, BeforeValidator, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from tapeline.domain.intervals import INTERVAL_NS
from tapeline.paths import run_dir
from tapeline.signals.rules import RuleError, Rules, default_rules


def _split_csv(value: object) -> object:
    """Lists come from the environment as "a,b,c"."""
    return [part.strip() for part in value.split(",") if part.strip()] if isinstance(value, str) else value


CsvList = Annotated[list[str], NoDecode, BeforeValidator(_split_csv)]
KafkaValue = str | int | float | bool  # a plain librdkafka setting (callbacks such as on_delivery are added by callers)


class KafkaSettings(BaseModel):
    bootstrap_servers: str = "127.0.0.1:9092"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None

    def librdkafka(self, **extra: KafkaValue) -> dict[str, KafkaValue]:
        """The dotted keys confluent-kafka (librdkafka) expects."""
        conf: dict[str, KafkaValue] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            conf["sasl.mechanism"] = self.sasl_mechanism
            conf["sasl.username"] = self.sasl_username or ""
            conf["sasl.password"] = self.sasl_password.get_secret_value() if self.sasl_password else ""
        conf.update(extra)
        return conf


class _Topic:
    """A topic name under the settings' prefix: `settings.topics.trades` is "<prefix>trades.v1"."""

    def __init__(self, base: str) -> None:
        self.base = base

    @overload
    def __get__(self, settings: None, owner: type) -> _Topic: ...
    @overload
    def __get__(self, settings: TopicSettings, owner: type) -> str: ...
    def __get__(self, settings: TopicSettings | None, owner: type) -> _Topic | str:
        return self if settings is None else settings.name(self.base)


class TopicSettings(BaseModel):
    """Topic names. Tests give every run its own prefix so runs never see each other's data."""

    prefix: str = "tapeline."
    partitions: int = 1
    replication_factor: int = 1

    def name(self, base: str) -> str:
        return f"{self.prefix}{base}"

    trades: ClassVar[_Topic] = _Topic("trades.v1")  # trades, trade batches and trade gaps, in order
    bars: ClassVar[_Topic] = _Topic("bars.v1")  # final bars, for the signal service
    signals: ClassVar[_Topic] = _Topic("signals.v1")
    dead_letter: ClassVar[_Topic] = _Topic("deadletter.v1")
    books: ClassVar[_Topic] = _Topic("books.v1")  # updates and gaps share a topic (and key): a gap stays in order
    liquidations: ClassVar[_Topic] = _Topic("liquidations.v1")
    tickers: ClassVar[_Topic] = _Topic("tickers.v1")
    # final venue bars, OBI bars and bar watermarks keyed by asset: the asset stage's input (a repartition topic)
    by_asset: ClassVar[_Topic] = _Topic("by-asset.v1")
    asset_bars: ClassVar[_Topic] = _Topic("asset-bars.v1")  # asset bars, cross-venue OBI and daily asset metrics
    # the bar stage's other final rows (corrections included), keyed venue|instrument like bars
    footprint_bars: ClassVar[_Topic] = _Topic("footprint-bars.v1")  # footprint summaries (no levels)
    liquidation_bars: ClassVar[_Topic] = _Topic("liquidation-bars.v1")
    deriv_bars: ClassVar[_Topic] = _Topic("deriv-bars.v1")

    def for_event(self, event_type: str) -> str:
        """The topic of a normalized event, by its `type` tag."""
        return {
            "trade": self.trades,
            "trade_gap": self.trades,  # in order with the instrument's trades
            "book": self.books,
            "book_gap": self.books,
            "liquidation": self.liquidations,
            "deriv_ticker": self.tickers,
        }[event_type]

    @property
    def venue_topics(self) -> list[str]:
        return [self.trades, self.books, self.liquidations, self.tickers, self.dead_letter]


class ClickHouseSettings(BaseModel):
    # chdb:///abs/path is the embedded engine (one process per directory); http(s)://host:8123 a server.
    dsn: str = f"chdb://{run_dir() / 'chdb'}"
    database: str = "tapeline"
    username: str | None = None
    password: SecretStr | None = None

    @property
    def embedded(self) -> bool:
        return self.dsn.startswith("chdb:")


class ConnectorSettings(BaseModel):
    venue: str = "binance-usdm"
    symbols: CsvList = Field(default_factory=lambda: ["BTCUSDT", "ETHUSDT"])
    ws_base_url: str | None = None  # None: the venue's production URL
    rest_base_url: str | None = None
    channels: CsvList = Field(default_factory=lambda: ["aggTrade"])
    stale_after_s: float = 30.0  # no message for this long -> reconnect
    rest_timeout_s: float = 10.0
    refresh_s: float = 3600.0  # instrument metadata refresh and periodic REST polls
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0


class ProcessorSettings(BaseModel):
    app_id: str = "tapeline-processor"
    intervals: CsvList = Field(default_factory=lambda: ["1s", "1m", "5m", "15m", "1h", "1d"])
    allowed_lateness_ms: int = 500
    # Final bars stay correctable this long behind the watermark: a later trade corrects its bar (emitted
    # again with a higher version); past it, trades are dead-lettered. Memory: one bar per interval step.
    correction_horizon_ms: int = 300_000
    batch_max: int = 20_000
    batch_within_s: float = 0.1
    # Longest the broker may hold a fetch for data. Faust fixes it at 1500 ms; a fetch parked that long
    # at the log end left the processor idle and bars 1.5 s late, so it is bounded here.
    fetch_max_wait_ms: int = 100
    # Close bars of quiet instruments by wall clock once this much time passed after their end.
    idle_close_ms: int = 3000
    write_trades: bool = True
    footprint_intervals: CsvList = Field(default_factory=lambda: ["1m", "5m"])
    obi_intervals: CsvList = Field(default_factory=lambda: ["1s", "1m"])
    # bucket = the 1-2-2.5-5 step nearest this many bps of the instrument's first price (tens of rows per
    # 1m BTC bar at 0.5), unless footprint_buckets pins it, e.g. '{"BTC-USDT-PERP": 5}'
    footprint_target_bps: float = 0.5
    footprint_buckets: dict[str, float] = Field(default_factory=dict)
    # What this worker runs: `bars` (trades, books, liquidations -> venue rows) and `assets` (the by-asset topic
    # -> asset bars, cross-venue OBI, daily asset metrics). Each scales with its own topic's partitions, so a
    # deployment may run them as separate workers against one ClickHouse server.
    # `signals` stores the signals topic in ClickHouse (the signal service itself only talks to Kafka).
    stages: CsvList = Field(default_factory=lambda: ["bars", "assets", "signals"])
    # An asset window some venue has passed waits this long for the others before it is settled without them.
    asset_settle_ms: int = 5000
    # A venue-instrument silent this long no longer counts as expected in asset windows.
    asset_expire_ms: int = 900_000
    # Embedded ClickHouse admits one process per data directory, so there the processor hosts the
    # gRPC query service in-process (see ARCHITECTURE.md).
    serve_queries: bool | None = None
    web_port: int = 6066

    @field_validator("stages")
    @classmethod
    def _known_stages(cls, value: list[str]) -> list[str]:
        unknown = [s for s in value if s not in ("bars", "assets", "signals")]
        if unknown or not value:
            raise ValueError(f"stages must be some of bars, assets, signals; got {value}")
        return value

    @field_validator("intervals", "footprint_intervals", "obi_intervals")
    @classmethod
    def _known_intervals(cls, value: list[str]) -> list[str]:
        unknown = [i for i in value if i not in INTERVAL_NS]
        if unknown:
            raise ValueError(f"unknown intervals {unknown}; known: {sorted(INTERVAL_NS, key=INTERVAL_NS.__getitem__)}")
        return value


class QuerySettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 50051
    max_rows: int = 100_000
    workers: int = 8


class SignalSettings(BaseModel):
    group_id: str = "tapeline-signals"
    # Which detectors run where, with which thresholds (docs/signals.md): a TOML file of [[rule]] tables, or
    # the same list as JSON in TAPELINE_SIGNALS__RULES. Either replaces the default rule set (every detector
    # with docs/DOMAIN.md's defaults). Checked when the settings load: a bad rule stops the start, named.
    rules_file: Path | None = None
    rules: list[dict[str, Any]] | None = None
    # History re-read per partition on assignment to rebuild the engine (None: the longest a rule reads)
    warmup_s: float | None = None

    @model_validator(mode="after")
    def _rules_are_valid(self) -> SignalSettings:
        self.signal_rules()
        return self

    def signal_rules(self) -> Rules:
        if self.rules is not None and self.rules_file is not None:
            raise ValueError("give signal rules either in rules_file or in rules, not both")
        if self.rules_file is not None:
            path = self.rules_file
            try:
                data = tomllib.loads(path.read_text())
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise ValueError(f"signal rules file {path}: {exc}") from None
            return _parse_rules(data.get("rule", []), str(path))
        if self.rules is not None:
            return _parse_rules(self.rules, "TAPELINE_SIGNALS__RULES")
        return default_rules()


def _parse_rules(data: Any, source: str) -> Rules:
    if not isinstance(data, list) or not data:
        raise ValueError(f"{source}: expected a non-empty list of rules ([[rule]] tables in a file)")
    try:
        return Rules.parse(data, source)
    except RuleError as exc:
        raise ValueError(str(exc)) from None


class MetricsSettings(BaseModel):
    port: int = 0  # 0: no Prometheus endpoint


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TAPELINE_", env_nested_delimiter="__", extra="ignore")

    log_level: str = "INFO"
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    topics: TopicSettings = Field(default_factory=TopicSettings)
    clickhouse: ClickHouseSettings = Field(default_factory=ClickHouseSettings)
    connector: ConnectorSettings = Field(default_factory=ConnectorSettings)
    processor: ProcessorSettings = Field(default_factory=ProcessorSettings)
    query: QuerySettings = Field(default_factory=QuerySettings)
    signals: SignalSettings = Field(default_factory=SignalSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
