"""A sink from a SOURCE string, as the command line takes it (`callgate proxy --audit SOURCE`):
a .jsonl path, a .db/.sqlite path, a postgres DSN, an http(s) URL, or "-" for stdout."""

from __future__ import annotations

from typing import Any

from .http import HttpSink
from .jsonl import JsonlSink
from .postgres import PostgresSink
from .sinks import ConsoleSink
from .source import is_postgres
from .sqlite import SqliteSink


def open_sink(source: str, **options: Any) -> Any:
    """The sink SOURCE names; ValueError (one line) when it names none."""
    if source in ("-", "console"):
        return ConsoleSink(**options)
    if is_postgres(source):
        return PostgresSink(source, **options)
    if source.startswith(("http://", "https://")):
        return HttpSink(source, **options)
    if source.endswith(".jsonl"):
        return JsonlSink(source, **options)
    if source.endswith((".db", ".sqlite", ".sqlite3")):
        return SqliteSink(source, **options)
    raise ValueError(f"--audit {source!r}: expected a .jsonl or .db path, a postgres DSN, an http(s) URL or '-'")
