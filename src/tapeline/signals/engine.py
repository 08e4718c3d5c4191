"""Signal engine: final bars in, signal versions out. Pure, no I/O; the service and `tapeline signals` share it.

* Every series (signals/model.py SeriesKey) keeps its recent final bars in start order and the rows other
  streams attach to them (liquidation, derivatives, footprint bars). The detectors a rule set enables for
  the series are evaluated at each new bar.
* A bar that changes (a corrected venue bar, an asset bar revised by a late venue), a bar that arrives
  out of order, a side row, or a bar of the sibling series (spot for perp) re-evaluates every position
  whose window can read it, and the findings there are compared with what was published by signal id:
  new ids are published `active` (version 1, or the next version if the id was withdrawn before);
  changed ones `revised` with the next version; vanished ones `withdrawn` with the next version.
  An unchanged re-delivery (a replay, an asset bar whose numbers did not move) publishes nothing.
* An asset detector that reads the asset's venue series (`venue_reach` > 0: divergences say on how many
  venues they hold) is evaluated again when a venue bar arrives, at the `venue_reach` positions from it.
* The output depends only on the order of the input, so a replay of the same input reproduces the same
  records, versions included. A bar older than the memory (2 x the longest history) cannot be revised
  any more; it is counted in `stale`.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import msgspec

from tapeline.domain.aggregates import AssetBar, Bar, DerivBar, FootprintBar, LiquidationBar
from tapeline.signals.model import (
    ASSET,
    DERIVS,
    FOOTPRINTS,
    LIQUIDATIONS,
    Detector,
    Finding,
    Point,
    SeriesKey,
    SignalRecord,
    asset_key,
    deriv_point,
    footprint_point,
    liquidation_point,
    point_of,
    signal_id,
    venue_key,
)
from tapeline.signals.rules import Rules

ACTIVE, REVISED, WITHDRAWN = "active", "revised", "withdrawn"
MARKET_KINDS = ("perp", "spot", "all")


@dataclass(eq=False)
class _Series:
    key: SeriesKey
    detectors: tuple[Detector, ...]
    engine: SignalEngine
    horizon: int  # the longest history of its detectors, in bars
    points: list[Point] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)
    sides: dict[str, dict[int, object]] = field(default_factory=dict)
    # start of the confirming bar -> detector name -> signal id -> finding (what is published now)
    findings: dict[int, dict[str, dict[str, Finding]]] = field(default_factory=dict)

    @property
    def bars(self) -> Sequence[Point]:
        return self.points

    def side(self, kind: str) -> Mapping[int, object]:
        return self.sides.get(kind, {})

    def sibling(self, kind: str) -> _Series | None:
        key = self.key
        return self.engine.series.get(SeriesKey(key.scope, key.asset, kind, key.interval, key.venue, key.instrument))

    def venues(self) -> list[_Series]:
        """For an asset series: the venue series of its asset, interval and market kind (every kind for `all`)
        that some rule runs, in the order they appeared."""
        key = self.key
        found = self.engine.venue_series.get((key.asset, key.interval), [])
        return [v for v in found if key.kind in ("all", v.key.kind)]


class SignalEngine:
    """All series of a rule set. `add_bar` / `add_side` return the signal records to publish, in order."""

    def __init__(self, rules: Rules) -> None:
        self.rules = rules
        self.series: dict[SeriesKey, _Series] = {}
        self.published: dict[str, SignalRecord] = {}  # latest version of every signal still in memory
        self.venue_series: dict[tuple[str, str], list[_Series]] = {}  # (asset, interval) -> venue series
        self.stale = 0  # changes to bars older than the memory: too old to revise

    # ------------------------------------------------------------------ input

    def add_bar(self, bar: Bar | AssetBar) -> list[SignalRecord]:
        """A final venue or asset bar (non-final rows are ignored: signals confirm on final bars only)."""
        if not bar.final:
            return []
        key = asset_key(bar) if isinstance(bar, AssetBar) else venue_key(bar)
        series = self._series(key)
        if series is None:
            return []
        point = point_of(bar)
        at = bisect_left(series.starts, point.start_ns)
        if at < len(series.starts) and series.starts[at] == point.start_ns:
            if series.points[at] == point:
                return []  # a re-delivery: nothing moved
            series.points[at] = point
        elif at == 0 and len(series.points) >= 2 * series.horizon:
            self.stale += 1  # older than what is kept: bars before it were forgotten
            return []
        else:
            series.points.insert(at, point)
            series.starts.insert(at, point.start_ns)
        out = self._evaluate(series, at, series.detectors)
        if key.scope == ASSET:
            for kind in MARKET_KINDS:
                sibling = series.sibling(kind)
                if kind != key.kind and sibling is not None:
                    readers = tuple(d for d in sibling.detectors if d.reads_sibling)
                    if readers:
                        out += self._evaluate(sibling, bisect_left(sibling.starts, point.start_ns), readers)
        else:  # asset detectors that read the venue series (divergences confirmed on several venues)
            for kind in (key.kind, "all"):
                asset = self.series.get(SeriesKey(ASSET, key.asset, kind, key.interval))
                readers = tuple(d for d in asset.detectors if getattr(d, "venue_reach", 0)) if asset else ()
                if asset is not None and readers:
                    reach = max(d.venue_reach for d in readers)  # type: ignore[attr-defined]
                    out += self._evaluate(asset, bisect_left(asset.starts, point.start_ns), readers, reach)
        self._trim(series)
        return out

    def add_side(self, row: LiquidationBar | DerivBar | FootprintBar) -> list[SignalRecord]:
        """A final row of another stream for a venue series' window."""
        if not row.final:
            return []
        value: object
        if isinstance(row, LiquidationBar):
            kind, value = LIQUIDATIONS, liquidation_point(row)
        elif isinstance(row, DerivBar):
            kind, value = DERIVS, deriv_point(row)
        else:
            kind, value = FOOTPRINTS, footprint_point(row)
        series = self._series(venue_key(row))
        if series is None:
            return []
        readers = tuple(d for d in series.detectors if kind in d.uses)
        if not readers:
            return []
        rows = series.sides.setdefault(kind, {})
        if rows.get(row.start_ns) == value:
            return []
        if series.starts and row.start_ns < series.starts[0]:
            self.stale += 1
            return []
        rows[row.start_ns] = value
        return self._evaluate(series, bisect_left(series.starts, row.start_ns), readers)

    def add(self, row: Bar | AssetBar | LiquidationBar | DerivBar | FootprintBar) -> list[SignalRecord]:
        if isinstance(row, Bar | AssetBar):
            return self.add_bar(row)
        return self.add_side(row)

    def run(self, rows: Iterable[Bar | AssetBar | LiquidationBar | DerivBar | FootprintBar]) -> list[SignalRecord]:
        return [record for row in rows for record in self.add(row)]

    def reconcile(self, published: Iterable[SignalRecord]) -> list[SignalRecord]:
        """Take what was really published (e.g. read back from the signals topic after a restart) as the
        published state, and return the versions that bring it to what this engine holds now.

        A warm-up replays the inputs of several topics in another interleaving than the run that published
        them, so its own idea of the versions may differ; the published record is the truth. For each signal
        the engine holds: unpublished -> version 1; published with other numbers, or withdrawn while it holds,
        or holding while the engine withdrew it -> the next version. Signals the engine does not know (older
        than its memory) are left as they are."""
        truth: dict[str, SignalRecord] = {}
        for record in published:
            if record.signal_id not in truth or record.version > truth[record.signal_id].version:
                truth[record.signal_id] = record
        out = []
        for sid, mine in list(self.published.items()):
            theirs = truth.get(sid)
            if theirs is None:
                if mine.status != WITHDRAWN:
                    out.append(self._record(mine, 1, ACTIVE))
                else:
                    del self.published[sid]  # never published, gone again: nothing to say
                continue
            if _same(mine, theirs):
                self.published[sid] = theirs
                continue
            status = WITHDRAWN if mine.status == WITHDRAWN else ACTIVE if theirs.status == WITHDRAWN else REVISED
            out.append(self._record(mine, theirs.version + 1, status))
        return out

    # ------------------------------------------------------------------ evaluation

    def _series(self, key: SeriesKey) -> _Series | None:
        series = self.series.get(key)
        if series is None:
            detectors = self.rules.detectors_for(key)
            if not detectors:
                return None
            horizon = max(d.history(key.width_ns) for d in detectors) + 1
            series = self.series[key] = _Series(key, detectors, self, horizon)
            if key.scope != ASSET:
                self.venue_series.setdefault((key.asset, key.interval), []).append(series)
        return series if series.detectors else None

    def _evaluate(self, series: _Series, first: int, detectors: Sequence[Detector],
                  reach: int | None = None) -> list[SignalRecord]:  # fmt: skip
        """Evaluate `detectors` at every position from `first` whose window can read position `first` (or the
        `reach` positions from it)."""
        if first >= len(series.points):
            return []
        out: list[SignalRecord] = []
        for detector in detectors:
            ahead = detector.history(series.key.width_ns) if reach is None else reach
            last = min(len(series.points) - 1, first + ahead)
            old: dict[str, Finding] = {}
            new: dict[str, tuple[Finding, int]] = {}
            for i in range(first, last + 1):
                start = series.starts[i]
                old.update(series.findings.get(start, {}).pop(detector.name, {}))
                for finding in detector.evaluate(series, i):
                    new[signal_id(detector.name, series.key, finding)] = (finding, start)
            for sid, (finding, start) in new.items():
                series.findings.setdefault(start, {}).setdefault(detector.name, {})[sid] = finding
                before = old.pop(sid, None)
                if before is None:
                    out.append(self._publish(sid, detector.name, series, finding, start, ACTIVE))
                elif before != finding or self.published[sid].ts_ns != start + series.key.width_ns:
                    out.append(self._publish(sid, detector.name, series, finding, start, REVISED))
            for sid in old:  # published before, gone now
                gone = self.published[sid]
                out.append(self._record(gone, gone.version + 1, WITHDRAWN))
        return out

    def _publish(self, sid: str, detector: str, series: _Series, finding: Finding, start: int,
                 status: str) -> SignalRecord:  # fmt: skip
        before = self.published.get(sid)
        version = 1 if before is None else before.version + 1
        key = series.key
        venue_scope = key.scope != ASSET
        record = SignalRecord(
            signal_id=sid, version=version, status=status, kind=finding.kind, direction=finding.direction,
            venue=key.venue if venue_scope else None, instrument=key.instrument if venue_scope else None,
            asset=key.asset, market=key.kind, interval=key.interval, ts_ns=start + key.width_ns,
            pivot_ts_ns=finding.pivot_ts_ns, strength=finding.strength, detail=dict(finding.detail), detector=detector,
        )  # fmt: skip
        self.published[sid] = record
        return record

    def _record(self, record: SignalRecord, version: int, status: str) -> SignalRecord:
        new = msgspec.structs.replace(record, version=version, status=status)
        self.published[record.signal_id] = new
        return new

    def _trim(self, series: _Series) -> None:
        """Forget bars older than the memory, with their side rows and the signals they confirmed."""
        excess = len(series.points) - 2 * series.horizon
        if excess <= max(8, series.horizon // 4):  # in steps: each trim walks the findings and side rows
            return
        cutoff = series.starts[excess]
        del series.points[:excess], series.starts[:excess]
        for start in [s for s in series.findings if s < cutoff]:
            for by_id in series.findings.pop(start).values():
                for sid in by_id:
                    self.published.pop(sid, None)
        for rows in series.sides.values():
            for start in [s for s in rows if s < cutoff]:
                del rows[start]


def _same(mine: SignalRecord, theirs: SignalRecord) -> bool:
    """The same published state: both withdrawn, or both holding with the same numbers."""
    if (mine.status == WITHDRAWN) != (theirs.status == WITHDRAWN):
        return False
    return mine.status == WITHDRAWN or msgspec.structs.replace(mine, version=0, status="") == msgspec.structs.replace(
        theirs, version=0, status=""
    )
