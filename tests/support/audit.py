"""Helpers for the audit tests (no tests here)."""

from __future__ import annotations

import time

import pytest


def wait_for(predicate, what: str, limit: float = 20.0) -> None:
    """A bounded wait for the writer thread (a guard against hanging, not a timing assertion)."""
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.005)
