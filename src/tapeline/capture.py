"""Capture files: JSON lines {source, line, recv_ts_ns, conn, raw}, plain or gzip (../shared/data format)."""

from __future__ import annotations

import gzip
import heapq
from collections.abc import Iterable, Iterator
from pathlib import Path

import msgspec

from tapeline.errors import BadMessage


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
