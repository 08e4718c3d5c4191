"""Every SQL example in docs/clickhouse.md runs against tables filled by the real aggregators."""

from __future__ import annotations

import re
from collections.abc import Callable

from tapeline.domain.aggregates import Bar, DerivBar
from tapeline.domain.events import Trade
from tapeline.flow.assets import AssetBarAggregator
from tapeline.flow.bars import BarAggregator
from tapeline.flow.footprint import FootprintAggregator
from tapeline.flow.windows import newest_versions
from tapeline.io.capture import drive, read_capture
from tapeline.io.store import BarStore
from tapeline.venues import make_session
from tests.support.data import REPO_ROOT, data_files
from tests.support.derivs import MS, bybit_linear_tickers, run_derivs
from tests.support.venues import usdm_capture_trades

DOC = REPO_ROOT / "docs" / "clickhouse.md"


def test_every_example_query_runs(store_factory: Callable[[], BarStore]) -> None:
    (capture,) = data_files("binance_usdm/trade/hftbacktest_*.gz")
    trades = usdm_capture_trades(read_capture(capture))
    store = store_factory()
    bars, prints = BarAggregator(["1m", "5m", "1d"], 10**9), FootprintAggregator(["1m"], 10**9)
    for position, trade in enumerate(trades):
        bars.add(trade, position)
        prints.add(trade, position)
    bars.flush()
    prints.flush()
    store.insert_trades(trades)
    venue_bars = bars.drain()
    store.insert_bars(venue_bars)
    assets = AssetBarAggregator(["1m", "5m", "1d"], 10**9)
    for position, bar in enumerate(venue_bars):
        assets.add(bar, position)
    assets.flush()
    store.insert_asset_bars(assets.drain())
    store.insert_asset_metrics(assets.drain_metrics())
    levels, summaries = prints.drain()
    store.insert_footprints(summaries, levels)
    _insert_bybit_bars_and_derivs(store)  # the derivatives example: Bybit's trades and tickers of one session
    statements = [s for block in re.findall(r"```sql\n(.*?)```", DOC.read_text(), re.S) for s in block.split(";")]
    statements = [s for s in statements if s.strip()]
    assert len(statements) >= 8
    answered = 0
    for sql in statements:
        # the captured day is in 2024: widen "the last N hours" so the examples have data to show
        sql = re.sub(r"now\(\) - INTERVAL \d+ (HOUR|DAY)", "toDateTime('2024-01-01')", sql)
        rows = store.client.query(sql.replace("tapeline.", f"{store.database}.")).result_rows
        answered += bool(rows)
    assert answered >= len(statements) - 1  # the OBI join has no book data here


def _insert_bybit_bars_and_derivs(store: BarStore) -> tuple[list[Bar], list[DerivBar]]:
    """1m and 5m bars of the real Bybit linear trades and derivatives bars of its tickers (the same session)."""
    (capture,) = data_files("bybit_v5/publicTrade/cryptofeed_v3_*linear.jsonl")
    session = make_session("bybit-linear")
    trades = [e for line in read_capture(capture) for e in drive(session, line).events if isinstance(e, Trade)]
    agg = BarAggregator(["1m", "5m"], 500 * MS)
    for position, trade in enumerate(trades):
        agg.add(trade, position)
    agg.flush()
    bars = newest_versions(agg.drain())
    derivs = run_derivs(bybit_linear_tickers(), ("1m", "5m"), 500 * MS)
    store.insert_bars(bars)
    store.insert_deriv_bars(derivs)
    return bars, derivs


def test_the_open_interest_example_joins_bars_and_their_derivatives_bars(store_factory: Callable[[], BarStore]) -> None:
    (sql,) = [s for block in re.findall(r"```sql\n(.*?)```", DOC.read_text(), re.S) for s in block.split(";")
              if "deriv_bars" in s]  # fmt: skip
    store = store_factory()
    bars, derivs = _insert_bybit_bars_and_derivs(store)
    rows = store.client.query(sql.replace("tapeline.", f"{store.database}.")).result_rows
    by_key = {(d.venue, d.instrument, d.interval, d.start_ns): d for d in derivs}
    want = []
    for b in bars:  # the query's series: Bybit BTC-USDT-PERP 1m, every bar that has a derivatives bar
        d = by_key.get((b.venue, b.instrument, b.interval, b.start_ns))
        if (b.venue, b.instrument, b.interval) == ("bybit-linear", "BTC-USDT-PERP", "1m") and d is not None:
            want.append((b.close, b.delta_quote, d.oi_close, d.oi_delta, d.oi_close_usd, d.funding_rate, d.basis))
    assert len(want) >= 2
    assert [tuple(row[1:]) for row in rows] == want
