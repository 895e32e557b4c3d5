"""Differential fuzzing of the core's path normalizer (csrc/cg_path.c) against Python's
posixpath.normpath and ntpath.normpath: atheris picks a style and builds a path from pieces
that reach the normalizer's branches (separators of both kinds, `.`, `..`, empty segments,
drives, UNC shares, extensions, raw bytes); the run stops at the first input the core
normalizes differently from the standard library, or refuses for a reason the document does
not give (docs/arguments.md, PathCheck "U").

    LD_PRELOAD=.../ubsan_with_fuzzer.so python fuzz/fuzz_path_diff.py fuzz/build/pathprobe.so -max_total_time=600 fuzz/corpus-path

(scripts/fuzz.sh builds the probe library from csrc/cg_path.c and tests/core/path_probe.c.)
"""

from __future__ import annotations

import ctypes
import ntpath
import posixpath
import sys

import atheris

PROBE = ctypes.CDLL(sys.argv.pop(1))
(OK, EMPTY, NUL, TOO_LONG, RELATIVE, DRIVE_RELATIVE, DEVICE, UNC, RESERVED_NAME,
 AMBIGUOUS_SEGMENT, NON_ASCII, SHORT_NAME, ADMIN_SHARE) = range(13)
SEGMENTS = ["a", "b", "data", "database", ".", "..", "", "x.csv", "...", ".hidden", "a b", "a.tar.gz", "con",
            "CON.txt", "x.", "x ", "a:b", "*", "caf\u00e9", "com10", "SECRE~1", "a~b"]
POSIX_SEPARATORS = ["/", "//", "///"]
WINDOWS_SEPARATORS = ["\\", "/", "\\\\", "/\\"]
WINDOWS_ROOTS = ["C:", "d:", "\\\\srv\\share", "//srv/share", "C:", "\\\\?\\C:", "\\", "", "\\\\srv\\C$"]


def _raw(fdp: atheris.FuzzedDataProvider) -> str:
    """A few characters of raw text (no tab: the probe's fields are tab-separated)."""
    return fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 4)).replace("\t", "")


def normalize(text: str, style: int, relative: bool) -> tuple[int, str]:
    raw = text.encode("utf-8", "surrogatepass")
    out = ctypes.create_string_buffer(16384)
    n = PROBE.probe_path(raw, len(raw), out, 16384, style, int(relative))
    fields = out.raw[:n].decode("utf-8", "surrogateescape").split("\t")
    return int(fields[0]), fields[1]


def _posix(fdp: atheris.FuzzedDataProvider) -> None:
    relative = fdp.ConsumeBool()
    parts = [] if relative else [fdp.PickValueInList(POSIX_SEPARATORS)]
    for _ in range(fdp.ConsumeIntInRange(1, 8)):
        if fdp.ConsumeIntInRange(0, 9) == 0:
            parts.append(_raw(fdp))
        else:
            parts.append(fdp.PickValueInList(SEGMENTS))
        parts.append(fdp.PickValueInList(POSIX_SEPARATORS))
    text = "".join(parts[:-1] if fdp.ConsumeBool() else parts)
    status, path = normalize(text, 0, relative)
    if status != OK:
        if "\x00" in text:
            assert status == NUL, (text, status)
        elif not text:
            assert status == EMPTY, (text, status)
        elif not text.startswith("/") and not relative:
            assert status == RELATIVE, (text, status)
        else:
            assert status == TOO_LONG and len(text.encode()) > 4096, (text, status)
        return
    want = posixpath.normpath(text)
    if want.startswith("//") and not want.startswith("///"):
        want = want[1:]   # POSIX leaves a leading // to the system; Linux reads it as /
    assert path == want, (text, path, want)


def _windows(fdp: atheris.FuzzedDataProvider) -> None:
    parts = [fdp.PickValueInList(WINDOWS_ROOTS)]
    for _ in range(fdp.ConsumeIntInRange(1, 8)):
        parts.append(fdp.PickValueInList(WINDOWS_SEPARATORS))
        if fdp.ConsumeIntInRange(0, 9) == 0:
            parts.append(_raw(fdp))
        else:
            parts.append(fdp.PickValueInList(SEGMENTS))
    text = "".join(parts)
    status, path = normalize(text, 1, False)
    if status == OK:
        assert path.rstrip("\\") == ntpath.normpath(text).rstrip("\\"), (text, path, ntpath.normpath(text))
        return
    # every refusal is one the document names; the reserved-name and altered-segment ones
    # must be visible in the text
    assert status in (EMPTY, NUL, TOO_LONG, RELATIVE, DRIVE_RELATIVE, DEVICE, UNC, RESERVED_NAME,
                      AMBIGUOUS_SEGMENT, NON_ASCII, SHORT_NAME, ADMIN_SHARE), (text, status)
    if status == SHORT_NAME:
        assert any(a == "~" and b.isdigit() for a, b in zip(text, text[1:])), (text, status)
    if status == ADMIN_SHARE:
        assert "$" in text, (text, status)
    if status == NON_ASCII:
        assert any(ord(c) > 0x7F for c in text), (text, status)
    if status == NUL:
        assert "\x00" in text, (text, status)


def test_one(data: bytes) -> None:
    """One input: the core agrees with the standard library, or refuses for a documented reason."""
    fdp = atheris.FuzzedDataProvider(data)
    (_windows if fdp.ConsumeBool() else _posix)(fdp)


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one)
    atheris.Fuzz()
