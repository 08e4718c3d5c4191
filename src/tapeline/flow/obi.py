"""Order-book imbalance (OBI) bars: pure arithmetic over verified L2 book events, no I/O.

OBI = (B - A) / (B + A) in [-1, 1], B and A the resting bid and ask quantity (base units) over the
top N levels (top1, top5, top10, top20) or within +/- b bps of the mid (bps10, bps25, bps50); see
docs/DOMAIN.md "Order-book imbalance (OBI)".

Books (`BookState`, one per venue-instrument):

* A snapshot replaces the book and makes it verified; deltas are absolute sizes (qty 0 removes the level).
  A `BookGap` makes the book unverified until the next snapshot; a delta for an unverified book (also one
  before the first snapshot) is ignored. The 7 values are recomputed after every applied event.
* A value is None when B + A == 0 (e.g. a 10 bps band inside a wider spread), when the book is unverified
  or crossed (best bid >= best ask); the band values are None while one side is empty (no mid).
* Mid = (best bid + best ask) / 2. Band membership is the documented formula, |price - mid| / mid * 10_000
  <= b, with `BAND_EPS_BPS` of slack so that a level exactly on the boundary in decimal (10.05 around a
  mid of 10.0 at 50 bps) is not lost to binary rounding; a price tick is millions of times wider.
* Quantities are summed exactly (integers of 1e-12 base units), so the band sums, kept incrementally,
  never drift from a fresh recomputation.
* Band quantities (`BookState.bands`: bid and ask quantity within each band, the inputs of cross-venue OBI)
  are defined when the band values can be: verified, not crossed, both sides non-empty. A band with no level
  in it (10 bps inside a wider spread) is defined and 0 (its OBI is None). While crossed they are
  undefined, like the OBI values: best bid >= best ask leaves no meaningful mid to centre the bands on, and
  a venue's crossed moment is not a resting quantity it offers.

Time (per venue-instrument; the conventions of flow/bars.py):

* Book events are sequenced by the venue, so they are applied in ARRIVAL order, never re-sorted.
  Their time for weighting is the venue time clamped to be monotone: t = max(ts_ns, clock), where the
  clock is the latest time applied. The watermark is the newest event time minus the allowed lateness;
  `add` returns False for an event older than the watermark. Such an event is still applied to the book
  (dropping a sequenced delta would corrupt every later value) at the clamped time; the caller counts it.
* A bar is [start, start + interval) aligned to epoch multiples. A value holds from its (clamped) event
  time until the next event, or the bar end, where the next bar starts with it (carry-over: a bar with
  no event of its own has the previous bar's last state). The bar's content is complete once the clock
  passes its end; it is emitted as final once the watermark does.
* Unverified time is never in a mean: it sets `incomplete`. Time before an instrument's first event,
  time after a BookGap until the next snapshot, and time after a restart until the next snapshot are
  unverified. So the first bar of an instrument (or after a restart) is incomplete unless it begins with
  a snapshot at exactly its start.
* Per measure: mean = integral of the value over time / time the value was defined (not None); this
  equals `verified_ns` except while the book was crossed or the band empty. last = the value at the bar
  end (None when unverified there); min / max = over values that held for more than 0 ns in the bar.
  `updates` = BookUpdate events applied to a verified book (snapshots included) in the bar.
* Band quantities (`bps<b>_bid_mean`, `_ask_mean`, `_bid_last`, `_ask_last`): mean = integral of the
  quantity over time / time the bands were defined (one time for all six: they share the mid), last = at
  the bar end; None when never defined in the bar (at its end, for last). The integrals are exact
  integers (quantity units x ns), so a bar's mean does not depend on how its time was split into events,
  smaller bars or a restart, and the mean is the correctly rounded quotient.
* A bar is emitted when it saw any book event or any verified time; a window that was entirely
  unverified and without events (a dead feed) is not emitted.
* `close_idle` moves a quiet instrument's clock with its book state unchanged (a connected venue that
  sends nothing has an unchanged book; a connector reports a lost stream as a BookGap). `flush` (end of
  a finite input) treats the time after the last event as unknown: the last bars are incomplete.
* `restore` continues from persisted final rows; the book cannot be restored from bars, so it stays
  unverified until the next snapshot in the input (see `ObiAggregator.restore`).
* `drain` returns FINAL rows only (no snapshots of open bars). `version` is the source position of the
  event (or the last event, for `close_idle` / `flush`) after which the bar became final, so a replay of
  the same input writes the same rows and versions.

Intervals must nest (each a multiple of the smallest, true for config.INTERVAL_NS): the timeline is
integrated once into bars of the smallest interval, and larger bars are the sum of those.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from tapeline.domain.aggregates import ObiBar
from tapeline.domain.events import BookGap, BookUpdate
from tapeline.domain.intervals import INTERVAL_NS
from tapeline.flow.windows import EventClock, FlowAggregator, InstKey, Series

MEASURES = ("top1", "top5", "top10", "top20", "bps10", "bps25", "bps50")
TOP_LEVELS = (1, 5, 10, 20)
BANDS_BPS = (10, 25, 50)  # ascending; _apply_side relies on exactly these three nested bands
BAND_EPS_BPS = 1e-9  # binary-rounding slack of the band test (one 0.1 tick at 100k is 0.01 bps)
QTY_SCALE = 10**12  # quantities are summed as integers of 1e-12 base units: exact, drift-free
INF = float("inf")
_NB = len(BANDS_BPS)
STATS = ("mean", "last", "min", "max")
BAND_STATS = ("bid_mean", "ask_mean", "bid_last", "ask_last")  # band quantities (base units), per band
_N = len(MEASURES)
NONE7: tuple[None, ...] = (None,) * _N
_NO_BANDS: tuple[int, ...] = (0,) * (2 * _NB)


# ------------------------------------------------------------------------------------------------- book


def _imbalance(b: int, a: int) -> float | None:
    total = b + a
    return (b - a) / total if total > 0 else None  # int / int: correctly rounded


class BookState:
    """One instrument's book for OBI, built so that every update costs little.

    Per side: a dict key -> quantity and the keys in a sorted list, key = price for bids and -price for
    asks, so both lists are ascending with the BEST LEVEL LAST: most changes happen near the top, where
    inserting or deleting moves few list items. The list changes only when a level appears or disappears
    (insort / bisect + del); top-N sums are short slices of its tail. The band sums are kept incrementally:
    per band, an edge key (levels with key >= edge are inside) and the sum of those levels; a level
    change adjusts the sums it falls in, and after each update the edges move with the mid, adding or
    removing only the levels they pass.

    Quantities are integers in units of 1 / QTY_SCALE base (venues quote at most 8-10 decimals), so the
    sums are exact: no drift however long the book lives, the same numbers as a fresh recomputation, and
    a band that empties sums to exactly 0. `values` holds the 7 OBI values (MEASURES order).
    """

    __slots__ = ("ask_edge", "ask_keys", "ask_qty", "ask_sum", "bands", "bid_edge", "bid_keys", "bid_qty", "bid_sum",
                 "values", "verified")  # fmt: skip
    bid_qty: dict[float, int]  # price -> quantity units
    ask_qty: dict[float, int]  # -price -> quantity units
    bid_keys: list[float]  # ascending, best bid last
    ask_keys: list[float]  # ascending (-price), best ask last
    bid_edge: list[float]  # per band: levels with key >= edge are in the sum (INF: empty band)
    ask_edge: list[float]
    bid_sum: list[int]
    ask_sum: list[int]
    verified: bool
    values: tuple[float | None, ...]  # the 7 OBI values, MEASURES order
    bands: tuple[int, ...] | None  # bid then ask quantity units per band (BANDS_BPS order); None: undefined

    def __init__(self) -> None:
        self.invalidate()

    def apply(self, event: BookUpdate | BookGap) -> bool:
        """Apply one event; True when it changed a verified book (a snapshot, or a delta of a verified book)."""
        if isinstance(event, BookGap):
            self.invalidate()
            return False
        if event.is_snapshot:
            self.invalidate()
            self.bid_qty = {p: n for p, q in event.bids if (n := round(q * QTY_SCALE)) > 0}
            self.ask_qty = {-p: n for p, q in event.asks if (n := round(q * QTY_SCALE)) > 0}
            self.bid_keys = sorted(self.bid_qty)
            self.ask_keys = sorted(self.ask_qty)
            self.verified = True
        elif not self.verified:
            return False  # no snapshot since the last gap: the deltas cannot be placed
        else:
            _apply_side(self.bid_qty, self.bid_keys, event.bids, self.bid_edge, self.bid_sum, 1.0)
            _apply_side(self.ask_qty, self.ask_keys, event.asks, self.ask_edge, self.ask_sum, -1.0)
        self.values = self._refresh()
        return True

    def invalidate(self) -> None:
        self.bid_qty = {}
        self.ask_qty = {}
        self.bid_keys = []
        self.ask_keys = []
        self.bid_edge = [INF] * _NB
        self.ask_edge = [INF] * _NB
        self.bid_sum = [0] * _NB
        self.ask_sum = [0] * _NB
        self.verified = False
        self.values = NONE7
        self.bands = None

    def best_bid(self) -> float | None:
        return self.bid_keys[-1] if self.bid_keys else None

    def best_ask(self) -> float | None:
        return -self.ask_keys[-1] if self.ask_keys else None

    def crossed(self) -> bool:
        return bool(self.bid_keys and self.ask_keys and self.bid_keys[-1] >= -self.ask_keys[-1])

    def levels(self, side: str, n: int) -> list[tuple[float, float]]:
        """The best `n` levels of a side ("bid" | "ask") as (price, qty_base), best first (for inspection)."""
        if side == "bid":
            return [(k, self.bid_qty[k] / QTY_SCALE) for k in reversed(self.bid_keys[-n:])]
        return [(-k, self.ask_qty[k] / QTY_SCALE) for k in reversed(self.ask_keys[-n:])]

    def _refresh(self) -> tuple[float | None, ...]:
        """The 7 values of the current book; also sets `bands`."""
        bk, ak = self.bid_keys, self.ask_keys
        if bk and ak and bk[-1] >= -ak[-1]:
            self.bands = None
            return NONE7  # crossed; the band edges wait for an uncrossed book
        bg, ag = self.bid_qty.__getitem__, self.ask_qty.__getitem__
        # top N, nested: each sum extends the previous one (negative slices clamp on short books)
        b1 = bg(bk[-1]) if bk else 0
        b5 = b1 + sum(map(bg, bk[-5:-1]))
        b10 = b5 + sum(map(bg, bk[-10:-5]))
        b20 = b10 + sum(map(bg, bk[-20:-10]))
        a1 = ag(ak[-1]) if ak else 0
        a5 = a1 + sum(map(ag, ak[-5:-1]))
        a10 = a5 + sum(map(ag, ak[-10:-5]))
        a20 = a10 + sum(map(ag, ak[-20:-10]))
        top = (_imbalance(b1, a1), _imbalance(b5, a5), _imbalance(b10, a10), _imbalance(b20, a20))
        if not (bk and ak):
            self.bands = None
            return (*top, None, None, None)  # no mid
        mid = (bk[-1] - ak[-1]) / 2
        bid_sum, ask_sum = self.bid_sum, self.ask_sum
        _move_edges(bk, bg, self.bid_edge, bid_sum, _bid_band_start(bk, mid))
        _move_edges(ak, ag, self.ask_edge, ask_sum, _ask_band_start(ak, mid))
        self.bands = (*bid_sum, *ask_sum)  # a copy: the sums change in place
        return (*top, *map(_imbalance, bid_sum, ask_sum))


def _apply_side(
    qty: dict[float, int], keys: list[float], levels: Iterable[tuple[float, float]], edge: list[float],
    band: list[int], sign: float,
) -> None:  # fmt: skip
    """Absolute-size deltas of one side (key = sign * price); a key at or above a band's edge is in its sum."""
    e10, e25, e50 = edge  # nested bands: e50 <= e25 <= e10
    s10, s25, s50 = band
    scale = QTY_SCALE
    for price, q in levels:
        key = sign * price  # exact: a multiplication by +-1
        n = round(q * scale)
        old = qty.get(key, 0)
        if n > 0:
            if not old:
                insort(keys, key)
            qty[key] = n
        elif old:
            del qty[key]
            del keys[bisect_left(keys, key)]
        else:
            continue  # removing an unknown level is normal
        if key >= e50:
            change = n - old
            s50 += change
            if key >= e25:
                s25 += change
                if key >= e10:
                    s10 += change
    band[:] = (s10, s25, s50)


