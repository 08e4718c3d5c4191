from __future__ import annotations

import pytest

from tapeline.domain.book import L2Book
from tapeline.domain.errors import BadMessage


def test_snapshot_then_deltas() -> None:
    book = L2Book()
    book.snapshot([(100.0, 1.0), (99.0, 2.0), (98.0, 0.0)], [(101.0, 3.0), (102.0, 4.0)], seq=7)
    assert book.verified and book.last_seq == 7
    book.apply([(99.0, 0.0), (99.5, 5.0)], [(101.0, 1.5), (103.0, 0.0)], seq=8)
    assert book.top(5) == ([(100.0, 1.0), (99.5, 5.0)], [(101.0, 1.5), (102.0, 4.0)])
    assert (book.best_bid(), book.best_ask(), book.last_seq) == (100.0, 101.0, 8)
    assert not book.crossed()


def test_crossed_snapshot_is_rejected_and_leaves_the_book_unverified() -> None:
    book = L2Book()
    with pytest.raises(BadMessage, match=r"crossed snapshot: best bid 101\.0 >= best ask 100\.5"):
        book.snapshot([(101.0, 1.0)], [(100.5, 1.0)])
    assert not book.verified and not book.bids and not book.asks
