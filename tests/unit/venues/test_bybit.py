"""Bybit v5 sessions against the real captures, each checked by an independent reading of the raw JSON.

The expected values are computed here with json + Decimal, never through the module under test.
"""

from __future__ import annotations

import copy
import json
import re
import zipfile
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path

import pytest

from tapeline.domain.errors import BadMessage
from tapeline.domain.events import BookGap, BookUpdate, DerivTicker, Liquidation, Trade
from tapeline.io.capture import merge_tagged, read_capture
from tapeline.venues.base import Output
from tapeline.venues.bybit.instruments import linear_instrument, spot_instrument
from tapeline.venues.bybit.session import BybitLinearSession, BybitSession, BybitSpotSession
from tests.support.data import DATA_DIR, data_files

pytestmark = pytest.mark.data


def dumps(msg: dict) -> str:
    """Compact JSON, as the venue sends it."""
    return json.dumps(msg, separators=(",", ":"))


LINEAR_URL = "wss://stream.bybit.com/v5/public/linear"
SPOT_URL = "wss://stream.bybit.com/v5/public/spot"
ORACLE = "_oracles/tardis-node@c1d73fb/mappers.test.snapshot"
DERIV_FIELDS = ("fundingRate", "nextFundingTime", "markPrice", "indexPrice", "openInterest", "openInterestValue",
                "singleOpenInterest", "singleOpenInterestValue")  # fmt: skip


def session_for(path: Path, channels: tuple[str, ...] = ()) -> BybitSession:
    cls = BybitSpotSession if "spot" in path.name else BybitLinearSession
    return cls(symbols=[], channels=list(channels))


def lines_of(pattern: str) -> list:
    return [line for path in data_files(pattern) for line in read_capture(path)]


def first_line(pattern: str, predicate=lambda msg: True) -> str:
    for line in lines_of(pattern):
        if predicate(json.loads(line.raw)):
            return line.raw
    raise AssertionError(f"no matching line in {pattern}")


def book_sources() -> list[tuple[str, type[BybitSession], list[tuple[str, int | None, str | None]]]]:
    """Every real orderbook recording: (name, session class, [(raw, recv_ts_ns, conn)]) in file order."""
    sources = []
    for path in data_files("bybit_v5/orderbook/[!_]*.jsonl"):
        cls = BybitSpotSession if "spot" in path.name else BybitLinearSession
        sources.append((path.name, cls, [(x.raw, x.recv_ts_ns, x.conn) for x in read_capture(path)]))
    for path in data_files("historical/bybit_public_history/*.zip"):
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                text = archive.read(name).decode()
                sources.append(
                    (f"{path.name}!{name}", BybitLinearSession, [(r, None, None) for r in text.splitlines()])
                )
    return sources


def oracle_entries() -> list[dict]:
    """tardis-node's normalized outputs (its snapshot file holds JS literals: `undefined` -> null)."""
    path = DATA_DIR / ORACLE
    if not path.is_file():
        pytest.skip(f"tardis-node oracle not found at {path}")
    entries = []
    for block in re.findall(r"= `\n(\[.*?\])\n`;", path.read_text(), flags=re.S):
        entries.extend(json.loads(block.replace("undefined", "null")))
    return entries


