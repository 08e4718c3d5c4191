"""One root exception; everything the package raises on purpose derives from it."""

from __future__ import annotations


class TapelineError(Exception):
    """Root of all Tapeline errors."""


class BadMessage(TapelineError):
    """A venue or Kafka message that cannot be turned into a domain event.

    Carries the reason; the caller owns the raw payload and routes both to the dead-letter topic.
    `unexpected` marks a failure no parser anticipated (a bug to fix, found e.g. by the fuzz suite): it is
    still a dead letter, never an exception that ends a loop.
    """

    def __init__(self, reason: str, *, unexpected: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.unexpected = unexpected


class SchemaError(TapelineError):
    """An Avro schema or frame that the codec does not know."""


class StoreError(TapelineError):
    """ClickHouse could not be reached or a migration failed."""


class InvalidQuery(TapelineError):
    """A query argument is wrong; the message says which and why (maps to INVALID_ARGUMENT)."""
