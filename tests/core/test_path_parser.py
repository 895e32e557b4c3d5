"""The path normalizer of PathCheck (csrc/cg_path.c), tested natively through
tests/core/path_probe.c.

Pins: the bypass forms (`..` climbing out, repeated and trailing separators, `/srv/database`
beside `/srv/data`) normalize as the kernel resolves them lexically; POSIX results agree with
Python's posixpath.normpath and with os.path.realpath on a real directory tree (no
symlinks), Windows results with ntpath.normpath; Windows forms whose meaning depends on state
the engine cannot see (drive-relative, rooted, device paths, reserved names, trailing dots,
streams, 8.3 short names, administrative shares) and NUL bytes are refused with their own
status, never normalized to a guess.
"""

from __future__ import annotations

import ntpath
import os
import posixpath
import random
from pathlib import Path
from typing import Any

import pytest

from support import REPO
from support.cprobe import CSRC, build_probe, call_probe

POSIX, WINDOWS = 0, 1
(OK, EMPTY, NUL, TOO_LONG, RELATIVE, DRIVE_RELATIVE, DEVICE, UNC, RESERVED_NAME,
 AMBIGUOUS_SEGMENT, NON_ASCII, SHORT_NAME, ADMIN_SHARE) = range(13)


@pytest.fixture(scope="module")
def norm(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """normalize(text, style, relative) -> (status, path, root_len, ext, climbs)."""
    lib = build_probe([CSRC / "cg_path.c", REPO / "tests" / "core" / "path_probe.c"],
                      tmp_path_factory.mktemp("path"), "pathprobe")

    def normalize(text: str, style: int = POSIX, relative: bool = False) -> tuple[Any, ...]:
        f = call_probe(lib.probe_path, text, style, int(relative))
        return int(f[0]), f[1], int(f[2]), f[3], f[4] == "1"
    return normalize


@pytest.mark.parametrize("text,want", [
    ("/srv/data/../etc/passwd", "/srv/etc/passwd"),
    ("/srv/data/../../etc/passwd", "/etc/passwd"),
    ("/srv/data/./x", "/srv/data/x"),
    ("/srv//data///x/", "/srv/data/x"),
    ("/srv/data/x/../../../../etc", "/etc"),
    ("/..", "/"),
    ("//srv/data", "/srv/data"),
    ("/srv/database", "/srv/database"),
    ("/srv/data/..", "/srv"),
    ("/srv/data/...", "/srv/data/..."),
    ("/a/b/c/../../d", "/a/d"),
])
def test_posix_bypass_forms(norm: Any, text: str, want: str) -> None:
    """The classic escapes normalize to where they really lead."""
    st, path, root, _, _ = norm(text)
    assert (st, path, root) == (OK, want, 1)


@pytest.mark.parametrize("text,style,status", [
    ("", POSIX, EMPTY), ("/srv/data\x00/x", POSIX, NUL), ("srv/data", POSIX, RELATIVE),
    ("../etc", POSIX, RELATIVE), ("/" + "a/" * 2100, POSIX, TOO_LONG),
    ("C:foo", WINDOWS, DRIVE_RELATIVE), ("C:", WINDOWS, DRIVE_RELATIVE),
    ("\\Windows\\x", WINDOWS, DRIVE_RELATIVE), ("\\\\?\\C:\\x", WINDOWS, DEVICE),
    ("//./pipe/x", WINDOWS, DEVICE), ("\\\\server", WINDOWS, UNC), ("\\\\server\\", WINDOWS, UNC),
    ("C:\\data\\CON", WINDOWS, RESERVED_NAME), ("C:\\data\\nul.txt", WINDOWS, RESERVED_NAME),
    ("C:\\data\\lpt1 .log", WINDOWS, RESERVED_NAME), ("C:\\data\\Com9", WINDOWS, RESERVED_NAME),
    ("C:\\data\\x.", WINDOWS, AMBIGUOUS_SEGMENT), ("C:\\data\\x ", WINDOWS, AMBIGUOUS_SEGMENT),
    ("C:\\data\\x:stream", WINDOWS, AMBIGUOUS_SEGMENT), ("C:\\data\\*", WINDOWS, AMBIGUOUS_SEGMENT),
    ("C:\\data\\caf\u00e9", WINDOWS, NON_ASCII), ("data\\x", WINDOWS, RELATIVE),
])
def test_refused_forms(norm: Any, text: str, style: int, status: int) -> None:
    """What cannot be normalized with certainty gets its own status."""
    assert norm(text, style)[0] == status


@pytest.mark.parametrize("text,status", [
    ("C:\\data\\SECRE~1\\passwords.csv", SHORT_NAME), ("C:\\data\\NOTES~1.CSV", SHORT_NAME),
    ("C:\\PROGRA~2\\x", SHORT_NAME), ("c:/data/a~0", SHORT_NAME), ("C:\\data\\x.~9z", SHORT_NAME),
    ("\\\\srv\\SHARE~1\\x", SHORT_NAME), ("C:\\data\\..\\SECRE~1", SHORT_NAME),
    ("\\\\localhost\\C$\\data\\secret\\x", ADMIN_SHARE), ("\\\\127.0.0.1\\c$\\data\\secret\\x", ADMIN_SHARE),
    ("//srv/d$/x", ADMIN_SHARE), ("\\\\srv\\Z$", ADMIN_SHARE), ("\\\\srv\\C$\\", ADMIN_SHARE),
])
def test_short_names_and_administrative_shares_are_refused(norm: Any, text: str, status: int) -> None:
    """Pins: a Windows segment with '~' and a digit (the form of the 8.3 short names NTFS
    generates: SECRE~1 may be `secret`, NOTES~1.CSV may be `notes.csv_backup`) is SHORT_NAME,
    and a UNC share that is a drive letter and '$' (C$ on any server, any case: the
    administrative share of that drive's root) is ADMIN_SHARE; neither is normalized."""
    assert norm(text, WINDOWS)[0] == status


@pytest.mark.parametrize("text", [
    "C:\\data\\a~b.csv", "C:\\data\\x~", "C:\\data\\~x1", "\\\\srv\\C$x\\a", "\\\\srv\\share\\C$",
    "\\\\srv\\CC$\\a", "\\\\C$\\share\\a",
])
def test_tildes_and_dollars_elsewhere_are_read(norm: Any, text: str) -> None:
    """Pins the limits of the two refusals: '~' not followed by a digit, and '$' outside the
    share name or after more than one letter, are ordinary characters (as ntpath reads them);
    POSIX paths refuse neither."""
    st, path, _, _, _ = norm(text, WINDOWS)
    assert (st, path.rstrip("\\")) == (OK, ntpath.normpath(text).rstrip("\\"))
    assert norm("/data/SECRE~1/C$", POSIX)[:2] == (OK, "/data/SECRE~1/C$")


@pytest.mark.parametrize("text,want,root", [
    ("C:\\Data\\..\\Windows\\System32", "C:\\Windows\\System32", 3),
    ("c:/data//x/./y/", "c:\\data\\x\\y", 3),
    ("C:\\..\\..", "C:\\", 3),
    ("\\\\srv\\share\\a\\..\\..\\b", "\\\\srv\\share\\b", 12),
    ("//srv/share/x", "\\\\srv\\share\\x", 12),
    ("C:\\data\\console", "C:\\data\\console", 3),
    ("C:\\data\\com10", "C:\\data\\com10", 3),
])
def test_windows_forms(norm: Any, text: str, want: str, root: int) -> None:
    """Drives and UNC shares are roots that `..` cannot climb above; both separators work."""
    st, path, r, _, _ = norm(text, WINDOWS)
    assert (st, path, r) == (OK, want, root)


@pytest.mark.parametrize("text,ext", [
    ("/a/b.csv", ".csv"), ("/a/b.tar.gz", ".gz"), ("/a/.bashrc", ""), ("/a/..x", ""),
    ("/a/b.", "."), ("/a/b", ""), ("/a.d/b", ""), ("/a/b.CSV/", ".CSV"),
])
def test_extension_is_that_of_the_last_segment(norm: Any, text: str, ext: str) -> None:
    """The extension is os.path.splitext's, of the normalized last segment."""
    assert norm(text)[3] == ext == posixpath.splitext(posixpath.normpath(text))[1]


def test_relative_paths_when_allowed(norm: Any) -> None:
    """With relative paths allowed, leading `..` are kept and reported as climbing."""
    assert norm("a/../../b", POSIX, True)[1:] == ("../b", 0, "", True)
    assert norm("a/b/..", POSIX, True)[1] == "a"
    assert norm("a/..", POSIX, True)[1] == "."
    assert norm("./x/", POSIX, True)[1:3] == ("x", 0)


SEGS = ["a", "b", "data", "database", ".", "..", "", "x.csv", "...", ".hidden", "a b", "é"]


def _gen(rng: random.Random, seps: list[str], n: int) -> list[str]:
    out = []
    for _ in range(n):
        k = rng.randrange(1, 8)
        out.append("".join(rng.choice(seps) + rng.choice(SEGS) for _ in range(k)))
    return out


def test_posix_agrees_with_posixpath_normpath(norm: Any) -> None:
    """On 5,000 generated absolute paths the result is posixpath.normpath's (a leading
    '//' aside: POSIX leaves it to the system, and Linux reads it as '/')."""
    rng = random.Random(19)
    for text in _gen(rng, ["/", "//", "///"], 5000):
        want = posixpath.normpath(text)
        if want.startswith("//") and not want.startswith("///"):
            want = want[1:]
        st, path, _, ext, _ = norm(text)
        assert st == OK and path == want, text
        assert ext == posixpath.splitext(want)[1]


def test_windows_agrees_with_ntpath_normpath(norm: Any) -> None:
    """On 5,000 generated drive and UNC paths, every one normalized agrees with
    ntpath.normpath; the refusals are exactly the segments Windows would alter."""
    rng = random.Random(20)
    checked = 0
    for body in _gen(rng, ["\\", "/", "\\\\", "/\\"], 5000):
        text = rng.choice(["C:", "d:", "\\\\srv\\share"]) + body
        st, path, _, _, _ = norm(text, WINDOWS)
        if st == OK:
            checked += 1
            assert path.rstrip("\\") == ntpath.normpath(text).rstrip("\\"), text
        else:
            assert st in (NON_ASCII, AMBIGUOUS_SEGMENT), text
            assert "é" in text or any(s.endswith((".", " ")) and s not in (".", "..")
                                      for s in text.replace("/", "\\").split("\\")), text
    assert checked > 2000


def test_agrees_with_realpath_on_a_real_tree(norm: Any, tmp_path: Path) -> None:
    """On a real directory tree without symlinks, the normalized path of every generated
    walk (with `.`, `..` and repeated separators) is the file system's own realpath."""
    base = Path(os.path.realpath(tmp_path))
    for d in ("srv/data/sub", "srv/database", "etc"):
        (base / d).mkdir(parents=True)
    rng = random.Random(21)
    names = ["srv", "data", "sub", "database", "etc", ".", ".."]
    for _ in range(3000):
        walk = "".join(rng.choice(["/", "//"]) + rng.choice(names) for _ in range(rng.randrange(1, 7)))
        text = str(base) + walk
        st, path, _, _, _ = norm(text)
        assert st == OK
        # realpath resolves ".." after a missing directory lexically too, like normpath
        assert path == os.path.realpath(text), text
