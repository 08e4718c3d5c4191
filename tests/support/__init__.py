"""Helpers the tests share: recorded data (data.py), service processes (services.py), venue shortcuts (venues.py)."""
