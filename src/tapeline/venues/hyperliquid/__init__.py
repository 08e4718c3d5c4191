"""Hyperliquid perpetuals: wire structs, the book rule (snapshot times), instruments, the session."""
