"""Trades of one venue-instrument as numpy columns, in arrival order: what the aggregators take in bulk.

Per-trade Python work (an object per trade, an attribute read per field, a call per interval) was
most of the processor's cost; a batch's trades are aggregated window by window with numpy instead
(`WindowedAggregator.add_columns`), with results bit-identical to feeding them one by one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tapeline.domain.events import Trade


@dataclass(frozen=True, eq=False)
class TradeColumns:
    venue: str
    instrument: str
    ts: np.ndarray  # int64, venue trade time (ns)
    price: np.ndarray  # float64
    qty: np.ndarray  # float64, base units
    notional: np.ndarray  # float64, quote units
    buy: np.ndarray  # bool: the aggressor bought
    position: np.ndarray  # int64, monotone source position of each trade
    symbol: Sequence[str]
    recv_ts: Sequence[int]
    side: Sequence[str]
    trade_id: Sequence[str]

    def __len__(self) -> int:
        return len(self.ts)

    def trade(self, i: int) -> Trade:
        """Trade `i` as an event (for the rare per-trade paths: late trades, new windows)."""
        return Trade(self.venue, self.symbol[i], self.instrument, int(self.ts[i]), self.recv_ts[i],
                     float(self.price[i]), float(self.qty[i]), float(self.notional[i]), self.side[i],
                     self.trade_id[i])  # fmt: skip

    @classmethod
    def of_lists(cls, columns: dict[str, list[Any]], positions: Sequence[int]) -> TradeColumns:
        """From Trade's fields column by column (as the codec decodes a batch), all of one venue-instrument."""
        side = columns["side"]
        return cls(
            columns["venue"][0], columns["instrument"][0],
            np.array(columns["ts_ns"], dtype=np.int64), np.array(columns["price"], dtype=np.float64),
            np.array(columns["qty_base"], dtype=np.float64), np.array(columns["notional_quote"], dtype=np.float64),
            np.fromiter(map("buy".__eq__, side), dtype=bool, count=len(side)), np.array(positions, dtype=np.int64),
            columns["symbol"], columns["recv_ts_ns"], side, columns["trade_id"],
        )  # fmt: skip

    @classmethod
    def of_trades(cls, trades: Sequence[Trade], positions: Sequence[int]) -> TradeColumns:
        """From trades of one venue-instrument (tests, offline tools)."""
        return cls.of_lists({name: [getattr(t, name) for t in trades] for name in Trade.__struct_fields__},
                            positions)  # fmt: skip
