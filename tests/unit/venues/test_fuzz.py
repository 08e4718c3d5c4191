"""Property-based fuzzing of every venue session with mutated real capture lines (hypothesis).

Every venue and channel recorded in ../shared/data contributes lines; each example takes one, mutates
it (truncation, wrong types, NaN/Infinity/1e400, zero and negative sizes, missing fields, unknown
channels, deep nesting, invalid UTF-8) and feeds it to a session of its venue, websocket lines to
`on_ws` and REST answers to `on_rest`. The property, for every input:

* nothing but BadMessage escapes, and BadMessage is never `unexpected` (a failure no parser foresaw);
* the message gives events or REST requests, or says why it gave nothing, or is a dead letter with a
  reason: never none of these.

The sessions live across examples (primed with the real lines first, so mutations reach verified books
and known instruments), as in a connector that keeps running after bad input. CI runs the `ci` profile
(a bounded, derandomized number of examples); `make fuzz` runs the `fuzz` profile and prints the counts
(inputs tried, dead letters by reason, outputs by kind).
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tapeline.domain.errors import BadMessage
from tapeline.io.capture import read_capture
from tapeline.venues import detect_venue, make_session
from tapeline.venues.base import Output, VenueSession
from tests.support.data import DATA_DIR

pytestmark = pytest.mark.data

VENUE_DIRS = ("binance_usdm", "bybit_v5", "okx_v5", "hyperliquid")
LINES_PER_FILE = 40  # enough shapes per channel; the large captures repeat themselves
DEEP = 3_000  # levels of nesting that overflow a recursive decoder
TEN_MB = 10 * 1024 * 1024

settings.register_profile(
    "ci", max_examples=400, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("fuzz", max_examples=int(os.environ.get("TAPELINE_FUZZ_EXAMPLES", "60000")), deadline=None,
                          suppress_health_check=list(HealthCheck))  # fmt: skip
settings.load_profile(os.environ.get("TAPELINE_FUZZ_PROFILE", "ci"))


@dataclass(frozen=True)
class Line:
    venue: str
    channel: str  # the capture's channel folder, for the report
    raw: str
    conn: str  # websocket URL, or the REST request it answers


def _corpus() -> list[Line]:
    if not DATA_DIR.is_dir():
        return []
    lines = []
    for venue_dir in VENUE_DIRS:
        for path in sorted((DATA_DIR / venue_dir).rglob("*.jsonl*")):
            captured = []
            for line in read_capture(path):
                captured.append(line)
                if len(captured) == LINES_PER_FILE:
                    break
            venue = detect_venue(path, captured[0].conn if captured else None)
            if venue is None:
                continue
            channel = path.parent.name
            lines += [Line(venue, channel, c.raw, c.conn or "") for c in captured]
    # Binance spot has no capture; its JSON is USD-M's without the futures fields, so it takes those lines.
    lines += [Line("binance-spot", line.channel, line.raw, line.conn) for line in lines if line.venue == "binance-usdm"]
    return lines


CORPUS = _corpus()
VENUES = sorted({line.venue for line in CORPUS})
# venue -> channel -> lines: examples pick a venue, then a channel, so a large capture does not crowd out the rest
BY_CHANNEL: dict[str, dict[str, list[Line]]] = {}
for _line in CORPUS:
    BY_CHANNEL.setdefault(_line.venue, {}).setdefault(_line.channel, []).append(_line)
SESSIONS: dict[str, VenueSession[Any]] = {}
COUNTS: Counter[str] = Counter()
REASONS: Counter[str] = Counter()


def _session(venue: str) -> VenueSession[Any]:
    """One session per venue for the whole run, primed with every real line of the corpus."""
    if venue not in SESSIONS:
        session = SESSIONS[venue] = make_session(venue)
        for line in CORPUS:
            if line.venue == venue:
                _feed(session, line, line.raw.encode())
    return SESSIONS[venue]


def _feed(session: VenueSession[Any], line: Line, payload: bytes) -> Output | BadMessage:
    """The input through the session, as the connector or the replay drives it."""
    try:
        if line.conn.startswith(("http://", "https://", "GET ", "POST ")):
            request = session.rest_request_for(line.conn)
            if request is not None:
                return session.on_rest(request, payload, 1_700_000_000_000_000_000)
        return session.on_ws(payload, 1_700_000_000_000_000_000, line.conn or None)
    except BadMessage as exc:
        return exc


# ------------------------------------------------------------------------------------------ mutations


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path (dict keys, list indexes) into a decoded JSON value."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value[:8]):  # the first items of long arrays stand for the rest
            yield from _paths(item, (*prefix, i))


def _set(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, *rest = path
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[head] = _set(value[head], tuple(rest), new)
    return copy


def _delete(value: Any, path: tuple[Any, ...]) -> Any:
    if len(path) == 1:
        copy = dict(value) if isinstance(value, dict) else list(value)
        del copy[path[0]]
        return copy
    head, *rest = path
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[head] = _delete(value[head], tuple(rest))
    return copy


def _get(value: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        value = value[key]
    return value


ODD_VALUES = ["", "x", "NaN", "Infinity", "-Infinity", "1e400", "-1e400", "0", "-1", "-0.0", "1e-400", 0, -1,
              -1.5, 1e308, None, True, [], {}, [[]], {"a": None}, "9" * 400, 2**70, -(2**70)]  # fmt: skip
UNKNOWN_NAMES = [
    "",
    "nope",
    "trades2",
    "orderbook.7.BTCUSDT",
    "publicTrade.",
    "depthUpdateX",
    "\u00e9\u00e8",
    "a" * 300,
]
CHANNEL_KEYS = {"channel", "topic", "stream", "e", "op", "event", "type", "action", "instId", "coin", "s", "symbol"}


@st.composite
def mutated(draw: st.DrawFn) -> tuple[Line, bytes, str]:
    """(the line, the mutated payload, the mutation's name)."""
    channels = BY_CHANNEL[draw(st.sampled_from(VENUES))]
    line = draw(st.sampled_from(channels[draw(st.sampled_from(sorted(channels)))]))
    raw = line.raw.encode()
    try:
        doc = json.loads(line.raw)
    except ValueError:
        doc = None
    kinds = ["truncate", "invalid-utf8", "deep"]
    if doc is not None:
        kinds += ["wrong-type", "odd-number", "missing-field", "unknown-channel", "deep-inside", "number-text"]
    kind = draw(st.sampled_from(kinds))
    if kind == "truncate":
        return line, raw[: draw(st.integers(0, max(len(raw) - 1, 0)))], kind
    if kind == "invalid-utf8":
        at = draw(st.integers(0, len(raw)))
        return (
            line,
            raw[:at] + draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x80\x80"])) + raw[at:],
            kind,
        )
    if kind == "deep":
        return line, b"[" * DEEP + raw + b"]" * DEEP, kind
    paths = list(_paths(doc))
    if kind == "number-text":  # NaN, Infinity, 1e400 where JSON holds a number: text JSON cannot make otherwise
        numbers = list(re.finditer(rb"(?<=[:,\[])-?\d+(\.\d+)?([eE][-+]?\d+)?", raw))
        if numbers:
            m = draw(st.sampled_from(numbers))
            token = draw(st.sampled_from([b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e400", b"0", b"-1"]))
            return line, raw[: m.start()] + token + raw[m.end() :], kind
        kind = "odd-number"
    path = draw(st.sampled_from(paths))
    if kind == "missing-field":
        keyed = [p for p in paths if p]
        if keyed:
            return line, json.dumps(_delete(doc, draw(st.sampled_from(keyed)))).encode(), kind
        kind = "wrong-type"
    if kind == "unknown-channel":
        named = [p for p in paths if p and p[-1] in CHANNEL_KEYS]
        if named:
            path = draw(st.sampled_from(named))
        return line, json.dumps(_set(doc, path, draw(st.sampled_from(UNKNOWN_NAMES)))).encode(), kind
    if kind == "deep-inside":  # a value at some path wrapped in thousands of arrays (json.dumps cannot nest so deep)
        nested = "[" * DEEP + json.dumps(_get(doc, path)) + "]" * DEEP
        text = json.dumps(_set(doc, path, "\x00HOLE\x00"))
        return line, text.replace('"\\u0000HOLE\\u0000"', nested).encode(), kind
    if kind == "odd-number":  # zero, negative, huge, tiny, as numbers or as the venues' numeric strings
        leaves = [p for p in paths if isinstance(_get(doc, p), int | float | str) and p] or [path]
        path = draw(st.sampled_from(leaves))
        value = draw(st.sampled_from(["0", "-1", "-0.00000001", "1e400", "NaN", "inf", 0, -1, -1e-9, 1e400]))
        return line, json.dumps(_set(doc, path, value)).encode(), kind
    return line, json.dumps(_set(doc, path, draw(st.sampled_from(ODD_VALUES)))).encode(), kind  # wrong-type


# ---------------------------------------------------------------------------------------------- checks


def _reason_kind(reason: str) -> str:
    """A dead letter's reason without its numbers, names and quoted values: what the report groups by."""
    kind = re.sub(r"'[^']*'|\"[^\"]*\"|b'[^']*'", "…", reason)
    kind = re.sub(r"\$\.[\w.\[\]`]*|`[^`]*`", "…", kind)
    kind = re.sub(r"\d[\d.e+-]*", "N", kind)
    return kind[:90]


def _check(line: Line, payload: bytes, mutation: str) -> None:
    result = _feed(_session(line.venue), line, payload)
    COUNTS[f"inputs {line.venue}"] += 1
    COUNTS[f"mutation {mutation}"] += 1
    if isinstance(result, BadMessage):
        assert result.reason, (line, payload[:200])
        assert not result.unexpected, f"{result.reason}\n{line.venue} {line.channel}: {payload[:300]!r}"
        COUNTS["dead letters"] += 1
        REASONS[f"{line.venue}: {_reason_kind(result.reason.removeprefix(line.venue + ': '))}"] += 1
        return
    assert result.events or result.requests or result.ignored, f"neither events nor a reason: {payload[:300]!r}"
    COUNTS["events" if result.events else "requests" if result.requests else f"ignored: {result.ignored}"] += 1


@pytest.mark.skipif(not CORPUS, reason=f"recorded market data not found at {DATA_DIR}")
@given(mutated())
def test_a_mutated_capture_line_gives_events_or_a_dead_letter_with_a_reason(case: tuple[Line, bytes, str]) -> None:
    _check(*case)


@pytest.mark.skipif(not CORPUS, reason=f"recorded market data not found at {DATA_DIR}")
@pytest.mark.parametrize("venue", VENUES)
def test_a_ten_megabyte_frame_gives_events_or_a_dead_letter(venue: str) -> None:
    """The largest recorded message of the venue, its arrays repeated until the frame passes 10 MB."""
    line = max((c for c in CORPUS if c.venue == venue and c.raw.startswith("{")), key=lambda c: len(c.raw))
    doc = json.loads(line.raw)
    arrays = [p for p in _paths(doc) if isinstance(_get(doc, p), list) and _get(doc, p)]
    if arrays:
        path = max(arrays, key=lambda p: len(json.dumps(_get(doc, p))))
        items = _get(doc, path)
        doc = _set(doc, path, items * (TEN_MB // max(len(json.dumps(items)), 1) + 1))
        payload = json.dumps(doc).encode()
    else:
        payload = json.dumps({**doc, "padding": "x" * TEN_MB}).encode()
    assert len(payload) > TEN_MB
    _check(line, payload, "10MB")


def test_report_the_counts(request: pytest.FixtureRequest) -> None:
    """Prints what the run tried (make fuzz shows it; pytest -s to see it in other runs)."""
    if not COUNTS:
        pytest.skip("no fuzz inputs ran in this session")
    report = Path(os.environ.get("TAPELINE_FUZZ_REPORT", "")) if os.environ.get("TAPELINE_FUZZ_REPORT") else None
    lines = ["fuzz counts:"] + [f"  {k}: {v}" for k, v in sorted(COUNTS.items())]
    lines += ["dead letters by reason:"] + [f"  {v:6d}  {k}" for k, v in REASONS.most_common()]
    text = "\n".join(lines)
    print(text)
    if report is not None:
        report.write_text(text + "\n")
    assert COUNTS["dead letters"] > 0  # the mutations do reach the parsers' rejections
