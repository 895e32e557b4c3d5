"""The exception types. Every failure the engine reports is one of these."""

from __future__ import annotations


class CallgateError(Exception):
    """Base class of every error callgate raises."""


class PolicyError(CallgateError, ValueError):
    """A policy that cannot be loaded.

    `location` is the path of the problem in the policy (``rules[3].condition.All[1].NumericCheck.op``;
    ``(policy)`` for the whole policy, ``(file)`` for the file itself, ``(json)`` / ``(yaml)``
    for a syntax error outside any value). When the policy was read from text, `line` and
    `column` (1-based; the column counts characters) say where that is in it, and `file`
    names the file it was read from; a policy given as a dict has only the path. `at_key`:
    the problem is the key at `location` itself (an unknown or duplicate key), so its line and
    column are the key's rather than its value's.

    ``str(exc)`` is ``FILE:LINE:COLUMN: PATH: MESSAGE`` when all are known,
    ``line LINE column COLUMN: PATH: MESSAGE`` for text that is not a file,
    ``FILE: MESSAGE`` for a problem with the file as a whole (location ``(file)``),
    ``FILE: PATH: MESSAGE`` when the text holds no position for it (an empty YAML file),
    and ``PATH: MESSAGE`` otherwise (a policy given as a dict).
    """

    def __init__(self, message: str, location: str = "(policy)", *, file: str | None = None,
                 line: int | None = None, column: int | None = None, at_key: bool = False) -> None:
        super().__init__(f"{location}: {message}")
        self.message = message
        self.location = location
        self.file = file
        self.line = line
        self.column = column
        self.at_key = at_key

    def __str__(self) -> str:
        # computed when shown: the position is filled in after the error is raised (the
        # validator knows the path, only the reader of the file knows where it is)
        if self.line is not None:
            if self.file is not None:
                return f"{self.file}:{self.line}:{self.column}: {self.location}: {self.message}"
            return f"line {self.line} column {self.column}: {self.location}: {self.message}"
        if self.file is not None:
            if self.location == "(file)":
                return f"{self.file}: {self.message}"
            return f"{self.file}: {self.location}: {self.message}"
        return f"{self.location}: {self.message}"


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
    """A compiled policy blob that the core refused (corrupt, truncated, wrong version).

    `code` is the core's name for the cause (``"blob_checksum"``, ``"blob_opcode"``... the
    CG_E_BLOB_* list of csrc/cg_errors.h), `offset` the byte offset in the blob of the
    field at fault (None when the core gave none)."""

    def __init__(self, message: str, code: str = "blob", offset: int | None = None) -> None:
        where = f" at byte {offset}" if offset is not None else ""
        super().__init__(f"{message}{where}", "(blob)")
        self.code = code
        self.offset = offset
