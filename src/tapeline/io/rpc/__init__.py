"""gRPC query service over the bar store: server, client, CLI. Stubs in `gen` come from `make proto`."""
