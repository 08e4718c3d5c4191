"""Order-book imbalance (flow/obi.py): hand-computed books and bars, a naive reference, the real Binance capture.

Expected numbers are worked out in the comments. OBI = (B - A) / (B + A); quantities are exact integers
inside BookState, so a hand value like 1/13 must come out as exactly the float nearest to 1/13.
"""

from __future__ import annotations

import io
import json
import random
import re
from bisect import bisect_left, bisect_right, insort
from decimal import Decimal
from functools import cache
from pathlib import Path

import fastavro
import msgspec
import numpy as np
import pytest
from click.testing import CliRunner

from tapeline.cli import main
from tapeline.codec.avro import AvroCodec
from tapeline.domain.aggregates import ObiBar
from tapeline.domain.errors import BadMessage
from tapeline.domain.events import BookGap, BookUpdate
from tapeline.flow.obi import (
    BANDS_BPS,
    MEASURES,
    QTY_SCALE,
    TOP_LEVELS,
    BookState,
    ObiAggregator,
    band_fields,
    stat_fields,
)
from tapeline.io.capture import drive, merge_captures, merge_tagged
from tapeline.io.rpc.convert import obi_from_proto, obi_to_proto
from tapeline.io.rpc.gen.tapeline.v1 import query_pb2
from tapeline.paths import schemas_dir
from tapeline.venues import make_session
from tapeline.venues.binance.session import BinanceUsdmSession
from tests.support.data import data_files

VENUE = "binance-usdm"
INST = "BTC-USDT-PERP"
S = 1_000_000_000
MS = 1_000_000
T0 = 1_699_999_980 * S  # a whole minute


def snap(t: int, bids, asks, inst: str = INST) -> BookUpdate:
    return BookUpdate(VENUE, inst.split("-")[0] + "USDT", inst, T0 + t, T0 + t, True, list(bids), list(asks))


def delta(t: int, bids=(), asks=(), inst: str = INST) -> BookUpdate:
    return BookUpdate(VENUE, inst.split("-")[0] + "USDT", inst, T0 + t, T0 + t, False, list(bids), list(asks))


def gap(t: int, inst: str = INST) -> BookGap:
    return BookGap(VENUE, inst.split("-")[0] + "USDT", inst, T0 + t, T0 + t, "test")


class Feed:
    """An aggregator fed with consecutive positions; collects every drained row."""

    def __init__(self, intervals=("1s",), lateness_ns: int = 0) -> None:
        self.agg = ObiAggregator(intervals, lateness_ns)
        self.pos = 0
        self.rows: list[ObiBar] = []

    def __call__(self, *events) -> list[bool]:
        results = []
        for event in events:
            self.pos += 1
            results.append(self.agg.add(event, self.pos))
            self.rows += self.agg.drain()
        return results

    def bar(self, index: int, interval: str = "1s", inst: str = INST) -> ObiBar:
        """The row of the bar starting `index` intervals after T0."""
        width = {"1s": S, "5s": 5 * S, "1m": 60 * S}[interval]
        (row,) = [
            r for r in self.rows if (r.instrument, r.interval, r.start_ns) == (inst, interval, T0 + index * width)
        ]
        return row


def stats(row: ObiBar, measure: str) -> tuple:
    return tuple(getattr(row, f"{measure}_{s}") for s in ("mean", "last", "min", "max"))


def values(book: BookState) -> dict[str, float | None]:
    return dict(zip(MEASURES, book.values, strict=True))


# One level per side 1 bp from a mid of 100: every measure sees the same two levels, so all 7 are equal.
def one_level(bid_qty: float, ask_qty: float) -> tuple[list, list]:
    return [(99.99, bid_qty)], [(100.01, ask_qty)]


# ------------------------------------------------------------------------------------------------ books

# Mid 100. Bids, best first: 99.95 x1, 99.9 x2 (exactly 10 bps), 99.89 x1, 99.75 x3 (exactly 25 bps), 99.74 x2,
# 99.5 x4 (exactly 50 bps), 99.49 x5, then 18 levels 99.0, 98.9, ... 97.3 of 1 each (25 levels).
HAND_BIDS = [(99.95, 1), (99.9, 2), (99.89, 1), (99.75, 3), (99.74, 2), (99.5, 4), (99.49, 5)]
HAND_BIDS += [(round(99.0 - 0.1 * i, 1), 1) for i in range(18)]
# Asks, best first: 100.05 x2, 100.1 x3 (10 bps), 100.11 x1, 100.25 x2 (25 bps), 100.26 x1, 100.5 x1 (50 bps),
# 100.51 x2, then 18 levels 101.0, 101.1, ... of 2 each.
HAND_ASKS = [(100.05, 2), (100.1, 3), (100.11, 1), (100.25, 2), (100.26, 1), (100.5, 1), (100.51, 2)]
HAND_ASKS += [(round(101.0 + 0.1 * i, 1), 2) for i in range(18)]


def test_each_measure_by_hand() -> None:
    book = BookState()
    assert book.apply(snap(0, HAND_BIDS, HAND_ASKS))
    # B: top1 1, top5 1+2+1+3+2 = 9, top10 9+4+5+1+1+1 = 21, top20 21+10 = 31
    # A: top1 2, top5 2+3+1+2+1 = 9, top10 9+1+2+2+2+2 = 18, top20 18+20 = 38
    # bands around 100: 10 bps B 1+2 = 3, A 2+3 = 5 | 25 bps B 3+1+3 = 7, A 5+1+2 = 8
    #                   50 bps B 7+2+4 = 13, A 8+1+1 = 10
    assert values(book) == {
        "top1": (1 - 2) / 3, "top5": 0.0, "top10": 1 / 13, "top20": -7 / 69,
        "bps10": -2 / 8, "bps25": -1 / 15, "bps50": 3 / 23,
    }  # fmt: skip
    assert book.bands == tuple(q * QTY_SCALE for q in (3, 7, 13, 5, 8, 10))  # bids 10/25/50 bps, then asks
    # Remove the best bid: best 99.9, mid 99.975. Distances in bps: bids 99.9 7.5, 99.89 8.5, 99.75 22.5,
    # 99.74 23.5, 99.5 47.5, 99.49 48.5; asks 100.05 7.5, 100.1 12.5, 100.11 13.5, 100.25 27.5, 100.26 28.5,
    # 100.5 52.5. The band edges move with the mid:
    # top1 2 vs 2; top5 B 2+1+3+2+4 = 12 vs 9; top10 12+5+1+1+1+1 = 21 vs 18; top20 21+10 = 31 vs 38
    # 10 bps B 2+1 = 3, A 2 | 25 bps B 3+3+2 = 8, A 2+3+1 = 6 | 50 bps B 8+4+5 = 17, A 6+2+1 = 9
    assert book.apply(delta(1, bids=[(99.95, 0.0)]))
    assert values(book) == {
        "top1": 0.0, "top5": 3 / 21, "top10": 3 / 39, "top20": -7 / 69,
        "bps10": 1 / 5, "bps25": 2 / 14, "bps50": 8 / 26,
    }  # fmt: skip
    assert book.bands == tuple(q * QTY_SCALE for q in (3, 8, 17, 2, 6, 9))
    # Put it back: the edges return and the incremental sums give the first numbers again.
    assert book.apply(delta(2, bids=[(99.95, 1.0)]))
    assert values(book)["bps50"] == 3 / 23 and values(book)["bps10"] == -2 / 8
    assert book.levels("bid", 2) == [(99.95, 1.0), (99.9, 2.0)] and book.levels("ask", 1) == [(100.05, 2.0)]


