"""Bybit's book rule: a snapshot, then deltas whose update id `u` grows by exactly 1 per message.

`u` == 1 on a delta means the venue's service restarted: that message overwrites the book like a snapshot.
Bybit has no REST snapshot for the websocket book: the only way back to a verified book is a fresh
snapshot, which the venue sends on (re)subscription, so a break asks the session to resubscribe.
Level-1 books are re-pushed every 3 s unchanged, with the same `u`: such a repeat reports nothing.
"""

from __future__ import annotations

from tapeline.domain.book import L2Book
from tapeline.domain.events import BookGap, BookUpdate
from tapeline.venues.base import VenueBook
from tapeline.venues.bybit.wire import OrderbookData


class BybitBook(VenueBook):
    """One orderbook topic's book (e.g. orderbook.200.BTCUSDT)."""

    __slots__ = ("topic",)

    def __init__(self, venue: str, symbol: str, instrument: str, topic: str, url: str | None) -> None:
        super().__init__(venue, symbol, instrument, url)
        self.topic = topic

    def on_delta(self, data: OrderbookData, ts_ns: int, recv_ts_ns: int) -> BookUpdate | BookGap:
        """Apply a delta to a verified book: its BookUpdate, or the BookGap of a break in `u`."""
        levels = self.levels
        last = levels.last_seq
        u = data.u
        if u != last + 1:
            return self.gap(f"{self.topic}: delta u={u} does not follow u={last}", ts_ns, recv_ts_ns, u)
        for side, changes in ((levels.bids, data.b), (levels.asks, data.a)):  # L2Book.apply, inlined: the hot path
            for price, qty in changes:
                if qty:
                    side[price] = qty
                else:
                    side.pop(price, None)
        levels.last_seq = u
        return self.update(ts_ns, recv_ts_ns, False, data.b, data.a, u, u, last)

    def on_snapshot(self, data: OrderbookData, ts_ns: int, recv_ts_ns: int) -> BookUpdate | None:
        """Replace the book; None for an unchanged repeat. A crossed snapshot leaves the book as it was."""
        fresh = L2Book()
        fresh.snapshot(data.b, data.a, data.u, f"{self.venue}: {self.topic} u={data.u}")
        old = self.levels
        repeat = old.verified and data.u == old.last_seq and fresh.bids == old.bids and fresh.asks == old.asks
        self.levels = fresh
        if repeat:
            return None
        bids = data.b if len(fresh.bids) == len(data.b) else list(fresh.bids.items())
        asks = data.a if len(fresh.asks) == len(data.a) else list(fresh.asks.items())
        return self.update(ts_ns, recv_ts_ns, True, bids, asks, data.u, data.u, -1)

    def disconnect(self, url: str, recv_ts_ns: int) -> BookGap | None:
        """A verified book reports the gap; it keeps its last `u`: only a snapshot re-verifies it."""
        if not self.levels.verified:
            return None
        return self.gap(f"{self.topic}: connection {url} closed", recv_ts_ns, recv_ts_ns)
