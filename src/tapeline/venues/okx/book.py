"""OKX's book rule: a snapshot (prevSeqId -1) resets the book; each update's prevSeqId must equal the last
seqId (seqId may repeat on heartbeats, and may become smaller on a venue reset while prevSeqId still chains);
CRC32 over the top 25 levels when `checksum` != 0 (always 0 from 2026-06-23).

Besides the levels in base units (`levels`, kept once the contract value is known), the checksum needs the
level strings as received ("px:sz"): per side they are keyed by a sort key (bids: -price, so both sides
ascend best first) with the sorted list of those keys (bisect), plus the top-25 strings per side, rebuilt
only when an update reaches into them. An update touches only its own levels.
"""

from __future__ import annotations

import zlib
from bisect import bisect_left, insort

from tapeline.domain.book import check_not_crossed
from tapeline.domain.errors import BadMessage
from tapeline.domain.events import BookGap
from tapeline.venues.base import VenueBook
from tapeline.venues.common import INF, MS
from tapeline.venues.okx.wire import BookData, Level

CHECKSUM_DEPTH = 25
Where = str | tuple[str, str, int]  # (channel, instId, ts) of an update: formatted only when a level is bad


def _bad_level(level: Level, where: Where) -> BadMessage:
    if isinstance(where, tuple):
        where = "{} {} update ts {}".format(*where)
    return BadMessage(f"okx: bad book level {list(level)!r} in {where}: price must be > 0, size >= 0, finite")


def _apply(levels: list[Level], keys: list[float], txt: dict[float, str], base: dict[float, float],
           out: list[tuple[float, float]] | None, neg: bool, mult: float | None, inverse: bool,
           where: Where) -> bool:  # fmt: skip  # hot path: plain arguments, no packing
    """Apply absolute-size levels to one side (`out` None: the contract value is unknown, strings only).
    Returns True when its top 25 may have changed."""
    top = False
    for level in levels:
        try:
            ps = level[0]
            ss = level[1]
            px = float(ps)
            sz = float(ss)
        except (ValueError, IndexError):  # a level shorter than [px, sz] (fuzzing found `[]`), or not numbers
            raise _bad_level(level, where) from None
        if not (0.0 < px < INF and 0.0 <= sz < INF):  # also rejects NaN
            raise _bad_level(level, where)
        key = -px if neg else px
        if not top and (len(keys) < CHECKSUM_DEPTH or key <= keys[CHECKSUM_DEPTH - 1]):  # within the top before
            top = True
        if sz == 0.0:
            if key in txt:
                del txt[key]
                del keys[bisect_left(keys, key)]
                if out is not None:
                    del base[px]
            if out is not None:
                out.append((px, 0.0))
        else:
            if key not in txt:
                insort(keys, key)
            txt[key] = f"{ps}:{ss}"
            if out is not None:
                qty = sz * mult / px if inverse else sz * mult  # type: ignore[operator]  # out implies mult
                base[px] = qty
                out.append((px, qty))
    return top


