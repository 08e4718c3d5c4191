"""The detectors, one module each; importing this package registers them with signals/rules.py."""

from tapeline.signals.detectors import divergence

__all__ = ["divergence"]
