"""Hyperliquid's book rule: every l2Book push is a full snapshot with no sequence number, so integrity is
"replace the whole book and require `time` to be non-decreasing" (equal times happen: the capture holds
the same block twice). A push whose time goes backwards is a break: one BookGap, the push is dropped, and
the next push resyncs. A lost push cannot be detected and costs nothing once the next one replaces the book.

BookUpdate.first_seq = last_seq = the push's `time` in ms (the only ordering key the venue gives; it is a
block time, not a message counter, so -1 in prev_seq).
"""

from __future__ import annotations

from tapeline.domain.book import check_not_crossed
from tapeline.domain.events import BookGap, BookUpdate
from tapeline.venues.base import VenueBook
from tapeline.venues.common import MS
from tapeline.venues.hyperliquid.wire import WsBook


class HyperliquidBook(VenueBook):
    """One coin's book, replaced by every push."""

    __slots__ = ()

    def on_push(self, wire: WsBook, recv_ts_ns: int, rest: bool) -> BookUpdate | BookGap | None:
        """A push (or a REST answer, `rest`): the new snapshot, the gap of a time going backwards, or None for
        a REST answer older than the pushed book (stale, not a broken feed). A crossed push raises, book intact."""
        t = wire.time
        bids = {lv.px: lv.sz for lv in wire.levels[0]}
        asks = {lv.px: lv.sz for lv in wire.levels[1]}
        if bids and asks:  # rejected before touching the book: the last good one stays current
            check_not_crossed(max(bids), min(asks), f"hyperliquid: {wire.coin} at {t}")
        levels = self.levels
        ts_ns = t * MS
        recv = recv_ts_ns or ts_ns  # captures without a receive time give None or 0
        if levels.verified and t < levels.last_seq:
            if rest:
                return None
            return self.gap(f"l2Book time went backwards: {t} after {levels.last_seq}", ts_ns, recv, t)
        # L2Book.snapshot's work, done once: sizes were checked positive while decoding, the crossing above,
        # and the same dicts serve the book and (as venue-ordered pairs) the event.
        levels.bids, levels.asks, levels.last_seq, levels.verified = bids, asks, t, True
        return self.update(ts_ns, recv, True, list(bids.items()), list(asks.items()), t, t)