# ------------------------------------------------------------------------------------------------ trades
@pytest.mark.parametrize("kind", ["linear", "spot"])
def test_trades_match_raw_messages(kind: str) -> None:
    (path,) = data_files(f"bybit_v5/publicTrade/cryptofeed_*publicTrade_{kind}.jsonl")
    session = session_for(path, ("publicTrade",))
    expected = {"n": 0, "buy": Decimal(0), "sell": Decimal(0), "buy_quote": Decimal(0), "sell_quote": Decimal(0)}
    got = dict.fromkeys(expected, Decimal(0))
    sides = Counter()
    for line in read_capture(path):
        raw = json.loads(line.raw)
        trades = session.on_ws(line.raw, line.recv_ts_ns, line.conn).events
        assert len(trades) == len(raw["data"]), line.line
        for wire, trade in zip(raw["data"], trades, strict=True):
            side = {"Buy": "buy", "Sell": "sell"}[wire["S"]]  # S is the taker's side
            qty, price = Decimal(wire["v"]), Decimal(wire["p"])
            expected["n"] += 1
            expected[side] += qty
            expected[f"{side}_quote"] += qty * price
            assert isinstance(trade, Trade)
            assert (trade.symbol, trade.side, trade.trade_id) == (wire["s"], side, wire["i"])
            assert trade.instrument == f"{wire['s'][:-4]}-USDT-{'SPOT' if kind == 'spot' else 'PERP'}"
            assert trade.ts_ns == wire["T"] * 1_000_000 and trade.recv_ts_ns == line.recv_ts_ns
            assert trade.venue == f"bybit-{kind}"
            got["n"] += 1
            got[trade.side] += Decimal(repr(trade.qty_base))
            got[f"{trade.side}_quote"] += Decimal(repr(trade.notional_quote))
            sides[trade.side] += 1
    assert got["n"] == expected["n"] > 0
    assert sides["buy"] > 0 and sides["sell"] > 0
    assert (got["buy"], got["sell"]) == (expected["buy"], expected["sell"])
    for side in ("buy_quote", "sell_quote"):  # rounded to 10 decimals per trade
        assert abs(got[side] - expected[side]) <= Decimal("1e-9") * expected["n"]


@pytest.mark.parametrize("kind", ["linear", "spot"])
def test_trade_side_is_the_aggressor_against_the_book(kind: str) -> None:
    """Taker buys print at or above the mid of the book recorded on the same connection, sells at or below."""
    files = data_files(f"bybit_v5/publicTrade/cryptofeed_*_{kind}.jsonl") + data_files(
        f"bybit_v5/orderbook/cryptofeed_v3_*orderbook_{kind}.jsonl"
    )
    session = session_for(files[0])
    checked = Counter()
    for _, line in merge_tagged(files):
        for event in session.on_ws(line.raw, line.recv_ts_ns, line.conn).events:
            if isinstance(event, Trade):
                book = session.books[f"orderbook.200.{event.symbol}"].levels
                assert book.verified
                mid = (book.best_bid() + book.best_ask()) / 2
                assert event.price >= mid if event.side == "buy" else event.price <= mid, event
                checked[event.side] += 1
    assert checked["buy"] > 0 and checked["sell"] > 0


def test_inverse_symbols_are_refused_not_mis_scaled() -> None:
    """tardis' BTCUSD vector is an inverse contract (sizes in USD): the linear session must not emit it."""
    raw = first_line("bybit_v5/publicTrade/_testvectors_*", lambda m: m["topic"] == "publicTrade.BTCUSD")
    with pytest.raises(BadMessage, match="inverse"):
        BybitLinearSession([], []).on_ws(raw, 1)
    raw = first_line("bybit_v5/publicTrade/_testvectors_*", lambda m: m["topic"] == "publicTrade.LTCUSDT")
    (trade,) = BybitLinearSession([], []).on_ws(raw, None).events
    assert (trade.instrument, trade.qty_base, trade.side) == ("LTC-USDT-PERP", 0.4, "buy")
    assert trade.recv_ts_ns == json.loads(raw)["ts"] * 1_000_000  # no receive time: the venue's message time
    oracle = [e for e in oracle_entries() if e.get("type") == "trade" and e.get("id") == trade.trade_id]
    assert [(e["side"], e["amount"], e["price"]) for e in oracle] == [("buy", 0.4, 94.53)]


# ------------------------------------------------------------------------------------------------- books
def independent_book_replay(messages: list[str]) -> tuple[dict, Counter]:
    """Books by topic from the raw JSON (Decimal), and counts of snapshots/deltas and u-chain breaks."""
    books: dict[str, tuple[dict, dict]] = {}
    last_u: dict[str, int] = {}
    counts = Counter()
    for raw in messages:
        msg = json.loads(raw)
        topic, data = msg["topic"], msg["data"]
        if msg["type"] == "snapshot":
            counts["snapshot"] += 1
            books[topic] = ({}, {})
        else:
            counts["delta"] += 1
            if data["u"] != last_u[topic] + 1:
                counts["break"] += 1
        last_u[topic] = data["u"]
        for side, levels in zip(books[topic], (data["b"], data["a"]), strict=True):
            for price, size in levels:
                if Decimal(size) == 0:
                    side.pop(Decimal(price), None)
                else:
                    side[Decimal(price)] = Decimal(size)
    return books, counts


