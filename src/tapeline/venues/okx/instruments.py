"""OKX instrument ids and metadata: canonical ids from instIds, and the instruments answer with contract values.

`sz` is in CONTRACTS for SWAP/FUTURES and in the base currency for SPOT. Contract value comes from
GET /api/v5/public/instruments: linear (ctType "linear", ctValCcy = base) qty_base = sz * ctVal * ctMult;
inverse (ctValCcy = USD) notional = sz * ctVal * ctMult USD and qty_base = notional / price.
"""

from __future__ import annotations

from functools import lru_cache

from tapeline.domain.errors import BadMessage
from tapeline.domain.events import Instrument
from tapeline.venues.common import MS, listing, optional_number, step_size
from tapeline.venues.okx.wire import InstrumentWire

VENUE = "okx"
INST_TYPES = ("SPOT", "SWAP", "FUTURES")


@lru_cache(maxsize=8192)  # bounded: instIds come from the network
def inst_type(inst_id: str) -> str:
    """SPOT / SWAP / FUTURES / OPTION from the instId's shape (OKX ids are BASE-QUOTE[-SWAP|-YYMMDD[-K-C]])."""
    parts = inst_id.split("-")
    if len(parts) == 2 and all(parts):
        return "SPOT"
    if len(parts) == 3 and parts[2] == "SWAP":
        return "SWAP"
    if len(parts) == 3 and len(parts[2]) == 6 and parts[2].isdigit():
        return "FUTURES"
    if len(parts) == 5 and parts[4] in ("C", "P"):
        return "OPTION"
    return "UNKNOWN"


@lru_cache(maxsize=8192)
def okx_instrument(inst_id: str) -> str:
    """BTC-USDT-SWAP -> BTC-USDT-PERP, BTC-USD-220527 -> BTC-USD-220527, BTC-USDT -> BTC-USDT-SPOT."""
    kind = inst_type(inst_id)
    parts = inst_id.split("-")
    if kind == "SPOT":
        return f"{inst_id}-SPOT"
    if kind == "SWAP":
        return f"{parts[0]}-{parts[1]}-PERP"
    if kind == "FUTURES":
        return inst_id
    raise BadMessage(f"okx: unsupported instrument {inst_id!r} ({kind}); only SPOT, SWAP and FUTURES are handled")


def parse_instrument(wire: InstrumentWire) -> tuple[Instrument, float, bool] | None:
    """One instruments row -> (Instrument, base-or-USD units per contract, inverse); None when out of scope."""
    kind = {"SPOT": "spot", "SWAP": "perp", "FUTURES": "future"}.get(wire.instType)
    if kind is None or inst_type(wire.instId) != wire.instType:
        return None
    where = f"{VENUE}: instrument {wire.instId}"
    if kind == "spot":
        base, quote = wire.baseCcy, wire.quoteCcy
        if not (base and quote):
            base, quote = wire.instId.split("-")
        mult, inverse = 1.0, False
    else:
        family = wire.instFamily or wire.uly  # e.g. BTC-USDT (linear) or BTC-USD (inverse)
        base, _, quote = (family or wire.instId).partition("-")
        quote = quote.split("-")[0]
        ct_val = optional_number(wire.ctVal, "ctVal", where)
        ct_mult = optional_number(wire.ctMult, "ctMult", where) or 1.0
        if ct_val is None or ct_val <= 0 or ct_mult <= 0:
            return None  # not tradable yet (no contract value); its messages stay unconvertible
        mult = ct_val * ct_mult
        inverse = wire.ctType == "inverse" or (wire.ctType == "" and wire.ctValCcy == quote)
    expiry = optional_number(wire.expTime, "expTime", where)
    code = {"spot": "SPOT", "perp": "PERP"}.get(kind) or wire.instId.rsplit("-", 1)[1]
    instrument = listing(VENUE, wire.instId, base, quote, kind, code, linear=not inverse, contract_value=mult,
                         tick_size=step_size(wire.tickSz, "tickSz", where),
                         lot_size=step_size(wire.lotSz, "lotSz", where),
                         expiry_ns=int(expiry) * MS if expiry else None)  # fmt: skip
    return instrument, mult, inverse
