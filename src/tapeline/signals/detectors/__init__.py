"""The detectors, one module each; importing this package registers them with signals/rules.py."""

from tapeline.signals.detectors import absorption, cmf, divergence, exhaustion, large_trade, net_flow

__all__ = ["absorption", "cmf", "divergence", "exhaustion", "large_trade", "net_flow"]
