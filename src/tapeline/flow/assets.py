"""Cross-venue aggregates per asset and market kind: asset bars, cross-venue OBI, daily net flow. Pure, no I/O.

Definitions are docs/DOMAIN.md "Cross-venue aggregate" and "Daily net flow". The inputs are the venues'
FINAL rows (bars, OBI bars; a correction is a final row with a higher version) and the venues' bar
watermarks, re-keyed by asset, so one asset's inputs arrive in one order (a repartition topic's partition,
or a capture's enumeration) and `position` is monotone per asset:

* A window of a series (asset, kind, interval), kind `perp`, `spot` or `all`, holds the newest row of each
  venue-instrument (a source) for that window; an older or replayed version changes nothing. Only
  instruments quoted in USD, USDT, USDC (domain/assets.py `USD_QUOTES`) count: their notionals add up as USD.
* A source has *passed* a window once its watermark (a final row ends at or before it, or a watermark
  record says so) reaches the window's end: a source without a row there had no trades in it.
* A window is final once every expected source has passed it. Expected: every source of the series that
  sent something within `expire_ns` of processing time (a venue whose feed is down is still expected). A
  window some source has passed but others have not is settled final after `settle_ns` of processing time
  (`settle`), with the late venues in `incomplete_venues`; their rows, when they come, revise it.
* Windows stay revisable for `horizon_ns` behind the series' newest watermark (the venues' lateness plus
  correction horizon); a row for an older window is too late and is counted by the caller.
* An emitted row's version is 4 x the position of the last input applied to its series, plus 2 when final,
  plus 1 when no expected venue was missing: a revision (a later input) always has a higher version, and
  a window's states at one position order as open < settled with venues missing < final.
* The asset bar's CVD runs over the series' windows in start order from its first window (the anchor), and
  from the first window of each UTC day (`cvd_daily_base`); a revised window moves every later one, and
  those are emitted again.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Generic, Protocol, TypeVar

from tapeline.domain.aggregates import AssetBar, AssetMetric, AssetObiBar, Bar, ObiBar
from tapeline.domain.assets import asset_of_instrument, market_kind, usd_quoted
from tapeline.domain.intervals import INTERVAL_NS
from tapeline.flow.oscillators import CMF_BARS, MFI_BARS, MoneyFlow

BASE_DECIMALS = 10
QUOTE_DECIMALS = 6
DAY_NS = INTERVAL_NS["1d"]
ALL = "all"
SETTLE_NS = 5_000_000_000  # a window some venue has passed waits this long (processing time) for the others
EXPIRE_NS = 15 * 60 * 1_000_000_000  # a source silent this long (processing time) is no longer expected
# Exchange codes of the daily net-flow metrics (FlowNet<code>Ntv / FlowNet<code>USD), per venue
EXCHANGES = {"binance-usdm": "BNB", "binance-spot": "BNB", "bybit-linear": "BIT", "bybit-spot": "BIT", "okx": "OKX",
             "hyperliquid": "HYP"}  # fmt: skip
BANDS_BPS = (10, 25, 50)

Source = tuple[str, str]  # (venue, instrument)
SeriesKey = tuple[str, str, str]  # (asset, kind, interval)


class VenueRow(Protocol):
    """A venue row the cross-venue aggregates take (Bar, ObiBar)."""

    venue: str
    instrument: str
    interval: str
    start_ns: int
    final: bool
    version: int
    incomplete: bool


class AssetRow(Protocol):
    """A cross-venue row (AssetBar, AssetObiBar)."""

    asset: str
    kind: str
    interval: str
    start_ns: int
    final: bool
    version: int


In = TypeVar("In", bound=VenueRow)
Out = TypeVar("Out", bound=AssetRow)


@dataclass(eq=False)
class _Window(Generic[In]):
    rows: dict[Source, In] = field(default_factory=dict)
    final: bool = False
    missing: tuple[str, ...] = ()  # venues expected but not there when the window was settled
    due_ns: int | None = None  # processing time at which the first source passed the window
    emitted_final: bool = False  # a final row of it was emitted already
    delta: float = 0.0  # asset bars: the window's delta and the CVDs at its end
    cvd_end: float = 0.0
    cvd_daily_end: float = 0.0


@dataclass(eq=False)
class _Series(Generic[In]):
    asset: str
    kind: str
    interval: str
    width_ns: int
    windows: dict[int, _Window[In]] = field(default_factory=dict)  # start -> window, kept ones
    progress: dict[Source, int] = field(default_factory=dict)  # source -> its windows ending at or before are final
    seen_ns: dict[Source, int] = field(default_factory=dict)  # source -> processing time of its last input
    position: int = -1  # position of the last input applied
    replayed_until: int = -1  # inputs up to here were applied before a restart: emit nothing for them
    forgotten_until: int | None = None  # end of the last window forgotten (rows for it or before are too late)
    cvd_before: float = 0.0  # CVD at the end of the last forgotten window
    cvd_daily_before: float = 0.0
    changed_from: int | None = None  # earliest start changed since the last drain
    ready_check: bool = False  # progress or rows moved: look for windows that became final

    def changed(self, start: int) -> None:
        if self.changed_from is None or start < self.changed_from:
            self.changed_from = start


class CrossVenueAggregator(ABC, Generic[In, Out]):
    """Windows of venue rows per (asset, kind, interval), combined into one row per window (see the module doc)."""

    KINDS: ClassVar[tuple[str, ...]] = (ALL,)  # besides the instrument's own kind

    def __init__(self, intervals: Iterable[str], horizon_ns: int, settle_ns: int = SETTLE_NS,
                 expire_ns: int = EXPIRE_NS) -> None:  # fmt: skip
        self.intervals = {name: INTERVAL_NS[name] for name in intervals}
        self.horizon_ns = horizon_ns
        self.settle_ns = settle_ns
        self.expire_ns = expire_ns
        self.too_late = 0  # rows for windows already forgotten
        self._series: dict[SeriesKey, _Series[In]] = {}
        self._dirty: set[SeriesKey] = set()
        self._rows: list[Out] = []
        self.newly_final: list[Out] = []  # rows of the last drain whose window became final in it

    # -- what a subclass provides ---------------------------------------------------------------------

    @abstractmethod
    def _combine(self, series: _Series[In], start: int, window: _Window[In], version: int) -> Out:
        """The cross-venue row of a window."""

    def _emitted(self, series: _Series[In], rows: list[Out]) -> None:
        """Hook: the rows just emitted for a series, in start order."""

    def _recompute(self, series: _Series[In], starts: Sequence[int]) -> None:
        """Hook: windows `starts` (sorted, from the earliest changed to the newest) are about to be emitted."""

    # -- input ------------------------------------------------------------------------------------------

    def add(self, row: In, position: int, now_ns: int = 0) -> bool:
        """A venue row at its monotone per-asset `position`; open rows are ignored (only final ones are
        inputs). Returns False when the row's window is already forgotten (too late)."""
        if not row.final or row.interval not in self.intervals:
            return True
        source = (row.venue, row.instrument)
        ok = True
        for series in self._series_of(row.instrument, row.interval):
            if series.forgotten_until is not None and row.start_ns + series.width_ns <= series.forgotten_until:
                ok = False
                continue
            window = series.windows.get(row.start_ns)
            if window is None:
                window = series.windows[row.start_ns] = _Window()
            old = window.rows.get(source)
            self._heard(series, source, row.start_ns + series.width_ns, position, now_ns)
            if old is not None and old.version >= row.version:
                continue  # a replay, or an older version
            window.rows[source] = row
            self._touched(series, row.start_ns, position)
        if not ok:
            self.too_late += 1
        return ok

    def add_watermark(self, venue: str, instrument: str, watermark_ns: int, position: int, now_ns: int = 0) -> None:
        """A source says its windows ending at or before `watermark_ns` are final (in every interval)."""
        for interval in self.intervals:
            for series in self._series_of(instrument, interval):
                self._heard(series, (venue, instrument), watermark_ns, position, now_ns)

    def _heard(self, series: _Series[In], source: Source, watermark: int, position: int, now_ns: int) -> None:
        if watermark > series.progress.get(source, -1):
            series.progress[source] = watermark
            series.ready_check = True
            self._dirty.add(self._key(series))
        series.seen_ns[source] = now_ns
        series.position = max(series.position, position)

    def _touched(self, series: _Series[In], start: int, position: int) -> None:
        series.position = max(series.position, position)
        series.changed(start)
        series.ready_check = True
        self._dirty.add(self._key(series))

    # -- time -------------------------------------------------------------------------------------------

    def settle(self, now_ns: int) -> None:
        """Settle windows some source passed `settle_ns` ago that others have not: final, late venues listed.
        Sources silent for `expire_ns` are no longer expected."""
        for key, series in self._series.items():
            for source in [s for s, seen in series.seen_ns.items() if now_ns - seen >= self.expire_ns]:
                series.seen_ns.pop(source)
                series.progress.pop(source, None)
            expected = self._expected(series, now_ns)
            for start, window in series.windows.items():
                if window.final or window.due_ns is None or now_ns - window.due_ns < self.settle_ns:
                    continue
                end = start + series.width_ns
                window.final = True
                window.missing = tuple(sorted({v for (v, i) in expected if series.progress.get((v, i), -1) < end}))
                series.changed(start)
                self._dirty.add(key)

    def flush(self) -> None:
        """End of a finite input: every window is final, and no source is missing (all were read to the end)."""
        for key, series in self._series.items():
            for start, window in series.windows.items():
                if not window.final:
                    window.final = True
                    series.changed(start)
                    self._dirty.add(key)

    # -- output -----------------------------------------------------------------------------------------

    def drain(self, now_ns: int = 0) -> list[Out]:
        """Rows to persist since the last drain: every window that changed or became final, and the later
        windows of its series (their CVD moves), in start order per series."""
        self.newly_final = []
        for key in sorted(self._dirty):
            series = self._series[key]
            if series.ready_check:
                self._mark_ready(series, now_ns)
            if series.position <= series.replayed_until:
                continue  # replaying inputs whose rows were stored before a restart: emit from the first new one
            if series.changed_from is not None:
                starts = sorted(s for s in series.windows if s >= series.changed_from)
                self._recompute(series, starts)
                version = 4 * series.position
                rows = []
                for start in starts:
                    window = series.windows[start]
                    flags = (2 + (not window.missing)) if window.final else 0
                    rows.append(self._combine(series, start, window, version + flags))
                    if window.final and not window.emitted_final:
                        window.emitted_final = True
                        self.newly_final.append(rows[-1])
                self._emitted(series, rows)
                self._rows.extend(rows)
            series.changed_from = None
            self._forget(series, now_ns)
        self._dirty.clear()
        rows, self._rows = self._rows, []
        return rows

    def _mark_ready(self, series: _Series[In], now_ns: int) -> None:
        series.ready_check = False
        expected = self._expected(series, now_ns)
        passed = [series.progress.get(s, -1) for s in expected]
        slowest, fastest = min(passed, default=-1), max(passed, default=-1)
        for start, window in series.windows.items():
            end = start + series.width_ns
            if window.final:
                if window.missing:  # settled without some venues: those that caught up are no longer missing
                    late = {v for v, i in expected if series.progress.get((v, i), -1) < end}
                    still = tuple(v for v in window.missing if v in late)
                    if still != window.missing:
                        window.missing = still
                        series.changed(start)
                continue
            if end <= slowest:
                window.final = True
                window.missing = ()
                series.changed(start)
            elif end <= fastest and window.due_ns is None:
                window.due_ns = now_ns

    def _expected(self, series: _Series[In], now_ns: int) -> list[Source]:
        return [s for s, seen in series.seen_ns.items() if now_ns - seen < self.expire_ns]

    def _forget(self, series: _Series[In], now_ns: int) -> None:
        """Drop final windows past the horizon behind the slowest expected source: no correction reaches them."""
        passed = [series.progress.get(s, -1) for s in self._expected(series, now_ns)]
        if not passed:
            return
        cutoff = min(passed) - self.horizon_ns
        for start in sorted(series.windows):
            window = series.windows[start]
            if start + series.width_ns > cutoff or not window.final:
                break
            series.cvd_before, series.cvd_daily_before = window.cvd_end, window.cvd_daily_end
            series.forgotten_until = start + series.width_ns
            del series.windows[start]
        self._forgotten(series)

    def _forgotten(self, series: _Series[In]) -> None:
        """Hook: windows before the series' oldest kept one will not change again."""

    # -- series -----------------------------------------------------------------------------------------

    def _series_of(self, instrument: str, interval: str) -> list[_Series[In]]:
        """The series an instrument's rows go to: its kind's and `all`; none unless it is quoted in USD."""
        if not usd_quoted(instrument):
            return []
        asset = asset_of_instrument(instrument).asset
        width = self.intervals[interval]
        out = []
        for kind in (market_kind(instrument), *self.KINDS):
            key = (asset, kind, interval)
            series = self._series.get(key)
            if series is None:
                series = self._series[key] = _Series(asset, kind, interval, width)
            out.append(series)
        return out

    @staticmethod
    def _key(series: _Series[In]) -> SeriesKey:
        return (series.asset, series.kind, series.interval)

    # -- restore ----------------------------------------------------------------------------------------

    def _restore_series(self, rows: Iterable[In], stored: Iterable[AssetRow], now_ns: int) -> None:
        """Venue rows back into their windows without emitting, after `stored`, the asset rows written before
        the restart: inputs up to their newest position were applied then. Venue rows may be ahead of what the
        stage had applied (the bar stage wrote them first), so a source counts as having passed only the
        windows up to the series' last stored final one; its progress beyond comes again with the replay."""
        stored = list(stored)
        position = max((r.version >> 2 for r in stored), default=-1)
        last_final: dict[SeriesKey, int] = {}
        for r in stored:
            if r.final:
                key = (r.asset, r.kind, r.interval)
                last_final[key] = max(last_final.get(key, r.start_ns), r.start_ns)
        for row in rows:
            if not row.final or row.interval not in self.intervals:
                continue
            source = (row.venue, row.instrument)
            for series in self._series_of(row.instrument, row.interval):
                window = series.windows.setdefault(row.start_ns, _Window())
                old = window.rows.get(source)
                if old is None or row.version > old.version:
                    window.rows[source] = row
                passed = row.start_ns + series.width_ns if row.start_ns <= last_final.get(self._key(series), -1) else -1
                series.progress[source] = max(series.progress.get(source, -1), passed)
                series.seen_ns[source] = now_ns
                series.position = max(series.position, position)
                series.replayed_until = max(series.replayed_until, position)
                series.ready_check = True
                self._dirty.add(self._key(series))


