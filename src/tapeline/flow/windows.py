"""What every flow aggregator shares, and the event-time windowing of bars, footprints and liquidations.

`FlowAggregator` is the one protocol the processor and the offline commands drive: bars, footprints,
liquidation bars and OBI all implement it (`add`, `drain`, `close_idle`, `touch`, `flush`, and a
`restore` of their own rows), and all keep the same per venue-instrument `EventClock`: the newest event
time (the watermark is that minus the allowed lateness) and the processing time of the last event, from
which `_idle` says who is idle and what watermark an idle close takes them to. OBI (flow/obi.py)
integrates a time-weighted book state instead of collecting events into windows; everything below the
clock is windows of events (pure, no I/O):

* A window is [start, start + width), aligned to epoch multiples of the event's venue time.
* An instrument's watermark is its newest event time minus the allowed lateness. A window is final once
  the watermark reaches its end; an event for a final window is *late*.
* Final windows are kept for a correction horizon (event time, behind the watermark). A late event for
  one of them is applied to it and the window is emitted again, final, with the late event's position
  as its higher version (`_correct`); the sink keeps the highest version. An event later than the
  horizon is handed back to the caller (counted and dead-lettered), never applied silently.
* Every series remembers the source position of the last event it applied; an event at a position it
  already applied is a replay after a restart and is skipped, so replays never count twice.
* Quiet instruments close on processing time (`close_idle`), so a consumer catching up on a backlog
  never has windows closed under it by the wall clock.
* A trade gap (the source lost trades between two times) flags every window overlapping it `incomplete`:
  open ones, kept final ones (emitted again) and those that open later (`add_gap`).

Subclasses say what an open window accumulates (`_open`) and what a final one becomes (`_finalize`).
`add_columns` takes a run of trades as numpy columns and applies them window by window (`_add_many`),
with the same result, to the bit, as `add` for each trade in order.
"""

from __future__ import annotations

import itertools
import math
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import numpy as np

from tapeline.domain.events import Trade, TradeGap
from tapeline.domain.intervals import INTERVAL_NS
from tapeline.flow.columns import TradeColumns


class _OfInstrument(Protocol):
    venue: str
    instrument: str


class _Keyed(_OfInstrument, Protocol):
    """A row of a window: Bar, FootprintBar, ObiBar, LiquidationBar."""

    interval: str
    start_ns: int
    version: int


class _Timed(_OfInstrument, Protocol):
    """An event windows take: it names its venue-instrument and carries its venue time."""

    ts_ns: int


Ev = TypeVar("Ev", contravariant=True)


class Window(Protocol[Ev]):
    """What an open window accumulates its events into (the bar, footprint or liquidation accumulators)."""

    incomplete: bool

    def add(self, event: Ev) -> None: ...


class ColumnWindow(Window[Trade], Protocol):
    """A window that also takes a run of trades in bulk, with the result `add` one by one gives, to the bit."""

    def add_many(self, columns: TradeColumns, idx: slice | np.ndarray) -> None: ...


_Row = TypeVar("_Row", bound=_Keyed)
E = TypeVar("E")  # the events an aggregator takes
R = TypeVar("R")  # what its drain returns
TE = TypeVar("TE", bound=_Timed)  # the events a windowed aggregator takes
A = TypeVar("A", bound=Window[Any])  # its window accumulator
W = TypeVar("W")  # what a series keeps per window
CA = TypeVar("CA", bound=ColumnWindow)  # a columnar aggregator's
InstKey = tuple[str, str]  # (venue, instrument)
MAX_GAPS = 64  # trade gaps remembered per instrument, for windows that open after the gap was reported


@dataclass(eq=False)
class EventClock:
    """One venue-instrument's clock: its newest event time, and when (processing time) it last took an event."""

    max_ts: int | None = None
    last_seen: int | None = None  # None: no event since the start (restored, or only flagged): never idle

    def advance(self, ts: int) -> bool:
        """An event at `ts`: True when it is the newest yet (the watermark moves)."""
        if self.max_ts is None or ts > self.max_ts:
            self.max_ts = ts
            return True
        return False