def test_band_includes_a_level_exactly_on_its_boundary() -> None:
    # Mid 10.0: 9.99 / 10.01 are exactly 10 bps away, 9.975 / 10.025 exactly 25, 9.95 / 10.05 exactly 50,
    # 9.949 / 10.051 are 51 bps away. The naive float formula puts 9.95 just outside: the slack must keep it.
    assert (10.0 - 9.95) / 10.0 * 10_000 > 50 and (10.05 - 10.0) / 10.0 * 10_000 > 50
    assert (10.0 - 9.975) / 10.0 * 10_000 > 25
    book = BookState()
    book.apply(
        snap(0, [(9.99, 1), (9.975, 2), (9.95, 4), (9.949, 8)], [(10.01, 3), (10.025, 1), (10.05, 1), (10.051, 16)])
    )
    got = values(book)
    assert got["bps10"] == (1 - 3) / 4  # 9.99 vs 10.01
    assert got["bps25"] == (3 - 4) / 7  # + 9.975, 10.025
    assert got["bps50"] == (7 - 5) / 12  # + 9.95, 10.05 (and neither 9.949 nor 10.051)


def test_crossed_or_empty_book_gives_none() -> None:
    book = BookState()
    assert book.values == (None,) * 7  # never verified
    book.apply(snap(0, [(100.0, 1)], [(101.0, 1)]))
    assert book.values == (0.0,) * 4 + (None, None, 0.0)  # 50 bps apart: only the 50 bps band reaches them
    assert book.bands == (0, 0, QTY_SCALE, 0, 0, QTY_SCALE)  # empty bands are defined: quantity 0
    book.apply(delta(1, bids=[(101.5, 2)]))  # best bid above best ask
    assert book.crossed() and book.values == (None,) * 7 and book.bands is None
    book.apply(delta(2, bids=[(101.5, 0)]))
    assert book.values[0] == 0.0
    book.apply(delta(3, asks=[(101.0, 0)]))  # no asks: top N is all bids, no mid for the bands
    assert book.values == (1.0,) * 4 + (None,) * 3 and book.bands is None
    book.apply(delta(4, bids=[(100.0, 0)]))
    assert book.values == (None,) * 7  # B + A == 0


def test_gap_and_deltas_before_a_snapshot_are_not_applied() -> None:
    book = BookState()
    assert not book.apply(delta(0, bids=[(99.99, 1)], asks=[(100.01, 1)]))  # no snapshot yet
    assert not book.verified and book.values == (None,) * 7
    book.apply(snap(1, *one_level(3, 1)))
    assert book.values[0] == 0.5
    assert not book.apply(gap(2))
    assert not book.apply(delta(3, bids=[(99.99, 9)]))
    assert not book.verified and book.values == (None,) * 7
    assert book.apply(snap(4, *one_level(1, 3)))
    assert book.values[0] == -0.5


def _naive(bids: dict[float, float], asks: dict[float, float]) -> list[float | None]:
    """The 7 values from plain dicts (positive quantities), in exact decimal arithmetic (prices as written)."""
    if (not bids and not asks) or (bids and asks and max(bids) >= min(asks)):
        return [None] * 7

    def obi(b: Decimal, a: Decimal) -> float | None:
        return float((b - a) / (b + a)) if b + a > 0 else None

    def total(side: dict[float, float], prices) -> Decimal:
        return sum((_dec(side[p]) for p in prices), Decimal(0))

    bid_prices = sorted(bids, reverse=True)
    ask_prices = sorted(asks)
    out = [obi(total(bids, bid_prices[:n]), total(asks, ask_prices[:n])) for n in TOP_LEVELS]
    if not (bids and asks):
        return [*out, None, None, None]
    mid = (_dec(bid_prices[0]) + _dec(ask_prices[0])) / 2
    near_bids = [p for p in bid_prices if p >= bid_prices[0] * 0.994]  # a superset of every band (mid >= best bid)
    near_asks = [p for p in ask_prices if p <= ask_prices[0] * 1.006]
    # |p - mid| / mid * 10_000 <= b, multiplied out so that it stays exact
    bid_dist = [(p, (mid - _dec(p)) * 10_000) for p in near_bids]
    ask_dist = [(p, (_dec(p) - mid) * 10_000) for p in near_asks]
    for b in BANDS_BPS:
        in_bids = [p for p, d in bid_dist if d <= b * mid]
        in_asks = [p for p, d in ask_dist if d <= b * mid]
        out.append(obi(total(bids, in_bids), total(asks, in_asks)))
    return out


@cache
def _dec(x: float) -> Decimal:
    return Decimal(repr(x))


def _close(got, want) -> bool:
    return all((g is None and w is None) or (g is not None and w is not None and abs(g - w) <= 1e-12)
               for g, w in zip(got, want, strict=True))  # fmt: skip


def test_book_matches_a_naive_recomputation_on_random_updates() -> None:
    # Tick 0.01 around 100 (1 tick = 1 bp), a mid that wanders, levels up to 80 bps out: the band edges move
    # all the time. A new level removes the opposite levels it would cross, except now and then.
    rng = random.Random(11)
    book = BookState()
    bids: dict[float, float] = {}
    asks: dict[float, float] = {}
    mid_tick = 10_000
    checked = 0
    for step in range(3000):
        mid_tick += rng.choice([-1, 0, 0, 1])
        if step % 700 == 0:
            bids = {round((mid_tick - i) * 0.01, 2): rng.randint(1, 9) / 4 for i in range(1, rng.randint(2, 90))}
            asks = {round((mid_tick + i) * 0.01, 2): rng.randint(1, 9) / 4 for i in range(1, rng.randint(2, 90))}
            book.apply(snap(step, bids.items(), asks.items()))
        else:
            changes: dict[str, dict[float, float]] = {"bid": {}, "ask": {}}
            for _ in range(rng.randint(1, 6)):
                side = "bid" if rng.random() < 0.5 else "ask"
                sign = -1 if side == "bid" else 1
                price = round((mid_tick + sign * rng.randint(1, 80)) * 0.01, 2)
                qty = 0.0 if rng.random() < 0.35 else rng.randint(1, 40) / 8
                changes[side][price] = qty
                if qty and rng.random() < 0.97:
                    other = asks if side == "bid" else bids
                    for p in [p for p in other if (p <= price if side == "bid" else p >= price)]:
                        changes["ask" if side == "bid" else "bid"][p] = 0.0
            for side, book_side in (("bid", bids), ("ask", asks)):
                book_side.update(changes[side])
            bids = {p: q for p, q in bids.items() if q > 0}
            asks = {p: q for p, q in asks.items() if q > 0}
            book.apply(delta(step, changes["bid"].items(), changes["ask"].items()))
        want = _naive(bids, asks)
        assert _close(book.values, want), (step, book.values, want)
        checked += want[4] is not None
    assert checked > 2000  # most steps had an uncrossed book with a non-empty 10 bps band


# -------------------------------------------------------------------------------------------- bar timing


