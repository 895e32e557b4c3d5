"""The exception types. Every failure the engine reports is one of these."""

from __future__ import annotations


class CallgateError(Exception):
    """Base class of every error callgate raises."""


class PolicyError(CallgateError, ValueError):
    """A policy that cannot be loaded. `location` names where (``rules[3].condition...``)."""

    def __init__(self, message: str, location: str = "(policy)") -> None:
        super().__init__(f"{location}: {message}")
        self.message = message
        self.location = location


class RequestError(CallgateError, ValueError):
    """A request that cannot be decided: bad JSON, or a value JSON cannot carry.

    `code` is the core's error name (``"duplicate_key"``, ``"nonfinite"``...), `offset` the
    byte offset of the problem in the input named by `input` (``"arguments"``,
    ``"context"`` or ``"request"``)."""

    def __init__(self, message: str, code: str = "invalid", offset: int | None = None,
                 input: str | None = None) -> None:
        where = f" at byte {offset} of {input}" if offset is not None and input else ""
        super().__init__(f"{message}{where}")
        self.message = message
        self.code = code
        self.offset = offset
        self.input = input


class BlobError(PolicyError):
    """A compiled policy blob that the core refused (corrupt, truncated, wrong version)."""