class FlowAggregator(ABC, Generic[E, R]):
    """The protocol of every flow aggregator, and the event clock each keeps per venue-instrument."""

    def __init__(self, allowed_lateness_ns: int) -> None:
        self.lateness_ns = allowed_lateness_ns
        self._clocks: dict[InstKey, EventClock] = {}

    @abstractmethod
    def add(self, event: E, position: int, now_ns: int = 0) -> object:
        """Apply one event at its monotone source `position`; `now_ns` (processing time) only feeds idle closing."""

    @abstractmethod
    def drain(self) -> R:
        """The rows to persist since the last drain."""

    @abstractmethod
    def close_idle(self, now_ns: int, idle_ns: int) -> None:
        """Close what instruments without an event for `idle_ns` of processing time would have closed."""

    @abstractmethod
    def flush(self) -> None:
        """End of a finite input: finalize every open window."""

    def touch(self, now_ns: int) -> None:
        """Mark every known instrument as just seen (e.g. at start, before the consumer catches up)."""
        for clock in self._clocks.values():
            clock.last_seen = now_ns

    def _idle(self, now_ns: int, idle_ns: int) -> Iterator[tuple[InstKey, int]]:
        """Instruments that took no event for `idle_ns` of processing time, with the watermark an idle close
        takes them to: their event clock cannot advance on its own, so it is taken to now - lateness - idle."""
        target = now_ns - self.lateness_ns - idle_ns
        for key, clock in self._clocks.items():
            if clock.last_seen is not None and now_ns - clock.last_seen >= idle_ns:
                yield key, target


@dataclass(eq=False)  # identity hash: series are kept in a dirty set
class Series(Generic[W]):
    """The windows of one (venue, instrument, interval)."""

    venue: str
    instrument: str
    interval: str
    width_ns: int
    open_bars: dict[int, W] = field(default_factory=dict)  # start -> accumulator
    changed: set[int] = field(default_factory=set)  # starts that took events since the last drain (if tracked)
    closed: dict[int, W] = field(default_factory=dict)  # final windows within the correction horizon
    closed_until_ns: int | None = None  # end of the last final window
    version: int = -1  # position of the last event applied
    # cheap gates for the per-event clock advance: end of the oldest open window, and of the oldest kept one
    first_open_end: float = math.inf
    first_closed_end: float = math.inf

    def restored(self, start: int, final: bool, version: int) -> None:
        """A persisted row of this series: it includes positions up to `version`; a final one ends (at least)
        the series' final windows, so none before it is emitted again."""
        self.version = max(self.version, version)
        if final:
            end = start + self.width_ns
            self.closed_until_ns = end if self.closed_until_ns is None else max(self.closed_until_ns, end)


SeriesT = TypeVar("SeriesT", bound=Series[Any])  # an aggregator's series (bars add the CVD to them)


