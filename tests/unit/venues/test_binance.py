"""Binance USD-M and spot sessions.

Golden tests replay the real captures in ../shared/data (depth with its REST snapshots, trades, forceOrder,
markPrice, open interest) and check the output against facts computed here independently from the raw
JSON. What no capture covers is built by hand in the venue's documented shape, and says so: exchangeInfo
(USD-M and spot), every spot message, and sequence breaks beyond removing real events.
"""

from __future__ import annotations

import copy
import heapq
import json
import random
from collections import deque
from decimal import Decimal

import msgspec
import pytest

from tapeline.codec.avro import AvroCodec
from tapeline.domain.book import L2Book
from tapeline.domain.errors import BadMessage
from tapeline.domain.events import BookGap, BookUpdate, DerivTicker, Liquidation, Trade, as_record
from tapeline.io.capture import CaptureLine, drive, read_capture
from tapeline.venues.base import Output, RestRequest
from tapeline.venues.binance.session import BinanceSpotSession, BinanceUsdmSession, spot_stream_urls, usdm_stream_urls
from tapeline.venues.common import notional
from tests.support.data import data_files
from tests.support.venues import usdm_trades

DEPTH_SOURCES = ["cryptofeed_2021-04-17", "cryptofeed_2021-07-22", "hftbacktest_2024-08-08"]
HFT_SYMBOL = "BTCUSDT"  # the hftbacktest snapshot was recorded without its URL: it is BTCUSDT's


# ------------------------------------------------------------------------------------------------ helpers


def _capture(kind: str, source: str) -> list[CaptureLine]:
    return [line for path in data_files(f"binance_usdm/{kind}/{source}*") for line in read_capture(path)]


def _merged(source: str) -> list[tuple[str, CaptureLine]]:
    """Depth events and REST snapshots of one recording, in receive order (ties: websocket first)."""
    ws = [(line.recv_ts_ns, 0, i, "ws", line) for i, line in enumerate(_capture("depthUpdate", source))]
    rest = [(line.recv_ts_ns, 1, i, "rest", line) for i, line in enumerate(_capture("rest_depth_snapshot", source))]
    return [(kind, line) for *_, kind, line in heapq.merge(ws, rest)]


def _feed(session: BinanceUsdmSession, kind: str, line: CaptureLine) -> Output:
    if kind == "rest":
        request = session.rest_request_for(line.conn) if line.conn else session.book(HFT_SYMBOL).request
        return session.on_rest(request, line.raw, line.recv_ts_ns)
    return session.on_ws(line.raw, line.recv_ts_ns, line.conn)


class _Independent:
    """Per symbol, from the raw JSON alone: the snapshot, the events, where the bridge is, the final book."""

    def __init__(self, source: str) -> None:
        self.snapshots: dict[str, dict] = {}
        for line in _capture("rest_depth_snapshot", source):
            symbol = line.conn.split("symbol=")[1].split("&")[0] if line.conn else HFT_SYMBOL
            self.snapshots[symbol] = json.loads(line.raw)
        self.events: dict[str, list[dict]] = {}
        for line in _capture("depthUpdate", source):
            data = json.loads(line.raw)["data"]
            self.events.setdefault(data["s"], []).append(data)
        self.bridge: dict[str, int] = {}
        for symbol, snap in self.snapshots.items():
            lid = snap["lastUpdateId"]
            self.bridge[symbol] = next(i for i, e in enumerate(self.events[symbol]) if e["U"] <= lid <= e["u"])

    def final_book(self, symbol: str) -> tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]:
        snap = self.snapshots[symbol]
        sides = ({Decimal(p): Decimal(q) for p, q in snap["bids"]}, {Decimal(p): Decimal(q) for p, q in snap["asks"]})
        for event in self.events[symbol][self.bridge[symbol] :]:
            for side, levels in zip(sides, (event["b"], event["a"]), strict=True):
                for p, q in levels:
                    side[Decimal(p)] = Decimal(q)
        return tuple({p: q for p, q in side.items() if q > 0} for side in sides)


def _as_decimal(side: dict[float, float]) -> dict[Decimal, Decimal]:
    return {Decimal(repr(p)): Decimal(repr(q)) for p, q in side.items()}


def _fork(session: BinanceUsdmSession, symbol: str) -> BinanceUsdmSession:
    """A what-if copy of the session: its own copy of one symbol's book, everything else shared."""
    probe = copy.copy(session)
    probe.books = dict(session.books)
    state = copy.copy(session.books[symbol])
    state.levels = L2Book()
    state.levels.bids, state.levels.asks = (
        dict(session.books[symbol].levels.bids),
        dict(session.books[symbol].levels.asks),
    )
    state.levels.last_seq, state.levels.verified = (
        session.books[symbol].levels.last_seq,
        session.books[symbol].levels.verified,
    )
    state.buffer = deque(state.buffer, maxlen=state.buffer.maxlen)
    probe.books[symbol] = state
    return probe


# --------------------------------------------------------------------------- USD-M depth: golden replays


