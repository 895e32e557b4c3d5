"""Differential fuzzing of the core's URL parser (csrc/cg_url.c) against ada-url (the WHATWG
standard in C++): atheris mutates bytes, both parse them, and the run stops at the first
input where the core's parse is not ada-url's. An input the core does not decide (IDNA, other
schemes, over-long: docs/arguments.md) is skipped; for the rest they must agree on validity
and, when valid, on scheme, username, password, host and port.

    LD_PRELOAD=.../ubsan_with_fuzzer.so python fuzz/fuzz_url_diff.py fuzz/build/urlprobe.so -max_total_time=600 fuzz/corpus-url

(scripts/fuzz.sh builds the probe library from csrc/cg_url.c and tests/core/url_probe.c.)
"""

from __future__ import annotations

import ctypes
import sys

import ada_url
import atheris

PROBE = ctypes.CDLL(sys.argv.pop(1))
FIRST_UNDECIDED = 7
# WHATWG's userinfo percent-encode set: the probe returns the raw spans
USERINFO = set(range(0x21)) | set(b'"#<>?`{}/:;=@[\\]^|') | set(range(0x7F, 0x100))


def _encode(s: bytes) -> str:
    return "".join(chr(b) if b not in USERINFO else "%%%02X" % b for b in s)


# The core's side steers the run: scripts/fuzz.sh builds the probe with coverage and preloads
# atheris's libFuzzer (ada-url is not instrumented). The bytes choose among pieces that reach
# the parsers' branches (schemes, separators, userinfo, host forms, ports), mixed with raw text.
PIECES = [["http", "HTTPS", "ws", "ftp", "wss", "h"], [":", "://", ":\\\\", ":/\\", "://///"],
          ["", "@", "u@", "u:p@", "a@b@", ":@", "%40@", "a.com\\@", "a\\"],
          ["example.com", "127.1", "0x7f.1", "0177.0.0.1", "4294967295", "[::1]", "[::ffff:1.2.3.4]",
           "[1:2:3:4:5:6:7:8]", "%31.2", "a..b", "1.2.3.4.", "0x", "09", "[::1.2.3]", "a%2Fb", ""],
          ["", ":", ":80", ":443", ":65536", ":0x1", ":08"], ["", "/", "?q", "#f", "\\x", "/@x"]]


def test_one(data: bytes) -> None:
    """One input: the core and ada-url agree, or the input is one the core leaves undecided."""
    fdp = atheris.FuzzedDataProvider(data)
    parts = []
    for choices in PIECES:
        piece = choices[fdp.ConsumeIntInRange(0, len(choices) - 1)]
        if fdp.ConsumeIntInRange(0, 7) == 0:  # sometimes raw text instead of, or inside, a piece
            extra = fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 6))
            k = fdp.ConsumeIntInRange(0, len(piece))
            piece = piece[:k] + extra + piece[k:]
        parts.append(piece)
    text = "".join(parts)
    raw = text.encode()
    out = ctypes.create_string_buffer(16384)
    n = PROBE.probe_url(raw, len(raw), out, 16384)
    f = out.raw[:n].split(b"\t")
    status = int(f[0])
    if status >= FIRST_UNDECIDED:
        return
    try:
        u = ada_url.URL(text)
    except ValueError:
        u = None
    if u is None:
        assert status != 0, ("core parsed what ada-url refuses", text)
        return
    assert status == 0, ("core refused what ada-url parses", text, status)
    port = b"" if int(f[8]) < 0 else f[8]
    mine = [f[1].decode() + ":", _encode(f[3]), _encode(f[5]), f[6].decode(), port.decode()]
    theirs = [u.protocol, u.username, u.password, u.hostname, u.port]
    assert mine == theirs, (text, mine, theirs)


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one)
    atheris.Fuzz()