class WindowedAggregator(FlowAggregator[TE, R], Generic[TE, R, A, SeriesT]):
    """Windows of events (TE) accumulated into A, per series SeriesT; drains give R."""

    TRACK_CHANGED: ClassVar[bool] = False  # record which open windows changed (drains that emit only those)

    def __init__(self, intervals: Iterable[str], allowed_lateness_ns: int = 0, correction_horizon_ns: int = 0) -> None:
        super().__init__(allowed_lateness_ns)
        self.intervals = [(name, INTERVAL_NS[name]) for name in intervals]
        self.horizon_ns = correction_horizon_ns
        self.corrections: Counter[str] = Counter()  # late events applied to final windows, per interval
        self._by_instrument: dict[InstKey, list[SeriesT]] = {}
        self._dirty: set[SeriesT] = set()
        self._gaps: dict[InstKey, list[tuple[int, int]]] = {}  # recent trade gaps (from, to) per instrument
        self._moved: dict[InstKey, int] = {}  # watermarks that moved since `drain_watermarks`

    # -- what a subclass provides ---------------------------------------------------------------------

    @abstractmethod
    def _new_series(self, venue: str, instrument: str, interval: str, width_ns: int) -> SeriesT:
        """An empty series of this aggregator's kind."""

    @abstractmethod
    def _open(self, series: SeriesT, event: TE) -> A:
        """A new accumulator for a window, holding its first event."""

    @abstractmethod
    def _finalize(self, series: SeriesT, start: int, acc: A, version: int) -> None:
        """A window became final (popped from the open ones already)."""

    def _emit_final_again(self, series: SeriesT, start: int, acc: A, version: int) -> None:
        """A kept final window changed other than by a trade (a gap flagged it): emit it again at `version`."""
        self._finalize(series, start, acc, version)

    def _correct(self, series: SeriesT, start: int, acc: A, event: TE, created: bool, version: int) -> None:
        """A late `event` was applied to the final window `acc` (`created`: the window had no event before).

        Default: emit the window again, final, at the new version.
        """
        self._finalize(series, start, acc, version)

    # -- the windowing ---------------------------------------------------------------------------------

    def add(self, event: TE, position: int, now_ns: int = 0) -> list[str]:
        """Apply one event at its monotone source `position`; returns the intervals it was too late for,
        past the correction horizon (late events within it correct their final window and are counted in
        `corrections`).

        `now_ns` is the processing time, used only by `close_idle`.
        """
        inst_key = (event.venue, event.instrument)
        series_list = self._by_instrument.get(inst_key) or self._series_for(inst_key)
        clock = self._clocks[inst_key]
        clock.last_seen = now_ns
        max_ts = clock.max_ts
        watermark = (event.ts_ns if max_ts is None else max_ts) - self.lateness_ns
        late: list[str] = []
        ts = event.ts_ns
        track_changed = self.TRACK_CHANGED
        for series in series_list:
            if position <= series.version:
                continue  # applied before a restart: a replay must not count it twice
            width = series.width_ns
            start = ts - ts % width
            if start + width <= watermark or (series.closed_until_ns is not None
                                               and start < series.closed_until_ns):  # fmt: skip
                if not self.horizon_ns or start + width <= watermark - self.horizon_ns:
                    late.append(series.interval)  # final, and too old to correct
                    continue
                kept = series.closed.get(start)
                created = kept is None
                if kept is None:  # a window that had no events becomes a final one
                    acc = self._new_window(series, start, event)
                    series.closed = dict(sorted({**series.closed, start: acc}.items()))
                    series.first_closed_end = next(iter(series.closed)) + width
                else:
                    acc = kept
                    acc.add(event)
                series.version = position
                self.corrections[series.interval] += 1
                self._correct(series, start, acc, event, created, position)
                self._dirty.add(series)
                continue
            window = series.open_bars.get(start)
            if window is None:
                self._open_window(series, start, event)
            else:
                window.add(event)
            if track_changed:
                series.changed.add(start)
            series.version = position
            self._dirty.add(series)
        if clock.advance(ts):
            self._moved[inst_key] = ts - self.lateness_ns
            self._advance(series_list, ts - self.lateness_ns, position)
        return late

    def drain_watermarks(self) -> dict[InstKey, int]:
        """Instruments whose watermark moved since the last call, with it: their windows ending at or before it
        are final (by their clock, or by an idle close)."""
        moved, self._moved = self._moved, {}
        return moved

    def add_gap(self, gap: TradeGap, position: int) -> None:
        """Flag the windows overlapping [gap.from_ns, gap.to_ns] incomplete, now and when they open later."""
        self.remember_gap(gap.venue, gap.instrument, gap.from_ns, gap.to_ns)
        for series in self._series_for((gap.venue, gap.instrument)):
            if position <= series.version:
                continue  # applied before a restart
            width = series.width_ns
            for start, acc in series.closed.items():
                if not acc.incomplete and _overlaps(start, width, gap.from_ns, gap.to_ns):
                    acc.incomplete = True
                    self._emit_final_again(series, start, acc, position)
            for start, acc in series.open_bars.items():
                if _overlaps(start, width, gap.from_ns, gap.to_ns):
                    acc.incomplete = True
                    if self.TRACK_CHANGED:
                        series.changed.add(start)
            series.version = position
            self._dirty.add(series)

    def remember_gap(self, venue: str, instrument: str, from_ns: int, to_ns: int) -> None:
        """A gap that windows opening later must be flagged for (also how a restore brings gaps back)."""
        spans = self._gaps.setdefault((venue, instrument), [])
        if (from_ns, to_ns) not in spans:
            spans.append((from_ns, to_ns))
            del spans[:-MAX_GAPS]

    def _open_window(self, series: SeriesT, start: int, event: TE) -> A:
        """A new open window holding `event`, its first."""
        acc = series.open_bars[start] = self._new_window(series, start, event)
        if start + series.width_ns < series.first_open_end:
            series.first_open_end = start + series.width_ns
        return acc

    def _new_window(self, series: SeriesT, start: int, event: TE) -> A:
        acc = self._open(series, event)
        spans = self._gaps.get((series.venue, series.instrument))
        if spans:
            acc.incomplete = any(_overlaps(start, series.width_ns, from_ns, to_ns) for from_ns, to_ns in spans)
        return acc

    def close_idle(self, now_ns: int, idle_ns: int) -> None:
        """Finalize the windows idle instruments' clocks have passed (see `_idle`)."""
        for inst_key, watermark in self._idle(now_ns, idle_ns):
            series_list = self._by_instrument[inst_key]
            if self._moved.get(inst_key, -math.inf) < watermark:
                self._moved[inst_key] = watermark
            version = max(s.version for s in series_list)
            for series in series_list:
                self._close_series(series, watermark, version)

    def flush(self) -> None:
        """Finalize every open window (end of a finite input)."""
        for series in self._all_series():
            if series.open_bars:
                self._close_series(series, max(series.open_bars) + series.width_ns, series.version)

    def _series_for(self, inst_key: InstKey) -> list[SeriesT]:
        series_list = self._by_instrument.get(inst_key)
        if series_list is None:
            series_list = self._by_instrument[inst_key] = [
                self._new_series(*inst_key, name, width) for name, width in self.intervals
            ]
            self._clocks[inst_key] = EventClock()
        return series_list

    def _series_named(self, inst_key: InstKey, interval: str) -> SeriesT | None:
        """The series of a configured interval (None for an interval this aggregator does not keep)."""
        if all(name != interval for name, _ in self.intervals):
            return None
        return next(s for s in self._series_for(inst_key) if s.interval == interval)

    def _all_series(self) -> Iterator[SeriesT]:
        for series_list in self._by_instrument.values():
            yield from series_list

    def _advance(self, series_list: list[SeriesT], watermark: int, version: int,
                 version_at: Callable[[int], int] | None = None) -> None:  # fmt: skip
        """The instrument's clock moved to `watermark`: close the windows it passed (`_close_series`) and forget
        kept final ones past the horizon."""
        cutoff = watermark - self.horizon_ns
        for series in series_list:
            if series.first_open_end <= watermark:
                self._close_series(series, watermark, version, version_at)
            if series.first_closed_end <= cutoff:
                self._forget(series, cutoff)

    def _close_series(self, series: SeriesT, watermark: int, version: int,
                      version_at: Callable[[int], int] | None = None) -> None:  # fmt: skip
        """Finalize the open windows that end at or before `watermark`, at `version` (or `version_at(end)`)."""
        if not series.open_bars:
            return
        width = series.width_ns
        for start in sorted(s for s in series.open_bars if s + width <= watermark):
            acc = series.open_bars.pop(start)
            series.closed_until_ns = start + width
            self._finalize(series, start, acc, version if version_at is None else version_at(start + width))
            if self.horizon_ns:
                if not series.closed:
                    series.first_closed_end = start + width
                series.closed[start] = acc
        series.first_open_end = min(series.open_bars) + width if series.open_bars else math.inf

    def _forget(self, series: SeriesT, cutoff: int) -> None:
        """Drop final windows that end at or before `cutoff`: past the horizon, they take no corrections.

        `closed` is in start order, so this looks at its oldest entries only.
        """
        closed, width = series.closed, series.width_ns
        while closed:
            oldest = next(iter(closed))
            if oldest + width > cutoff:
                series.first_closed_end = oldest + width
                return
            del closed[oldest]
        series.first_closed_end = math.inf

    def _restore_window(self, venue: str, instrument: str, interval: str, start: int, final: bool, version: int,
                        newest_ts: int, window: Callable[[], A] | None) -> SeriesT | None:  # fmt: skip
        """One persisted row back in place: its series' version and final windows (`Series.restored`), the window
        itself if it can still change (open, or final within the correction horizon; `window()` rebuilds it), and
        the instrument's clock (`newest_ts`: the newest event time the row says it includes). None: an interval
        this aggregator does not keep. Every restore ends with `_settle_restored`."""
        series = self._series_named((venue, instrument), interval)
        if series is None:
            return None
        series.restored(start, final, version)
        if window is not None and (not final or self.horizon_ns):
            (series.closed if final else series.open_bars)[start] = window()
        clock = self._clocks[(venue, instrument)]
        clock.max_ts = newest_ts if clock.max_ts is None else max(clock.max_ts, newest_ts)
        return series

    def _settle_restored(self) -> None:
        """End of a subclass's restore: `closed` in start order and within the horizon of the restored clock,
        and the gates of `add` set from the restored windows."""
        for inst_key, series_list in self._by_instrument.items():
            max_ts = self._clocks[inst_key].max_ts
            for series in series_list:
                series.closed = dict(sorted(series.closed.items()))
                series.first_open_end = min(series.open_bars) + series.width_ns if series.open_bars else math.inf
                series.first_closed_end = next(iter(series.closed)) + series.width_ns if series.closed else math.inf
                if max_ts is not None:
                    self._forget(series, max_ts - self.lateness_ns - self.horizon_ns)


