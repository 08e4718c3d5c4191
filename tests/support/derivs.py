"""DerivTicker streams for the derivatives-bar tests: a disordered hand-built one, and a real capture's."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence

from tapeline.domain.aggregates import DerivBar
from tapeline.domain.events import DerivTicker
from tapeline.flow.derivatives import DerivativesAggregator
from tapeline.flow.windows import newest_versions
from tapeline.io.capture import drive, read_capture
from tapeline.venues import make_session
from tests.support.data import data_files

S = 1_000_000_000
MS = 1_000_000
BTC, ETH = "BTC-USDT-PERP", "ETH-USDT-PERP"
BYBIT_LINEAR_TICKERS = "bybit_v5/tickers/cryptofeed_v3_*tickers_linear.jsonl"


def disordered_tickers(seed: int = 3, n: int = 80) -> list[DerivTicker]:
    """Two instruments' tickers shaped like Binance's (mark/funding/index and open interest in separate
    messages) and merged ones, mostly in time order: some arrive within 2 s of lateness, some 3-25 s late
    (corrections within a 30 s horizon), a few 2 min late (past it)."""
    rng = random.Random(seed)
    clock = 1_000 * S
    out = []
    for _ in range(n):
        clock += rng.choice([400 * MS, 1300 * MS, 2700 * MS, 6100 * MS, 17 * S])
        r = rng.random()
        ts = clock
        if r < 0.15:
            ts -= rng.randint(1, 1500) * MS
        elif r < 0.27:
            ts -= rng.randint(3, 25) * S
        elif r < 0.30:
            ts -= 120 * S
        kind = rng.choice(["mark", "oi", "oi_usd", "all", "funding"])
        fields: dict[str, float | int | None] = {}
        if kind in ("mark", "all"):
            fields.update(mark_price=round(rng.uniform(99, 101), 2), index_price=round(rng.uniform(99, 101), 2))
        if kind in ("mark", "funding", "all"):
            fields.update(
                funding_rate=round(rng.uniform(-1e-4, 3e-4), 8),
                next_funding_ts_ns=(ts // (8 * 3600 * S) + 1) * 8 * 3600 * S,
            )
        if kind in ("oi", "oi_usd", "all"):
            fields["open_interest_base"] = round(rng.uniform(1000, 1010), 3)
        if kind == "oi_usd":
            fields["open_interest_usd"] = round(rng.uniform(1e5, 1.01e5), 2)
        instrument = rng.choice([BTC, ETH])
        out.append(DerivTicker("binance-usdm", instrument.replace("-", "")[:-4], instrument, ts, clock, **fields))  # type: ignore[arg-type]
    return out


def run_derivs(tickers: Iterable[DerivTicker], intervals: Sequence[str], lateness_ns: int, horizon_ns: int = 0,
               first: int = 0) -> list[DerivBar]:  # fmt: skip
    """The newest version of every row an aggregator emits over `tickers` (positions from `first`), flushed."""
    agg = DerivativesAggregator(intervals, lateness_ns, horizon_ns)
    for position, ticker in enumerate(tickers, first):
        agg.add(ticker, position)
    agg.flush()
    return newest_versions(agg.drain())


def bybit_linear_tickers() -> list[DerivTicker]:
    """The DerivTicker events of the real Bybit linear tickers capture (BTCUSDT and ETHUSDT, ~44 s), in order."""
    (path,) = data_files(BYBIT_LINEAR_TICKERS)
    session = make_session("bybit-linear")
    return [e for line in read_capture(path) for e in drive(session, line).events if isinstance(e, DerivTicker)]
