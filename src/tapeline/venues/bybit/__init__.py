"""Bybit v5 public streams, linear and spot: wire structs, the book rule, instruments, sessions."""
