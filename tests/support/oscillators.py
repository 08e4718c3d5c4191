"""An independent reading of docs/DOMAIN.md "Money-flow oscillators", for tests of venue and asset bars."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class _Ohlcv(Protocol):
    high: float
    low: float
    close: float
    buy_base: float
    sell_base: float


def reference(bars: Sequence[_Ohlcv], cmf_n: int, mfi_n: int) -> list[tuple[float | None, float | None]]:
    """(CMF, MFI) of every bar of one series (bars in start order), from the definitions."""
    out = []
    for i in range(len(bars)):
        cmf = mfi = None
        if i + 1 >= cmf_n:
            window = bars[i + 1 - cmf_n : i + 1]
            mfv = vol = 0.0
            for b in window:
                v = b.buy_base + b.sell_base
                mfm = 0.0 if b.high == b.low else ((b.close - b.low) - (b.high - b.close)) / (b.high - b.low)
                mfv += mfm * v
                vol += v
            cmf = mfv / vol
        if i >= mfi_n:
            pos = neg = 0.0
            for j in range(i + 1 - mfi_n, i + 1):
                tp_now = (bars[j].high + bars[j].low + bars[j].close) / 3
                tp_before = (bars[j - 1].high + bars[j - 1].low + bars[j - 1].close) / 3
                flow = tp_now * (bars[j].buy_base + bars[j].sell_base)
                if tp_now > tp_before:
                    pos += flow
                elif tp_now < tp_before:
                    neg += flow
            mfi = 100.0 if neg == 0 else 100 - 100 / (1 + pos / neg)
        out.append((cmf, mfi))
    return out