class OkxBook(VenueBook):
    """One instrument's book, fed by one book channel (books, books-l2-tbt or books50-l2-tbt)."""

    __slots__ = ("ask_keys", "ask_top", "ask_txt", "bid_keys", "bid_top", "bid_txt", "channel", "crc", "inverse",
                 "mult", "ts_ns")  # fmt: skip

    def __init__(self, symbol: str, instrument: str, channel: str) -> None:
        super().__init__("okx", symbol, instrument)
        self.channel = channel
        self.bid_keys: list[float] = []
        self.ask_keys: list[float] = []
        self.bid_txt: dict[float, str] = {}
        self.ask_txt: dict[float, str] = {}
        self.bid_top: list[str] | None = None  # None: rebuild from the keys
        self.ask_top: list[str] | None = None
        self.crc: int | None = None  # unsigned CRC32 of the current top 25; None: recompute
        self.mult: float | None = None  # base (or USD, inverse) units per contract; None: not known yet
        self.inverse = False
        self.ts_ns = 0

    def invalidate(self) -> None:
        super().invalidate()
        self.bid_keys.clear()
        self.ask_keys.clear()
        self.bid_txt.clear()
        self.ask_txt.clear()
        self.bid_top = self.ask_top = self.crc = None

    def load(self, data: BookData, where: str) -> None:
        """Replace the book with a snapshot; a crossed or malformed snapshot raises BadMessage."""
        self.invalidate()
        levels, mult, inverse = self.levels, self.mult, self.inverse
        out: list[tuple[float, float]] | None = None if mult is None else []
        _apply(data.bids, self.bid_keys, self.bid_txt, levels.bids, out, True, mult, inverse, where)
        _apply(data.asks, self.ask_keys, self.ask_txt, levels.asks, out, False, mult, inverse, where)
        try:
            check_not_crossed(-self.bid_keys[0] if self.bid_keys else None, self.ask_keys[0] if self.ask_keys else None,
                              f"okx: {where}")  # fmt: skip
        except BadMessage:
            self.invalidate()
            raise
        levels.last_seq = -1 if data.seqId is None else data.seqId
        self.ts_ns = data.ts * MS
        levels.verified = True

    def apply_update(self, data: BookData, where: Where) -> tuple[list[tuple[float, float]] | None,
                                                             list[tuple[float, float]] | None]:  # fmt: skip
        """Apply an update's levels; returns them in base units (None while the contract value is unknown)."""
        mult, inverse, levels = self.mult, self.inverse, self.levels
        bids_out: list[tuple[float, float]] | None = None
        asks_out: list[tuple[float, float]] | None = None
        if mult is not None:
            bids_out, asks_out = [], []
        if data.bids and _apply(data.bids, self.bid_keys, self.bid_txt, levels.bids, bids_out, True, mult, inverse,
                                where):  # fmt: skip
            self.bid_top = self.crc = None
        if data.asks and _apply(data.asks, self.ask_keys, self.ask_txt, levels.asks, asks_out, False, mult, inverse,
                                where):  # fmt: skip
            self.ask_top = self.crc = None
        return bids_out, asks_out

    def set_contract(self, instrument: str, mult: float, inverse: bool) -> None:
        """The contract value became known: base-unit levels from the strings."""
        self.instrument, self.mult, self.inverse = instrument, mult, inverse
        for txt, side in ((self.bid_txt, self.levels.bids), (self.ask_txt, self.levels.asks)):
            side.clear()
            for key, text in txt.items():
                px = abs(key)
                sz = float(text[text.index(":") + 1 :])
                side[px] = sz * mult / px if inverse else sz * mult

    def checksum(self) -> int:
        """Unsigned CRC32 of bid1px:bid1sz:ask1px:ask1sz:... over the top 25 (one side alone past the other)."""
        crc = self.crc
        if crc is None:
            b = self.bid_top
            if b is None:
                txt = self.bid_txt
                b = self.bid_top = [txt[k] for k in self.bid_keys[:CHECKSUM_DEPTH]]
            a = self.ask_top
            if a is None:
                txt = self.ask_txt
                a = self.ask_top = [txt[k] for k in self.ask_keys[:CHECKSUM_DEPTH]]
            nb, na = len(b), len(a)
            if nb == na:
                parts = b + a
                parts[0::2] = b
                parts[1::2] = a
            else:
                n = min(nb, na)
                parts = b + a
                parts[0 : 2 * n : 2] = b[:n]
                parts[1 : 2 * n : 2] = a[:n]
                parts[2 * n :] = b[n:] if nb > n else a[n:]
            crc = self.crc = zlib.crc32(":".join(parts).encode())
        return crc

    def base_levels(self) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        """The whole book in base units, best first."""
        bids, asks = self.levels.bids, self.levels.asks
        return [(-k, bids[-k]) for k in self.bid_keys], [(k, asks[k]) for k in self.ask_keys]

    def disconnect(self, url: str, recv_ts_ns: int) -> BookGap | None:
        """A verified book reports the gap and forgets its seqId; the reconnect's subscription resyncs it."""
        if not self.levels.verified:
            return None
        gap = self.gap(f"{self.channel}: connection {url} closed", recv_ts_ns, recv_ts_ns)
        self.levels.last_seq = -1
        return gap
