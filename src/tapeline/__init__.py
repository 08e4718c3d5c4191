"""Tapeline: crypto order flow from venue websockets to bars, footprints and signals."""

__version__ = "0.1.0"
