"""Bar intervals: names in the bar notation ("1s", "1m", ...) and their widths in nanoseconds."""

from __future__ import annotations

INTERVAL_NS = {
    "1s": 1_000_000_000,
    "5s": 5_000_000_000,
    "15s": 15_000_000_000,
    "1m": 60_000_000_000,
    "5m": 300_000_000_000,
    "15m": 900_000_000_000,
    "1h": 3_600_000_000_000,
    "4h": 14_400_000_000_000,
    "1d": 86_400_000_000_000,
}
