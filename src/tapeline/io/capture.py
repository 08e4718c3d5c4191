"""Capture files: JSON lines {source, line, recv_ts_ns, conn, raw}, plain or gzip (../shared/data format).

Reading and merging them, feeding them through venue sessions (the offline half of the connector:
normalize, replay, golden tests), and writing what a live session saw in the same format.

A capture line whose `conn` is an http(s) URL that the session recognizes is a REST answer and goes to
`on_rest`; every other line is a websocket message and goes to `on_ws`. The REST requests a session
makes while replaying are not performed: the capture's own REST lines answer them.
"""

from __future__ import annotations

import gzip
import heapq
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from tapeline.domain.errors import BadMessage
from tapeline.domain.events import Event
from tapeline.venues.base import Output, VenueSession


class CaptureLine(msgspec.Struct, gc=False):
    raw: str
    recv_ts_ns: int | None = None
    conn: str | None = None
    source: str | None = None
    line: int | None = None


_decoder = msgspec.json.Decoder(CaptureLine)


def read_capture(path: Path) -> Iterator[CaptureLine]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        for number, text in enumerate(fh, 1):
            if not text.strip():
                continue
            try:
                yield _decoder.decode(text)
            except msgspec.DecodeError as exc:
                raise BadMessage(f"{path}:{number}: not a capture line: {exc}") from None


def merge_tagged(paths: Iterable[Path]) -> Iterator[tuple[Path, CaptureLine]]:
    """(file, line) of several files merged by receive time; lines without one keep their file order."""
    streams = [_tagged(Path(p)) for p in paths]
    if len(streams) == 1:
        return streams[0]
    return heapq.merge(*streams, key=lambda tagged: tagged[1].recv_ts_ns or 0)


def _tagged(path: Path) -> Iterator[tuple[Path, CaptureLine]]:
    for line in read_capture(path):
        yield path, line


def merge_captures(paths: Iterable[Path]) -> Iterator[CaptureLine]:
    """Lines of several files merged by receive time."""
    return (line for _, line in merge_tagged(paths))


@dataclass(frozen=True)
class Rejected:
    """A capture line the session refused, with its reason (dead-lettered or reported)."""

    path: Path
    line: CaptureLine
    reason: str


def drive(session: VenueSession[Any], line: CaptureLine) -> Output:
    """Feed one capture line to the session. Raises BadMessage."""
    recv = line.recv_ts_ns or 0
    conn = line.conn or ""
    if conn.startswith(("http://", "https://", "GET ", "POST ")):
        request = session.rest_request_for(conn)
        if request is not None:
            return session.on_rest(request, line.raw, recv)
    # A line recorded without a receive time passes None: sessions fall back to the venue's event time, or print
    # null, as they always have for such captures (the live connector always has one).
    return session.on_ws(line.raw, line.recv_ts_ns, conn or None)  # type: ignore[arg-type]


def replay(
    sessions: dict[Path, VenueSession[Any]], paths: Iterable[Path]
) -> Iterator[tuple[Path, CaptureLine, list[Event] | Rejected]]:
    """Each line of the captures (merged by receive time) with its events, or why it was rejected."""
    for path, line in merge_tagged(paths):
        try:
            yield path, line, drive(sessions[path], line).events
        except BadMessage as exc:
            yield path, line, Rejected(path, line, exc.reason)


class CaptureWriter:
    """Writes what a live session saw in the capture format, so it can be replayed through the same code."""

    def __init__(self, path: Path, source: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = path.open("ab")
        self._source = source
        self._line = 0
        self._encoder = msgspec.json.Encoder()

    def write(self, conn: str, raw: bytes | str, recv_ts_ns: int | None = None) -> None:
        self._line += 1
        # A capture line is JSON text: bytes that are not UTF-8 (a venue never sends them) are kept as U+FFFD.
        text = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
        record = {"source": self._source, "line": self._line, "recv_ts_ns": recv_ts_ns or time.time_ns(),
                  "conn": conn, "raw": text}  # fmt: skip
        self._fh.write(self._encoder.encode(record) + b"\n")

    def flush(self) -> None:
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()
