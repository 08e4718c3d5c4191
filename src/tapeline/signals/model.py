"""What detectors read and what they report: pure data, no I/O.

A detector sees one *series* (a venue-instrument or an asset and market kind, at one interval) as a
list of final bars in start order (`SeriesView.bars`), plus the rows that other streams attach to the
same windows (liquidation, derivatives and footprint bars, by start). It is evaluated at a position i
and reports the findings that bar i *confirms*, reading only bars <= i and at most `history` bars
back. Being a function of that window is what makes revisions exact: when a bar changes, the engine
evaluates again every position whose window holds it and publishes the difference (signals/engine.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from tapeline.domain.aggregates import AssetBar, Bar, DerivBar, FootprintBar, LiquidationBar
from tapeline.domain.assets import asset_of_instrument, market_kind
from tapeline.domain.events import Signal
from tapeline.domain.intervals import INTERVAL_NS

VENUE, ASSET = "venue", "asset"


@dataclass(frozen=True, slots=True)
class SeriesKey:
    """A venue series (venue, instrument set; kind = the instrument's market kind) or an asset series
    (venue and instrument empty; kind = perp | spot | all)."""

    scope: str  # VENUE | ASSET
    asset: str
    kind: str
    interval: str
    venue: str = ""
    instrument: str = ""

    @property
    def width_ns(self) -> int:
        return INTERVAL_NS[self.interval]

    def label(self) -> str:
        where = f"{self.venue}/{self.instrument}" if self.scope == VENUE else f"{self.asset}/{self.kind}"
        return f"{where}@{self.interval}"


@dataclass(frozen=True, slots=True)
class Point:
    """What detectors read of one final bar (venue or asset); equal points evaluate alike."""

    start_ns: int
    open: float
    high: float
    low: float
    close: float
    buy_base: float
    sell_base: float
    buy_quote: float
    sell_quote: float
    delta_base: float
    delta_quote: float
    cvd_base: float
    trades: int
    cmf: float | None
    mfi: float | None
    max_trade_quote: float = 0.0  # venue bars only: the bar's largest trade (0: not known)
    max_trade_price: float = 0.0
    max_trade_side: str = ""
    max_trade_ts_ns: int = 0

    @property
    def volume_base(self) -> float:
        return self.buy_base + self.sell_base

    @property
    def volume_quote(self) -> float:
        return self.buy_quote + self.sell_quote


def venue_key(bar: Bar | LiquidationBar | DerivBar | FootprintBar) -> SeriesKey:
    return SeriesKey(VENUE, asset_of_instrument(bar.instrument).asset, market_kind(bar.instrument), bar.interval,
                     bar.venue, bar.instrument)  # fmt: skip


def asset_key(bar: AssetBar) -> SeriesKey:
    return SeriesKey(ASSET, bar.asset, bar.kind, bar.interval)


def point_of(bar: Bar | AssetBar) -> Point:
    # an asset bar has no single largest trade
    largest = ((0.0, 0.0, "", 0) if isinstance(bar, AssetBar) else
               (bar.max_trade_quote, bar.max_trade_price, bar.max_trade_side, bar.max_trade_ts_ns))  # fmt: skip
    return Point(
        bar.start_ns, bar.open, bar.high, bar.low, bar.close, bar.buy_base, bar.sell_base, bar.buy_quote,
        bar.sell_quote, bar.delta_base, bar.delta_quote, bar.cvd_base, bar.trades, bar.cmf, bar.mfi, *largest,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class LiquidationPoint:
    long_usd: float  # liquidated longs (forced sells)
    short_usd: float
    long_base: float
    short_base: float

    @property
    def usd(self) -> float:
        return self.long_usd + self.short_usd


@dataclass(frozen=True, slots=True)
class DerivPoint:
    funding_rate: float | None
    mark_price: float | None
    oi_close: float | None  # base units
    oi_close_usd: float | None
    funding_interval_h: float = 8.0  # the venue's funding period, to compare rates per 8h


@dataclass(frozen=True, slots=True)
class FootprintPoint:
    stacked_directions: tuple[str, ...]  # "buy" | "sell", one per run of >= 3 stacked imbalances
    stacked_lows: tuple[float, ...]
    stacked_highs: tuple[float, ...]
    poc: float
    bucket_size: float


LIQUIDATIONS, DERIVS, FOOTPRINTS = "liquidations", "derivs", "footprints"
SIDE_KINDS = (LIQUIDATIONS, DERIVS, FOOTPRINTS)


def liquidation_point(row: LiquidationBar) -> LiquidationPoint:
    return LiquidationPoint(row.long_usd, row.short_usd, row.long_base, row.short_base)


# Funding period per venue, hours (rates are compared per 8h); Hyperliquid funds hourly, the others every 8h.
FUNDING_HOURS = {"hyperliquid": 1.0}


def deriv_point(row: DerivBar) -> DerivPoint:
    return DerivPoint(row.funding_rate, row.mark_price, row.oi_close, row.oi_close_usd,
                      FUNDING_HOURS.get(row.venue, 8.0))  # fmt: skip


def footprint_point(row: FootprintBar) -> FootprintPoint:
    return FootprintPoint(tuple(row.stacked_directions), tuple(row.stacked_lows), tuple(row.stacked_highs), row.poc,
                          row.bucket_size)  # fmt: skip


class SeriesView(Protocol):
    """One series as a detector reads it (the engine's series state implements it)."""

    key: SeriesKey

    @property
    def bars(self) -> Sequence[Point]:
        """Final bars in start order (the oldest beyond the detectors' reach are forgotten)."""
        ...

    def side(self, kind: str) -> Mapping[int, object]:
        """Rows of another stream for this series by window start (LIQUIDATIONS, DERIVS, FOOTPRINTS)."""
        ...

    def sibling(self, kind: str) -> SeriesView | None:
        """The series of the same asset and interval with another market kind (asset series only)."""
        ...

    def venues(self) -> Sequence[SeriesView]:
        """An asset series' venue series (same asset, interval and market kind; every kind for `all`)."""
        ...


@dataclass(frozen=True, slots=True)
class Finding:
    """A signal as a detector reports it; the engine adds the id, version and status."""

    kind: str  # e.g. "divergence_regular"
    direction: str  # "bullish" | "bearish"
    identity: str  # what makes it the same signal across revisions (e.g. the pivots' starts)
    strength: float  # detector-defined, documented in docs/signals.md
    detail: Mapping[str, float] = field(default_factory=dict)
    pivot_ts_ns: int | None = None


SignalRecord = Signal  # what the engine publishes: the domain event (one version of a signal)


def signal_id(detector: str, key: SeriesKey, finding: Finding) -> str:
    """Deterministic: the same series and identity give the same id on every replay."""
    parts = (detector, finding.kind, finding.direction, key.scope, key.venue, key.instrument, key.asset, key.kind,
             key.interval, finding.identity)  # fmt: skip
    return hashlib.sha1("|".join(parts).encode()).hexdigest()


class Detector(Protocol):
    """A pure detector. `history(width_ns)` is how many bars before i `evaluate` may read (so a changed bar
    moves the findings of at most that many later positions); `scopes` says which series it runs on."""

    name: str
    scopes: frozenset[str]
    uses: frozenset[str]  # side kinds it reads; a row arriving there re-evaluates it
    reads_sibling: bool  # reads sibling(); a bar of the sibling re-evaluates it

    def history(self, width_ns: int) -> int: ...

    def evaluate(self, view: SeriesView, i: int) -> list[Finding]: ...
