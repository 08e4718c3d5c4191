"""Binance USD-M futures and spot: wire structs, the book rule, instruments, sessions (same JSON, two markets)."""