def test_time_weighted_mean_last_min_max_by_hand() -> None:
    feed = Feed()
    feed(
        snap(0, *one_level(1, 1)),  # 0 from 0.0 s
        delta(200 * MS, bids=[(99.99, 3)]),  # (3-1)/4 = 0.5 from 0.2 s
        delta(700 * MS, asks=[(100.01, 2)]),  # (3-2)/5 = 0.2 from 0.7 s
    )
    assert feed.rows == []  # bar 0 still open
    feed(delta(1300 * MS, bids=[(99.99, 2)]))  # in bar 1: closes bar 0
    row = feed.bar(0)
    # mean = (0 * 0.2 + 0.5 * 0.5 + 0.2 * 0.3) / 1.0 = 0.31
    for m in MEASURES:
        mean, last, lo, hi = stats(row, m)
        assert mean == pytest.approx(0.31, abs=1e-12), m
        assert (last, lo, hi) == (0.2, 0.0, 0.5), m
    assert (row.verified_ns, row.incomplete, row.updates, row.final, row.version) == (S, False, 3, True, 4)


def test_a_value_that_held_for_zero_ns_is_not_a_min_or_max() -> None:
    feed = Feed()
    feed(
        snap(0, *one_level(1, 1)),
        delta(500 * MS, bids=[(99.99, 99)]),  # 0.98 ...
        delta(500 * MS, bids=[(99.99, 3)]),  # ... replaced at the same time: held 0 ns
        delta(1000 * MS, asks=[(100.01, 3)]),  # 0 at exactly the next bar's start
        delta(2200 * MS, asks=[(100.01, 1)]),
    )
    row = feed.bar(0)
    assert stats(row, "top1") == (pytest.approx(0.25), 0.5, 0.0, 0.5)  # (0 * 0.5 + 0.5 * 0.5) / 1
    assert row.updates == 3  # the delta at 1.0 s belongs to bar 1
    # bar 1 starts with 0.5 carried over, replaced at once: only 0 held in bar 1
    assert stats(feed.bar(1), "top1") == (0.0, 0.0, 0.0, 0.0) and feed.bar(1).updates == 1


def test_gap_in_the_middle_of_a_bar_is_excluded_and_a_snapshot_resumes() -> None:
    feed = Feed()
    feed(
        snap(0, *one_level(3, 1)),  # 0.5 from 0.0 s
        gap(400 * MS),  # unverified from 0.4 s
        delta(500 * MS, bids=[(99.99, 9)]),  # ignored: no snapshot since the gap
        snap(600 * MS, *one_level(1, 1)),  # 0 from 0.6 s
        delta(1500 * MS, bids=[(99.99, 3)]),  # 0.5 from 1.5 s
        delta(2100 * MS, asks=[(100.01, 3)]),
    )
    row = feed.bar(0)
    # verified 0.4 + 0.4 s; mean = (0.5 * 0.4 + 0 * 0.4) / 0.8 = 0.25; the 0.2 s gap is in no mean
    assert (row.verified_ns, row.incomplete, row.updates) == (800 * MS, True, 2)
    assert stats(row, "top1") == (pytest.approx(0.25), 0.0, 0.0, 0.5)
    after = feed.bar(1)
    # mean = (0 * 0.5 + 0.5 * 0.5) / 1.0 = 0.25
    assert (after.verified_ns, after.incomplete, after.updates) == (S, False, 1)
    assert stats(after, "bps50") == (pytest.approx(0.25), 0.5, 0.0, 0.5)


def test_time_before_the_first_snapshot_is_unverified() -> None:
    feed = Feed()
    feed(
        delta(100 * MS, bids=[(99.99, 5)], asks=[(100.01, 1)]),  # ignored: no snapshot yet
        snap(300 * MS, *one_level(3, 1)),  # 0.5 from 0.3 s
        delta(1200 * MS, bids=[(99.99, 1)]),
    )
    row = feed.bar(0)
    assert (row.verified_ns, row.incomplete, row.updates) == (700 * MS, True, 1)
    assert stats(row, "top5") == (0.5, 0.5, 0.5, 0.5)


def test_a_bar_without_updates_carries_the_previous_state_over() -> None:
    feed = Feed(("1s", "5s"))
    feed(
        snap(0, *one_level(1, 1)),
        delta(600 * MS, bids=[(99.99, 3)]),  # 0.5 from 0.6 s: the state at the end of bar 0
        delta(3400 * MS, asks=[(100.01, 3)]),  # 0 from 3.4 s; nothing in bars 1 and 2
        delta(5000 * MS, asks=[(100.01, 1)]),  # closes the 5 s bar
    )
    for index in (1, 2):
        row = feed.bar(index)
        assert (row.verified_ns, row.incomplete, row.updates) == (S, False, 0)
        assert all(stats(row, m) == (0.5, 0.5, 0.5, 0.5) for m in MEASURES)
    assert stats(feed.bar(3), "top1") == (pytest.approx(0.5 * 0.4), 0.0, 0.0, 0.5)
    five = feed.bar(0, "5s")
    # 0 for 0.6 s, 0.5 for 2.8 s, 0 for 1.6 s: mean = 1.4 / 5 = 0.28
    assert stats(five, "top20") == (pytest.approx(0.28), 0.0, 0.0, 0.5)
    assert (five.verified_ns, five.incomplete, five.updates) == (5 * S, False, 3)


