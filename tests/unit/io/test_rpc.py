"""The query service end to end: a real gRPC server over a real BarStore (embedded ClickHouse)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import msgspec
import pytest
from click.testing import CliRunner
from google.protobuf.descriptor import FieldDescriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from prometheus_client import REGISTRY

from tapeline.cli.query import Timestamp, query
from tapeline.config import QuerySettings
from tapeline.domain.aggregates import Bar, FootprintBar, FootprintLevel
from tapeline.domain.errors import StoreError, TapelineError
from tapeline.domain.events import Trade
from tapeline.flow.bars import BarAggregator
from tapeline.flow.footprint import BucketPolicy, FootprintAggregator
from tapeline.io.rpc.client import QueryClient, QueryError
from tapeline.io.rpc.convert import bar_to_proto
from tapeline.io.rpc.gen.tapeline.v1 import query_pb2
from tapeline.io.rpc.server import SERVICE_NAME, build_server
from tests.support.data import REPO_ROOT

REPO = REPO_ROOT
T0 = 1_714_521_600_000_000_000  # 2024-05-01T00:00:00Z
S = 1_000_000_000
MAX_ROWS = 8
END = 2**63 - 1
BTC = ("binance-usdm", "BTC-USDT-PERP")
ETH = ("okx", "ETH-USDT-PERP")


def _trade(venue_instrument: tuple[str, str], offset_s: float, price: float, qty: float, side: str, n: int) -> Trade:
    venue, instrument = venue_instrument
    ts = T0 + round(offset_s * S)
    symbol = instrument.replace("-", "")
    return Trade(venue, symbol, instrument, ts, ts + 5_000_000, price, qty, price * qty, side, str(n))


def _make_bars() -> list[Bar]:
    """Final 1s/1m bars of BTC over five minutes (minute 3 empty), open ones of ETH (never flushed)."""
    btc = [(1, 64000.5, 0.1, "buy"), (5, 64010.0, 0.25, "sell"), (20.5, 63990.1, 0.003, "buy"),
           (59.9, 64001.0, 1.2, "sell"), (61, 64020.0, 0.5, "buy"), (75, 64025.5, 0.2, "buy"),
           (119, 64000.0, 0.7, "sell"), (121, 63950.0, 2.0, "sell"), (130, 63960.5, 0.01, "buy"),
           (245, 64100.0, 0.4, "buy"), (250.25, 64110.0, 0.3, "sell")]  # fmt: skip
    eth = [(0.1, 3100.0, 1.0, "buy"), (0.5, 3101.5, 2.0, "sell"), (2.3, 3102.25, 0.5, "buy")]
    closed = BarAggregator(["1s", "1m"])
    for n, (offset, price, qty, side) in enumerate(btc, start=1):
        assert not closed.add(_trade(BTC, offset, price, qty, side, n), position=n)
    closed.flush()
    still_open = BarAggregator(["1s", "1m"])
    for n, (offset, price, qty, side) in enumerate(eth, start=100):
        still_open.add(_trade(ETH, offset, price, qty, side, n), position=n)
    return closed.drain() + still_open.drain()


BARS = _make_bars()


def _make_footprints() -> tuple[list[FootprintLevel], list[FootprintBar]]:
    """Final 1m footprints of the same BTC trades, 10-wide buckets."""
    btc = [(1, 64000.5, 0.1, "buy"), (5, 64010.0, 0.25, "sell"), (20.5, 63990.1, 0.003, "buy"),
           (59.9, 64001.0, 1.2, "sell"), (61, 64020.0, 0.5, "buy"), (75, 64025.5, 0.2, "buy")]  # fmt: skip
    agg = FootprintAggregator(["1m"], policy=BucketPolicy({BTC[1]: 10.0}))
    for n, (offset, price, qty, side) in enumerate(btc, start=1):
        agg.add(_trade(BTC, offset, price, qty, side, n), position=n)
    agg.flush()
    return agg.drain()


FOOTPRINT_LEVELS, FOOTPRINTS = _make_footprints()


def expected(venue_instrument: tuple[str, str], interval: str) -> list[Bar]:
    return sorted((b for b in BARS if (b.venue, b.instrument, b.interval) == (*venue_instrument, interval)),
                  key=lambda b: b.start_ns)  # fmt: skip


@pytest.fixture(scope="module")
def target(store_factory: Callable) -> Iterator[str]:
    store = store_factory()
    store.insert_bars(BARS)
    store.insert_footprints(FOOTPRINTS, FOOTPRINT_LEVELS)
    server, port = build_server(store, QuerySettings(host="127.0.0.1", port=0, max_rows=MAX_ROWS, workers=4))
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(None)


@pytest.fixture
def client(target: str) -> Iterator[QueryClient]:
    with QueryClient(target, timeout_s=10) as c:
        c.wait_ready(10)
        yield c


def test_fixture_bars_mean_something() -> None:
    assert len(expected(BTC, "1s")) > MAX_ROWS, "1s bars must exceed max_rows for the truncation tests"
    assert len(expected(BTC, "1m")) == 4  # minutes 0, 1, 2, 4
    assert {b.final for b in expected(ETH, "1s")} == {True, False}
    assert all(b.version for b in BARS)


def test_proto_bar_mirrors_the_contract() -> None:
    proto_fields = query_pb2.Bar.DESCRIPTOR.fields
    assert [f.name for f in proto_fields] == list(Bar.__struct_fields__)
    wire = {
        float: {FieldDescriptor.TYPE_DOUBLE},
        str: {FieldDescriptor.TYPE_STRING},
        bool: {FieldDescriptor.TYPE_BOOL},
        int: {FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT64},
    }
    for field, info in zip(proto_fields, msgspec.structs.fields(Bar), strict=True):
        nullable = info.type == float | None
        assert field.type in wire[float if nullable else info.type], field.name
        assert field.has_presence == nullable, f"{field.name}: a nullable field is `optional` in the proto"


def test_bars_come_back_identical_and_in_order(client: QueryClient) -> None:
    for venue_instrument in (BTC, ETH):
        for interval in ("1s", "1m"):
            got = _fetch_all(client, venue_instrument, interval)
            want = expected(venue_instrument, interval)
            assert [msgspec.structs.asdict(b) for b in got] == [msgspec.structs.asdict(b) for b in want]
            assert all(type(b) is Bar for b in got)


def _fetch_all(client: QueryClient, venue_instrument: tuple[str, str], interval: str) -> list[Bar]:
    """Every bar of a series, page by page as the proto documents (from_ns = last start_ns + 1)."""
    bars: list[Bar] = []
    from_ns = 0
    while True:
        page = client.get_bars_page(*venue_instrument, interval, from_ns, END)
        bars += page.bars
        if not page.truncated:
            return bars
        from_ns = page.bars[-1].start_ns + 1


def test_footprints_come_back_with_their_levels(client: QueryClient) -> None:
    got = client.get_footprints(*BTC, "1m", 0, 2**62)
    assert [bar for bar, _ in got] == sorted(FOOTPRINTS, key=lambda b: b.start_ns)
    assert len(got) == 2
    for bar, levels in got:
        want = sorted((lv for lv in FOOTPRINT_LEVELS if lv.start_ns == bar.start_ns), key=lambda lv: lv.price)
        assert levels == want
    assert [lv.price for lv in got[0][1]] == [63990.0, 64000.0, 64010.0]  # 63990.1 | 64000.5, 64001 | 64010
    with pytest.raises(QueryError) as exc:
        client.get_footprints(*BTC, "7m", 0, 2**62)
    assert exc.value.code == grpc.StatusCode.INVALID_ARGUMENT and "interval" in exc.value.details


def test_range_is_half_open(client: QueryClient) -> None:
    first, second, third, _ = expected(BTC, "1m")
    assert client.get_bars(*BTC, "1m", second.start_ns, third.start_ns) == [second]
    assert client.get_bars(*BTC, "1m", second.start_ns, second.start_ns + 1) == [second]
    assert client.get_bars(*BTC, "1m", first.start_ns + 1, third.start_ns + 1) == [second, third]
    assert client.get_bars(*BTC, "1m", 0, first.start_ns) == []


def test_limit_and_truncated(client: QueryClient) -> None:
    minutes = expected(BTC, "1m")
    assert client.get_bars_page(*BTC, "1m", 0, END, limit=2) == (minutes[:2], True)
    assert client.get_bars_page(*BTC, "1m", 0, END, limit=len(minutes)) == (minutes, False)
    assert client.get_bars_page(*BTC, "1m", 0, END) == (minutes, False)  # 0: the server's max_rows

    seconds = expected(BTC, "1s")
    page = client.get_bars_page(*BTC, "1s", 0, END)
    assert page == (seconds[:MAX_ROWS], True)


def test_list_series(client: QueryClient) -> None:
    assert client.list_series() == sorted({(b.venue, b.instrument, b.interval) for b in BARS})


@pytest.mark.parametrize(
    ("overrides", "field", "hint"),
    [
        ({"venue": "nasdaq"}, "venue", "binance-usdm"),
        ({"venue": ""}, "venue", "hyperliquid"),
        ({"instrument": ""}, "instrument", "BTC-USDT-PERP"),
        ({"interval": "7m"}, "interval", "1m"),
        ({"from_ns": -1}, "from_ns", "negative"),
        ({"to_ns": -5, "from_ns": -10}, "from_ns", "negative"),
        ({"to_ns": -5}, "to_ns", "negative"),
        ({"from_ns": T0, "to_ns": T0}, "from_ns", "to_ns"),
        ({"from_ns": T0 + 1, "to_ns": T0}, "from_ns", "[from_ns, to_ns)"),
        ({"limit": MAX_ROWS + 1}, "limit", f"max_rows {MAX_ROWS}"),
    ],
)
def test_invalid_arguments_name_the_field(client: QueryClient, overrides: dict, field: str, hint: str) -> None:
    args = {"venue": BTC[0], "instrument": BTC[1], "interval": "1m", "from_ns": 0, "to_ns": END, "limit": 0}
    with pytest.raises(QueryError) as raised:
        client.get_bars(**(args | overrides))
    assert raised.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details.startswith(field), raised.value.details
    assert hint in raised.value.details
    assert isinstance(raised.value, TapelineError)


def test_requests_are_counted_by_method_and_code(client: QueryClient) -> None:
    def count(method: str, code: str) -> float:
        return REGISTRY.get_sample_value("tapeline_rpc_requests_total", {"method": method, "code": code}) or 0.0

    before_ok, before_bad = count("GetBars", "OK"), count("GetBars", "INVALID_ARGUMENT")
    client.get_bars(*BTC, "1m", 0, END)
    with pytest.raises(QueryError):
        client.get_bars(*BTC, "2m", 0, END)
    assert (count("GetBars", "OK"), count("GetBars", "INVALID_ARGUMENT")) == (before_ok + 1, before_bad + 1)


class _BrokenStore:
    def get_bars(self, *args: object) -> list[Bar]:
        raise StoreError("connection refused by ch:8123")

    def instruments(self) -> list[tuple[str, str, str]]:
        raise StoreError("connection refused by ch:8123")


def test_store_failures_are_unavailable() -> None:
    server, port = build_server(_BrokenStore(), QuerySettings(host="127.0.0.1", port=0))  # type: ignore[arg-type]
    server.start()
    try:
        with QueryClient(f"127.0.0.1:{port}", timeout_s=10) as client:
            for call in (lambda: client.get_bars(*BTC, "1m", 0, END), client.list_series):
                with pytest.raises(QueryError) as raised:
                    call()
                assert raised.value.code is grpc.StatusCode.UNAVAILABLE
                assert "connection refused by ch:8123" in raised.value.details
    finally:
        server.stop(None)


def test_unreachable_target_is_a_clear_error() -> None:
    with QueryClient(f"127.0.0.1:{_free_port()}", timeout_s=5) as client:
        with pytest.raises(QueryError) as raised:
            client.wait_ready(0.2)
        assert raised.value.code is grpc.StatusCode.UNAVAILABLE
        with pytest.raises(QueryError) as raised:
            client.list_series()
        assert raised.value.code is grpc.StatusCode.UNAVAILABLE


def test_health_reports_serving(target: str) -> None:
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", SERVICE_NAME):
            response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
            assert response.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_the_services(target: str) -> None:
    with grpc.insecure_channel(target) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        assert {SERVICE_NAME, "grpc.health.v1.Health"} <= set(database.get_services())
        service = database.FindFileContainingSymbol(SERVICE_NAME).service[0]
        assert [m.name for m in service.method] == ["GetBars", "GetFootprints", "GetObi", "ListSeries"]


def test_responses_above_grpcs_default_4mb_limit(store_factory: Callable) -> None:
    store = store_factory()
    many = [_synthetic_bar(i) for i in range(40_000)]
    store.insert_bars(many)
    server, port = build_server(store, QuerySettings(host="127.0.0.1", port=0, max_rows=len(many)))
    server.start()
    try:
        with QueryClient(f"127.0.0.1:{port}", timeout_s=60) as client:
            page = client.get_bars_page(*BTC, "1s", 0, END)
    finally:
        server.stop(None)
    assert query_pb2.GetBarsResponse(bars=[bar_to_proto(b) for b in many]).ByteSize() > 4 << 20, "test too small"
    assert page == (many, False)


def _synthetic_bar(i: int) -> Bar:
    price = 64000.5 + i
    ts = T0 + i * S
    return Bar(*BTC, "1s", start_ns=ts, open=price, high=price + 1.25, low=price - 0.75, close=price + 0.125,
               buy_base=1.5, sell_base=2.25, buy_quote=1.5 * price, sell_quote=2.25 * price, delta_base=-0.75,
               delta_quote=-0.75 * price, trades=17, cvd_base=-0.75 * i, vwap=price + 0.3, buy_trades=9,
               sell_trades=8, first_ts_ns=ts + 1, last_ts_ns=ts + S - 1, final=True, version=i)  # fmt: skip


def test_cli_bars_table(target: str) -> None:
    bar = expected(BTC, "1m")[1]
    args = ["bars", "--venue", BTC[0], "--instrument", BTC[1], "--interval", "1m", "--target", target,
            "--from", "2024-05-01T00:01:00Z", "--to", str(bar.start_ns + 1)]  # fmt: skip
    result = CliRunner().invoke(query, args)
    assert result.exit_code == 0, result.output
    assert repr(bar.close) in result.stdout
    assert "2024-05-01 00:01:00" in result.stdout
    assert "1 bars" in result.stdout


def test_cli_bars_json_lines_parse_back(target: str) -> None:
    args = ["bars", "--venue", BTC[0], "--instrument", BTC[1], "--interval", "1m", "--target", target,
            "--from", str(T0), "--to", "2024-05-01T01:00:00", "--json"]  # fmt: skip
    result = CliRunner().invoke(query, args)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert rows == [msgspec.structs.asdict(b) for b in expected(BTC, "1m")]


def test_cli_reports_truncation_on_stderr(target: str) -> None:
    args = ["bars", "--venue", BTC[0], "--instrument", BTC[1], "--interval", "1s", "--target", target,
            "--from", str(T0), "--to", str(END), "--json", "--limit", "2"]  # fmt: skip
    result = CliRunner().invoke(query, args)
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 2
    assert f"--from {expected(BTC, '1s')[1].start_ns + 1}" in result.stderr


def test_cli_series(target: str) -> None:
    result = CliRunner().invoke(query, ["series", "--target", target, "--json"])
    assert result.exit_code == 0, result.output
    assert [tuple(json.loads(line).values()) for line in result.stdout.splitlines()] == sorted(
        {(b.venue, b.instrument, b.interval) for b in BARS}
    )
    table = CliRunner().invoke(query, ["series", "--target", target])
    assert "ETH-USDT-PERP" in table.stdout


def test_cli_errors_are_one_line_with_the_code(target: str) -> None:
    args = ["bars", "--venue", "nasdaq", "--instrument", "X", "--interval", "1m", "--since", "15m", "--target", target]
    result = CliRunner().invoke(query, args)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("error: INVALID_ARGUMENT: venue 'nasdaq' is unknown")
    assert "Traceback" not in result.output

    unreachable = CliRunner().invoke(query, ["series", "--target", f"127.0.0.1:{_free_port()}"])
    assert unreachable.exit_code == 1
    assert unreachable.stderr.startswith("error: UNAVAILABLE: ")


def test_cli_rejects_bad_times() -> None:
    base = ["bars", "--venue", BTC[0], "--instrument", BTC[1], "--interval", "1m", "--target", "127.0.0.1:1"]
    for extra, message in [(["--since", "15x"], "duration"), (["--from", "yesterday"], "ISO 8601"),
                           (["--since", "1h", "--from", str(T0)], "not both")]:  # fmt: skip
        result = CliRunner().invoke(query, base + extra)
        assert result.exit_code == 2, result.output
        assert message in result.stderr


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("2024-05-01T00:00:00Z", T0),
        ("2024-05-01 00:00:01", T0 + S),
        ("2024-05-01T02:00:00.000001+02:00", T0 + 1000),
        (str(T0 + 7), T0 + 7),
    ],
)
def test_time_parsing(text: str, ns: int) -> None:
    assert Timestamp().convert(text, None, None) == ns


def test_service_main_serves_until_sigterm(tmp_path: Path) -> None:
    """`python -m services.query` in its own process (its own chdb directory), stopped gracefully."""
    port = _free_port()
    env = os.environ | {"TAPELINE_CLICKHOUSE__DSN": f"chdb://{tmp_path / 'chdb'}", "TAPELINE_QUERY__PORT": str(port)}
    process = subprocess.Popen([sys.executable, "-m", "services.query"], cwd=REPO, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        with QueryClient(f"127.0.0.1:{port}", timeout_s=10) as client:
            client.wait_ready(60)
            assert client.list_series() == []
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, output
    assert "query service listening" in output and "stopping" in output


def test_generated_stubs_match_the_proto(tmp_path: Path) -> None:
    """`make proto` was run after the last change to schemas/proto (and with the pinned grpcio-tools)."""
    subprocess.run([sys.executable, str(REPO / "tools" / "gen_proto.py"), "--out", str(tmp_path)], check=True,
                   capture_output=True)  # fmt: skip
    committed_dir = REPO / "src" / "tapeline" / "io" / "rpc" / "gen"

    def files(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*")
                if p.is_file() and "__pycache__" not in p.parts}  # fmt: skip

    fresh, committed = files(tmp_path), files(committed_dir)
    assert sorted(fresh) == sorted(committed)
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"stubs differ from schemas/proto: {stale}; run `make proto`"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