def _move_edges(
    keys: list[float], get: Callable[[float], int], edge: list[float], band: list[int], starts: tuple[int, ...]
) -> None:
    """Move each band's edge to the index where it now starts, adding / removing the levels passed."""
    n = len(keys)
    for k, new in enumerate(starts):
        old = bisect_left(keys, edge[k])
        if new < old:
            band[k] += sum(map(get, keys[new:old]))
        elif new > old:
            band[k] -= sum(map(get, keys[old:new]))
        edge[k] = keys[new] if new < n else INF


def _bid_band_start(keys: list[float], mid: float) -> tuple[int, ...]:
    """Per band, the index of the first bid inside it: (mid - price) / mid * 10_000 <= b."""
    n = len(keys)
    starts = []
    for b in BANDS_BPS:
        limit = b + BAND_EPS_BPS
        i = bisect_left(keys, mid * (1 - b / 10_000))  # a guess; the exact formula decides at the edge
        while i > 0 and (mid - keys[i - 1]) / mid * 10_000 <= limit:
            i -= 1
        while i < n and (mid - keys[i]) / mid * 10_000 > limit:
            i += 1
        starts.append(i)
    return tuple(starts)


def _ask_band_start(keys: list[float], mid: float) -> tuple[int, ...]:
    """Per band, the index of the first ask key inside it: (price - mid) / mid * 10_000 <= b, price = -key."""
    n = len(keys)
    starts = []
    for b in BANDS_BPS:
        limit = b + BAND_EPS_BPS
        i = bisect_left(keys, -(mid * (1 + b / 10_000)))
        while i > 0 and (-keys[i - 1] - mid) / mid * 10_000 <= limit:
            i -= 1
        while i < n and (-keys[i] - mid) / mid * 10_000 > limit:
            i += 1
        starts.append(i)
    return tuple(starts)


