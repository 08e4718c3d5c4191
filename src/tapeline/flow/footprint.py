"""Footprint bars (volume at price by aggressor side, POC, value area, imbalances): pure arithmetic, no I/O.

Definitions are those of docs/DOMAIN.md ("Footprint bar"); windowing, lateness, versions and restore
follow `tapeline.flow.bars.BarAggregator` exactly, so a footprint and the flow bar of the same window
always cover the same trades:

* A bar is a window [start, start + interval) aligned to UTC epoch multiples, on the venue trade time.
  The watermark of a venue-instrument is its newest trade time minus the allowed lateness; a bar is
  final once the watermark reaches its end, and a trade for a final bar is *late*: it is handed back.
* Every row carries `version`, the source position of the trade after which it was computed.
* A bar overlapping a trade gap is flagged `incomplete`, as flow bars are (flow/windows.py).

Price buckets
-------------
bucket size = tick_size x k. Trades carry no tick size, so a `BucketPolicy` chooses it per venue-instrument:
the size configured for the instrument if any, else the smallest "nice" step (1, 2, 2.5 or 5 x 10^n)
that is >= price x target_bps / 10_000 for the first price seen (target_bps default 5: BTC at 60,000
gets 50-wide buckets; on the recorded BTCUSDT trades that is 1-4 rows per 1m bar and ~6 per 5m bar,
while 0.5 bp gives 5-wide buckets and 8-29 rows per 1m bar). When the instrument's tick size is
known the step must also be a whole number of ticks (else tick x ceil(minimum / tick)). The size is
fixed for the process lifetime and written into every row; `restore` takes it from the persisted rows,
so a restarted process does not re-derive it from a different first price. A bar keeps the size it was
opened with, so an open bar restored after a configuration change is finished with its original size.

The bucket of a trade is floor(price / bucket) x bucket, computed as an integer index
`math.floor(price / bucket + 1e-9)`: a price on a boundary (60050.0 with bucket 50, 0.3 with bucket 0.1,
where 0.3 / 0.1 = 2.9999999999999996 in binary) belongs to the bucket starting there. The epsilon never
moves a real price across a boundary: prices are whole ticks, so a price below a boundary is at least
one tick (>= 1e-9 of a bucket for any k < 10^9) below it. A bucket's `price` is its lower bound,
index x size evaluated in decimal (no 60050.000000000004), so it is identical across runs and usable as a key.

Per bar, on the buckets from the lowest to the highest traded one (untraded buckets in between count
as zero volume; only traded buckets get a level row):

* POC: the bucket with the largest total volume; ties: the one whose midpoint is nearest the bar's
  VWAP, then the lower. POC, VAH and VAL are bucket prices (lower bounds).
* Value area (default 70%): from the POC, repeatedly add the adjacent unvisited bucket above or below
  with the larger volume (ties: above; at the bar's edge, the other side) until the area holds >= 70%
  of the bar's volume.
* Diagonal imbalance (ratio default 3.0): buy at p when buy(p) >= ratio x sell(p - bucket); sell at p
  when sell(p) >= ratio x buy(p + bucket). The imbalanced volume must be > 0 and >= the minimum
  volume (default 0). The partner of the lowest (buy) / highest (sell) bucket lies outside the bar:
  no imbalance is computed there.
* Stacked imbalance: a run of >= 3 adjacent buckets with imbalances of the same direction, reported as
  (direction, lowest bucket price, highest bucket price).
* Unfinished auction: buy and sell volume both non-zero at the highest (lowest) bucket.

Volumes are rounded like bars (BASE_DECIMALS) and every comparison above (ties, 70%, ratio) is made
exactly on those decimals, so "exactly 3x" and "exactly 70%" count as reached on every machine.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from decimal import Decimal
from fractions import Fraction
from functools import partial

import numpy as np

from tapeline.domain.aggregates import FootprintBar, FootprintLevel
from tapeline.domain.events import Trade
from tapeline.flow.bars import BASE_DECIMALS, QUOTE_DECIMALS
from tapeline.flow.columns import TradeColumns
from tapeline.flow.windows import ColumnarAggregator, Series

DEFAULT_TARGET_BPS = 5.0
_NICE = (Decimal(1), Decimal(2), Decimal("2.5"), Decimal(5))
_EPSILON = 1e-9  # in bucket units; see the module docstring


def nice_step(minimum: float, tick_size: float = 0.0) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^n that is >= `minimum` (and a whole number of ticks, if given)."""
    if not minimum > 0:
        raise ValueError(f"a bucket size needs a positive minimum, got {minimum!r}")
    target = Decimal(repr(minimum))
    tick = Decimal(repr(tick_size)) if tick_size > 0 else None
    for exponent in range(target.adjusted(), target.adjusted() + 4):
        for mantissa in _NICE:
            step = mantissa.scaleb(exponent)
            if step >= target and (tick is None or step % tick == 0):
                return float(step)
    assert tick is not None  # without a tick, 10^(adjusted + 1) > target always qualifies
    return float(tick * math.ceil(target / tick))