def test_bars_of_two_instruments_are_independent() -> None:
    eth = "ETH-USDT-PERP"
    feed = Feed()
    feed(
        snap(0, *one_level(1, 1)),
        snap(0, [(1999.0, 1)], [(2001.0, 3)], inst=eth),  # -0.5
        delta(500 * MS, bids=[(99.99, 3)]),
        delta(3500 * MS, bids=[(1999.0, 3)], inst=eth),  # ETH's time moves on; BTC's bar 0 stays open
    )
    assert {(r.instrument, (r.start_ns - T0) // S) for r in feed.rows} == {(eth, 0), (eth, 1), (eth, 2)}
    assert all(stats(feed.bar(i, inst=eth), "top1") == (-0.5, -0.5, -0.5, -0.5) for i in range(3))
    feed(delta(1200 * MS, asks=[(100.01, 3)]))
    assert stats(feed.bar(0), "top1") == (pytest.approx(0.25), 0.5, 0.0, 0.5)
    assert feed.bar(0).updates == 2 and feed.bar(0, inst=eth).updates == 1


def test_crossed_time_is_not_in_the_mean_and_a_crossed_end_has_no_last() -> None:
    feed = Feed()
    feed(
        snap(0, *one_level(3, 1)),  # 0.5
        delta(500 * MS, bids=[(100.02, 1)]),  # crossed from 0.5 s to 0.75 s
        delta(750 * MS, bids=[(100.02, 0)]),  # 0.5 again
        delta(1800 * MS, bids=[(100.02, 1)]),  # crossed at the end of bar 1
        delta(2200 * MS, bids=[(100.02, 0)]),
    )
    row = feed.bar(0)
    assert (row.verified_ns, row.incomplete) == (S, False)  # a crossed book is verified, just not defined
    assert stats(row, "top1") == (0.5, 0.5, 0.5, 0.5)
    assert stats(feed.bar(1), "bps10") == (0.5, None, 0.5, 0.5)


def test_lateness_delays_final_bars_and_late_events_still_change_the_book() -> None:
    feed = Feed(lateness_ns=S)
    ok = feed(
        snap(0, *one_level(1, 1)),  # 0
        delta(2500 * MS, bids=[(99.99, 3)]),  # 0.5 at 2.5 s; watermark 1.5 s: bar 0 final, bar 1 not yet
        delta(1800 * MS, asks=[(100.01, 2)]),  # within lateness: (3-2)/5 = 0.2 at the clamped time 2.5 s
    )
    assert ok == [True, True, True]
    assert [(r.start_ns - T0) // S for r in feed.rows] == [0]
    ok = feed(
        delta(4000 * MS, asks=[(100.01, 3)]),  # 0 at 4.0 s; watermark 3.0 s: bars 1 and 2 final
        delta(1900 * MS, bids=[(99.99, 2)]),  # older than the watermark: late, applied at 4.0 s all the same
    )
    assert ok == [True, False]
    assert stats(feed.bar(1), "top1") == (0.0, 0.0, 0.0, 0.0)  # nothing moved back into bar 1
    # bar 2: 0 from 2.0 to 2.5 s, 0.5 for 0 ns, 0.2 from 2.5 to 3.0 s: mean 0.1; final after position 4
    assert stats(feed.bar(2), "top1") == (pytest.approx(0.1), 0.2, 0.0, 0.2) and feed.bar(2).version == 4
    assert feed.agg._instruments[(VENUE, INST)].book.values[0] == (2 - 3) / 5  # the late delta was applied


def test_flush_counts_the_time_after_the_last_event_as_unknown() -> None:
    feed = Feed(("1s", "1m"))
    feed(snap(0, *one_level(3, 1)), delta(1250 * MS, asks=[(100.01, 3)]))  # 0.5, then 0 at 1.25 s
    feed.agg.flush()
    feed.rows += feed.agg.drain()
    assert feed.bar(0).incomplete is False
    last = feed.bar(1)  # 0.5 from 1.0 to 1.25 s; the 0 held for no time before the input ended
    assert (last.verified_ns, last.incomplete, last.updates) == (250 * MS, True, 1)
    assert stats(last, "top1") == (0.5, None, 0.5, 0.5)
    minute = feed.bar(0, "1m")
    assert (minute.verified_ns, minute.incomplete, minute.updates) == (1250 * MS, True, 2)
    assert stats(minute, "top1") == (0.5, None, 0.5, 0.5)
    assert len(feed.rows) == 3  # the unknown rest of the minute is not emitted as 1 s bars


def bands(row: ObiBar, band: int) -> tuple:
    return tuple(getattr(row, f"bps{band}_{s}") for s in ("bid_mean", "ask_mean", "bid_last", "ask_last"))


def test_band_quantities_by_hand_with_an_empty_band_a_crossed_book_and_no_mid() -> None:
    feed = Feed(("1s", "5s"))
    feed(
        snap(0, [(99.99, 2)], [(100.01, 1)]),  # mid 100: both levels 1 bp away, in every band: 2 vs 1
        delta(250 * MS, asks=[(100.01, 0), (100.3, 4)]),  # mid 100.145, both 15.5 bps away: 10 bps 0 vs 0, else 2 vs 4
        delta(500 * MS, bids=[(100.5, 1)]),  # crossed: undefined from 0.5 s ...
        delta(750 * MS, bids=[(100.5, 0)]),  # ... to 0.75 s: 2 vs 4 again (10 bps 0 vs 0)
        delta(900 * MS, asks=[(100.3, 0)]),  # no asks, no mid: undefined to 1.2 s
        snap(1200 * MS, [(99.99, 3)], [(100.01, 1)]),  # 3 vs 1 in every band
        delta(2100 * MS, bids=[(99.99, 1)]),  # 1 vs 1, for no time: the input ends here
    )
    feed.agg.flush()
    feed.rows += feed.agg.drain()
    bar0 = feed.bar(0)
    # defined 0.25 + 0.25 + 0.15 = 0.65 s of bar 0; the crossed 0.25 s is verified time all the same
    # 10 bps: bid (2 x 0.25) / 0.65 = 10/13, ask (1 x 0.25) / 0.65 = 5/13 (the empty band counts as 0)
    # 25 and 50 bps: bid 2 all the time, ask (1 x 0.25 + 4 x 0.4) / 0.65 = 37/13; nothing at the end (no mid)
    assert bands(bar0, 10) == (10 / 13, 5 / 13, None, None)  # exact: integer integrals, one rounding
    assert bands(bar0, 25) == bands(bar0, 50) == (2.0, 37 / 13, None, None)
    assert (bar0.verified_ns, bar0.incomplete, bar0.bps10_mean) == (S, False, 1 / 3)  # OBI 10 bps: only 0.25 s
    assert bands(feed.bar(1), 10) == (3.0, 1.0, 3.0, 1.0)  # defined from 1.2 s: 3 vs 1
    assert bands(feed.bar(2), 50) == (3.0, 1.0, None, None) and feed.bar(2).incomplete  # 0.1 s, then unknown
    five = feed.bar(0, "5s")
    # 0.65 + 0.8 + 0.1 = 1.55 s; 10 bps bid 0.5 + 2.4 + 0.3 = 3.2, ask 0.25 + 0.8 + 0.1 = 1.15
    # 25 bps bid 1.3 + 2.4 + 0.3 = 4.0, ask 1.85 + 0.8 + 0.1 = 2.75
    assert bands(five, 10) == (64 / 31, 23 / 31, None, None)
    assert bands(five, 25) == bands(five, 50) == (80 / 31, 55 / 31, None, None)


def test_band_quantities_before_the_first_snapshot_and_after_a_gap_are_none() -> None:
    feed = Feed()
    feed(
        delta(100 * MS, bids=[(99.99, 5)], asks=[(100.01, 1)]),  # ignored: no snapshot yet
        snap(1500 * MS, *one_level(1, 3)),
        gap(2000 * MS),  # unverified at the end of bar 1 and all of bar 2
        delta(2500 * MS, bids=[(99.99, 9)]),  # ignored
        snap(3500 * MS, *one_level(2, 2)),
        delta(4200 * MS, asks=[(100.01, 1)]),
    )
    assert bands(feed.bar(0), 25) == (None,) * 4 and feed.bar(0).verified_ns == 0
    assert bands(feed.bar(1), 25) == (1.0, 3.0, 1.0, 3.0)
    assert bands(feed.bar(2), 25) == (None,) * 4 and feed.bar(2).incomplete
    assert bands(feed.bar(3), 25) == (2.0, 2.0, 2.0, 2.0) and feed.bar(3).incomplete  # from 3.5 s


def test_flush_closes_larger_bars_that_had_not_opened_yet() -> None:
    # Every event in one second: the 5 s and 1 m bars open only when that second closes, inside flush.
    feed = Feed(("1s", "5s", "1m"))
    feed(snap(1200 * MS, *one_level(1, 1)), delta(1500 * MS, bids=[(99.99, 3)]))
    feed.agg.flush()
    feed.rows += feed.agg.drain()
    assert sorted((r.interval, (r.start_ns - T0) // S) for r in feed.rows) == [("1m", 0), ("1s", 1), ("5s", 0)]
    for row in feed.rows:  # 0 (1 vs 1) for 0.3 s; the 0.5 held no time before the input ended
        assert (row.incomplete, row.verified_ns, row.updates) == (True, 300 * MS, 2), row.interval
        assert stats(row, "top1") == (0.0, None, 0.0, 0.0) and bands(row, 10) == (1.0, 1.0, None, None)


def test_close_idle_carries_a_quiet_book_forward() -> None:
    agg = ObiAggregator(["1s"], 0)
    agg.add(snap(0, *one_level(3, 1)), 1, now_ns=T0)  # processing time T0
    agg.close_idle(now_ns=T0 + 2500 * MS, idle_ns=S)  # idle for 2.5 s: its clock moves to now - idle = 1.5 s
    rows = agg.drain()
    assert [(r.start_ns - T0) // S for r in rows] == [0]
    assert (rows[0].top1_mean, rows[0].incomplete, rows[0].version) == (0.5, False, 1)
    agg.touch(T0 + 5 * S)
    agg.close_idle(now_ns=T0 + 5 * S, idle_ns=S)  # just seen: nothing moves
    assert agg.drain() == []


# --------------------------------------------------------------------------------------------- restarts

RESTART_EVENTS = [
    snap(0, *one_level(1, 1)),  # 1
    delta(500 * MS, bids=[(99.99, 2)]),  # 2
    delta(1200 * MS, asks=[(100.01, 3)]),  # 3
    delta(2100 * MS, bids=[(99.99, 4)]),  # 4: bar 1 final
    snap(3300 * MS, *one_level(1, 2)),  # 5: bar 2 final
    delta(3700 * MS, bids=[(99.99, 5)]),  # 6
    delta(4400 * MS, asks=[(100.01, 1)]),  # 7: bar 3 final
    delta(5500 * MS, bids=[(99.99, 1)]),  # 8: bar 4 final
    delta(6200 * MS, asks=[(100.01, 4)]),  # 9: bar 5 final
]


def _run(events, start_position: int = 1, restored: list[ObiBar] | None = None) -> tuple[ObiAggregator, list]:
    agg = ObiAggregator(["1s"], 0)
    if restored is not None:
        agg.restore(restored)
    rows, late = [], []
    for position, event in enumerate(events, start_position):
        late.append(not agg.add(event, position))
        rows += agg.drain()
    return agg, rows


def _by_bar(rows: list[ObiBar]) -> dict[int, ObiBar]:
    return {(r.start_ns - T0) // S: r for r in rows}


@pytest.mark.parametrize("resume_at", [1, 3])
def test_restart_from_final_rows(resume_at: int) -> None:
    _, uninterrupted = _run(RESTART_EVENTS)
    full = _by_bar(uninterrupted)
    assert sorted(full) == [0, 1, 2, 3, 4, 5]
    assert all(None not in bands(full[i], b) for i in (1, 2, 4) for b in (10, 25, 50))  # so == compares them
    _, persisted = _run(RESTART_EVENTS[:4])  # crashed after position 4; bars 0 and 1 were written
    assert sorted(_by_bar(persisted)) == [0, 1]
    # the consumer resumes from an earlier committed offset and replays positions resume_at..
    _, after = _run(RESTART_EVENTS[resume_at - 1 :], resume_at, restored=persisted)
    again = _by_bar(after)
    assert sorted(again) == [2, 3, 4, 5]  # nothing final is written twice
    if resume_at == 1:  # the replay starts with the snapshot: the book is rebuilt, every bar is identical
        assert after == [full[i] for i in (2, 3, 4, 5)]
    else:  # the book is unknown until the snapshot at 3.3 s
        assert again[2].incomplete and again[2].verified_ns == 0 and again[2].top1_mean is None
        assert bands(again[2], 10) == (None,) * 4
        assert again[3].incomplete and again[3].verified_ns == 700 * MS and not full[3].incomplete
        assert [again[4], again[5]] == [full[4], full[5]]  # identical from the first bar after the snapshot


def test_restart_with_two_intervals_writes_nothing_twice() -> None:
    # 1 s bars are final up to 7 s, the 5 s bar [0, 5) is final: the restored clock starts at 5 s and the
    # 1 s bars [5, 7) are recomputed for the 5 s bar [5, 10) but not written again.
    events = [snap(0, *one_level(1, 1))] + [
        delta(t * 100 * MS + 50 * MS, bids=[(99.99, 1 + t % 4)], asks=[(100.01, 1 + t % 3)]) for t in range(1, 130)
    ]

    def run(evs, start=1, restored=None):
        agg = ObiAggregator(["1s", "5s"], 0)
        if restored is not None:
            agg.restore(restored)
        rows = []
        for position, event in enumerate(evs, start):
            agg.add(event, position)
            rows += agg.drain()
        return rows

    def keyed(rows):
        return {(r.interval, (r.start_ns - T0) // S): r for r in rows}

    full = keyed(run(events))
    crash = next(i for i, e in enumerate(events) if e.ts_ns >= T0 + 7 * S) + 1  # the event finalizing 1 s bar 6
    persisted = keyed(run(events[:crash]))
    assert max(k[1] for k in persisted if k[0] == "1s") == 6 and max(k[1] for k in persisted if k[0] == "5s") == 0
    after = keyed(run(events, 1, restored=list(persisted.values())))  # replayed from the snapshot
    assert not set(after) & set(persisted)
    assert set(after) | set(persisted) == set(full)
    assert all(after[k] == full[k] for k in after)  # band quantities included, bit for bit
    assert all(None not in bands(after[k], 50) for k in after if not after[k].incomplete) and len(after) > 5
    # intervals changed across the restart: 5 s has no final row, so [5, 10) misses [5, 7) and says so
    only_1s = [r for r in persisted.values() if r.interval == "1s"]
    changed = keyed(run(events, 1, restored=only_1s))
    assert changed[("5s", 5)].incomplete and changed[("5s", 5)].verified_ns == 3 * S
    assert not full[("5s", 5)].incomplete and ("5s", 0) not in changed


def test_restored_replays_are_not_late_but_new_old_events_are() -> None:
    _, persisted = _run(RESTART_EVENTS[:4])
    agg = ObiAggregator(["1s"], 0)
    agg.restore(persisted)
    assert agg.add(RESTART_EVENTS[1], 2)  # a replay of position 2 (time 0.5 s): not late
    assert not agg.add(delta(1500 * MS, bids=[(99.99, 7)]), 5)  # new, and older than the watermark (2.0 s)


# ----------------------------------------------------------------------------------------- real capture


def _capture_events() -> list[BookUpdate | BookGap]:
    paths = data_files("binance_usdm/depthUpdate/hftbacktest_*.gz")
    paths += data_files("binance_usdm/rest_depth_snapshot/hftbacktest_*.jsonl")
    session = BinanceUsdmSession(["BTCUSDT"], ["depth"])
    return [e for line in merge_captures(paths) for e in drive(session, line).events]


@pytest.mark.data
def test_real_capture_last_values_match_a_plain_dict_book() -> None:
    events = _capture_events()
    assert events[0].is_snapshot and len(events) > 6000 and not any(isinstance(e, BookGap) for e in events)
    agg = ObiAggregator(["1s", "1m"], 0)
    rows: list[ObiBar] = []
    bids: dict[float, float] = {}
    asks: dict[float, float] = {}
    last_at_end: dict[int, list] = {}  # bar start -> naive values of the book at the bar's end
    prev_ts = events[0].ts_ns
    for position, event in enumerate(events):
        ts = event.ts_ns
        assert ts >= prev_ts  # this capture is in time order, so no clamping is involved
        for start in range(prev_ts - prev_ts % S, ts - ts % S, S):  # bars that end before this event
            last_at_end[start] = _naive(bids, asks)
        prev_ts = ts
        if event.is_snapshot:
            bids, asks = {p: q for p, q in event.bids if q > 0}, {p: q for p, q in event.asks if q > 0}
        else:
            for side, levels in ((bids, event.bids), (asks, event.asks)):
                for p, q in levels:
                    if q > 0:
                        side[p] = q
                    else:
                        side.pop(p, None)
        assert agg.add(event, position)
        rows += agg.drain()
    seconds = [r for r in rows if r.interval == "1s"]
    assert len(seconds) >= 340 and all(r.final for r in rows)
    first_bar = events[0].ts_ns - events[0].ts_ns % S
    assert seconds[0].start_ns == first_bar and seconds[0].incomplete  # the snapshot came mid-bar
    for row in seconds:
        naive = last_at_end[row.start_ns]
        assert row.top1_last is not None and abs(row.top1_last - naive[0]) <= 1e-12, row.start_ns
        assert _close([getattr(row, f"{m}_last") for m in MEASURES], naive), row.start_ns
        if row.start_ns > first_bar:
            assert not row.incomplete and row.verified_ns == S, row.start_ns
    # 1 m bars are their 1 s bars combined (every second complete, each measure defined all the time)
    minutes = [r for r in rows if r.interval == "1m" and not r.incomplete]
    assert minutes
    for minute in minutes:
        parts = [r for r in seconds if minute.start_ns <= r.start_ns < minute.start_ns + 60 * S]
        assert len(parts) == 60 and minute.updates == sum(r.updates for r in parts)
        for m in MEASURES:
            mean, last, lo, hi = stats(minute, m)
            assert mean == pytest.approx(sum(getattr(r, f"{m}_mean") for r in parts) / 60, abs=1e-12)
            assert (last, lo, hi) == (
                getattr(parts[-1], f"{m}_last"),
                min(getattr(r, f"{m}_min") for r in parts),
                max(getattr(r, f"{m}_max") for r in parts),
            )
        for name in BAND_COLUMNS:  # the bands were defined all the time too: a minute's mean is their mean
            if name.endswith("_mean"):
                want = sum(getattr(r, name) for r in parts) / 60
                assert getattr(minute, name) == pytest.approx(want, rel=1e-12), name
            else:
                assert getattr(minute, name) == getattr(parts[-1], name), name


# ----------------------------------------------------------------------- band quantities, every venue

# Every venue's real book captures; the symbols are for depth snapshots recorded without their URL.
BOOK_CAPTURES = {
    "binance-usdm-2024": ("binance-usdm", ["BTCUSDT"], ["binance_usdm/depthUpdate/hftbacktest_*.gz",
                                                        "binance_usdm/rest_depth_snapshot/hftbacktest_*.jsonl"]),
    "binance-usdm-2021-04": ("binance-usdm", [], ["binance_usdm/depthUpdate/cryptofeed_2021-04-17*.jsonl",
                                                  "binance_usdm/rest_depth_snapshot/cryptofeed_2021-04-17*.jsonl"]),
    "binance-usdm-2021-07": ("binance-usdm", [], ["binance_usdm/depthUpdate/cryptofeed_2021-07-22*.jsonl",
                                                  "binance_usdm/rest_depth_snapshot/cryptofeed_2021-07-22*.jsonl"]),
    # not the test vectors: single messages, one BTC-USDT-PERP book of 2023 followed by a gap 16 days later,
    # which would carry the book over 1.4M one-second bars
    "bybit-linear": ("bybit-linear", [], ["bybit_v5/orderbook/*linear*.jsonl"]),
    "bybit-spot": ("bybit-spot", [], ["bybit_v5/orderbook/*spot*.jsonl"]),
    "okx": ("okx", [], ["okx_v5/books-l2-tbt/*.jsonl"]),  # incl. test vectors whose checksums fail: BookGaps
    "hyperliquid": ("hyperliquid", [], ["hyperliquid/l2Book/*.jsonl"]),
}  # fmt: skip
BANDS = (10, 25, 50)  # the reference's own copy of the band widths


def _book_events(name: str) -> list[BookUpdate | BookGap]:
    """The book events of one capture set, merged by receive time, through one venue session."""
    venue, symbols, patterns = BOOK_CAPTURES[name]
    session = make_session(venue, symbols)
    events: list[BookUpdate | BookGap] = []
    for line in merge_captures([p for pattern in patterns for p in data_files(pattern)]):
        try:
            events += [e for e in drive(session, line).events if isinstance(e, BookUpdate | BookGap)]
        except BadMessage:  # e.g. an OKX option's book: not an instrument of ours
            continue
    return events


def _ref_bands(book: _RefBook) -> tuple[float, ...] | None:
    """Bid then ask quantity within 10/25/50 bps of the mid, summed in floats; None: crossed or a side empty.

    |p - mid| / mid * 10_000 <= b in floats; a level within 1e-6 bps of a boundary is decided in exact decimals
    (so that 9.95 around a mid of 10.0 is exactly on the 50 bps boundary, i.e. inside).
    """
    if not book.bid_prices or not book.ask_prices:
        return None
    best_bid, best_ask = book.bid_prices[-1], book.ask_prices[0]
    if best_bid >= best_ask:
        return None
    mid = (best_bid + best_ask) / 2
    exact_mid = (_dec(best_bid) + _dec(best_ask)) / 2
    sums: list[float] = []
    for side, near, sign in (  # the levels within 51 bps of the mid (a superset of every band)
        (book.bids, book.bid_prices[bisect_left(book.bid_prices, mid * 0.9949) :], 1),
        (book.asks, book.ask_prices[: bisect_right(book.ask_prices, mid * 1.0051)], -1),
    ):
        price = np.array(near)
        qty = np.array([side[p] for p in near])
        distance = sign * (mid - price) / mid * 10_000
        for b in BANDS:
            inside = distance <= b
            for i in np.flatnonzero(np.abs(distance - b) <= 1e-6):
                inside[i] = sign * (exact_mid - _dec(near[i])) * 10_000 <= b * exact_mid
            sums.append(float(qty[inside].sum()))
    return tuple(sums)


class _RefBook:
    """A plain dict per side (price -> qty) and its prices kept sorted, to find the levels near the mid."""

    def __init__(self) -> None:
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self.bid_prices: list[float] = []
        self.ask_prices: list[float] = []
        self.verified = False

    def reset(self, bids, asks, verified: bool) -> None:
        self.bids = {p: q for p, q in bids if q > 0}
        self.asks = {p: q for p, q in asks if q > 0}
        self.bid_prices, self.ask_prices = sorted(self.bids), sorted(self.asks)
        self.verified = verified

    def set(self, side: dict[float, float], prices: list[float], price: float, qty: float) -> None:
        if qty > 0:
            if price not in side:
                insort(prices, price)
            side[price] = qty
        elif side.pop(price, None) is not None:
            del prices[bisect_left(prices, price)]


def _ref_timeline(events: list[BookUpdate | BookGap]) -> dict[str, tuple[list[int], list]]:
    """Per instrument: the clamped event times and the band quantities after each event (None: undefined).

    The book is rebuilt from the events: a snapshot replaces it and verifies it, a gap unverifies it, a delta
    (absolute sizes, 0 removes) applies only to a verified book.
    """
    books: dict[str, _RefBook] = {}
    timeline: dict[str, tuple[list[int], list]] = {}
    for event in events:
        book = books.setdefault(event.instrument, _RefBook())
        times, states = timeline.setdefault(event.instrument, ([], []))
        if isinstance(event, BookGap):
            book.reset([], [], verified=False)
        elif event.is_snapshot:
            book.reset(event.bids, event.asks, verified=True)
        elif book.verified:
            for p, q in event.bids:
                book.set(book.bids, book.bid_prices, p, q)
            for p, q in event.asks:
                book.set(book.asks, book.ask_prices, p, q)
        times.append(max(event.ts_ns, times[-1]) if times else event.ts_ns)  # applied in arrival order
        states.append(_ref_bands(book) if book.verified else None)
    return timeline


def _ref_bar(times: list[int], states: list, start: int, end: int) -> tuple[tuple | None, tuple | None]:
    """(means, lasts) of the band quantities over [start, end): each state holds from its time to the next
    event; the time after the last event is unknown (the input ended), like the time before the first."""
    integral = [0.0] * 6
    covered = 0
    first = max(bisect_right(times, start) - 1, 0)
    for i in range(first, len(times) - 1):
        lo, hi = max(times[i], start), min(times[i + 1], end)
        if times[i] >= end:
            break
        if hi > lo and states[i] is not None:
            covered += hi - lo
            for k in range(6):
                integral[k] += states[i][k] * (hi - lo)
    means = tuple(v / covered for v in integral) if covered else None
    i = bisect_left(times, end) - 1  # the last event before the end
    lasts = states[i] if i >= 0 and end <= times[-1] else None
    return means, lasts


def _near(got: float | None, want: float | None) -> bool:
    if got is None or want is None:
        return got is None and want is None
    return abs(got - want) <= 1e-9 * max(1.0, abs(want))


@pytest.mark.data
@pytest.mark.parametrize("capture", list(BOOK_CAPTURES))
def test_band_quantities_match_a_plain_dict_reference_on_every_venues_captures(capture: str) -> None:
    events = _book_events(capture)
    assert len({e.instrument for e in events}) >= 1 and any(getattr(e, "is_snapshot", False) for e in events)
    intervals = {"1s": S, "5s": 5 * S, "1m": 60 * S}
    agg = ObiAggregator(list(intervals), 0)
    for position, event in enumerate(events):
        agg.add(event, position)
    agg.flush()
    rows = agg.drain()
    timeline = _ref_timeline(events)
    defined = 0
    for row in rows:
        times, states = timeline[row.instrument]
        means, lasts = _ref_bar(times, states, row.start_ns, row.start_ns + intervals[row.interval])
        where = (row.instrument, row.interval, row.start_ns)
        for k, band in enumerate(BANDS):
            got = [getattr(row, f"bps{band}_{s}") for s in ("bid_mean", "ask_mean", "bid_last", "ask_last")]
            want = [None, None] if means is None else [means[k], means[3 + k]]
            want += [None, None] if lasts is None else [lasts[k], lasts[3 + k]]
            assert all(map(_near, got, want)), (where, band, got, want)
        defined += means is not None
    # every bar in which the reference had defined band time is a row
    keys = {(r.instrument, r.interval, r.start_ns) for r in rows}
    for instrument, (times, states) in timeline.items():
        for i in range(len(times) - 1):
            if states[i] is not None and times[i + 1] > times[i]:
                for interval, width in intervals.items():
                    for start in range(times[i] - times[i] % width, times[i + 1], width):
                        assert (instrument, interval, start) in keys, (instrument, interval, start)
    assert defined >= 3, "the capture must give bars with a verified, uncrossed book"


# ------------------------------------------------------------------------------------ schema and table


BAND_COLUMNS = [f"bps{b}_{s}" for b in (10, 25, 50) for s in ("bid_mean", "ask_mean", "bid_last", "ask_last")]


def test_avro_schema_and_clickhouse_table_match_the_row() -> None:
    fields = list(ObiBar.__struct_fields__)
    assert fields[4:32] == stat_fields() and len(stat_fields()) == 28
    assert fields[37:] == BAND_COLUMNS == band_fields()  # v2: appended, with defaults
    v1 = json.loads((schemas_dir() / "avro" / "ObiBar.v1.avsc").read_text())
    assert [f["name"] for f in v1["fields"]] == fields[:37]
    v2 = json.loads((schemas_dir() / "avro" / "ObiBar.v2.avsc").read_text())
    assert [f["name"] for f in v2["fields"]] == fields
    assert v2["fields"][:37] == v1["fields"]  # v2 only adds fields
    for f in v2["fields"][4:32] + v2["fields"][37:]:
        assert f["type"] == ["null", "double"] and f["default"] is None, f["name"]
    registry = json.loads((schemas_dir() / "avro" / "registry.json").read_text())
    ids = {e["file"]: e["id"] for e in registry["schemas"]}
    assert (ids["ObiBar.v1.avsc"], ids["ObiBar.v2.avsc"]) == (12, 22)
    sql = (Path(schemas_dir()) / "clickhouse" / "003_obi.sql").read_text()
    body = sql[sql.index("(\n") : sql.index("\n)\n")]
    columns = [m.group(1) for m in re.finditer(r"^\s{4}(\w+)\s", body, re.MULTILINE)]
    assert [c for c in columns if c != "start"] == fields[:37]
    assert "ENGINE = ReplacingMergeTree(version)" in sql and "ORDER BY (venue, instrument, interval, start_ns)" in sql
    added = re.findall(r"ADD COLUMN IF NOT EXISTS (\w+)\s+Nullable\(Float64\).* AFTER (\w+)",
                       (Path(schemas_dir()) / "clickhouse" / "011_obi_band_quantities.sql").read_text())  # fmt: skip
    assert added == list(zip(BAND_COLUMNS, ["version", *BAND_COLUMNS[:-1]], strict=True))  # in the row's order
    # the codec writes it (compiled writer) byte for byte like fastavro and reads it back
    codec = AvroCodec()
    rng = random.Random(3)
    for _ in range(50):
        measures = (rng.choice([None, rng.uniform(-1, 1)]) for _ in range(28))
        flags = (rng.randrange(S), rng.random() < 0.5, rng.randrange(10**6), rng.random() < 0.5, rng.randrange(2**62))
        quantities = (rng.choice([None, 0.0, rng.uniform(0, 1e6)]) for _ in range(12))
        row = ObiBar(VENUE, INST, "1s", T0, *measures, *flags, *quantities)
        frame = codec.encode_event(row)
        reg = codec.schema_of(frame)
        assert reg.name == "tapeline.v1.ObiBar" and reg.schema_id == 22
        buf = io.BytesIO(frame[:5])
        buf.seek(5)
        fastavro.schemaless_writer(buf, reg.parsed, msgspec.structs.asdict(row))
        assert frame == buf.getvalue()
        assert msgspec.convert(codec.decode(frame), ObiBar) == row


def test_the_query_service_serves_the_band_quantities() -> None:
    """GetObi's ObiBar has the v2 fields (38-49), optional: a 0 quantity stays 0 and an undefined one unset."""
    numbers = {f.name: f.number for f in query_pb2.ObiBar.DESCRIPTOR.fields}
    assert [numbers[name] for name in BAND_COLUMNS] == list(range(38, 50))
    assert all(query_pb2.ObiBar.DESCRIPTOR.fields_by_name[name].has_presence for name in BAND_COLUMNS)
    measures = [0.25, None, -0.5, 1.0] * 7
    row = ObiBar(VENUE, INST, "1s", T0, *measures, S, False, 3, True, 11, *[151.59, 0.0, None, 2.5e9] * 3)
    message = obi_to_proto(row)
    assert not message.HasField("bps10_bid_last") and message.HasField("bps10_ask_mean")
    assert obi_from_proto(query_pb2.ObiBar.FromString(message.SerializeToString())) == row


def test_idle_carry_is_bounded_by_max_carry() -> None:
    """A quiet verified book is carried for max_carry after its last event, then counts as unverified:
    idling to a clock far ahead (a dead connector, or a recording replayed today) invents no bars."""
    s = 1_000_000_000
    agg = ObiAggregator(["1s"], s)
    agg.add(BookUpdate("v", "X", "X-USDT-PERP", 1000 * s, 0, True, [(99.0, 1.0)], [(101.0, 1.0)]), 1, now_ns=0)
    agg.close_idle(now_ns=10**18, idle_ns=3 * s, max_carry_ns=5 * s)
    rows = agg.drain()
    assert [r.start_ns // s for r in rows] == [1000, 1001, 1002, 1003, 1004]
    assert all(r.top1_last == 0.0 and not r.incomplete for r in rows)
    later = BookUpdate("v", "X", "X-USDT-PERP", 2000 * s, 0, False, [(99.0, 3.0)], [])
    agg.add(later, 2, now_ns=10**18)
    agg.flush()
    assert all(r.incomplete or r.top1_last is None for r in agg.drain())  # a delta cannot re-verify a stale book


# ----------------------------------------------------------------------------------------- the command

# What users' tests read from `tapeline obi` (written out here, not taken from the code).
OBI_CONTRACT = ["venue", "instrument", "interval", "start_ns"] + [
    f"{m}_{s}" for m in ("top1", "top5", "top10", "top20", "bps10", "bps25", "bps50")
    for s in ("mean", "last", "min", "max")
] + ["incomplete"]  # fmt: skip


@pytest.mark.data
@pytest.mark.parametrize(
    ("captures", "symbols"),
    [(["binance-usdm-2024"], ["BTCUSDT"]),  # its depth snapshot was recorded without its URL: --symbols
     (["binance-usdm-2021-07", "bybit-linear", "okx", "hyperliquid"], [])],  # four venues in one merge
)  # fmt: skip
def test_cli_obi_prints_the_aggregators_final_rows(captures: list[str], symbols: list[str]) -> None:
    venue_of = {path: BOOK_CAPTURES[c][0] for c in captures for pattern in BOOK_CAPTURES[c][2]
                for path in data_files(pattern)}  # fmt: skip
    args = ["obi", "--interval", "1s", "--interval", "1m", "--lateness-ms", "1000"]
    args += ["--symbols", ",".join(symbols)] if symbols else []
    result = CliRunner().invoke(main, [*args, *map(str, venue_of)])
    assert result.exit_code == 0, result.output
    lines = [msgspec.json.decode(line) for line in result.stdout.splitlines()]
    # the aggregator over every book event of the files, merged by receive time, one session per venue
    sessions = {venue: make_session(venue, symbols) for venue in set(venue_of.values())}
    agg = ObiAggregator(["1s", "1m"], 1000 * MS)
    position = 0
    for path, line in merge_tagged(venue_of):
        try:
            events = drive(sessions[venue_of[path]], line).events
        except BadMessage:
            continue
        for event in events:
            if isinstance(event, BookUpdate | BookGap):
                agg.add(event, position)
                position += 1
    agg.flush()
    rows = agg.drain()
    assert len({(r.venue, r.instrument, r.interval, r.start_ns) for r in rows}) == len(rows)  # each bar once
    width = {"1s": 1, "1m": 60}
    rows.sort(key=lambda r: (r.venue, r.instrument, width[r.interval], r.start_ns))
    assert lines == [msgspec.to_builtins(r) for r in rows]
    assert {line["venue"] for line in lines} == set(venue_of.values())
    for line in lines:
        assert set(OBI_CONTRACT) <= set(line), set(OBI_CONTRACT) - set(line)
        assert isinstance(line["start_ns"], int) and isinstance(line["incomplete"], bool)
        assert all(line[k] is None or isinstance(line[k], float) for k in OBI_CONTRACT[4:-1])
    assert sum(line["bps25_bid_mean"] is not None for line in lines) > 100


@pytest.mark.data
def test_cli_obi_by_asset_sums_the_venues_band_quantities() -> None:
    """`tapeline obi --by asset` over Bybit's linear and spot books (recorded together): each cross-venue row is
    the imbalance of the venues' mean band quantities summed, recomputed here from the venue rows."""
    files = [str(path) for name in ("bybit-linear", "bybit-spot") for p in BOOK_CAPTURES[name][2]
             for path in data_files(p)]  # fmt: skip
    args = ["obi", "--interval", "1s", "--lateness-ms", "1000", *files]
    venue_rows = [msgspec.json.decode(line) for line in CliRunner().invoke(main, args).stdout.splitlines()]
    result = CliRunner().invoke(main, [*args[:1], "--by", "asset", *args[1:]])
    assert result.exit_code == 0, result.output
    rows = [msgspec.json.decode(line) for line in result.stdout.splitlines()]
    assert {r["kind"] for r in rows} == {"perp", "spot", "all"}
    both = 0
    for row in rows:
        kinds = ("spot", "perp") if row["kind"] == "all" else (row["kind"],)
        parts = [v for v in venue_rows if v["start_ns"] == row["start_ns"]
                 and v["instrument"].split("-")[0] == row["asset"]
                 and ("spot" if v["instrument"].endswith("-SPOT") else "perp") in kinds]  # fmt: skip
        assert sorted({v["venue"] for v in parts}) == row["venues"]
        both += len(row["venues"]) == 2
        for band in BANDS:
            given = [v for v in parts if v[f"bps{band}_bid_mean"] is not None and v[f"bps{band}_ask_mean"] is not None]
            bid = sum(v[f"bps{band}_bid_mean"] for v in given)
            ask = sum(v[f"bps{band}_ask_mean"] for v in given)
            if not given or bid + ask == 0:
                assert row[f"bps{band}_mean"] is None
            else:
                assert row[f"bps{band}_mean"] == pytest.approx((bid - ask) / (bid + ask), abs=1e-9)
                assert row[f"bps{band}_bid"] == pytest.approx(bid) and row[f"bps{band}_ask"] == pytest.approx(ask)
    assert both > 0
