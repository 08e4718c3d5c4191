"""OKX v5 public streams: wire structs, the book rule (seqId + checksum), instruments, the session."""