class ColumnarAggregator(WindowedAggregator[Trade, R, CA, SeriesT]):
    """Windows of trades that also take a run of them as numpy columns (`add_columns`), window by window, with
    the same result, to the bit, as `add` for each trade in order (the bar and footprint aggregators)."""

    def add_columns(self, columns: TradeColumns, now_ns: int = 0) -> list[tuple[int, str]]:
        """`add` for each trade of `columns` in order, done in bulk; returns (index, interval) of the trades too
        late for an interval, past the correction horizon.

        Whether a trade is late depends only on the trade times before it, so it is known up front: late
        trades (rare) go through `add` one by one, and the runs between them are applied window by window.
        """
        n = len(columns)
        if not n:
            return []
        inst_key = (columns.venue, columns.instrument)
        series_list = self._by_instrument.get(inst_key) or self._series_for(inst_key)
        ts, position = columns.ts, columns.position
        max_ts = self._clocks[inst_key].max_ts
        before = np.empty_like(ts)  # the newest trade time before each trade (the first: its own, if none yet)
        before[0] = ts[0] if max_ts is None else max_ts
        np.maximum.accumulate(np.maximum(ts[:-1], before[0]), out=before[1:])
        watermark = before - self.lateness_ns
        late_somewhere = np.zeros(n, dtype=bool)
        for series in series_list:
            width = series.width_ns
            end = ts - ts % width + width
            late = end <= watermark
            if series.closed_until_ns is not None:
                late |= end - width < series.closed_until_ns
            late_somewhere |= late & (position > series.version)
        too_late: list[tuple[int, str]] = []
        begin = 0
        for i in [*np.flatnonzero(late_somewhere).tolist(), n]:
            if i > begin:
                self._add_run(inst_key, series_list, columns, begin, i, now_ns)
            if i < n:
                too_late.extend((i, interval) for interval in self.add(columns.trade(i), int(position[i]), now_ns))
            begin = i + 1
        return too_late

    def _add_run(self, inst_key: InstKey, series_list: list[SeriesT], columns: TradeColumns, begin: int,
                 end: int, now_ns: int) -> None:  # fmt: skip
        """Trades [begin, end) of `columns`, none of them late: each window takes its trades at once, then the
        clock advances and windows close with the version `add` would have given them."""
        clock = self._clocks[inst_key]
        clock.last_seen = now_ns
        ts, position = columns.ts[begin:end], columns.position[begin:end]
        for series in series_list:
            skip = int(np.searchsorted(position, series.version, side="right"))  # applied before a restart
            if skip < len(ts):
                self._add_windows(series, columns, begin + skip, ts[skip:])
                series.version = int(position[-1])
                self._dirty.add(series)
        max_ts = clock.max_ts
        newest = np.maximum.accumulate(ts if max_ts is None else np.maximum(ts, max_ts))
        if not clock.advance(int(newest[-1])):
            return  # the clock did not move
        after = newest - self.lateness_ns  # the watermark after each trade
        self._moved[inst_key] = int(after[-1])
        moved = 0 if max_ts is None else int(np.argmax(newest > max_ts))  # windows close when the clock moves

        def version_at(window_end: int) -> int:
            return int(position[max(moved, int(np.searchsorted(after, window_end)))])

        self._advance(series_list, int(after[-1]), 0, version_at)

    def _add_windows(self, series: SeriesT, columns: TradeColumns, offset: int, ts: np.ndarray) -> None:
        """Trades offset.. of `columns` (times `ts`) into their windows of `series`, window by window, windows in
        order of their first trade (as `add` opens them), each window's trades in arrival order."""
        width = series.width_ns
        starts = ts - ts % width
        if len(starts) == 1 or bool((starts[1:] >= starts[:-1]).all()):
            order = None
            grouped = starts
        else:
            order = np.argsort(starts, kind="stable")
            grouped = starts[order]
        bounds = [0, *(np.flatnonzero(grouped[1:] != grouped[:-1]) + 1).tolist(), len(ts)]
        groups = list(itertools.pairwise(bounds))
        if order is not None:
            groups.sort(key=lambda g: int(order[g[0]]))
        for a, b in groups:
            start = int(grouped[a])
            idx: slice | np.ndarray = slice(offset + a, offset + b) if order is None else order[a:b] + offset
            acc = series.open_bars.get(start)
            opened = acc is None
            if acc is None:  # its first trade opens it, as in `add`
                first = offset + a if order is None else int(order[a]) + offset
                acc = self._open_window(series, start, columns.trade(first))
                idx = order[a + 1 : b] + offset if order is not None else slice(first + 1, offset + b)
            if not opened or b - a > 1:
                acc.add_many(columns, idx)
            if self.TRACK_CHANGED:
                series.changed.add(start)


def _overlaps(start: int, width: int, from_ns: int, to_ns: int) -> bool:
    """Does the window [start, start + width) overlap the gap [from_ns, to_ns]?"""
    return start < to_ns and start + width > from_ns


def newest_versions(rows: Iterable[_Row]) -> list[_Row]:
    """The newest version of each window's rows (ties: the later row), as a versioned sink keeps them, in series
    and time order: a corrected or flagged window is emitted again at a higher version."""
    newest: dict[tuple[str, str, str, int], _Row] = {}
    for row in rows:
        key = (row.venue, row.instrument, row.interval, row.start_ns)
        if key not in newest or row.version >= newest[key].version:
            newest[key] = row
    return sorted(newest.values(), key=lambda r: (r.venue, r.instrument, INTERVAL_NS[r.interval], r.start_ns))