@pytest.mark.parametrize("source", DEPTH_SOURCES)
def test_depth_replay_has_zero_gaps_and_rebuilds_the_book(source: str) -> None:
    truth = _Independent(source)
    session = BinanceUsdmSession(list(truth.snapshots), ["depth"])
    updates: dict[str, list[BookUpdate]] = {s: [] for s in truth.snapshots}
    requests = []
    for kind, line in _merged(source):
        out = _feed(session, kind, line)
        assert not [e for e in out.events if isinstance(e, BookGap)], (source, line.line)
        for event in out.events:
            updates[event.symbol].append(event)
        requests += out.requests
    # one snapshot request per symbol (its first event), answered by the recorded snapshot
    assert sorted(r.key for r in requests) == sorted(f"depth:{s}" for s in truth.snapshots)
    assert len(truth.snapshots) == {"cryptofeed_2021-04-17": 4, "cryptofeed_2021-07-22": 4}.get(source, 1)
    for symbol, events in truth.events.items():
        bridge, lid = truth.bridge[symbol], truth.snapshots[symbol]["lastUpdateId"]
        # independent facts: everything before the bridge is older than the snapshot; pu always chains
        assert all(e["u"] < lid for e in events[:bridge])
        assert all(b["pu"] == a["u"] for a, b in zip(events[bridge:], events[bridge + 1 :], strict=False))
        state = session.books[symbol]
        assert (state.state, state.gaps, state.dropped, state.snapshots) == ("live", 0, bridge, 1)
        snapshot, *deltas = updates[symbol]
        assert snapshot.is_snapshot and snapshot.last_seq == lid
        assert len(snapshot.bids) == sum(1 for _, q in truth.snapshots[symbol]["bids"] if Decimal(q) > 0)
        # every event from the bridge on was applied, in order, with its own sequence numbers
        assert [(d.first_seq, d.last_seq, d.prev_seq) for d in deltas] == [
            (e["U"], e["u"], e["pu"]) for e in events[bridge:]
        ]
        assert all(not d.is_snapshot and d.instrument == f"{symbol[:-4]}-USDT-PERP" for d in deltas)
        bids, asks = truth.final_book(symbol)
        assert _as_decimal(state.levels.bids) == bids and _as_decimal(state.levels.asks) == asks, symbol
        assert state.levels.verified and not state.levels.crossed()


@pytest.mark.parametrize("source", DEPTH_SOURCES)
def test_every_removed_depth_event_after_sync_is_detected(source: str) -> None:
    """Drop any one event after the book went live: the very next event of that symbol reports the gap.

    For every event e_i after the bridge (except each symbol's last one, after which nothing arrives to
    show the hole), a what-if copy of the session as it stood before e_i is fed e_(i+1) instead.
    """
    truth = _Independent(source)
    session = BinanceUsdmSession(list(truth.snapshots), ["depth"])
    raw_by_symbol: dict[str, list[str]] = {}
    for line in _capture("depthUpdate", source):
        raw_by_symbol.setdefault(json.loads(line.raw)["data"]["s"], []).append(line.raw)
    snapshots = {s: json.dumps(snap) for s, snap in truth.snapshots.items()}
    position = dict.fromkeys(raw_by_symbol, 0)
    checked = pending = 0
    for kind, line in _merged(source):
        if kind == "ws":
            symbol = json.loads(line.raw)["data"]["s"]
            i, events = position[symbol], truth.events[symbol]
            position[symbol] += 1
            if truth.bridge[symbol] < i < len(events) - 1:
                probe = _fork(session, symbol)
                out = probe.on_ws(raw_by_symbol[symbol][i + 1], line.recv_ts_ns, line.conn)
                if session.books[symbol].state == "pending":  # e_i would wait in the buffer for the snapshot:
                    out = probe.on_rest(probe.books[symbol].request, snapshots[symbol], 1)  # the hole shows then
                    assert _kinds(out)[:2] == ["snapshot", "delta"]
                    out.events = [e for e in out.events if isinstance(e, BookGap) or e.last_seq >= events[i + 1]["u"]]
                    pending += 1
                (gap,) = out.events
                assert isinstance(gap, BookGap) and gap.symbol == symbol
                assert (gap.last_good_seq, gap.first_bad_seq) == (events[i - 1]["u"], events[i + 1]["U"])
                assert [r.key for r in out.requests] == [f"depth:{symbol}"]
                assert not probe.books[symbol].levels.verified and probe.books[symbol].state == "pending"
                assert session.books[symbol].gaps == 0  # the real session is untouched
                checked += 1
        _feed(session, kind, line)
    assert checked == sum(len(e) - truth.bridge[s] - 2 for s, e in truth.events.items())
    assert pending == {"hftbacktest_2024-08-08": 1}.get(source, 0)  # e_5 arrives before the snapshot there
    assert all(b.gaps == 0 for b in session.books.values())