def _restored_final(window: _Window[In], incomplete_venues: Iterable[str]) -> None:
    """A window whose stored row is final: final again, and the venues it listed that no incomplete row of
    theirs explains were missing when it was settled."""
    window.final = window.emitted_final = True
    flagged = {source[0] for source, row in window.rows.items() if row.incomplete}
    window.missing = tuple(v for v in incomplete_venues if v not in flagged)


def _sum(values: Iterable[float], decimals: int) -> float:
    return round(math.fsum(values), decimals)


def _sources(window: _Window[In]) -> list[tuple[Source, In, float]]:
    """The window's rows in source order, each with its instrument's multiplier."""
    return [(s, window.rows[s], asset_of_instrument(s[1]).multiplier) for s in sorted(window.rows)]


def _listing(window: _Window[In], sources: list[tuple[Source, In, float]]) -> tuple[list[str], list[str], list[str]]:
    venues = sorted({s[0] for s, _, _ in sources})
    instruments = [f"{s[0]}/{s[1]}" for s, _, _ in sources]
    incomplete = sorted({s[0] for s, row, _ in sources if row.incomplete} | set(window.missing))
    return venues, instruments, incomplete


class AssetBarAggregator(CrossVenueAggregator[Bar, AssetBar]):
    """Asset bars from final venue bars, with CVD (first-window and daily anchors), CMF/MFI and, from the 1d
    bars of kind `all`, the daily net flow per exchange (`metrics`)."""

    def __init__(self, intervals: Iterable[str], horizon_ns: int, settle_ns: int = SETTLE_NS,
                 expire_ns: int = EXPIRE_NS, cmf_bars: int = CMF_BARS, mfi_bars: int = MFI_BARS) -> None:  # fmt: skip
        super().__init__(intervals, horizon_ns, settle_ns, expire_ns)
        self.money_flow = MoneyFlow(None, cmf_bars, mfi_bars)  # windows wait for venues: `_forgotten` trims it
        self.metrics: list[AssetMetric] = []  # drained with the bars (`drain_metrics`)

    def drain_metrics(self) -> list[AssetMetric]:
        metrics, self.metrics = self.metrics, []
        return metrics

    def restore(self, asset_rows: Iterable[AssetBar], venue_rows: Iterable[Bar], now_ns: int = 0) -> None:
        """Continue after a restart from the stored asset bars of some assets (the newest of each window, the
        series' last ones among them) and the final venue bars of their revisable windows."""
        by_series: dict[SeriesKey, list[AssetBar]] = {}
        for row in asset_rows:
            by_series.setdefault((row.asset, row.kind, row.interval), []).append(row)
        self._restore_series(venue_rows, [r for rows in by_series.values() for r in rows], now_ns)
        for key, rows in by_series.items():
            rows.sort(key=lambda r: r.start_ns)
            self.money_flow.restore(key, rows)
            series = self._series.get(key)
            if series is None:
                continue
            stored = {r.start_ns: r for r in rows}
            kept = sorted(series.windows)
            if not kept:
                continue
            before = [r for r in rows if r.start_ns < kept[0]]
            if before:  # the CVDs before the first kept window, as stored
                last = before[-1]
                series.cvd_before, series.cvd_daily_before = last.cvd_base, last.cvd_daily_base
                series.forgotten_until = last.start_ns + series.width_ns
            elif kept[0] in stored:
                row = stored[kept[0]]
                series.cvd_before = row.cvd_base - row.delta_base
                series.cvd_daily_before = row.cvd_daily_base - row.delta_base
                series.forgotten_until = kept[0]
            for start in kept:
                row_at = stored.get(start)
                if row_at is None:
                    series.changed(start)  # never emitted (e.g. venue bars from before this stage ran)
                elif row_at.final:
                    _restored_final(series.windows[start], row_at.incomplete_venues)
            self._recompute(series, kept)

    def _recompute(self, series: _Series[Bar], starts: Sequence[int]) -> None:
        if not starts:
            return
        previous = [s for s in series.windows if s < starts[0]]
        if previous:
            before = series.windows[max(previous)]
            cvd, cvd_daily, day = before.cvd_end, before.cvd_daily_end, max(previous) - max(previous) % DAY_NS
        else:
            cvd, cvd_daily, day = series.cvd_before, series.cvd_daily_before, None
            if series.forgotten_until is not None:
                last = series.forgotten_until - series.width_ns
                day = last - last % DAY_NS
        for start in starts:
            window = series.windows[start]
            window.delta = _sum(((r.buy_base - r.sell_base) * m for _, r, m in _sources(window)), BASE_DECIMALS)
            if day is None or start - start % DAY_NS != day:
                cvd_daily, day = 0.0, start - start % DAY_NS
            cvd = round(cvd + window.delta, BASE_DECIMALS)
            cvd_daily = round(cvd_daily + window.delta, BASE_DECIMALS)
            window.cvd_end, window.cvd_daily_end = cvd, cvd_daily

    def _combine(self, series: _Series[Bar], start: int, window: _Window[Bar], version: int) -> AssetBar:
        sources = _sources(window)
        volumes = [(r.buy_base + r.sell_base) * m for _, r, m in sources]
        buy_base = _sum((r.buy_base * m for _, r, m in sources), BASE_DECIMALS)
        sell_base = _sum((r.sell_base * m for _, r, m in sources), BASE_DECIMALS)
        buy_quote = _sum((r.buy_quote for _, r, _ in sources), QUOTE_DECIMALS)
        sell_quote = _sum((r.sell_quote for _, r, _ in sources), QUOTE_DECIMALS)
        open_ = _weighted_mean([r.open / m for _, r, m in sources], volumes)
        close = _weighted_mean([r.close / m for _, r, m in sources], volumes)
        venues, instruments, incomplete = _listing(window, sources)
        total_base = buy_base + sell_base
        return AssetBar(
            asset=series.asset,
            kind=series.kind,
            interval=series.interval,
            start_ns=start,
            open=open_,
            high=max(r.high / m for _, r, m in sources),
            low=min(r.low / m for _, r, m in sources),
            close=close,
            buy_base=buy_base,
            sell_base=sell_base,
            buy_quote=buy_quote,
            sell_quote=sell_quote,
            delta_base=window.delta,
            delta_quote=round(buy_quote - sell_quote, QUOTE_DECIMALS),
            trades=sum(r.trades for _, r, _ in sources),
            cvd_base=window.cvd_end,
            cvd_daily_base=window.cvd_daily_end,
            vwap=(buy_quote + sell_quote) / total_base if total_base else close,
            buy_ratio=round(buy_base / total_base, BASE_DECIMALS) if total_base else 0.5,
            venues=venues,
            instruments=instruments,
            incomplete_venues=incomplete,
            incomplete=bool(incomplete),
            final=window.final,
            version=version,
        )

    def _forgotten(self, series: _Series[Bar]) -> None:
        if series.forgotten_until is not None:
            self.money_flow.forget(self._key(series), min(series.windows, default=series.forgotten_until))

    def _emitted(self, series: _Series[Bar], rows: list[AssetBar]) -> None:
        key = self._key(series)
        for row in rows:
            self.money_flow.apply(key, row)
        if series.kind == ALL and series.interval == "1d":
            for row in rows:
                self.metrics.extend(_daily_net_flow(row, series.windows[row.start_ns]))