def as_floats(side: dict) -> dict:
    return {float(p): float(q) for p, q in side.items()}


def test_every_recorded_book_stays_verified_and_matches_the_raw_replay() -> None:
    total_deltas = 0
    for name, cls, lines in book_sources():
        session = cls([], [])
        messages = [raw for raw, _, _ in lines]
        expected, counts = independent_book_replay(messages)
        assert counts["break"] == 0, name
        deltas = 0
        for raw, recv, conn in lines:
            msg = json.loads(raw)
            events = session.on_ws(raw, recv, conn).events
            assert not [e for e in events if isinstance(e, BookGap)], (name, raw[:120])
            if msg["type"] == "delta":
                (update,) = events
                u = msg["data"]["u"]
                assert (update.is_snapshot, update.first_seq, update.last_seq, update.prev_seq) == (False, u, u, u - 1)
                assert update.ts_ns == msg["ts"] * 1_000_000
                assert update.recv_ts_ns == (recv if recv is not None else msg["ts"] * 1_000_000)
                deltas += 1
            state = session.books[msg["topic"]]
            assert state.levels.verified, name
        for topic, (bids, asks) in expected.items():
            book = session.books[topic].levels
            assert (book.bids, book.asks) == (as_floats(bids), as_floats(asks)), (name, topic)
            assert not book.crossed(), (name, topic)
        assert deltas == counts["delta"], name
        assert session.resubscribe_frames() == [], name
        total_deltas += deltas
    assert total_deltas > 1000  # 833 + 548 + 49 (+49 in the historical zip) on the 2026 data set


def test_level1_books_skip_unchanged_repushes() -> None:
    """orderbook.1 is snapshot-only and re-pushed every 3 s with the same u: only changes become events."""
    for path in data_files("bybit_v5/orderbook/cryptofeed_2025-06-13__*.jsonl"):
        session = session_for(path)
        previous: dict[str, tuple] = {}
        expected_updates = 0
        updates = 0
        for line in read_capture(path):
            msg = json.loads(line.raw)
            assert msg["topic"].startswith("orderbook.1.") and msg["type"] == "snapshot"
            state = (msg["data"]["u"], str(msg["data"]["b"]), str(msg["data"]["a"]))
            expected_updates += previous.get(msg["topic"]) != state
            previous[msg["topic"]] = state
            events = session.on_ws(line.raw, line.recv_ts_ns, line.conn).events
            assert all(isinstance(e, BookUpdate) and e.is_snapshot for e in events)
            updates += len(events)
        assert 0 < updates == expected_updates < len(list(read_capture(path))), path.name


def test_removing_any_single_delta_is_detected_for_that_book_only() -> None:
    """For every delta followed by another delta of its topic: drop it, and exactly that book reports one gap.

    A checkpoint copy of the session before each position keeps this linear in the capture length.
    """
    checked = 0
    for name, cls, lines in book_sources():
        msgs = [json.loads(raw) for raw, _, _ in lines]
        checkpoint = cls([], [])
        for k, (raw, recv, conn) in enumerate(lines):
            topic = msgs[k]["topic"]
            following = next((j for j in range(k + 1, len(lines)) if msgs[j]["topic"] == topic), None)
            if msgs[k]["type"] == "delta" and following is not None and msgs[following]["type"] == "delta":
                trial = copy.deepcopy(checkpoint)
                gaps, others = [], []
                for raw2, recv2, conn2 in lines[k + 1 : following + 1]:
                    for event in trial.on_ws(raw2, recv2, conn2).events:
                        (gaps if isinstance(event, BookGap) else others).append(event)
                u = msgs[k]["data"]["u"]
                assert len(gaps) == 1, (name, k)
                gap = gaps[0]
                assert (gap.symbol, gap.last_good_seq, gap.first_bad_seq) == (msgs[k]["data"]["s"], u - 1, u + 1)
                assert not [e for e in others if e.symbol == gap.symbol]  # nothing from the broken book
                assert not trial.books[topic].levels.verified
                assert all(s.levels.verified for t, s in trial.books.items() if t != topic), (name, k)
                assert trial.resubscribe_frames(conn or trial.ws_base_url) == [
                    dumps({"op": "unsubscribe", "args": [topic]}),
                    dumps({"op": "subscribe", "args": [topic]}),
                ]
                checked += 1
            checkpoint.on_ws(raw, recv, conn)
    assert checked > 1000