@pytest.mark.parametrize("source", DEPTH_SOURCES)
def test_removing_an_event_end_to_end(source: str) -> None:
    """Whole replays without one real event: one gap, then no updates until a newer snapshot bridges."""
    truth = _Independent(source)
    merged = _merged(source)
    ws_positions = [i for i, (kind, _) in enumerate(merged) if kind == "ws"]
    symbol = next(iter(truth.snapshots))
    mine = [i for i in ws_positions if json.loads(merged[i][1].raw)["data"]["s"] == symbol]
    bridge = truth.bridge[symbol]
    for k in (bridge + 1, (bridge + len(mine)) // 2, len(mine) - 2):
        session = BinanceUsdmSession(list(truth.snapshots), ["depth"])
        events = []
        for j, (kind, line) in enumerate(merged):
            if j != mine[k]:
                events += [e for e in _feed(session, kind, line).events if e.symbol == symbol]
        gaps = [i for i, e in enumerate(events) if isinstance(e, BookGap)]
        assert len(gaps) == 1 and events[gaps[0]].first_bad_seq == truth.events[symbol][k + 1]["U"]
        assert len(events) == gaps[0] + 1  # nothing more for this symbol: its book waits for a snapshot
        assert 1 + k - bridge == gaps[0]  # snapshot + the updates before the hole
    # removing the bridging event itself: the snapshot is never verified, a newer one is requested
    session = BinanceUsdmSession(list(truth.snapshots), ["depth"])
    requests = [
        r.key for j, (kind, line) in enumerate(merged) if j != mine[bridge] for r in _feed(session, kind, line).requests
    ]
    assert requests.count(f"depth:{symbol}") == 2 and session.books[symbol].state == "pending"


def test_hftbacktest_book_matches_the_recorded_book_ticker() -> None:
    """bookTicker shares the depth update-id space: where ids coincide, the top of book must agree exactly."""
    tickers = {}
    for line in _capture("bookTicker", "hftbacktest_2024-08-08"):
        d = json.loads(line.raw)["data"]
        tickers[d["u"]] = (float(d["b"]), float(d["B"]), float(d["a"]), float(d["A"]))
    session = BinanceUsdmSession([HFT_SYMBOL], ["depth"])
    state = session.book(HFT_SYMBOL)
    compared = 0
    for kind, line in _merged("hftbacktest_2024-08-08"):
        _feed(session, kind, line)
        if state.state == "live" and state.last_u in tickers:
            bid, ask = state.levels.best_bid(), state.levels.best_ask()
            assert (bid, state.levels.bids[bid], ask, state.levels.asks[ask]) == tickers[state.last_u]
            compared += 1
    assert compared > 500  # 629 coinciding ids in this capture


def test_replay_driver_takes_the_unlabelled_snapshot_for_the_only_symbol() -> None:
    """replay.drive sends a URL-less REST line to on_ws: a bare snapshot belongs to the session's one symbol."""
    session = BinanceUsdmSession([HFT_SYMBOL], ["depth"])
    kinds = {"BookGap": 0, "BookUpdate": 0}
    for _, line in _merged("hftbacktest_2024-08-08"):
        for event in drive(session, line).events:
            kinds[type(event).__name__] += 1
    assert kinds == {"BookGap": 0, "BookUpdate": 1 + 6551 - 4}
    with pytest.raises(BadMessage, match="without a symbol"):
        BinanceUsdmSession(["BTCUSDT", "ETHUSDT"], ["depth"]).on_ws('{"lastUpdateId":1,"bids":[],"asks":[]}', 1)


# ------------------------------------------------------------------------- USD-M depth: hand-built rules


def _depth(U: int, u: int, pu: int, b=(), a=(), s: str = "BTCUSDT", E: int = 1000) -> bytes:
    data = {"e": "depthUpdate", "E": E, "T": E - 1, "s": s, "U": U, "u": u, "pu": pu,
            "b": [[str(p), str(q)] for p, q in b], "a": [[str(p), str(q)] for p, q in a]}  # fmt: skip
    return json.dumps({"stream": f"{s.lower()}@depth@100ms", "data": data}).encode()


def _snapshot(lid: int, bids=((99.0, 1.0),), asks=((101.0, 1.0),)) -> bytes:
    return json.dumps({"lastUpdateId": lid, "E": 5, "T": 4, "bids": [[str(p), str(q)] for p, q in bids],
                       "asks": [[str(p), str(q)] for p, q in asks]}).encode()  # fmt: skip


def _kinds(out: Output) -> list[str]:
    return [("snapshot" if e.is_snapshot else "delta") if isinstance(e, BookUpdate) else type(e).__name__
            for e in out.events]  # fmt: skip


def test_usdm_bridging_rule_edges() -> None:
    session = BinanceUsdmSession(["BTCUSDT"], ["depth"])
    out = session.on_ws(_depth(90, 99, 80), 1)
    assert out.events == [] and [r.url for r in out.requests] == [
        "https://fapi.binance.com/fapi/v1/depth?symbol=BTCUSDT&limit=1000"
    ]
    assert session.on_ws(_depth(100, 100, 99), 2).requests == []  # buffered, no second request
    # u == lastUpdateId bridges on USD-M (U <= 100 <= u); the earlier event (u < 100) is dropped
    out = session.on_rest(session.book("BTCUSDT").request, _snapshot(100), 3)
    assert _kinds(out) == ["snapshot", "delta"] and out.events[1].last_seq == 100
    assert (out.events[0].ts_ns, out.events[0].recv_ts_ns) == (4_000_000, 3)  # snapshot T, and its receipt
    out = session.on_ws(_depth(105, 110, 100, b=[(99.5, 2)], a=[(101, 0)]), 4)  # U jumps: ids are not contiguous
    assert _kinds(out) == ["delta"]
    assert session.books["BTCUSDT"].levels.top(5) == ([(99.5, 2.0), (99.0, 1.0)], [])


def test_usdm_snapshot_older_than_the_stream_asks_again_without_a_gap() -> None:
    session = BinanceUsdmSession(["BTCUSDT"], ["depth"])
    request = session.on_ws(_depth(200, 210, 190), 1).requests[0]
    out = session.on_rest(request, _snapshot(150), 2)  # events 151..199 are lost between them
    assert out.events == [] and out.requests == [request]
    out = session.on_rest(request, _snapshot(205), 3)
    assert _kinds(out) == ["snapshot", "delta"]


def test_usdm_pu_break_reports_gap_buffers_and_resyncs() -> None:
    session = BinanceUsdmSession(["BTCUSDT"], ["depth"])
    request = session.on_ws(_depth(10, 20, 5), 1).requests[0]
    session.on_rest(request, _snapshot(15), 2)
    assert _kinds(session.on_ws(_depth(21, 30, 20), 3)) == ["delta"]
    out = session.on_ws(_depth(41, 50, 40, b=[(98, 1)]), 4)  # 31..40 lost
    (gap,) = out.events
    assert (gap.reason, gap.last_good_seq, gap.first_bad_seq, gap.recv_ts_ns) == ("pu 40 != previous u 30", 30, 41, 4)
    assert out.requests == [request] and not session.books["BTCUSDT"].levels.verified
    assert session.on_ws(_depth(51, 60, 50), 5).events == []  # buffered while the snapshot is pending
    out = session.on_rest(request, _snapshot(45, bids=[(97, 3)]), 6)
    assert _kinds(out) == ["snapshot", "delta", "delta"]
    assert session.books["BTCUSDT"].levels.bids == {97.0: 3.0, 98.0: 1.0}
    assert session.on_rest(request, _snapshot(1), 7).events == []  # a late answer to a live book is ignored


def test_usdm_disconnect_gaps_the_books_of_that_connection_only() -> None:
    session = BinanceUsdmSession(["BTCUSDT", "ETHUSDT"], ["depth"])
    urls = {s: session._depth_urls[s] for s in ("BTCUSDT", "ETHUSDT")}
    assert urls["BTCUSDT"] == urls["ETHUSDT"]  # one /public connection carries both
    for symbol in urls:
        request = session.on_ws(_depth(10, 20, 5, s=symbol), 1, "wss://a").requests[0]
        session.on_rest(request, _snapshot(15), 2)
    session.on_ws(_depth(21, 30, 20, s="ETHUSDT"), 1, "wss://b")  # ETHUSDT's latest feed is another URL
    out = session.on_disconnect("wss://a", 9)
    assert [(g.symbol, g.reason, g.last_good_seq) for g in out.events] == [("BTCUSDT", "connection wss://a closed", 20)]
    assert session.books["BTCUSDT"].state == "idle" and session.books["ETHUSDT"].state == "live"
    out = session.on_ws(_depth(30, 40, 25), 10, "wss://a")  # the next event asks for a new snapshot
    assert out.events == [] and [r.key for r in out.requests] == ["depth:BTCUSDT"]
    # a book that never received an event is found through the endpoint that carries its stream
    fresh = BinanceUsdmSession(["BTCUSDT"], ["depth", "aggTrade"])
    fresh.on_rest(fresh.book("BTCUSDT").request, _snapshot(15), 1)
    fresh.on_ws(_depth(10, 20, 5), 2)
    assert fresh.books["BTCUSDT"].url == fresh._depth_urls["BTCUSDT"]  # known before any event named it
    (gap,) = fresh.on_disconnect(fresh._depth_urls["BTCUSDT"], 3).events
    assert gap.symbol == "BTCUSDT" and fresh.on_disconnect("wss://elsewhere", 4).events == []


def test_usdm_failed_snapshot_and_crossed_snapshot_ask_again() -> None:
    session = BinanceUsdmSession(["BTCUSDT"], ["depth"])
    request = session.on_ws(_depth(10, 20, 5), 1).requests[0]
    assert session.on_ws(_depth(21, 30, 20), 2).requests == []
    session.on_rest_error(request, "timeout", 3)
    assert session.on_ws(_depth(31, 40, 30), 4).requests == [request]
    with pytest.raises(BadMessage, match="crossed snapshot"):
        session.on_rest(request, _snapshot(35, bids=[(102, 1)], asks=[(101, 1)]), 5)
    assert session.on_ws(_depth(41, 50, 40), 6).requests == [request]
    with pytest.raises(BadMessage, match="answered error -1121: Invalid symbol"):
        session.on_rest(request, b'{"code":-1121,"msg":"Invalid symbol."}', 7)


def test_usdm_buffer_is_bounded() -> None:
    session = BinanceUsdmSession(["BTCUSDT"], ["depth"])
    session.MAX_BUFFER = 3
    for i in range(10):
        session.on_ws(_depth(10 * i + 1, 10 * i + 10, 10 * i), i)
    assert [ev.U for ev, _ in session.books["BTCUSDT"].buffer] == [71, 81, 91]


# ------------------------------------------------------------------------------------------ USD-M trades


@pytest.mark.parametrize("pattern", ["binance_usdm/aggTrade/*", "binance_usdm/trade/*"])
def test_session_trades_match_the_json(pattern: str) -> None:
    session = BinanceUsdmSession(["BTCUSDT"], ["aggTrade", "trade"])
    n = 0
    for path in data_files(pattern):
        for line in read_capture(path):
            (trade,) = session.on_ws(line.raw, line.recv_ts_ns or 7).events
            assert session.on_ws(line.raw.encode(), line.recv_ts_ns or 7).events == [trade]  # bytes as text
            msg = json.loads(line.raw)
            d = msg.get("data", msg)
            assert (trade.price, trade.qty_base) == (float(d["p"]), float(d["q"]))
            assert (trade.side, trade.ts_ns, trade.recv_ts_ns) == ("sell" if d["m"] else "buy", d["T"] * 10**6,
                                                                  line.recv_ts_ns or 7)  # fmt: skip
            n += 1
    assert n > 80


def test_parse_takes_unusual_layouts_and_numbers_exactly() -> None:
    spaced = ('{ "stream" : "btcusdt@trade", "data" : {"e":"trade","E":2,"T":1,"s":"BTCUSDT","t":9,"p":"3.5",'
              '"q":"2","m":false}}')  # fmt: skip
    (t,) = usdm_trades(spaced, 5)
    assert (t.price, t.qty_base, t.notional_quote, t.side, t.trade_id) == (3.5, 2.0, 7.0, "buy", "9")
    bare = '{"e":"trade","E":2,"T":1,"s":"BTCUSDT","t":9,"p":"1e2","q":"0.5","m":true}'
    assert usdm_trades(bare, 3)[0].notional_quote == 50.0
    with pytest.raises(BadMessage, match="price 'inf' is not finite"):
        usdm_trades('{"e":"trade","E":2,"T":1,"s":"BTCUSDT","t":9,"p":"inf","q":"1","m":true}')
    with pytest.raises(BadMessage, match="price '' is not a number"):
        BinanceUsdmSession([], ["trade"]).on_ws('{"e":"trade","E":2,"T":1,"s":"X","t":9,"p":"","q":"1","m":true}', 1)


def test_notional_is_bit_identical_to_round_10() -> None:
    rng = random.Random(7)
    for _ in range(50_000):
        p = rng.randint(1, 10 ** rng.randint(1, 9)) / 10 ** rng.randint(0, 8)
        q = rng.randint(1, 10 ** rng.randint(1, 9)) / 10 ** rng.randint(0, 8)
        assert notional(p, q) == round(p * q, 10), (p, q)
    for path in data_files("binance_usdm/trade/*"):
        for line in read_capture(path):
            d = json.loads(line.raw)["data"]
            assert usdm_trades(line.raw)[0].notional_quote == round(float(d["p"]) * float(d["q"]), 10)


# ----------------------------------------------------------------------------- USD-M liquidations, tickers


def _lines(pattern: str) -> list[str]:
    return [line.raw for path in data_files(pattern) for line in read_capture(path)]


def test_force_orders_from_the_recorded_vectors() -> None:
    session = BinanceUsdmSession(["BTCUSDT"], ["forceOrder"])
    results = []
    for raw in _lines("binance_usdm/forceOrder/*"):
        order = json.loads(raw)["data"]["o"]
        if order.get("st") == 2:  # COIN-M (BTCUSD_PERP, quantity in contracts): refused, not mis-sized
            with pytest.raises(BadMessage, match="COIN-M"):
                session.on_ws(raw, 1)
            continue
        (liq,) = session.on_ws(raw, 1).events
        assert isinstance(liq, Liquidation)
        # S is the ORDER side: SELL closes a long. Quantity: z (filled); price: ap (average fill).
        expected_side = {"SELL": ("long", "sell"), "BUY": ("short", "buy")}[order["S"]]
        assert (liq.position_side, liq.order_side) == expected_side
        assert (liq.qty_base, liq.price) == (float(order["z"]), float(order["ap"]))
        assert liq.ts_ns == order["T"] * 1_000_000 and liq.notional_quote == round(liq.price * liq.qty_base, 10)
        results.append((liq.symbol, liq.position_side, liq.qty_base, liq.price))
    assert sorted(results) == [("BTCUSDT", "long", 0.042, 86012.3), ("BTCUSDT", "short", 0.014, 4706.04)]


def test_force_order_fallbacks_and_rejections() -> None:
    def msg(**o):
        order = {"s": "ETHUSDT", "S": "SELL", "o": "LIMIT", "f": "IOC", "q": "2", "p": "100", "ap": "0",
                 "X": "NEW", "l": "0", "z": "0", "T": 5} | o  # fmt: skip
        return json.dumps({"stream": "ethusdt@forceOrder", "data": {"e": "forceOrder", "E": 6, "o": order}})

    session = BinanceUsdmSession(["ETHUSDT"], ["forceOrder"])
    (liq,) = session.on_ws(msg(), 1).events  # nothing filled yet: the order's own quantity and price
    assert (liq.qty_base, liq.price, liq.instrument) == (2.0, 100.0, "ETH-USDT-PERP")
    (liq,) = session.on_ws(msg(z="1.5", ap="99", X="EXPIRED"), 1).events  # IOC expired partly filled
    assert (liq.qty_base, liq.price, liq.notional_quote) == (1.5, 99.0, 148.5)
    for bad, reason in [({"S": "SIDEWAYS"}, "neither BUY nor SELL"), ({"q": "x"}, "quantity 'x' is not a number"),
                        ({"q": "0"}, "must be positive")]:  # fmt: skip
        with pytest.raises(BadMessage, match=reason):
            session.on_ws(msg(**bad), 1)


def test_mark_price_vectors() -> None:
    session = BinanceUsdmSession(["BTCUSDT"], ["markPrice"])
    tickers: list[DerivTicker] = []
    for raw in _lines("binance_usdm/markPriceUpdate/*"):
        data = json.loads(raw)["data"]
        out = session.on_ws(raw, 3).events
        assert len(out) == (len(data) if isinstance(data, list) else 1)
        tickers += out
    by = {(t.symbol, t.ts_ns // 1_000_000): t for t in tickers}
    t = by[("BTCUSDT", 1617308820003)]
    assert (t.mark_price, t.index_price, t.funding_rate, t.next_funding_ts_ns) == (
        58940.14924532, 58857.26693664, 0.00058455, 1617321600000 * 1_000_000)  # fmt: skip
    assert by[("BTCUSDT", 1569888003001)].index_price is None  # 2019 payload: no index price
    quarterly = by[("BTCBUSD_210129", 1609830121004)]  # r "0.00000000", T 0: no funding on a delivery contract
    assert (quarterly.funding_rate, quarterly.next_funding_ts_ns) == (None, None)
    assert quarterly.instrument == "BTC-BUSD-210129"
    assert by[("BTCUSDT", 1791283239000)].funding_rate == -0.00003629
    assert all(t.open_interest_base is None for t in tickers)
    blank = '{"e":"markPriceUpdate","E":1,"s":"ETHUSD_250926","p":"1","i":"1","P":"1","r":"","T":0}'
    assert session.on_ws(blank, 1).events[0].funding_rate is None


def test_open_interest_polls_and_usd_from_the_mark() -> None:
    session = BinanceUsdmSession(["BTCUSDT", "BTCUSDT_220624"], ["openInterest", "markPrice"])
    assert [r.url for r in session.startup().requests] == [
        "https://fapi.binance.com/fapi/v1/exchangeInfo",
        "https://fapi.binance.com/fapi/v1/openInterest?symbol=BTCUSDT",
        "https://fapi.binance.com/fapi/v1/openInterest?symbol=BTCUSDT_220624",
    ]
    assert [r.key for r in session.poll().requests] == ["openInterest:BTCUSDT", "openInterest:BTCUSDT_220624"]
    bodies = {json.loads(raw)["symbol"]: raw for raw in _lines("binance_usdm/_other_channels/rest_open_interest/*")}
    request = session.rest_request_for("https://fapi.binance.com/fapi/v1/openInterest?symbol=BTCUSDT")
    (before,) = session.on_rest(request, bodies["BTCUSDT"], 1).events
    assert (before.open_interest_base, before.open_interest_usd) == (84617.188, None)
    assert before.ts_ns == 1654336844754 * 10**6
    assert before.mark_price is None and before.funding_rate is None
    session.on_ws('{"stream":"btcusdt@markPrice@1s","data":{"e":"markPriceUpdate","E":1,"s":"BTCUSDT","p":"30000",'
                  '"i":"1","r":"0.0001","T":2}}', 2)  # fmt: skip
    (after,) = session.on_rest(request, bodies["BTCUSDT"], 3).events
    assert after.open_interest_usd == round(84617.188 * 30000, 10)
    (dated,) = session.on_rest(session.poll().requests[1], bodies["BTCUSDT_220624"], 4).events
    assert (dated.instrument, dated.open_interest_base) == ("BTC-USDT-220624", 1275.028)
    assert BinanceUsdmSession(["BTCUSDT"], ["depth"]).poll().requests == []


# Hand-written from the documented shape of GET /fapi/v1/exchangeInfo (no capture of it exists in
# ../shared/data): a perpetual, a quarterly delivery contract and a 1000x-denominated perpetual, with the
# documented filters; unrelated fields kept to show they are ignored.
USDM_EXCHANGE_INFO = {
    "timezone": "UTC",
    "serverTime": 1732147200000,
    "futuresType": "U_MARGINED",
    "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400}],
    "exchangeFilters": [],
    "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}],
    "symbols": [
        {"symbol": "BTCUSDT", "pair": "BTCUSDT", "contractType": "PERPETUAL", "deliveryDate": 4133404800000,
         "onboardDate": 1569398400000, "status": "TRADING", "maintMarginPercent": "2.5000",
         "requiredMarginPercent": "5.0000", "baseAsset": "BTC", "quoteAsset": "USDT", "marginAsset": "USDT",
         "pricePrecision": 2, "quantityPrecision": 3, "baseAssetPrecision": 8, "quotePrecision": 8,
         "underlyingType": "COIN", "underlyingSubType": ["PoW"], "settlePlan": 0, "triggerProtect": "0.0500",
         "liquidationFee": "0.012500", "marketTakeBound": "0.05",
         "filters": [
             {"filterType": "PRICE_FILTER", "minPrice": "556.80", "maxPrice": "4529764", "tickSize": "0.10"},
             {"filterType": "LOT_SIZE", "stepSize": "0.001", "maxQty": "1000", "minQty": "0.001"},
             {"filterType": "MARKET_LOT_SIZE", "stepSize": "0.001", "maxQty": "120", "minQty": "0.001"},
             {"filterType": "MAX_NUM_ORDERS", "limit": 200},
             {"filterType": "MIN_NOTIONAL", "notional": "100"},
             {"filterType": "PERCENT_PRICE", "multiplierUp": "1.0500", "multiplierDown": "0.9500",
              "multiplierDecimal": "4"}],
         "orderTypes": ["LIMIT", "MARKET", "STOP"], "timeInForce": ["GTC", "IOC", "FOK", "GTX"]},
        {"symbol": "BTCUSDT_250627", "pair": "BTCUSDT", "contractType": "CURRENT_QUARTER",
         "deliveryDate": 1751011200000, "onboardDate": 1735286400000, "status": "TRADING",
         "baseAsset": "BTC", "quoteAsset": "USDT", "marginAsset": "USDT",
         "filters": [{"filterType": "PRICE_FILTER", "minPrice": "576.30", "maxPrice": "1000000", "tickSize": "0.10"},
                     {"filterType": "LOT_SIZE", "stepSize": "0.001", "maxQty": "100", "minQty": "0.001"}]},
        {"symbol": "1000PEPEUSDT", "pair": "1000PEPEUSDT", "contractType": "PERPETUAL",
         "deliveryDate": 4133404800000, "onboardDate": 1683014400000, "status": "TRADING",
         "baseAsset": "1000PEPE", "quoteAsset": "USDT", "marginAsset": "USDT",
         "filters": [{"filterType": "PRICE_FILTER", "minPrice": "0.0000010", "maxPrice": "200",
                      "tickSize": "0.0000001"},
                     {"filterType": "LOT_SIZE", "stepSize": "1", "maxQty": "80000000", "minQty": "1"}]},
    ],
}  # fmt: skip


def test_usdm_exchange_info_from_the_documented_shape() -> None:
    session = BinanceUsdmSession(["BTCUSDT"], ["aggTrade"])
    (request,) = session.startup().requests
    assert session.rest_request_for("https://fapi.binance.com/fapi/v1/exchangeInfo") == request
    assert session.on_rest(request, json.dumps(USDM_EXCHANGE_INFO), 1).events == []
    perp, quarterly, pepe = (session.instruments[s] for s in ("BTCUSDT", "BTCUSDT_250627", "1000PEPEUSDT"))
    assert (perp.instrument, perp.kind, perp.tick_size, perp.lot_size, perp.expiry_ns) == (
        "BTC-USDT-PERP", "perp", 0.1, 0.001, None)  # fmt: skip
    assert (quarterly.instrument, quarterly.kind, quarterly.expiry_ns) == (
        "BTC-USDT-250627", "future", 1751011200000 * 1_000_000)  # fmt: skip
    assert (pepe.instrument, pepe.base, pepe.tick_size, pepe.lot_size) == ("1000PEPE-USDT-PERP", "1000PEPE", 1e-7, 1.0)
    assert all(i.linear and i.contract_value == 1.0 and i.venue == "binance-usdm" for i in session.instruments.values())
    with pytest.raises(BadMessage, match="unexpected answer"):
        session.on_rest(request, b'{"symbols": 5}', 1)


def test_metadata_ids_win_over_suffix_guessing() -> None:
    """A quote the suffix rule does not know becomes tradeable once exchangeInfo names base and quote."""
    session = BinanceUsdmSession(["BTCUSDE"], ["aggTrade"])
    raw = '{"e":"aggTrade","E":1,"a":1,"s":"BTCUSDE","p":"1","q":"1","f":1,"l":1,"T":1,"m":false}'
    with pytest.raises(BadMessage, match="cannot split"):
        session.on_ws(raw, 1)
    info = {"symbols": [{"symbol": "BTCUSDE", "contractType": "PERPETUAL", "baseAsset": "BTC", "quoteAsset": "USDE"}]}
    session.on_rest(RestRequest("instruments", "x"), json.dumps(info), 1)
    assert session.on_ws(raw, 1).events[0].instrument == "BTC-USDE-PERP"


# ----------------------------------------------------------------------------------- USD-M endpoints, misc


def test_usdm_endpoints_route_batch_and_expire() -> None:
    symbols = [f"S{i:03d}USDT" for i in range(150)]
    session = BinanceUsdmSession(symbols, ["aggTrade", "depth", "trade", "markPrice", "forceOrder", "openInterest"])
    endpoints = session.endpoints()
    by_path: dict[str, int] = {}
    for ep in endpoints:
        path = ep.url.split("fstream.binance.com/")[1].split("/stream?")[0]
        streams = ep.url.split("streams=")[1].split("/")
        assert len(streams) <= 200 and 23 * 3600 < ep.max_lifetime_s < 24 * 3600
        assert all(("@depth@100ms" in s or "@trade" in s) == (path == "public") for s in streams)
        by_path[path] = by_path.get(path, 0) + len(streams)
    assert by_path == {"market": 450, "public": 300} and len(endpoints) == 3 + 2
    assert "openInterest" not in "".join(ep.url for ep in endpoints)
    assert "s000usdt@markPrice@1s" in endpoints[0].url
    assert BinanceUsdmSession(["BTCUSDT"], ["openInterest"]).endpoints() == []
    with pytest.raises(ValueError, match="unknown channels"):
        BinanceUsdmSession(["BTCUSDT"], ["klines"])
    assert usdm_stream_urls("wss://x", ["BTCUSDT"], ["depth"]) == ["wss://x/public/stream?streams=btcusdt@depth@100ms"]


def test_usdm_control_frames_and_errors() -> None:
    session = BinanceUsdmSession(["BTCUSDT"], ["aggTrade"])
    assert session.on_ws('{"result":null,"id":1}', 1) == Output(ignored="subscription ack")
    with pytest.raises(BadMessage, match="venue error"):
        session.on_ws('{"error":{"code":2,"msg":"Invalid request"},"id":1}', 1)
    with pytest.raises(BadMessage, match="invalid JSON"):
        session.on_ws(b"\x00garbage", 1)
    with pytest.raises(BadMessage, match="unsupported or malformed"):
        session.on_ws(_lines("binance_usdm/bookTicker/_testvectors_gocryptotrader*")[0], 1)
    with pytest.raises(BadMessage, match="unsupported or malformed"):
        session.on_ws('{"stream":"btcusdt@depth","data":{"e":"depthUpdate","E":1,"s":"BTCUSDT"}}', 1)
    assert session.rest_request_for("https://fapi.binance.com/fapi/v1/ticker/price") is None
    with pytest.raises(BadMessage, match="no such request"):
        session.on_rest(RestRequest("klines:BTCUSDT", "x"), b"{}", 1)


# --------------------------------------------------------------------------------------------------- spot
# No spot capture exists in ../shared/data: every message below is hand-built in the documented shape
# (Binance spot WebSocket streams: <s>@trade, <s>@aggTrade, <s>@depth@100ms; REST /api/v3/depth).


def _spot_depth(U: int, u: int, b=(), a=(), s: str = "BNBBTC", E: int = 1672515782136) -> str:
    data = {"e": "depthUpdate", "E": E, "s": s, "U": U, "u": u,
            "b": [[f"{p:.8f}", f"{q:.8f}"] for p, q in b], "a": [[f"{p:.8f}", f"{q:.8f}"] for p, q in a]}  # fmt: skip
    return json.dumps({"stream": f"{s.lower()}@depth@100ms", "data": data})


def _spot_snapshot(lid: int, bids=((0.0024, 10.0),), asks=((0.0026, 100.0),)) -> str:
    return json.dumps({"lastUpdateId": lid, "bids": [[f"{p:.8f}", f"{q:.8f}"] for p, q in bids],
                       "asks": [[f"{p:.8f}", f"{q:.8f}"] for p, q in asks]})  # fmt: skip


def test_spot_trades() -> None:
    trade = ('{"stream":"bnbbtc@trade","data":{"e":"trade","E":1672515782136,"s":"BNBBTC","t":12345,'
             '"p":"0.001","q":"100","T":1672515782134,"m":true,"M":true}}')  # fmt: skip
    agg = ('{"e":"aggTrade","E":1672515782136,"s":"BTCFDUSD","a":26129,"p":"42000.01","q":"0.5","f":100,"l":105,'
           '"T":1672515782134,"m":false,"M":true}')  # fmt: skip
    session = BinanceSpotSession(["BNBBTC", "BTCFDUSD"], ["trade", "aggTrade"])
    (t,) = session.on_ws(trade, 9).events
    assert (t.venue, t.instrument, t.side, t.price, t.qty_base, t.notional_quote, t.trade_id, t.ts_ns) == (
        "binance-spot", "BNB-BTC-SPOT", "sell", 0.001, 100.0, 0.1, "12345", 1672515782134 * 1_000_000)  # fmt: skip
    (a,) = session.on_ws(agg, 9).events
    assert (a.instrument, a.side, a.trade_id, a.notional_quote) == ("BTC-FDUSD-SPOT", "buy", "26129", 21000.005)
    with pytest.raises(BadMessage, match="quantity '-1' must be > 0"):
        session.on_ws(trade.replace('"q":"100"', '"q":"-1"'), 9)


def test_spot_endpoints() -> None:
    session = BinanceSpotSession(["BNBBTC", "ethusdt"], ["trade", "depth"])
    assert [ep.url for ep in session.endpoints()] == [
        "wss://stream.binance.com:9443/stream?streams=bnbbtc@trade/ethusdt@trade/bnbbtc@depth@100ms/ethusdt@depth@100ms"
    ]
    assert all(23 * 3600 < ep.max_lifetime_s < 24 * 3600 for ep in session.endpoints())
    many = BinanceSpotSession([f"A{i}USDT" for i in range(250)], ["trade"]).endpoints()
    assert [len(ep.url.split("streams=")[1].split("/")) for ep in many] == [200, 50]
    (request,) = session.startup().requests
    assert request.url == "https://api.binance.com/api/v3/exchangeInfo?symbols=%5B%22BNBBTC%22%2C%22ETHUSDT%22%5D"
    with pytest.raises(ValueError, match="unknown Binance spot channel"):
        spot_stream_urls("wss://x", ["BNBBTC"], ["markPrice"])


def test_spot_rule_bridges_at_last_update_id_plus_one_and_chains_contiguously() -> None:
    session = BinanceSpotSession(["BNBBTC"], ["depth"])
    out = session.on_ws(_spot_depth(150, 155), 1)
    assert [r.url for r in out.requests] == ["https://api.binance.com/api/v3/depth?symbol=BNBBTC&limit=1000"]
    session.on_ws(_spot_depth(156, 160), 2)  # u == lastUpdateId: dropped on spot (kept on USD-M)
    session.on_ws(_spot_depth(161, 163, b=[(0.0025, 5)]), 3)  # U == lastUpdateId + 1: bridges
    session.on_ws(_spot_depth(164, 170, a=[(0.0026, 0)]), 4)
    out = session.on_rest(out.requests[0], _spot_snapshot(160), 5)
    assert _kinds(out) == ["snapshot", "delta", "delta"]
    assert out.events[0].ts_ns == 5  # spot snapshots carry no time: the receive time stands in
    assert [(e.first_seq, e.last_seq, e.prev_seq) for e in out.events[1:]] == [(161, 163, -1), (164, 170, -1)]
    book = session.books["BNBBTC"]
    assert (book.dropped, book.levels.bids, book.levels.asks) == (2, {0.0025: 5.0, 0.0024: 10.0}, {})
    # a missing event: U must be the previous u + 1
    out = session.on_ws(_spot_depth(172, 175), 6)
    (gap,) = out.events
    assert (gap.reason, gap.last_good_seq, gap.first_bad_seq, gap.venue) == (
        "U 172 != previous u 170 + 1", 170, 172, "binance-spot")  # fmt: skip
    assert [r.key for r in out.requests] == ["depth:BNBBTC"] and not book.levels.verified
    assert session.on_ws(_spot_depth(176, 180), 7).events == []  # buffered
    out = session.on_rest(out.requests[0], _spot_snapshot(177, bids=[(0.0023, 1)]), 8)
    assert _kinds(out) == ["snapshot", "delta"] and out.events[1].first_seq == 176  # 176 <= 178 <= 180
    assert book.state == "live" and book.gaps == 1


def test_spot_and_usdm_rules_differ_on_the_same_ids() -> None:
    """The event U=101..105 after a snapshot at 100 bridges on spot, and is too new on USD-M."""
    spot = BinanceSpotSession(["BNBBTC"], ["depth"])
    request = spot.on_ws(_spot_depth(101, 105), 1).requests[0]
    assert _kinds(spot.on_rest(request, _spot_snapshot(100), 2)) == ["snapshot", "delta"]
    usdm = BinanceUsdmSession(["BTCUSDT"], ["depth"])
    request = usdm.on_ws(_depth(101, 105, 99), 1).requests[0]
    out = usdm.on_rest(request, _snapshot(100), 2)
    assert out.events == [] and out.requests == [request]
    # and u == lastUpdateId: bridges on USD-M, dropped on spot
    usdm = BinanceUsdmSession(["BTCUSDT"], ["depth"])
    request = usdm.on_ws(_depth(95, 100, 90), 1).requests[0]
    assert _kinds(usdm.on_rest(request, _snapshot(100), 2)) == ["snapshot", "delta"]
    spot = BinanceSpotSession(["BNBBTC"], ["depth"])
    request = spot.on_ws(_spot_depth(95, 100), 1).requests[0]
    assert spot.on_rest(request, _spot_snapshot(100), 2).events == [] and spot.books["BNBBTC"].dropped == 1


def test_spot_disconnect_and_exchange_info() -> None:
    session = BinanceSpotSession(["BNBBTC"], ["depth"])
    url = session.endpoints()[0].url
    request = session.on_ws(_spot_depth(161, 163), 1, url).requests[0]
    session.on_rest(request, _spot_snapshot(160), 2)
    (gap,) = session.on_disconnect(url, 3).events
    assert gap.reason == f"connection {url} closed" and session.books["BNBBTC"].state == "idle"
    # Hand-written from the documented shape of GET /api/v3/exchangeInfo (no capture exists).
    info = {"timezone": "UTC", "serverTime": 1565246363776, "rateLimits": [], "exchangeFilters": [],
            "symbols": [{"symbol": "BNBBTC", "status": "TRADING", "baseAsset": "BNB", "baseAssetPrecision": 8,
                         "quoteAsset": "BTC", "quotePrecision": 8, "quoteAssetPrecision": 8,
                         "orderTypes": ["LIMIT", "MARKET"], "icebergAllowed": True, "isSpotTradingAllowed": True,
                         "filters": [{"filterType": "PRICE_FILTER", "minPrice": "0.00000100",
                                      "maxPrice": "100000.00000000", "tickSize": "0.00000100"},
                                     {"filterType": "LOT_SIZE", "minQty": "0.00100000",
                                      "maxQty": "100000.00000000", "stepSize": "0.00100000"}],
                         "permissions": [], "permissionSets": [["SPOT", "MARGIN"]]}]}  # fmt: skip
    session.on_rest(session.startup().requests[0], json.dumps(info), 4)
    bnb = session.instruments["BNBBTC"]
    assert (bnb.instrument, bnb.kind, bnb.base, bnb.quote, bnb.tick_size, bnb.lot_size) == (
        "BNB-BTC-SPOT", "spot", "BNB", "BTC", 1e-6, 0.001)  # fmt: skip


def test_every_emitted_event_round_trips_through_avro() -> None:
    """Books, gaps, liquidations and tickers go to Kafka through the same codec as trades."""
    session = BinanceUsdmSession(["BTCUSDT"], ["depth", "forceOrder", "markPrice"])
    request = session.on_ws(_depth(10, 20, 5, b=[(99, 1)]), 1).requests[0]
    events = session.on_rest(request, _snapshot(15), 2).events
    events += session.on_ws(_depth(30, 40, 25), 3).events
    events += session.on_ws(_lines("binance_usdm/forceOrder/_testvectors_tardis*")[0], 4).events
    events += session.on_ws(_lines("binance_usdm/markPriceUpdate/_testvectors_crypto-msg-parser*")[0], 5).events
    events += usdm_trades(_lines("binance_usdm/trade/_test*")[0], 6)
    assert [type(e) for e in events] == [BookUpdate, BookUpdate, BookGap, Liquidation, DerivTicker, Trade]
    codec = AvroCodec()
    for event in events:
        record = msgspec.json.decode(msgspec.json.encode(as_record(event)))  # tuples -> lists, as Avro gives
        assert codec.decode(codec.encode_event(event)) == record
