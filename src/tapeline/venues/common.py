"""What venue modules share besides the session contract: units, the one number parser, notional rounding,
decoding with the reason spelled out. Pure, no I/O."""

from __future__ import annotations

import math
from typing import Any, TypeVar

import msgspec

from tapeline.domain.errors import BadMessage
from tapeline.domain.events import Instrument

MS = 1_000_000  # venue times are ms; events carry ns
NOTIONAL_DECIMALS = 10  # price x qty picks up binary noise; no venue quotes finer
INF = math.inf
T = TypeVar("T")

# round(x, 10) costs ~0.5 us (a correctly rounded decimal conversion), a third of a whole trade. The same
# result, cheaper: y = x * 1e10 is exact to within ulp(y)/2 <= 1/8 while y < 2**51, so when y is more
# than 3/8 away from a half-integer, x * 10**10 rounds to k = round(y) as well, and k / 1e10 (k < 2**53,
# one correctly rounded division) is the double nearest k * 10**-10, which is what round(x, 10) returns.
# Near-ties and large values take round(x, 10) itself; the result is identical either way.
_FAST_ROUND_LIMIT = 2.0**51 / 1e10


def notional(price: float, qty: float) -> float:
    """price x qty rounded to NOTIONAL_DECIMALS, bit-identical to round(price * qty, 10)."""
    n = price * qty
    if 0.0 < n < _FAST_ROUND_LIMIT:  # the argument above holds for positive values only
        y = n * 1e10
        k = round(y)
        if -0.375 < y - k < 0.375:
            return k / 1e10
    return round(n, NOTIONAL_DECIMALS)


def listing(venue: str, symbol: str, base: str, quote: str, kind: str, code: str, **details: Any) -> Instrument:
    """Instrument metadata under the canonical id BASE-QUOTE-CODE (CODE: PERP, SPOT or a YYMMDD expiry)."""
    return Instrument(venue=venue, symbol=symbol, instrument=f"{base}-{quote}-{code}", base=base, quote=quote,
                      kind=kind, **details)  # fmt: skip


def number(text: str | float, field: str, where: str, *, above: float | None = None,
           at_least: float | None = None) -> float:  # fmt: skip
    """A finite float from the venue's text, within the bounds given; BadMessage names the field and where.

    Every venue parses the numbers it does not decode in C through this, so a bad one reads the same on all.
    """
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise BadMessage(f"{where}: {field} {text!r} is not a number") from None
    if not -INF < value < INF:
        raise BadMessage(f"{where}: {field} {text!r} is not finite")
    if above is not None and not value > above:
        raise BadMessage(f"{where}: {field} {text!r} must be > {above:g}")
    if at_least is not None and not value >= at_least:
        raise BadMessage(f"{where}: {field} {text!r} must be >= {at_least:g}")
    return value


def optional_number(text: str, field: str, where: str, *, above: float | None = None,
                    at_least: float | None = None) -> float | None:  # fmt: skip
    """`number`, or None for the empty string venues send for "unknown"."""
    return None if text == "" else number(text, field, where, above=above, at_least=at_least)


def step_size(text: str, field: str, where: str) -> float:
    """A tick or lot size from instrument metadata: 0.0 (unknown) when absent, not finite or not positive.

    Steps only inform (footprint buckets, display), so an odd one is left out, not the whole answer.
    """
    if text == "":
        return 0.0
    try:
        value = float(text)
    except ValueError:
        raise BadMessage(f"{where}: {field} {text!r} is not a number") from None
    return value if 0.0 < value < INF else 0.0


def decode(decoder: msgspec.json.Decoder[T], payload: bytes | str, where: str, what: str) -> T:
    """`decoder.decode(payload)`, or BadMessage saying whether the JSON or its shape was wrong."""
    try:
        return decoder.decode(payload)
    except msgspec.ValidationError as exc:
        raise BadMessage(f"{where}: malformed {what}: {exc}") from None
    except msgspec.DecodeError as exc:
        raise BadMessage(f"{where}: invalid JSON in {what}: {exc}") from None


def decode_any(payload: bytes | str, where: str) -> Any:
    """Untyped JSON (the slow paths that look at a message's shape), or BadMessage."""
    try:
        return msgspec.json.decode(payload)
    except msgspec.DecodeError as exc:
        raise BadMessage(f"{where}: invalid JSON: {exc}") from None