class BucketPolicy:
    """Bucket size per venue-instrument: configured (by instrument) or derived once from the first price.

    `sizes`: explicit bucket sizes by canonical instrument (all venues). `tick_sizes`: known tick sizes
    by instrument; a derived size is then a whole number of ticks. See the module docstring.
    """

    def __init__(self, sizes: Mapping[str, float] | None = None, target_bps: float = DEFAULT_TARGET_BPS,
                 tick_sizes: Mapping[str, float] | None = None) -> None:  # fmt: skip
        for instrument, size in (sizes or {}).items():
            if not size > 0:
                raise ValueError(f"bucket size of {instrument} must be positive, got {size!r}")
        if not target_bps > 0:
            raise ValueError(f"target_bps must be positive, got {target_bps!r}")
        self.sizes = dict(sizes or {})
        self.target_bps = target_bps
        self.tick_sizes = dict(tick_sizes or {})
        self._chosen: dict[tuple[str, str], float] = {}

    def size(self, venue: str, instrument: str, price: float) -> float:
        """The bucket size of new bars of this venue-instrument (fixed at its first call)."""
        key = (venue, instrument)
        chosen = self._chosen.get(key)
        if chosen is None:
            chosen = self.sizes.get(instrument)
            if chosen is None:
                if not price > 0:
                    raise ValueError(f"cannot derive a bucket size for {venue} {instrument} from price {price!r}")
                chosen = nice_step(price * self.target_bps / 10_000, self.tick_sizes.get(instrument, 0.0))
            self._chosen[key] = chosen
        return chosen

    def pin(self, venue: str, instrument: str, size: float) -> None:
        """Adopt a persisted size (restore) unless one is configured or already chosen."""
        if instrument not in self.sizes:
            self._chosen.setdefault((venue, instrument), size)

    def chosen(self) -> dict[tuple[str, str], float]:
        return dict(self._chosen)


def bucket_index(price: float, size: float) -> int:
    """Index of the bucket holding `price`: floor(price / size), robust to binary noise on boundaries."""
    return math.floor(price / size + _EPSILON)


def bucket_price(index: int, size: float) -> float:
    """Lower bound of bucket `index`, computed in decimal: bucket_price(1201, 50.0) == 60050.0 exactly."""
    return float(index * Decimal(repr(size)))


def _units(value: float) -> int:
    """A value rounded to BASE_DECIMALS as an exact integer count of 10^-BASE_DECIMALS."""
    return int(Decimal(repr(value)).scaleb(BASE_DECIMALS).to_integral_value())


def _ratio(value: float) -> Fraction:
    return Fraction(repr(value))  # 0.7 -> 7/10, not the binary 0.6999999999999999555910790149937


class _Level:
    __slots__ = ("buy", "buy_trades", "sell", "sell_trades")

    def __init__(self, buy: float = 0.0, sell: float = 0.0, buy_trades: int = 0, sell_trades: int = 0) -> None:
        self.buy, self.sell, self.buy_trades, self.sell_trades = buy, sell, buy_trades, sell_trades