# ------------------------------------------------------------------------------------------------- bars


class _Acc:
    """Running state of one bar: per measure the time integral, defined time, min, max; the value at the end.

    And the band quantities' exact integrals (quantity units x ns), the time they were defined, their end value.
    """

    __slots__ = ("band_integral", "band_last", "band_ns", "covered", "cursor", "events", "incomplete", "integral",
                 "last", "maxs", "mins", "start", "updates", "verified_ns")  # fmt: skip

    def __init__(self, start: int) -> None:
        self.start = start
        self.cursor = start  # larger bars: end of the last smallest-interval bar merged in
        self.integral = [0.0] * _N
        self.covered = [0] * _N
        self.mins: list[float | None] = [None] * _N
        self.maxs: list[float | None] = [None] * _N
        self.last: tuple[float | None, ...] = NONE7
        self.verified_ns = 0
        self.incomplete = False
        self.updates = 0
        self.events = 0  # book events of any kind (gaps and ignored deltas too): the bar is worth a row
        self.band_integral = _NO_BANDS  # per band quantity (BookState.bands order): sum of quantity x ns, exact
        self.band_ns = 0  # time the bands were defined
        self.band_last: tuple[int, ...] | None = None

    def span(self, dt: int, values: tuple[float | None, ...], verified: bool, bands: tuple[int, ...] | None) -> None:
        """`values` and `bands` held for `dt` ns."""
        if dt <= 0:
            return
        if not verified:
            self.incomplete = True
            return
        self.verified_ns += dt
        if bands is not None:  # implies values defined: uncrossed, both sides non-empty
            self.band_ns += dt
            b10, b25, b50, a10, a25, a50 = bands  # unrolled: ~2.5x faster than a loop (integers, exact)
            i0, i1, i2, i3, i4, i5 = self.band_integral
            self.band_integral = (i0 + b10 * dt, i1 + b25 * dt, i2 + b50 * dt, i3 + a10 * dt, i4 + a25 * dt,
                                  i5 + a50 * dt)  # fmt: skip
        if values is NONE7:
            return
        integral, covered, mins, maxs = self.integral, self.covered, self.mins, self.maxs
        for i, v in enumerate(values):
            if v is None:
                continue
            integral[i] += v * dt
            covered[i] += dt
            lo = mins[i]
            if lo is None or v < lo:
                mins[i] = v
            hi = maxs[i]
            if hi is None or v > hi:
                maxs[i] = v

    def merge(self, other: _Acc, other_end: int) -> None:
        """Add a smallest-interval bar [other.start, other_end) to this larger bar."""
        if self.cursor != other.start:
            self.incomplete = True  # the time between was skipped: unverified, without events
        self.cursor = other_end
        for i in range(_N):
            if other.covered[i]:
                self.integral[i] += other.integral[i]
                self.covered[i] += other.covered[i]
                lo, hi = other.mins[i], other.maxs[i]  # set wherever covered
                mine_lo, mine_hi = self.mins[i], self.maxs[i]
                if lo is not None and (mine_lo is None or lo < mine_lo):
                    self.mins[i] = lo
                if hi is not None and (mine_hi is None or hi > mine_hi):
                    self.maxs[i] = hi
        if other.band_ns:
            self.band_ns += other.band_ns
            self.band_integral = tuple([a + b for a, b in zip(self.band_integral, other.band_integral, strict=True)])
        self.last = other.last
        self.band_last = other.band_last
        self.verified_ns += other.verified_ns
        self.incomplete = self.incomplete or other.incomplete
        self.updates += other.updates
        self.events += other.events

    def worthy(self) -> bool:
        return bool(self.events or self.verified_ns)


