"""Binance's book rule: a REST depth snapshot bridged into the diff-depth stream (SCHEMAS.md §1).

States: IDLE (no snapshot asked for) -> PENDING (snapshot requested, events buffered) -> BRIDGING
(snapshot loaded, waiting for the event that spans its lastUpdateId) -> LIVE (verified; each event must
chain onto the previous one). A broken chain emits BookGap, invalidates the book, asks for a new snapshot
and buffers from the breaking event on. The two markets differ in one rule (`futures`):

- USD-M: drop u < lastUpdateId; the first event must have U <= lastUpdateId <= u; then pu == previous u.
- Spot:  drop u <= lastUpdateId; the first event must have U <= lastUpdateId + 1 <= u; then U == previous u + 1.

The snapshot is emitted (as a BookUpdate with is_snapshot) only once an event bridges it, followed by that
event; so every BookUpdate a consumer sees belongs to a verified book.
"""

from __future__ import annotations

from collections import deque

from tapeline.domain.errors import BadMessage
from tapeline.domain.events import BookGap, BookUpdate
from tapeline.venues.base import Output, RestRequest, VenueBook
from tapeline.venues.binance.wire import DepthSnapshot, DepthUpdate
from tapeline.venues.common import MS

IDLE, PENDING, BRIDGING, LIVE = "idle", "pending", "bridging", "live"


class BinanceBook(VenueBook):
    """One symbol's local book from a REST snapshot plus the diff-depth stream, with Binance's sync rules."""

    __slots__ = ("buffer", "dropped", "futures", "last_u", "request", "snap_id", "snap_recv_ts_ns", "snap_ts_ns",
                 "snapshots", "state")  # fmt: skip

    def __init__(self, venue: str, symbol: str, instrument: str, request: RestRequest, url: str | None, *,
                 futures: bool, max_buffer: int) -> None:  # fmt: skip
        super().__init__(venue, symbol, instrument, url)
        self.request = request  # the snapshot request for this symbol
        self.futures = futures
        self.state = IDLE
        self.buffer: deque[tuple[DepthUpdate, int]] = deque(maxlen=max_buffer)
        self.last_u = -1
        self.snap_id = -1
        self.snap_ts_ns = 0
        self.snap_recv_ts_ns = 0
        self.dropped = 0  # events older than the snapshot
        self.snapshots = 0  # snapshots loaded

    # -- stream events -------------------------------------------------------------------------------

    def on_event(self, ev: DepthUpdate, recv_ts_ns: int, out: Output) -> None:
        if self.state == LIVE:
            if (ev.pu == self.last_u) if self.futures else (self.last_u + 1 == ev.U):
                self.levels.apply(ev.b, ev.a, ev.u)
                self.last_u = ev.u
                out.events.append(self._delta(ev, recv_ts_ns))
                return
            self._break(ev, recv_ts_ns, out)
        elif self.state == BRIDGING:
            self._bridge(ev, recv_ts_ns, out)
        elif self.state == PENDING:
            self.buffer.append((ev, recv_ts_ns))
            out.ignored = "buffered until its snapshot"
        else:  # IDLE: the first event after start or a disconnect
            self._ask_snapshot(ev, recv_ts_ns, out)

    def _delta(self, ev: DepthUpdate, recv_ts_ns: int) -> BookUpdate:
        return self.update((ev.T or ev.E) * MS, recv_ts_ns, False, ev.b, ev.a, ev.U, ev.u, ev.pu)

    def _break(self, ev: DepthUpdate, recv_ts_ns: int, out: Output) -> None:
        reason = (
            f"pu {ev.pu} != previous u {self.last_u}" if self.futures else f"U {ev.U} != previous u {self.last_u} + 1"
        )
        out.events.append(self.gap(reason, (ev.T or ev.E) * MS, recv_ts_ns, ev.U))
        self._ask_snapshot(ev, recv_ts_ns, out)  # the breaking event is newer than the break: it may bridge

    def _ask_snapshot(self, ev: DepthUpdate, recv_ts_ns: int, out: Output) -> None:
        self.state = PENDING
        self.buffer.clear()
        self.buffer.append((ev, recv_ts_ns))
        out.requests.append(self.request)

    def _bridge(self, ev: DepthUpdate, recv_ts_ns: int, out: Output) -> None:
        lid = self.snap_id
        if (ev.u < lid) if self.futures else (ev.u <= lid):
            self.dropped += 1
            out.ignored = "already in the snapshot"
            return
        # Not stale, so u reaches lastUpdateId (+1 on spot); if U does too, this event bridges the snapshot.
        if ev.U <= (lid if self.futures else lid + 1):  # noqa: SIM300 - ruff takes the venue's `U` for a constant
            levels = self.levels  # still exactly the snapshot: events before the bridge were only dropped
            out.events.append(self.update(self.snap_ts_ns, self.snap_recv_ts_ns, True, list(levels.bids.items()),
                                          list(levels.asks.items()), -1, lid, -1))  # fmt: skip
            levels.apply(ev.b, ev.a, ev.u)
            levels.verified = True
            self.last_u = ev.u
            self.state = LIVE
            out.events.append(self._delta(ev, recv_ts_ns))
            return
        # The stream is already past the snapshot (events between them are lost): ask for a newer one.
        self.levels.invalidate()
        self._ask_snapshot(ev, recv_ts_ns, out)

    # -- snapshots and connections ---------------------------------------------------------------------

    def on_snapshot(self, snap: DepthSnapshot, recv_ts_ns: int, out: Output) -> None:
        if self.state == LIVE:
            out.ignored = "snapshot of a book that is live already"  # an answer to an older request
            return
        try:
            self.levels.snapshot(snap.bids, snap.asks, snap.lastUpdateId, f"{self.venue}: {self.symbol} depth")
        except BadMessage:
            self.state = IDLE  # the next event asks for a new snapshot
            self.buffer.clear()
            raise
        self.levels.verified = False  # not until an event bridges it
        self.snapshots += 1
        self.snap_id = snap.lastUpdateId
        self.snap_ts_ns = (snap.T or snap.E) * MS or recv_ts_ns
        self.snap_recv_ts_ns = recv_ts_ns
        self.state = BRIDGING
        buffered = list(self.buffer)
        self.buffer.clear()
        for ev, ts in buffered:
            self.on_event(ev, ts, out)
        if not out:
            out.ignored = "snapshot waits for the event that bridges it"

    def failed(self) -> None:
        """The snapshot request failed: forget the buffer; the next event asks again."""
        if self.state == PENDING:
            self.state = IDLE
            self.buffer.clear()

    def disconnect(self, url: str, recv_ts_ns: int) -> BookGap | None:
        """The feeding connection dropped: a verified book reports a gap; the next event resyncs."""
        gap = super().disconnect(url, recv_ts_ns) if self.state == LIVE else None
        self.levels.invalidate()
        self.buffer.clear()
        self.state = IDLE
        return gap