def _weighted_mean(values: list[float], weights: list[float]) -> float:
    """Volume-weighted mean (plain mean if all weights are 0); one value is itself, not v x w / w."""
    if len(values) == 1:
        return values[0]
    total = math.fsum(weights)
    if total <= 0:
        return math.fsum(values) / len(values)
    return math.fsum(v * w for v, w in zip(values, weights, strict=True)) / total


def _daily_net_flow(bar: AssetBar, window: _Window[Bar]) -> list[AssetMetric]:
    """FlowNet<EX>Ntv (the exchange's delta in asset units) and FlowNet<EX>USD (Ntv x the asset's cross-venue
    close of the day) for every exchange with trades in the day."""
    by_exchange: dict[str, list[float]] = {}
    for _, row, m in _sources(window):
        code = EXCHANGES.get(row.venue, row.venue.upper())
        by_exchange.setdefault(code, []).append((row.buy_base - row.sell_base) * m)
    metrics = []
    for code in sorted(by_exchange):
        native = _sum(by_exchange[code], BASE_DECIMALS)
        for metric, value in ((f"FlowNet{code}Ntv", native), (f"FlowNet{code}USD", round(native * bar.close, 2))):
            metrics.append(AssetMetric(bar.asset, code, bar.start_ns, metric, value, bar.final, bar.version))
    return metrics