class _Open:
    """Running state of one open footprint bar."""

    __slots__ = ("bucket", "incomplete", "last_ts", "levels", "quote")

    def __init__(self, bucket: float) -> None:
        self.bucket = bucket
        self.levels: dict[int, _Level] = {}
        self.quote = 0.0
        self.last_ts = -(2**63)
        self.incomplete = False

    @classmethod
    def of(cls, bar: FootprintBar, levels: Iterable[FootprintLevel]) -> _Open:
        """A persisted bar and its levels, to continue from (restore)."""
        acc = cls(bar.bucket_size)
        acc.quote, acc.last_ts, acc.incomplete = bar.volume_quote, bar.last_ts_ns, bar.incomplete
        for level in levels:
            acc.levels[round(level.price / level.bucket_size)] = _Level(
                level.buy_base, level.sell_base, level.buy_trades, level.sell_trades
            )
        return acc

    def add(self, trade: Trade) -> None:
        index = bucket_index(trade.price, self.bucket)
        level = self.levels.get(index)
        if level is None:
            level = self.levels[index] = _Level()
        if trade.side == "buy":
            level.buy += trade.qty_base
            level.buy_trades += 1
        else:
            level.sell += trade.qty_base
            level.sell_trades += 1
        self.quote += trade.notional_quote
        if trade.ts_ns > self.last_ts:
            self.last_ts = trade.ts_ns

    def add_many(self, columns: TradeColumns, idx: slice | np.ndarray) -> None:
        """`add` for the trades `columns[idx]` in order, in bulk: np.add.at adds in order, from the current
        values, so every level's volume is the float `add` would reach."""
        price, qty, buy = columns.price[idx], columns.qty[idx], columns.buy[idx]
        index = np.floor(price / self.bucket + _EPSILON).astype(np.int64)  # bucket_index, vectorized
        traded, level_of = np.unique(index, return_inverse=True)
        levels = [self.levels.get(i) or _Level() for i in traded.tolist()]
        buy_volume = np.array([lv.buy for lv in levels])
        sell_volume = np.array([lv.sell for lv in levels])
        np.add.at(buy_volume, level_of, np.where(buy, qty, 0.0))
        np.add.at(sell_volume, level_of, np.where(buy, 0.0, qty))
        buys = np.bincount(level_of, weights=buy, minlength=len(levels)).astype(np.int64).tolist()
        trades = np.bincount(level_of, minlength=len(levels)).tolist()
        volumes = zip(traded.tolist(), levels, buy_volume.tolist(), sell_volume.tolist(), buys, trades, strict=True)
        for i, level, bought, sold, buy_count, count in volumes:
            level.buy, level.sell = bought, sold
            level.buy_trades += buy_count
            level.sell_trades += count - buy_count
            self.levels[i] = level
        self.quote = float(np.cumsum(np.concatenate(([self.quote], columns.notional[idx])))[-1])
        newest = int(columns.ts[idx].max())
        if newest > self.last_ts:
            self.last_ts = newest