@dataclass(eq=False)
class _Series(Series["_Acc"]):
    """Bars of one (venue, instrument, interval); `closed_until_ns` ends the final ones (never emitted again)."""

    acc: _Acc | None = None  # the open bar (always set for the smallest interval once the clock runs)
    pending: list[_Acc] = field(default_factory=list)  # complete bars waiting for the watermark


DEFAULT_MAX_CARRY_NS = 30_000_000_000  # the connector's own silence limit (stale_after_s) before it reconnects


@dataclass(eq=False, kw_only=True)
class _Instrument(EventClock):
    """One venue-instrument: its event clock (max_ts, last_seen), book, bars and integration time."""

    venue: str
    instrument: str
    series: list[_Series]  # smallest interval first
    book: BookState = field(default_factory=BookState)
    integrated: int | None = None  # time up to which the timeline is integrated (monotone)
    version: int = -1  # position of the last event applied
    replayed_until: int = -1  # restored: events at positions up to this one are replays, never late
    last_event_ts: int | None = None  # venue time of the last event: how long a quiet book may be carried


class ObiAggregator(FlowAggregator[BookUpdate | BookGap, list[ObiBar]]):
    """OBI bars for many venue-instruments and intervals (the FlowAggregator protocol of flow/windows.py).

    Feed book events (BookUpdate, BookGap) with `add`, then `drain` the rows that became final.
    """

    def __init__(self, intervals: Iterable[str], allowed_lateness_ns: int = 0) -> None:
        self.intervals = sorted(((name, INTERVAL_NS[name]) for name in intervals), key=lambda item: item[1])
        if not self.intervals:
            raise ValueError("no intervals")
        base = self.intervals[0][1]
        if any(width % base for _, width in self.intervals):
            raise ValueError(f"intervals must be multiples of the smallest one: {[n for n, _ in self.intervals]}")
        super().__init__(allowed_lateness_ns)
        self._instruments: dict[InstKey, _Instrument] = {}
        self._clocks = self._instruments  # type: ignore[assignment]  # one dict: each instrument is its own clock
        self._final_rows: list[ObiBar] = []

    # -- input -----------------------------------------------------------------------------------------

    def add(self, event: BookUpdate | BookGap, position: int, now_ns: int = 0) -> bool:
        """Apply one book event at its monotone source `position`; False when it was older than the watermark.

        A late event is applied all the same (at the clamped time); `now_ns` is the processing time,
        used only by `close_idle`.
        """
        inst = self._instruments.get((event.venue, event.instrument)) or self._instrument(event.venue, event.instrument)
        inst.last_seen = now_ns
        ts = event.ts_ns
        inst.last_event_ts = ts if inst.last_event_ts is None else max(inst.last_event_ts, ts)
        integrated, max_ts = inst.integrated, inst.max_ts
        if integrated is None or max_ts is None:  # the instrument's first event
            width = inst.series[0].width_ns
            integrated = ts - ts % width
            self._start(inst, integrated)
            max_ts = inst.max_ts = ts
        if position <= inst.replayed_until:
            if ts < integrated:  # counted in a bar that was final before the restart: only rebuild the book
                inst.book.apply(event)
                return True
            on_time = True
        else:
            on_time = ts >= max_ts - self.lateness_ns
        closed = self._advance(inst, ts) if ts > integrated else False
        acc = inst.series[0].acc
        assert acc is not None  # the smallest interval always has an open bar once started
        acc.events += 1
        if inst.book.apply(event):
            acc.updates += 1
        if position > inst.version:
            inst.version = position
        if ts > max_ts:
            max_ts = inst.max_ts = ts
            closed = True
        if closed:
            self._finalize(inst, max_ts - self.lateness_ns, position)
        return on_time

    def close_idle(self, now_ns: int, idle_ns: int, max_carry_ns: int = DEFAULT_MAX_CARRY_NS) -> None:
        """Advance instruments that received no event for `idle_ns` of processing time.

        Their clock is taken to `now_ns - lateness - idle` with the book state they have: a connected
        venue that sends nothing has an unchanged book, so quiet bars carry the values over. But only for
        `max_carry_ns` after the last event: a book nobody has confirmed for longer (a dead connector, or
        a replayed recording whose venue times lie far in the past) counts as unverified from then on,
        so no bars are invented for the time after it.
        """
        for key, target in list(self._idle(now_ns, idle_ns)):
            inst = self._instruments[key]
            integrated, max_ts = inst.integrated, inst.max_ts
            if integrated is None or max_ts is None:
                continue
            carry_until = (inst.last_event_ts or integrated) + max_carry_ns
            if target > carry_until and inst.book.verified:
                if carry_until > integrated:
                    self._advance(inst, carry_until)
                inst.book.invalidate()  # stale: the next snapshot verifies it again
            if inst.integrated is not None and target > inst.integrated:
                self._advance(inst, target)
            max_ts = inst.max_ts = max(max_ts, target + self.lateness_ns)
            self._finalize(inst, max_ts - self.lateness_ns, inst.version)

    def flush(self) -> None:
        """End of a finite input: finalize every open bar.

        Nothing is known after an instrument's last event (the recording ended), so that time counts as
        unverified: the last bars are incomplete and their `last` is None. The books are invalidated.
        """
        for inst in self._instruments.values():
            if inst.integrated is None or inst.max_ts is None:
                continue
            inst.book.invalidate()
            # the end of the largest bar holding the open smallest one: a larger bar may not be open yet (it
            # opens when its first smallest bar closes, e.g. an instrument whose events all lie in one second)
            base = inst.series[0].acc
            assert base is not None  # the smallest interval always has an open bar once started
            target = max(base.start - base.start % s.width_ns + s.width_ns for s in inst.series)
            self._advance(inst, target)
            inst.max_ts = max(inst.max_ts, target + self.lateness_ns)
            self._finalize(inst, target, inst.version)

    def drain(self) -> list[ObiBar]:
        """The rows that became final since the last drain (final rows only; open bars are not reported)."""
        rows = self._final_rows
        self._final_rows = []
        return rows

    def restore(self, rows: Iterable[ObiBar]) -> None:
        """Continue after a restart from the persisted final rows (non-final rows are ignored).

        Restored per venue-instrument: per interval the end of its last final bar (no bar before it is
        emitted again), the watermark, and the last source position included. Events at positions up to
        that one are replays: never reported late, and those older than the restored clock only rebuild
        the book (they were counted in bars that are already final).

        NOT restorable from bars: the book itself. After a restart it is unverified until the next
        snapshot in the input, so the first bar after a restart is incomplete (venues send a snapshot on
        every (re)connect). If the consumer resumes from an offset at or before a snapshot, replaying it
        rebuilds the book, and every bar after the restored ones is identical to an uninterrupted run's.
        """
        touched: set[InstKey] = set()
        for row in rows:
            if not row.final:
                continue
            inst = self._instruments.get((row.venue, row.instrument)) or self._instrument(row.venue, row.instrument)
            series = next((s for s in inst.series if s.interval == row.interval), None)
            if series is None:
                continue
            series.restored(row.start_ns, row.final, row.version)
            inst.replayed_until = max(inst.replayed_until, row.version)
            inst.version = max(inst.version, row.version)
            touched.add((row.venue, row.instrument))
        for key in touched:
            inst = self._instruments[key]
            ends = [s.closed_until_ns for s in inst.series if s.closed_until_ns is not None]
            for s in inst.series:
                s.acc, s.pending = None, []
            inst.book = BookState()
            self._start(inst, min(ends))
            inst.max_ts = max(ends) + self.lateness_ns

    # -- internals -------------------------------------------------------------------------------------

    def _instrument(self, venue: str, instrument: str) -> _Instrument:
        series = [_Series(venue, instrument, name, width) for name, width in self.intervals]
        inst = _Instrument(venue=venue, instrument=instrument, series=series)
        self._instruments[(venue, instrument)] = inst
        return inst

    def _start(self, inst: _Instrument, clock: int) -> None:
        inst.integrated = clock
        inst.series[0].acc = _Acc(clock)

    def _advance(self, inst: _Instrument, t: int) -> bool:
        """Integrate the held book state from the clock to `t`; True when a bar was completed."""
        book = inst.book
        values, verified, bands = book.values, book.verified, book.bands
        base = inst.series[0]
        width = base.width_ns
        acc, clock = base.acc, inst.integrated
        assert acc is not None and clock is not None  # called on started instruments only
        end = acc.start + width
        if t < end:
            acc.span(t - clock, values, verified, bands)
            inst.integrated = t
            return False
        while True:
            acc.span(end - clock, values, verified, bands)
            acc.last = values
            acc.band_last = bands
            self._close_base(inst, acc, end)
            clock = end
            if not verified and t - clock >= width:  # whole unverified bars without events: nothing to emit
                clock = t - t % width
                self._close_larger(inst, clock)
            acc = base.acc = _Acc(clock)
            end = clock + width
            if t < end:
                acc.span(t - clock, values, verified, bands)
                inst.integrated = t
                return True

    def _close_base(self, inst: _Instrument, acc: _Acc, end: int) -> None:
        worthy = acc.worthy()
        if worthy:
            inst.series[0].pending.append(acc)
        for s in inst.series[1:]:
            o = s.acc
            if o is not None and o.start + s.width_ns <= acc.start:
                self._close(s, o)
                o = None
            if worthy:
                if o is None:
                    o = s.acc = _Acc(acc.start - acc.start % s.width_ns)
                o.merge(acc, end)
            if o is not None and o.start + s.width_ns <= end:
                self._close(s, o)

    def _close_larger(self, inst: _Instrument, clock: int) -> None:
        for s in inst.series[1:]:
            if s.acc is not None and s.acc.start + s.width_ns <= clock:
                self._close(s, s.acc)

    @staticmethod
    def _close(series: _Series, acc: _Acc) -> None:
        if acc.cursor != acc.start + series.width_ns:  # its tail was skipped: unverified
            acc.incomplete = True
            acc.last = NONE7
            acc.band_last = None
        series.pending.append(acc)
        series.acc = None

    def _finalize(self, inst: _Instrument, watermark: int, version: int) -> None:
        for s in inst.series:
            pending = s.pending
            if not pending:
                continue
            width = s.width_ns
            done = 0
            for acc in pending:
                if acc.start + width > watermark:
                    break
                done += 1
                if s.closed_until_ns is not None and acc.start < s.closed_until_ns:
                    continue  # final before a restart: never emitted twice
                s.closed_until_ns = acc.start + width
                self._final_rows.append(_row(inst, s.interval, acc, version))
            if done:
                del pending[:done]