class AssetObiAggregator(CrossVenueAggregator[ObiBar, AssetObiBar]):
    """Cross-venue OBI over the +/- b bps bands from the venues' final OBI bars."""

    def restore(self, asset_rows: Iterable[AssetObiBar], venue_rows: Iterable[ObiBar], now_ns: int = 0) -> None:
        """As `AssetBarAggregator.restore`: stored cross-venue rows and the venue OBI bars of revisable windows."""
        rows = list(asset_rows)
        self._restore_series(venue_rows, rows, now_ns)
        for row in rows:
            series = self._series.get((row.asset, row.kind, row.interval))
            window = series.windows.get(row.start_ns) if series is not None else None
            if window is not None and row.final:
                _restored_final(window, row.incomplete_venues)

    def _combine(self, series: _Series[ObiBar], start: int, window: _Window[ObiBar], version: int) -> AssetObiBar:
        sources = _sources(window)
        values: dict[str, float | None] = {}
        for band in BANDS_BPS:
            bids = [(getattr(r, f"bps{band}_bid_mean"), getattr(r, f"bps{band}_ask_mean"), m) for _, r, m in sources]
            lasts = [(getattr(r, f"bps{band}_bid_last"), getattr(r, f"bps{band}_ask_last"), m) for _, r, m in sources]
            bid, ask = _band_sums(bids)
            values[f"bps{band}_bid"], values[f"bps{band}_ask"] = bid, ask
            values[f"bps{band}_mean"] = _imbalance(bid, ask)
            values[f"bps{band}_last"] = _imbalance(*_band_sums(lasts))
        venues, instruments, incomplete = _listing(window, sources)
        return AssetObiBar(
            series.asset, series.kind, series.interval, start,
            values["bps10_mean"], values["bps10_last"], values["bps10_bid"], values["bps10_ask"],
            values["bps25_mean"], values["bps25_last"], values["bps25_bid"], values["bps25_ask"],
            values["bps50_mean"], values["bps50_last"], values["bps50_bid"], values["bps50_ask"],
            venues, instruments, incomplete, bool(incomplete), window.final, version,
        )  # fmt: skip


def _band_sums(quantities: Iterable[tuple[float | None, float | None, float]]) -> tuple[float | None, float | None]:
    """Bid and ask quantity summed in asset units over the venues that have both (a verified book)."""
    pairs = [(b * m, a * m) for b, a, m in quantities if b is not None and a is not None]
    if not pairs:
        return None, None
    return _sum((b for b, _ in pairs), BASE_DECIMALS), _sum((a for _, a in pairs), BASE_DECIMALS)


def _imbalance(bid: float | None, ask: float | None) -> float | None:
    if bid is None or ask is None or bid + ask <= 0:
        return None
    return (bid - ask) / (bid + ask)
