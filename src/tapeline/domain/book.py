"""L2 order book: price levels with absolute sizes, plus the integrity state venues sequence into.

Venue modules own their sequencing rules (Binance `pu`, Bybit `u`, OKX `seqId`, Hyperliquid snapshots)
and call into this one structure; `check_not_crossed` is the one crossed-book rule they all apply.
Levels are kept in plain dicts (fast updates); sorted views are built on demand, because most messages
touch a few levels and only some consumers need order.
"""

from __future__ import annotations

from collections.abc import Iterable

from tapeline.domain.errors import BadMessage

Level = tuple[float, float]


class L2Book:
    __slots__ = ("asks", "bids", "last_seq", "verified")

    def __init__(self) -> None:
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self.last_seq = -1
        self.verified = False

    def snapshot(self, bids: Iterable[Level], asks: Iterable[Level], seq: int = -1, where: str = "book") -> None:
        """Replace the whole book (levels of size 0 are left out); a crossed snapshot is rejected."""
        self.bids = {p: q for p, q in bids if q > 0}
        self.asks = {p: q for p, q in asks if q > 0}
        try:
            check_not_crossed(self.best_bid(), self.best_ask(), where)
        except BadMessage:
            self.invalidate()
            raise
        self.last_seq = seq
        self.verified = True

    def apply(self, bids: Iterable[Level], asks: Iterable[Level], seq: int = -1) -> None:
        """Absolute-size deltas: qty 0 removes the level (removing an unknown level is normal)."""
        _apply_side(self.bids, bids)
        _apply_side(self.asks, asks)
        self.last_seq = seq

    def invalidate(self) -> None:
        self.verified = False
        self.bids.clear()
        self.asks.clear()

    def best_bid(self) -> float | None:
        return max(self.bids) if self.bids else None

    def best_ask(self) -> float | None:
        return min(self.asks) if self.asks else None

    def top(self, n: int) -> tuple[list[Level], list[Level]]:
        """The best `n` levels per side: bids high to low, asks low to high."""
        bids = sorted(self.bids.items(), reverse=True)[:n]
        asks = sorted(self.asks.items())[:n]
        return bids, asks

    def crossed(self) -> bool:
        return bool(self.bids and self.asks and max(self.bids) >= min(self.asks))


def check_not_crossed(best_bid: float | None, best_ask: float | None, where: str) -> None:
    """A snapshot whose best bid is at or above its best ask cannot be a venue's book: BadMessage."""
    if best_bid is not None and best_ask is not None and best_bid >= best_ask:
        raise BadMessage(f"{where}: crossed snapshot: best bid {best_bid} >= best ask {best_ask}")


def _apply_side(side: dict[float, float], levels: Iterable[Level]) -> None:
    for price, qty in levels:
        if qty > 0:
            side[price] = qty
        else:
            side.pop(price, None)