def test_gap_then_resubscribe_snapshot_restores_the_book() -> None:
    (path,) = data_files("bybit_v5/orderbook/cryptofeed_v3_*orderbook_linear.jsonl")
    lines = list(read_capture(path))
    msgs = [json.loads(x.raw) for x in lines]
    btc = [i for i, m in enumerate(msgs) if m["data"]["s"] == "BTCUSDT" and m["type"] == "delta"]
    dropped = btc[len(btc) // 2]
    session = BybitLinearSession(["BTCUSDT", "ETHUSDT"], ["orderbook.200"])
    events = []
    for i, line in enumerate(lines):
        if i != dropped:
            events += session.on_ws(line.raw, line.recv_ts_ns, line.conn).events
    gaps = [e for e in events if isinstance(e, BookGap)]
    assert [(g.symbol, g.instrument) for g in gaps] == [("BTCUSDT", "BTC-USDT-PERP")]
    after = events[events.index(gaps[0]) + 1 :]
    assert not [e for e in after if e.symbol == "BTCUSDT"]  # deltas of a broken book are dropped
    assert [e for e in after if e.symbol == "ETHUSDT"]  # the other book carries on
    assert session.resubscribe_frames("wss://elsewhere") == []  # frames go to the book's own connection
    frames = session.resubscribe_frames(LINEAR_URL)
    assert [json.loads(f)["op"] for f in frames] == ["unsubscribe", "subscribe"]
    assert session.resubscribe_frames(LINEAR_URL) == []  # handed out once
    # the venue answers the subscription with a fresh snapshot (the recorded one stands in for it)
    snapshot = next(
        x for x, m in zip(lines, msgs, strict=True) if m["type"] == "snapshot" and m["data"]["s"] == "BTCUSDT"
    )
    (update,) = session.on_ws(snapshot.raw, snapshot.recv_ts_ns, snapshot.conn).events
    assert update.is_snapshot and session.books["orderbook.200.BTCUSDT"].levels.verified


def test_u1_means_restart_and_overwrites_the_book() -> None:
    (path,) = data_files("bybit_v5/orderbook/cryptofeed_v3_*orderbook_linear.jsonl")
    msgs = [json.loads(x.raw) for x in read_capture(path)]
    btc = [m for m in msgs if m["data"]["s"] == "BTCUSDT"]
    session = BybitLinearSession([], [])
    for m in btc[:10]:
        session.on_ws(dumps(m), 1)
    restart = copy.deepcopy(btc[10])  # a real delta's shape, renumbered as after a venue restart
    restart["data"]["u"] = 1
    (update,) = session.on_ws(dumps(restart), 2).events
    assert update.is_snapshot and update.first_seq == 1
    book = session.books["orderbook.200.BTCUSDT"].levels
    levels = {float(p): float(q) for p, q in restart["data"]["b"] if float(q) > 0}
    assert book.verified and book.bids == levels
    follow = copy.deepcopy(btc[11])
    follow["data"]["u"] = 2
    (update,) = session.on_ws(dumps(follow), 3).events
    assert isinstance(update, BookUpdate) and not update.is_snapshot and update.prev_seq == 1


def test_disconnect_gaps_only_the_books_of_that_connection() -> None:
    linear = first_line("bybit_v5/orderbook/cryptofeed_v3_*orderbook_linear.jsonl", lambda m: m["type"] == "snapshot")
    spot = first_line("bybit_v5/orderbook/cryptofeed_v3_*orderbook_spot.jsonl", lambda m: m["type"] == "snapshot")
    session = BybitLinearSession([], [])
    session.on_ws(linear, 1, LINEAR_URL)
    session.on_ws(spot.replace("BTCUSDT", "XRPUSDT"), 1, "wss://other")  # a book fed by another connection
    out = session.on_disconnect(LINEAR_URL, 99)
    assert [(g.symbol, g.recv_ts_ns, g.last_good_seq) for g in out.events] == [
        ("BTCUSDT", 99, json.loads(linear)["data"]["u"])
    ]
    assert session.books["orderbook.200.XRPUSDT"].levels.verified
    assert session.on_disconnect(LINEAR_URL, 100).events == []  # already unverified: one gap only
    assert session.resubscribe_frames() == []  # the reconnect subscribes again


def test_book_testvectors_keep_their_own_chain() -> None:
    """tardis' vectors join unrelated messages; the BTCPERP snapshot + delta pair chains (u+1)."""
    session = BybitLinearSession([], [])
    out = [session.on_ws(x.raw, None).events for x in lines_of("bybit_v5/orderbook/_testvectors_*")]
    perp = [e for events in out for e in events if e.symbol == "BTCPERP"]
    assert [(type(e).__name__, e.is_snapshot, e.instrument) for e in perp] == [
        ("BookUpdate", True, "BTC-USDC-PERP"),
        ("BookUpdate", False, "BTC-USDC-PERP"),
    ]
    assert perp[1].bids == [(28555.2, 0.677)]


# ---------------------------------------------------------------------------------------- liquidations
def test_all_liquidation_side_is_the_position_side() -> None:
    raw = first_line("bybit_v5/allLiquidation/*.jsonl")
    wire = json.loads(raw)["data"][0]
    (liq,) = BybitLinearSession([], []).on_ws(raw, 5).events
    assert isinstance(liq, Liquidation)
    assert wire["S"] == "Sell" and (liq.position_side, liq.order_side) == ("short", "buy")
    assert (liq.price, liq.qty_base, liq.ts_ns) == (float(wire["p"]), float(wire["v"]), wire["T"] * 1_000_000)
    assert liq.notional_quote == float(round(Decimal(wire["p"]) * Decimal(wire["v"]), 10))
    oracle = [e for e in oracle_entries() if e.get("type") == "liquidation" and e["symbol"] == wire["s"]]
    assert [e["side"] for e in oracle] == [liq.order_side]
    flipped = json.loads(raw)  # the same message for a liquidated long
    flipped["data"][0]["S"] = "Buy"
    (liq,) = BybitLinearSession([], []).on_ws(dumps(flipped), 5).events
    assert (liq.position_side, liq.order_side) == ("long", "sell")


def test_deprecated_liquidation_topic_matches_the_oracle() -> None:
    raw = first_line("bybit_v5/liquidation_deprecated/*.jsonl", lambda m: m["data"]["symbol"] == "GALAUSDT")
    (liq,) = BybitLinearSession([], []).on_ws(raw, 5).events
    oracle = [e for e in oracle_entries() if e.get("type") == "liquidation" and e["symbol"] == "GALAUSDT"]
    assert [(e["side"], e["amount"], e["price"]) for e in oracle] == [(liq.order_side, liq.qty_base, liq.price)]
    assert liq.position_side == "long"


# --------------------------------------------------------------------------------------------- tickers
def test_linear_ticker_deltas_merge_into_state() -> None:
    (path,) = data_files("bybit_v5/tickers/cryptofeed_*tickers_linear.jsonl")
    session = BybitLinearSession([], [])
    state: dict[str, dict] = defaultdict(dict)
    emitted = expected = 0
    doubled = 0
    for line in read_capture(path):
        msg = json.loads(line.raw)
        data = msg["data"]
        if msg["type"] == "snapshot":
            state[data["symbol"]] = {}
        carried = {k: data[k] for k in DERIV_FIELDS if data.get(k)}
        state[data["symbol"]].update(carried)  # absent fields keep their value
        events = session.on_ws(line.raw, line.recv_ts_ns, line.conn).events
        if not carried:
            assert events == []
            continue
        expected += 1
        (ticker,) = events
        assert isinstance(ticker, DerivTicker)
        s = state[data["symbol"]]
        assert ticker.ts_ns == msg["ts"] * 1_000_000 and ticker.recv_ts_ns == line.recv_ts_ns
        assert ticker.mark_price == float(s["markPrice"]) and ticker.index_price == float(s["indexPrice"])
        assert ticker.funding_rate == float(s["fundingRate"])
        assert ticker.next_funding_ts_ns == int(s["nextFundingTime"]) * 1_000_000
        assert ticker.open_interest_base == float(s["singleOpenInterest"])  # one side, like other venues
        assert ticker.open_interest_usd == float(s["singleOpenInterestValue"])
        single = Decimal(s["singleOpenInterest"])
        doubled += abs(Decimal(s["openInterest"]) - 2 * single) <= Decimal(10) ** single.as_tuple().exponent
        emitted += 1
    assert emitted == expected > 0
    assert doubled == emitted  # Bybit's openInterest counts both sides (single side rounded to its decimals)


def test_ticker_without_single_open_interest_uses_open_interest_and_matches_the_oracle() -> None:
    raw = first_line("bybit_v5/tickers/_testvectors_*", lambda m: m["topic"] == "tickers.BTCUSDT")
    (ticker,) = BybitLinearSession([], []).on_ws(raw, None).events
    (oracle,) = [
        e for e in oracle_entries() if e.get("type") == "derivative_ticker" and e.get("openInterest") == 52774.528
    ]
    assert (ticker.open_interest_base, ticker.funding_rate) == (oracle["openInterest"], oracle["fundingRate"])
    assert (ticker.mark_price, ticker.index_price) == (oracle["markPrice"], oracle["indexPrice"])
    assert ticker.next_funding_ts_ns == 1680681600000 * 1_000_000  # oracle: 2023-04-05T08:00:00.000Z
    assert ticker.open_interest_usd == 1506861070.82


def test_spot_tickers_emit_nothing_derivative() -> None:
    session = BybitSpotSession([], ["tickers"])
    lines = lines_of("bybit_v5/tickers/cryptofeed_*tickers_spot.jsonl")
    assert lines and all(session.on_ws(x.raw, x.recv_ts_ns, x.conn).events == [] for x in lines)


# ----------------------------------------------------------------------------------------- instruments
def load_instruments(session: BybitSession) -> int:
    fed = 0
    for line in lines_of("bybit_v5/rest_instruments/*.jsonl"):
        request = session.rest_request_for(line.conn)
        if request is not None:
            assert session.on_rest(request, line.raw, line.recv_ts_ns).requests == []  # a single page
            fed += 1
    return fed


@pytest.mark.parametrize("cls", [BybitLinearSession, BybitSpotSession])
def test_instruments_from_the_recorded_answer(cls: type[BybitSession]) -> None:
    session = cls([], [])
    assert load_instruments(session) == 1  # each session recognizes its own category only
    raw = next(json.loads(x.raw) for x in lines_of("bybit_v5/rest_instruments/*.jsonl") if cls.CATEGORY in x.conn)
    items = raw["result"]["list"]
    assert len(session.instruments) == len(items) > 500
    resolve = linear_instrument if cls is BybitLinearSession else spot_instrument
    for item in items:
        inst = session.instruments[item["symbol"]]
        assert (inst.base, inst.quote, inst.venue) == (item["baseCoin"], item["quoteCoin"], cls.VENUE)
        assert inst.tick_size == float(item["priceFilter"]["tickSize"])
        step = item["lotSizeFilter"].get("qtyStep") or item["lotSizeFilter"]["basePrecision"]
        assert inst.lot_size == float(step) and inst.contract_value == 1.0 and inst.linear
        assert resolve(item["symbol"]) == inst.instrument  # the fallback agrees with the metadata
        assert session.instrument_status[item["symbol"]] == item["status"]
        if item.get("contractType") == "LinearFutures":
            assert inst.kind == "future" and inst.expiry_ns == int(item["deliveryTime"]) * 1_000_000
        elif cls is BybitLinearSession:
            assert inst.kind == "perp" and inst.instrument.endswith("-PERP") and inst.expiry_ns is None
        else:
            assert inst.kind == "spot" and inst.instrument.endswith("-SPOT")
    if cls is BybitLinearSession:
        assert session.instruments["BTCUSDT-14AUG26"].instrument == "BTC-USDT-260814"
        assert session.instruments["BTCPERP"].instrument == "BTC-USDC-PERP"


def test_startup_pagination_and_rest_answers() -> None:
    session = BybitLinearSession(["BTCUSDT"], ["publicTrade"])
    (request,) = session.startup().requests
    assert request.url == "https://api.bybit.com/v5/market/instruments-info?category=linear&limit=1000"
    assert session.rest_request_for(request.url) == request
    assert session.rest_request_for("https://api.bybit.com/v5/market/tickers?category=linear") is None
    assert BybitSpotSession([], []).rest_request_for(request.url) is None
    page = {"retCode": 0, "retMsg": "OK", "result": {"category": "linear", "list": [], "nextPageCursor": "a=b&c"}}
    (follow,) = session.on_rest(request, json.dumps(page), 1).requests
    assert follow.url == request.url + "&cursor=a%3Db%26c"
    with pytest.raises(BadMessage, match="retCode 10001"):
        session.on_rest(request, json.dumps({"retCode": 10001, "retMsg": "params error"}), 1)
    spot_answer = next(x.raw for x in lines_of("bybit_v5/rest_instruments/*.jsonl") if "category=spot" in x.conn)
    with pytest.raises(BadMessage, match="spot"):
        session.on_rest(request, spot_answer, 1)


# ----------------------------------------------------------------------------------- wiring and control
@pytest.mark.parametrize("cls", [BybitLinearSession, BybitSpotSession])
def test_endpoints_batch_subscriptions(cls: type[BybitSession]) -> None:
    symbols = [f"COIN{i}USDT" for i in range(30)]
    session = cls(symbols, ["publicTrade", "orderbook.50", "tickers"])
    (endpoint,) = session.endpoints()
    assert endpoint.url == (LINEAR_URL if cls is BybitLinearSession else SPOT_URL)
    assert (endpoint.keepalive_s, json.loads(endpoint.keepalive_frame)) == (20.0, {"op": "ping"})
    frames = [json.loads(f) for f in endpoint.subscribe]
    assert all(f["op"] == "subscribe" and 0 < len(f["args"]) <= 10 for f in frames)
    topics = [t for f in frames for t in f["args"]]
    assert sorted(topics) == sorted(f"{c}.{s}" for s in symbols for c in ("publicTrade", "orderbook.50", "tickers"))
    with pytest.raises(ValueError, match="one orderbook depth"):
        cls(["BTCUSDT"], ["orderbook.1", "orderbook.200"])
    with pytest.raises(ValueError, match="split the symbols"):
        cls([f"C{i}USDT" for i in range(600)], ["publicTrade"])
    with pytest.raises(ValueError, match="unknown channels"):
        cls(["BTCUSDT"], ["orderbook.25"])


def test_acks_and_pongs_are_empty() -> None:
    lines = lines_of("bybit_v5/_other_channels/other/*.jsonl")
    assert lines
    for line in lines:
        for session in (BybitLinearSession([], []), BybitSpotSession([], [])):
            assert session.on_ws(line.raw, line.recv_ts_ns, line.conn) == Output(ignored="control frame")
    # pong shapes from the v5 docs: linear/inverse echo op "ping"; spot answers op "pong"
    linear_pong = '{"success":true,"ret_msg":"pong","conn_id":"0970e817","req_id":"","op":"ping"}'
    spot_pong = '{"op":"pong","args":["1675418560633"],"conn_id":"cfcb4ocsvfriu23r3er0-1b"}'
    assert BybitLinearSession([], []).on_ws(linear_pong, 1) == Output(ignored="control frame")
    assert BybitSpotSession([], []).on_ws(spot_pong.encode(), 1) == Output(ignored="control frame")


def real_delta() -> tuple[str, dict, str]:
    """A real linear snapshot and the delta that follows it."""
    lines = lines_of("bybit_v5/orderbook/cryptofeed_v3_*orderbook_linear.jsonl")
    snapshot = next(x.raw for x in lines if '"snapshot"' in x.raw and "BTCUSDT" in x.raw)
    delta = next(json.loads(x.raw) for x in lines if '"delta"' in x.raw and "BTCUSDT" in x.raw)
    return snapshot, delta, dumps(delta)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ("not json", "invalid JSON"),
        ('{"topic":"publicTrade.BTCUSDT","ts":1,"data":[', "invalid JSON"),
        ('{"topic":"kline.1.BTCUSDT","type":"snapshot","ts":1,"data":[]}', "unknown topic channel 'kline'"),
        ('{"success":false,"ret_msg":"error:handler not found","op":"subscribe"}', "subscribe rejected"),
        ('{"hello":1}', "neither a topic nor a known op"),
    ],
)
def test_bad_messages_raise(payload: str, reason: str) -> None:
    with pytest.raises(BadMessage, match=re.escape(reason)):
        BybitLinearSession([], []).on_ws(payload, 1)


