"""The detectors, one module each; importing this package registers them with signals/rules.py."""

from tapeline.signals.detectors import (
    absorption,
    cmf,
    divergence,
    exhaustion,
    funding,
    large_trade,
    liquidations,
    net_flow,
    oi_regime,
    spot_perp,
    stacked_imbalance,
)

__all__ = ["absorption", "cmf", "divergence", "exhaustion", "funding", "large_trade", "liquidations", "net_flow",
           "oi_regime", "spot_perp", "stacked_imbalance"]  # fmt: skip