class FootprintAggregator(ColumnarAggregator[tuple[list[FootprintLevel], list[FootprintBar]], _Open, Series[_Open]]):
    """Footprint bars for many venue-instruments and intervals (windowing: flow/windows.py).

    Feed trades with `add`, then call `drain` to collect the rows to persist: every bar that became
    final, and the current state of every open bar that took trades since the last drain.
    """

    TRACK_CHANGED = True  # footprint bars do not depend on each other: write only those that changed

    def __init__(
        self,
        intervals: Iterable[str],
        allowed_lateness_ns: int = 0,
        policy: BucketPolicy | None = None,
        imbalance_ratio: float = 3.0,
        imbalance_min_volume: float = 0.0,
        value_area: float = 0.7,
        correction_horizon_ns: int = 0,
    ) -> None:
        if not imbalance_ratio > 0:
            raise ValueError(f"imbalance_ratio must be positive, got {imbalance_ratio!r}")
        if not 0 < value_area <= 1:
            raise ValueError(f"value_area must be in (0, 1], got {value_area!r}")
        if imbalance_min_volume < 0:
            raise ValueError(f"imbalance_min_volume must be >= 0, got {imbalance_min_volume!r}")
        super().__init__(intervals, allowed_lateness_ns, correction_horizon_ns)
        self.policy = policy or BucketPolicy()
        self.imbalance_ratio = imbalance_ratio
        self.imbalance_min_volume = imbalance_min_volume
        self.value_area = value_area
        self._ratio = _ratio(imbalance_ratio)
        self._min_units = _ratio(imbalance_min_volume) * 10**BASE_DECIMALS
        self._area = _ratio(value_area)
        self._final_levels: list[FootprintLevel] = []
        self._final_bars: list[FootprintBar] = []

    def restore(self, levels: Iterable[FootprintLevel], summaries: Iterable[FootprintBar]) -> None:
        """Rebuild state from persisted rows (latest version per key): final bars and open bars.

        After this, trades at positions the rows already include are skipped, so a consumer may
        resume from any committed offset at or before the last persisted one. Bucket sizes of
        instruments without a configured size are taken from their newest persisted bar.

        Exactness needs every drain's rows, levels and summaries, persisted in full before the source
        offset is committed, as for bars. An open summary without level rows (a torn write across the
        two tables) is ignored rather than restored as an empty bar.
        """
        widths = dict(self.intervals)
        bar_levels_of: dict[tuple[str, str, str, int], list[FootprintLevel]] = {}
        for level in levels:
            if level.interval in widths and (self.horizon_ns or not level.final):
                key = (level.venue, level.instrument, level.interval, level.start_ns)
                bar_levels_of.setdefault(key, []).append(level)
        newest: dict[tuple[str, str], FootprintBar] = {}
        for bar in sorted(summaries, key=lambda b: (b.final is False, b.start_ns)):
            inst_key = (bar.venue, bar.instrument)
            if inst_key not in newest or (bar.start_ns, bar.version) > (newest[inst_key].start_ns,
                                                                        newest[inst_key].version):  # fmt: skip
                newest[inst_key] = bar
            bar_levels = bar_levels_of.get((bar.venue, bar.instrument, bar.interval, bar.start_ns))
            self._restore_window(bar.venue, bar.instrument, bar.interval, bar.start_ns, bar.final, bar.version,
                                 bar.last_ts_ns, partial(_Open.of, bar, bar_levels)
                                 if bar_levels else None)  # fmt: skip
        for (venue, instrument), bar in newest.items():
            self.policy.pin(venue, instrument, bar.bucket_size)
        self._settle_restored()

    def drain(self) -> tuple[list[FootprintLevel], list[FootprintBar]]:
        """Rows to persist since the last drain: newly final bars, then open bars that took trades."""
        levels, bars = self._final_levels, self._final_bars
        self._final_levels, self._final_bars = [], []
        for series in self._dirty:
            for start in sorted(series.changed):
                acc = series.open_bars.get(start)
                if acc is not None:  # else it became final and is among the final rows already
                    self._rows(series, start, acc, False, series.version, levels, bars)
            series.changed.clear()
        self._dirty.clear()
        return levels, bars

    def open_rows(self) -> tuple[list[FootprintLevel], list[FootprintBar]]:
        """The current state of every open bar."""
        levels: list[FootprintLevel] = []
        bars: list[FootprintBar] = []
        for series in self._all_series():
            for start in sorted(series.open_bars):
                self._rows(series, start, series.open_bars[start], False, series.version, levels, bars)
        return levels, bars

    def _new_series(self, venue: str, instrument: str, interval: str, width_ns: int) -> Series[_Open]:
        return Series(venue, instrument, interval, width_ns)

    def _open(self, series: Series[_Open], trade: Trade) -> _Open:
        acc = _Open(self.policy.size(trade.venue, trade.instrument, trade.price))
        acc.add(trade)
        return acc

    def _finalize(self, series: Series[_Open], start: int, acc: _Open, version: int) -> None:
        self._rows(series, start, acc, True, version, self._final_levels, self._final_bars)

    def _rows(self, series: Series[_Open], start: int, acc: _Open, final: bool, version: int,
              levels_out: list[FootprintLevel], bars_out: list[FootprintBar]) -> None:  # fmt: skip
        """Append the level rows and the summary of one bar, all derived from the rounded volumes."""
        bucket = acc.bucket
        # Rounded like bars (see _Series.row there): a restored bar continues from exactly these values.
        rounded = {i: (round(lv.buy, BASE_DECIMALS), round(lv.sell, BASE_DECIMALS), lv.buy_trades, lv.sell_trades)
                   for i, lv in acc.levels.items()}  # fmt: skip
        buy = {i: _units(r[0]) for i, r in rounded.items()}
        sell = {i: _units(r[1]) for i, r in rounded.items()}
        low, high = min(rounded), max(rounded)
        total = sum(buy.values()) + sum(sell.values())
        volume_base = total / 10**BASE_DECIMALS
        volume_quote = round(acc.quote, QUOTE_DECIMALS)
        vwap = volume_quote / volume_base if volume_base else 0.0

        def vol(i: int) -> int:
            return buy.get(i, 0) + sell.get(i, 0)

        # POC: largest volume; ties: midpoint nearest the VWAP, then the lower bucket.
        top = max(vol(i) for i in rounded)
        poc = min((i for i in rounded if vol(i) == top), key=lambda i: (abs((i + 0.5) * bucket - vwap), i))
        # Value area: grow from the POC towards the larger neighbour (ties: above) until >= value_area.
        area_lo = area_hi = poc
        area = vol(poc)
        need_num, need_den = self._area.numerator * total, self._area.denominator
        while area * need_den < need_num:
            up = vol(area_hi + 1) if area_hi < high else None
            down = vol(area_lo - 1) if area_lo > low else None
            if up is not None and (down is None or up >= down):
                area_hi += 1
                area += up
            elif down is not None:
                area_lo -= 1
                area += down
            else:  # the whole bar is in the area already
                break
        # Diagonal imbalances; the partner of the lowest (highest) bucket is outside the bar.
        num, den, min_units = self._ratio.numerator, self._ratio.denominator, self._min_units
        buy_imb: set[int] = set()
        sell_imb: set[int] = set()
        for i in rounded:
            b, s = buy[i], sell[i]
            if i > low and b > 0 and b >= min_units and b * den >= num * sell.get(i - 1, 0):
                buy_imb.add(i)
            if i < high and s > 0 and s >= min_units and s * den >= num * buy.get(i + 1, 0):
                sell_imb.add(i)
        runs: list[tuple[int, str, int]] = []
        for direction, marked in (("buy", buy_imb), ("sell", sell_imb)):
            for i in sorted(marked):
                if i - 1 in marked:
                    continue  # not the start of a run
                j = i
                while j + 1 in marked:
                    j += 1
                if j - i + 1 >= 3:
                    runs.append((i, direction, j))
        runs.sort()
        venue, instrument, interval = series.venue, series.instrument, series.interval
        for i in sorted(rounded):
            buy_base, sell_base, buy_trades, sell_trades = rounded[i]
            levels_out.append(FootprintLevel(
                venue, instrument, interval, start, bucket_price(i, bucket), bucket, buy_base, sell_base,
                buy_trades, sell_trades, (buy[i] - sell[i]) / 10**BASE_DECIMALS, i in buy_imb, i in sell_imb,
                final, version,
            ))  # fmt: skip
        bars_out.append(FootprintBar(
            venue, instrument, interval, start, bucket,
            poc=bucket_price(poc, bucket),
            vah=bucket_price(area_hi, bucket),
            val=bucket_price(area_lo, bucket),
            volume_base=volume_base,
            delta_base=(sum(buy.values()) - sum(sell.values())) / 10**BASE_DECIMALS,
            stacked_buy=sum(1 for r in runs if r[1] == "buy"),
            stacked_sell=sum(1 for r in runs if r[1] == "sell"),
            stacked_directions=[r[1] for r in runs],
            stacked_lows=[bucket_price(r[0], bucket) for r in runs],
            stacked_highs=[bucket_price(r[2], bucket) for r in runs],
            unfinished_high=buy[high] > 0 and sell[high] > 0,
            unfinished_low=buy[low] > 0 and sell[low] > 0,
            volume_quote=volume_quote,
            vwap=vwap,
            last_ts_ns=acc.last_ts,
            final=final,
            version=version,
            incomplete=acc.incomplete,
        ))  # fmt: skip