def _row(inst: _Instrument, interval: str, acc: _Acc, version: int) -> ObiBar:
    stats: list[float | None] = []
    for i in range(_N):
        covered = acc.covered[i]
        stats += (acc.integral[i] / covered if covered else None, acc.last[i], acc.mins[i], acc.maxs[i])
    band_stats: list[float | None] = []
    integral, last, units_ns = acc.band_integral, acc.band_last, acc.band_ns * QTY_SCALE
    for k in range(_NB):  # int / int: the correctly rounded quotient of the exact integral
        bid, ask = (integral[k] / units_ns, integral[_NB + k] / units_ns) if units_ns else (None, None)
        bid_last, ask_last = (last[k] / QTY_SCALE, last[_NB + k] / QTY_SCALE) if last is not None else (None, None)
        band_stats += (bid, ask, bid_last, ask_last)
    return ObiBar(inst.venue, inst.instrument, interval, acc.start, **dict(zip(stat_fields(), stats, strict=True)),
                  verified_ns=acc.verified_ns, incomplete=acc.incomplete, updates=acc.updates, final=True,
                  version=version, **dict(zip(band_fields(), band_stats, strict=True)))  # fmt: skip


def stat_fields() -> Sequence[str]:
    """The measure columns of ObiBar in order: top1_mean, top1_last, top1_min, top1_max, top5_mean, ..."""
    return [f"{m}_{s}" for m in MEASURES for s in STATS]


def band_fields() -> Sequence[str]:
    """The band quantity columns of ObiBar (v2) in order: bps10_bid_mean, bps10_ask_mean, bps10_bid_last, ..."""
    return [f"bps{b}_{s}" for b in BANDS_BPS for s in BAND_STATS]