@pytest.mark.parametrize(("field", "value"), [("p", "NaN"), ("p", "0"), ("v", "-0.004"), ("p", "inf"), ("S", "X")])
def test_bad_trade_fields_raise(field: str, value: str) -> None:
    msg = json.loads(first_line("bybit_v5/publicTrade/cryptofeed_*linear.jsonl"))
    msg["data"][0][field] = value
    with pytest.raises(BadMessage, match=rf"publicTrade message: .*\$\.data\[0\]\.{field}"):
        BybitLinearSession([], []).on_ws(dumps(msg), 1)


def test_bad_book_messages_raise_and_leave_the_book_alone() -> None:
    snapshot, delta, _ = real_delta()
    session = BybitLinearSession([], [])
    session.on_ws(snapshot, 1)
    book = session.books["orderbook.200.BTCUSDT"].levels
    before = (dict(book.bids), dict(book.asks), book.last_seq)
    for level, value in (("b", "-1"), ("a", "NaN")):
        bad = copy.deepcopy(delta)
        bad["data"][level] = [["65000.0", value]]
        with pytest.raises(BadMessage, match=rf"\$\.data\.{level}\[0\]\[1\]"):
            session.on_ws(dumps(bad), 2)
    crossed = json.loads(snapshot)
    crossed["data"]["b"], crossed["data"]["a"] = crossed["data"]["a"], crossed["data"]["b"]
    with pytest.raises(BadMessage, match="crossed snapshot"):
        session.on_ws(dumps(crossed), 3)
    wrong = copy.deepcopy(delta)
    wrong["data"]["s"] = "ETHUSDT"
    with pytest.raises(BadMessage, match=re.escape("book of 'ETHUSDT' on topic 'orderbook.200.BTCUSDT'")):
        session.on_ws(dumps(wrong), 4)
    assert (book.bids, book.asks, book.last_seq) == before and book.verified
    (update,) = session.on_ws(dumps(delta), 5).events  # the rejected messages changed nothing
    assert isinstance(update, BookUpdate)
    # a delta the session rejected is a hole in the chain: the next one reports it
    skipped = copy.deepcopy(delta)
    skipped["data"]["u"] += 2
    (gap,) = session.on_ws(dumps(skipped), 6).events
    assert isinstance(gap, BookGap) and gap.first_bad_seq == delta["data"]["u"] + 2


