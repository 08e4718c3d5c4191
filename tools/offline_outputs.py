"""Run the offline commands over every capture in ../shared/data and write what they print to a folder.

Used to show that a refactoring changed no output: run it before and after, then `diff -r BEFORE AFTER`.

    python -m tools.offline_outputs /tmp/before
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
TAPELINE = shutil.which("tapeline", path=str(ROOT / ".venv" / "bin")) or "tapeline"
INTERVALS = ["--interval", "1s", "--interval", "1m", "--interval", "5m", "--interval", "1h", "--interval", "1d"]
VENUE_DIRS = ["binance_usdm", "bybit_v5", "okx_v5", "hyperliquid"]
TRADE_SETS = {  # the trade captures of each venue (OKX with its instruments, for contract values)
    "binance-usdm-agg": ["binance_usdm/aggTrade/cryptofeed_*.jsonl"],
    "binance-usdm-trade": ["binance_usdm/trade/hftbacktest_*.gz"],
    "bybit-linear": ["bybit_v5/publicTrade/cryptofeed_v3_*linear.jsonl"],
    "bybit-spot": ["bybit_v5/publicTrade/cryptofeed_v3_*spot.jsonl"],
    "okx": ["okx_v5/rest_instruments/cryptofeed_*.jsonl", "okx_v5/trades/cryptofeed_*.jsonl"],
    "hyperliquid": ["hyperliquid/trades/hftbacktest_*.jsonl"],
}


def run(out: Path, name: str, args: list[str]) -> None:
    done = subprocess.run([TAPELINE, *args], capture_output=True, cwd=ROOT)
    (out / f"{name}.out").write_bytes(done.stdout)
    (out / f"{name}.err").write_bytes(done.stderr + f"\nexit {done.returncode}\n".encode())


def main(out: Path) -> None:
    if not DATA.is_dir():
        sys.exit(f"no recorded data at {DATA}")
    out.mkdir(parents=True, exist_ok=True)
    files = sorted(p for d in VENUE_DIRS for p in (DATA / d).rglob("*.jsonl*"))
    for i, path in enumerate(files, 1):
        rel = path.relative_to(DATA)
        print(f"[{i}/{len(files)}] normalize {rel}", file=sys.stderr)
        run(out, "normalize__" + str(rel).replace("/", "__"), ["normalize", str(path)])
    for name, patterns in TRADE_SETS.items():
        paths = [str(p) for pattern in patterns for p in sorted(DATA.glob(pattern))]
        print(f"bars/footprint {name}", file=sys.stderr)
        run(out, f"bars__{name}", ["bars", *INTERVALS, *paths])
        run(out, f"footprint__{name}", ["footprint", "--interval", "1m", "--interval", "5m", "--levels", *paths])


if __name__ == "__main__":
    main(Path(sys.argv[1]))