def test_ticker_with_nan_mark_price_raises() -> None:
    msg = json.loads(first_line("bybit_v5/tickers/cryptofeed_*tickers_linear.jsonl"))
    msg["data"]["markPrice"] = "NaN"
    with pytest.raises(BadMessage, match="markPrice 'NaN' is not finite"):
        BybitLinearSession([], []).on_ws(dumps(msg), 1)


def test_spot_session_has_no_liquidations() -> None:
    raw = first_line("bybit_v5/allLiquidation/*.jsonl")
    with pytest.raises(BadMessage, match="unknown topic channel 'allLiquidation'"):
        BybitSpotSession([], []).on_ws(raw, 1)


def test_bytes_and_spaced_json_are_routed_like_compact_text() -> None:
    """The topic is peeked at without a parse: bytes (what the connector receives) and JSON with spaces
    (re-serialized) reach the same handler as the venue's compact text."""
    for pattern in ("bybit_v5/publicTrade/cryptofeed_*linear.jsonl", "bybit_v5/orderbook/cryptofeed_v3_*linear.jsonl"):
        raw = first_line(pattern)
        spaced = json.dumps(json.loads(raw), indent=1)
        assert '"topic":"' not in spaced
        expected = BybitLinearSession([], []).on_ws(raw, 7).events
        assert expected
        assert BybitLinearSession([], []).on_ws(raw.encode(), 7).events == expected
        assert BybitLinearSession([], []).on_ws(spaced, 7).events == expected
