"""Typed argument checks (docs/arguments.md): the URL parser and path normalizer of UrlCheck
and PathCheck, as the C core has them (csrc/cg_url.c, csrc/cg_path.c), for the Python side.

The core evaluates the checks. This module serves what happens around that: the policy
validator normalizes the hosts and roots a policy lists (so that the core compares them with
the canonical forms it computes), and `callgate explain` shows what each parser found and
evaluates the nodes of its tree. Statuses, texts and results are the core's, line for line;
tests/core/test_arguments_port.py holds the two to each other on generated inputs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Optional

URL_MAX_INPUT = 8192
URL_HOST_MAX = 255
PATH_MAX_INPUT = 4096
SPECIAL_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443, "ftp": 21}

URL_STATUS = ("parsed", "has no scheme", "has an empty host", "has an invalid port",
              "has an invalid IPv4 address", "has an invalid IPv6 address",
              "has a forbidden character in its host", "is longer than 8192 bytes",
              "has a host longer than 255 bytes",
              "has a scheme whose host rules are not checked (only http, https, ws, wss, ftp)",
              "has a non-ASCII or xn-- host, which needs IDNA mapping",
              "has a backslash before or ending its authority, which RFC 3986 clients (curl, httpx) "
              "do not read as a separator")
(URL_OK, URL_NO_SCHEME, URL_EMPTY_HOST, URL_BAD_PORT, URL_BAD_IPV4, URL_BAD_IPV6, URL_BAD_HOST,
 URL_TOO_LONG, URL_HOST_TOO_LONG, URL_SCHEME_UNSUPPORTED, URL_IDNA, URL_BACKSLASH) = range(12)

PATH_STATUS = ("normalized", "is empty", "contains a NUL byte", "is longer than 4096 bytes",
               "is relative", "is relative to a drive's current directory or the current drive",
               "is a Windows device path (\\\\?\\ or \\\\.\\)", "is an incomplete UNC path",
               "names a Windows device (CON, NUL, COM1, ...)",
               "has a segment Windows would alter (trailing dot or space, ':', wildcard or "
               "control character)",
               "has non-ASCII characters, whose case folding the file system decides",
               "has a segment with '~' and a digit, which may be an 8.3 short name of another file",
               "is on an administrative share (C$, ...), another name of a drive's root")
(PATH_OK, PATH_EMPTY, PATH_NUL, PATH_TOO_LONG, PATH_RELATIVE, PATH_DRIVE_RELATIVE, PATH_DEVICE,
 PATH_UNC, PATH_RESERVED_NAME, PATH_AMBIGUOUS_SEGMENT, PATH_NON_ASCII, PATH_SHORT_NAME,
 PATH_ADMIN_SHARE) = range(13)

IP_CLASS = ("public", "a localhost name", "unspecified", "loopback", "private", "link-local",
            "shared address space (CGNAT)", "unique-local", "multicast", "broadcast", "reserved",
            "documentation", "IPv4-mapped or IPv4-embedding")

_FORBIDDEN_DOMAIN = frozenset(b"#%/:<>?@[\\]^|")
_HEX = "0123456789abcdefABCDEF"


@dataclass
class Url:
    """What the URL parser found: status (URL_*), and when it is URL_OK the lower-case scheme,
    whether the authority has an '@', the serialized host, its kind (domain, ipv4, ipv6) with
    the address, and the port (None when absent or the scheme's default)."""

    status: int
    scheme: str = ""
    has_at: bool = False
    host: str = ""
    kind: str = "domain"
    ipv4: int = 0
    ipv6: tuple[int, ...] = (0,) * 8
    port: Optional[int] = None

    @property
    def effective_port(self) -> int:
        """The port the URL reaches: its own, else the scheme's default."""
        return self.port if self.port is not None else SPECIAL_PORTS[self.scheme]


def _ipv4_number(s: str) -> Optional[int]:
    if not s:
        return None
    radix = 10
    if len(s) >= 2 and s[0] == "0" and s[1] in "xX":
        s, radix = s[2:], 16
    elif len(s) >= 2 and s[0] == "0":
        s, radix = s[1:], 8
    digits = "0123456789abcdef"[:radix]
    if any(c.lower() not in digits for c in s):
        return None
    return min(int(s, radix), 1 << 32) if s else 0


def _ends_in_number(host: str) -> bool:
    parts = host.split(".")
    if parts[-1] == "" and len(parts) > 1:
        parts.pop()
    last = parts[-1]
    if not last:
        return False
    if all(c in "0123456789" for c in last):
        return True
    return _ipv4_number(last) is not None


def _ipv4(host: str) -> Optional[int]:
    parts = host.split(".")
    if parts[-1] == "" and len(parts) > 1:
        parts.pop()
    if len(parts) > 4:
        return None
    nums = [_ipv4_number(p) for p in parts]
    if any(n is None for n in nums):
        return None
    values = [n for n in nums if n is not None]
    if any(n > 255 for n in values[:-1]) or values[-1] >= 256 ** (5 - len(values)):
        return None
    return values[-1] + sum(n << (8 * (3 - i)) for i, n in enumerate(values[:-1]))


def _ipv6(s: str) -> Optional[tuple[int, ...]]:
    """The WHATWG IPv6 parser over the text between the brackets."""
    addr = [0] * 8
    piece, p, compress = 0, 0, None
    n = len(s)

    def c(k: int = 0) -> str:
        return s[p + k] if p + k < n else ""
    if c() == ":":
        if c(1) != ":":
            return None
        p += 2
        piece += 1
        compress = piece
    while p < n:
        if piece == 8:
            return None
        if c() == ":":
            if compress is not None:
                return None
            p += 1
            piece += 1
            compress = piece
            continue
        value = length = 0
        while length < 4 and c() and c() in _HEX:
            value = value * 16 + int(c(), 16)
            p += 1
            length += 1
        if c() == ".":
            if length == 0:
                return None
            p -= length
            if piece > 6:
                return None
            seen = 0
            while p < n:
                v4: Optional[int] = None
                if seen > 0:
                    if c() == "." and seen < 4:
                        p += 1
                    else:
                        return None
                if not c() or c() not in "0123456789":
                    return None
                while c() and c() in "0123456789":
                    d = int(c())
                    if v4 is None:
                        v4 = d
                    elif v4 == 0:
                        return None
                    else:
                        v4 = v4 * 10 + d
                    if v4 > 255:
                        return None
                    p += 1
                addr[piece] = addr[piece] * 0x100 + (v4 or 0)
                seen += 1
                if seen in (2, 4):
                    piece += 1
            if seen != 4:
                return None
            break
        elif c() == ":":
            p += 1
            if p >= n:
                return None
        elif p < n:
            return None
        addr[piece] = value
        piece += 1
    if compress is not None:
        swaps = piece - compress
        piece = 7
        while piece != 0 and swaps > 0:
            other = compress + swaps - 1
            addr[piece], addr[other] = addr[other], addr[piece]
            piece -= 1
            swaps -= 1
    elif piece != 8:
        return None
    return tuple(addr)


def _ipv6_text(a: tuple[int, ...]) -> str:
    best, best_len, i = -1, 1, 0
    while i < 8:
        if a[i]:
            i += 1
            continue
        j = i
        while j < 8 and a[j] == 0:
            j += 1
        if j - i > best_len:
            best, best_len = i, j - i
        i = j
    out, ignore0 = "[", False
    for i, v in enumerate(a):
        if ignore0 and v == 0:
            continue
        ignore0 = False
        if best == i:
            out += "::" if i == 0 else ":"
            ignore0 = True
            continue
        out += f"{v:x}" + (":" if i != 7 else "")
    return out + "]"


def _host(raw: bytes, u: Url) -> int:
    if raw[:1] == b"[":
        if raw[-1:] != b"]":
            return URL_BAD_IPV6
        addr = _ipv6(raw[1:-1].decode("latin-1"))
        if addr is None:
            return URL_BAD_IPV6
        u.kind, u.ipv6, u.host = "ipv6", addr, _ipv6_text(addr)
        return URL_OK
    out = bytearray()
    i = 0
    while i < len(raw):
        c = raw[i]
        if c == 0x25 and i + 2 < len(raw) and chr(raw[i + 1]) in _HEX and chr(raw[i + 2]) in _HEX:
            c = int(raw[i + 1:i + 3], 16)
            i += 2
        out.append(c + 32 if 0x41 <= c <= 0x5A else c)
        i += 1
    if any(c >= 0x80 for c in out):
        return URL_IDNA
    if not out:
        return URL_EMPTY_HOST
    if any(c <= 0x20 or c == 0x7F or c in _FORBIDDEN_DOMAIN for c in out):
        return URL_BAD_HOST
    host = out.decode()
    if any(label.startswith("xn--") for label in host.split(".")):
        return URL_IDNA
    if len(out) > URL_HOST_MAX:
        return URL_HOST_TOO_LONG
    if _ends_in_number(host):
        v = _ipv4(host)
        if v is None:
            return URL_BAD_IPV4
        u.kind, u.ipv4, u.host = "ipv4", v, ".".join(str(v >> s & 255) for s in (24, 16, 8, 0))
        return URL_OK
    u.host = host
    return URL_OK


def parse_url(text: str) -> Url:
    """The URL as cg_url_parse reads it (the WHATWG basic parser, special schemes only)."""
    data = text.encode("utf-8", "surrogatepass")
    if len(data) > URL_MAX_INPUT:
        return Url(URL_TOO_LONG)
    data = data.strip(bytes(range(0x21)))
    data = bytes(b for b in data if b not in (9, 10, 13))
    k = 0
    if not data or not (chr(data[0]).isascii() and chr(data[0]).isalpha()):
        return Url(URL_NO_SCHEME)
    while k < len(data) and (chr(data[k]).isascii() and (chr(data[k]).isalnum() or data[k] in b"+-.")):
        k += 1
    if k == len(data) or data[k] != 0x3A:
        return Url(URL_NO_SCHEME)
    scheme = data[:k].decode().lower()
    if k > 32 or scheme not in SPECIAL_PORTS:
        return Url(URL_SCHEME_UNSUPPORTED, scheme=scheme if k <= 32 else "")
    u = Url(URL_OK, scheme=scheme)
    p = k + 1
    while p < len(data) and data[p] in b"/\\":
        p += 1
    end = p
    while end < len(data) and data[end] not in b"/\\?#":
        end += 1
    # RFC 3986 clients (curl, httpx, urllib) read a backslash among the slashes, or ending the
    # authority, as part of the path or the authority: not decided (after the standard's failures)
    backslash = 0x5C in data[k + 1:p] or data[end:end + 1] == b"\\"
    authority = data[p:end]
    at = authority.rfind(b"@")
    if at >= 0:
        u.has_at = True
        authority = authority[at + 1:]
        if not authority:
            u.status = URL_EMPTY_HOST
            return u
    depth, colon = False, len(authority)
    for i, ch in enumerate(authority):
        if ch == 0x3A and not depth:
            colon = i
            break
        if ch == 0x5B:
            depth = True
        elif ch == 0x5D:
            depth = False
    host, port = authority[:colon], authority[colon + 1:]
    if not host:
        u.status = URL_EMPTY_HOST
        return u
    if colon < len(authority) and port:
        if not all(0x30 <= ch <= 0x39 for ch in port):
            u.status = URL_BAD_PORT
            return u
        value = 0
        for ch in port:
            value = value * 10 + ch - 0x30
            if value > 65535:
                u.status = URL_BAD_PORT
                return u
        u.port = None if value == SPECIAL_PORTS[scheme] else value
    u.status = _host(host, u)
    if u.status == URL_OK and backslash:
        u.status = URL_BACKSLASH
    return u


def _in4(a: int, net: int, bits: int) -> bool:
    return a >> (32 - bits) == net >> (32 - bits)


def _class_v4(a: int) -> int:
    if _in4(a, 0x00000000, 8):
        return 2
    if _in4(a, 0x7F000000, 8):
        return 3
    if _in4(a, 0x0A000000, 8) or _in4(a, 0xAC100000, 12) or _in4(a, 0xC0A80000, 16):
        return 4
    if _in4(a, 0xA9FE0000, 16):
        return 5
    if _in4(a, 0x64400000, 10):
        return 6
    if a == 0xFFFFFFFF:
        return 9
    if _in4(a, 0xE0000000, 4):
        return 8
    if _in4(a, 0xF0000000, 4) or _in4(a, 0xC0000000, 24) or _in4(a, 0xC6120000, 15):
        return 10
    if _in4(a, 0xC0000200, 24) or _in4(a, 0xC6336400, 24) or _in4(a, 0xCB007100, 24):
        return 11
    if _in4(a, 0xC0586300, 24):
        return 10
    return 0


def _class_v6(a: tuple[int, ...]) -> int:
    zero5 = a[:5] == (0,) * 5
    if zero5 and a[5:] == (0, 0, 0):
        return 2
    if zero5 and a[5:] == (0, 0, 1):
        return 3
    if zero5 and a[5] in (0, 0xFFFF):
        return 12
    if (a[0], a[1]) == (0x64, 0xFF9B) or a[0] == 0x2002 or (a[0], a[1]) == (0x2001, 0):
        return 12
    if a[0] & 0xFE00 == 0xFC00:
        return 7
    if a[0] & 0xFFC0 == 0xFE80:
        return 5
    if a[0] & 0xFFC0 == 0xFEC0:
        return 4
    if a[0] & 0xFF00 == 0xFF00:
        return 8
    if (a[0], a[1]) == (0x2001, 0xDB8) or (a[0] == 0x3FFF and a[1] < 0x1000):
        return 11
    if a[:4] == (0x100, 0, 0, 0) or (a[0] == 0x2001 and a[1] < 0x200) or a[0] & 0xE000 != 0x2000:
        return 10
    return 0


def ip_class(u: Url) -> str:
    """What the host is for `ip: "public"`: "public" or the range (or localhost name) it is."""
    if u.kind == "ipv4":
        return IP_CLASS[_class_v4(u.ipv4)]
    if u.kind == "ipv6":
        return IP_CLASS[_class_v6(u.ipv6)]
    name = u.host[:-1] if u.host.endswith(".") else u.host
    return IP_CLASS[1] if name == "localhost" or name.endswith(".localhost") else IP_CLASS[0]


@dataclass
class NormPath:
    """What the path normalizer found: status (PATH_*), and when PATH_OK the normalized path,
    its root's length and the last segment's extension ("" when none)."""

    status: int
    path: str = ""
    root_len: int = 0
    ext: str = ""


_RESERVED = {"con", "prn", "aux", "nul", "conin$", "conout$"}


def _windows_segment(seg: str) -> int:
    if any(ord(ch) >= 0x80 for ch in seg):
        return PATH_NON_ASCII
    if any(ord(ch) < 0x20 or ch in ':*?"<>|' for ch in seg) or seg[-1] in ". ":
        return PATH_AMBIGUOUS_SEGMENT
    if any(seg[i] == "~" and seg[i + 1] in "0123456789" for i in range(len(seg) - 1)):
        return PATH_SHORT_NAME  # NTFS 8.3 short names (SECRE~1): which long name is the volume's
    base = seg.split(".", 1)[0].rstrip(" ").lower()
    if base in _RESERVED or (len(base) == 4 and base[:3] in ("com", "lpt") and base[3].isdigit()
                             and base[3].isascii()):
        return PATH_RESERVED_NAME
    return PATH_OK


def normalize_path(text: str, style: str = "posix", relative: bool = False) -> NormPath:
    """The path as cg_path_normalize normalizes it (style "posix" or "windows")."""
    if not text:
        return NormPath(PATH_EMPTY)
    if len(text.encode("utf-8", "surrogatepass")) > PATH_MAX_INPUT:
        return NormPath(PATH_TOO_LONG)
    if "\0" in text:
        return NormPath(PATH_NUL)
    win = style == "windows"
    sep = "\\" if win else "/"
    s = text.replace("/", "\\") if win else text
    root, i = "", 0
    if not win:
        if s.startswith("/"):
            root = "/"
            i = len(s) - len(s.lstrip("/"))
    elif s.startswith("\\\\"):
        if len(s) > 2 and s[2] in "?." and (len(s) == 3 or s[3] == "\\"):
            return NormPath(PATH_DEVICE)
        rest, pos, names = s[2:], 0, []
        for part in range(2):  # server, then share, each followed by one separator
            end = rest.find("\\", pos)
            end = len(rest) if end < 0 else end
            name = rest[pos:end]
            if not name:
                return NormPath(PATH_UNC)
            rc = _windows_segment(name)
            if rc:
                return NormPath(rc)
            if part == 1 and len(name) == 2 and name[0].isascii() and name[0].isalpha() and name[1] == "$":
                return NormPath(PATH_ADMIN_SHARE)  # C$: the administrative share of a drive
            names.append(name)
            if end < len(rest):
                pos = end + 1
            elif part == 0:
                return NormPath(PATH_UNC)
            else:
                pos = end
        root = "\\\\" + names[0] + "\\" + names[1] + "\\"
        i = 2 + pos
    elif len(s) > 1 and s[0].isascii() and s[0].isalpha() and s[1] == ":":
        if len(s) == 2 or s[2] != "\\":
            return NormPath(PATH_DRIVE_RELATIVE)
        root, i = s[:2] + "\\", 2
    elif s.startswith("\\"):
        return NormPath(PATH_DRIVE_RELATIVE)
    if not root and not relative:
        return NormPath(PATH_RELATIVE)
    segs: list[str] = []
    up = 0
    for seg in s[i:].split(sep):
        if seg in ("", "."):
            continue
        if seg == "..":
            if len(segs) > up:
                segs.pop()
            elif not root:
                segs.append("..")
                up += 1
            continue
        if win:
            rc = _windows_segment(seg)
            if rc:
                return NormPath(rc)
        segs.append(seg)
    path = root + sep.join(segs) or "."
    last = path[len(root):].rsplit(sep, 1)[-1] if len(path) > len(root) else ""
    ext = ""
    dot = last.rfind(".")
    if dot > 0 and last[:dot].strip(".") != "":
        ext = last[dot:]
    return NormPath(PATH_OK, path, len(root), ext)


# ---------------------------------------------------------------- policy constants


def canonical_host(entry: str) -> str:
    """A `hosts_in` entry as the core compares it: the host the URL parser makes of it (lower
    case, IPv4 dotted, IPv6 canonical in brackets), without a trailing dot. ValueError when
    the entry is not a host alone or is a host the parser does not read."""
    if not entry or any(c in entry for c in "/?#@\\") or ":" in entry.split("]")[-1]:
        raise ValueError(f"{entry!r} is not a host alone (no scheme, userinfo, port or path)")
    u = parse_url(f"http://{entry}/")
    if u.status != URL_OK:
        raise ValueError(f"{entry!r} is not a host UrlCheck reads: it {URL_STATUS[u.status]}")
    host = u.host
    return host[:-1] if u.kind == "domain" and len(host) > 1 and host.endswith(".") else host


def canonical_suffix(entry: str) -> str:
    """A `host_suffixes_in` entry: a domain name (a leading dot allowed), canonical as hosts are."""
    name = entry[1:] if entry.startswith(".") else entry
    host = canonical_host(name)
    if parse_url(f"http://{name}/").kind != "domain":
        raise ValueError(f"{entry!r} is an IP address, not a domain name suffix")
    return host


def canonical_root(root: str, style: str, relative: bool) -> str:
    """A `within` / `not_within` root as the core compares it: normalized (and ASCII lower
    case for Windows). ValueError when it does not normalize or is relative while the check
    requires absolute paths."""
    n = normalize_path(root, style, relative)
    if n.status != PATH_OK:
        raise ValueError(f"{root!r} {PATH_STATUS[n.status]}")
    return _fold(n.path) if style == "windows" else n.path


def canonical_extension(ext: str, style: str) -> str:
    """An `extensions_in` entry (".csv"): a dot then at least one character, no separator;
    ASCII lower case for Windows."""
    if len(ext) < 2 or not ext.startswith(".") or "/" in ext or (style == "windows" and "\\" in ext):
        raise ValueError(f"{ext!r} is not an extension (a dot, then at least one character, no separator)")
    return _fold(ext) if style == "windows" else ext


def ascii_lower(s: str) -> str:
    """ASCII letters in lower case, every other character as it is (how the core folds)."""
    return _fold(s)


def _ascii_lower_bytes(b: bytes) -> bytes:
    return bytes(c | 0x20 if 0x41 <= c <= 0x5A else c for c in b)


def _fold(s: str) -> str:
    return "".join(c.lower() if "A" <= c <= "Z" else c for c in s)


# ---------------------------------------------------------------- the checks, for explain


def url_found(u: Url) -> str:
    """What the URL parser found, as `callgate explain` shows it."""
    if u.status != URL_OK:
        return f"not read: the URL {URL_STATUS[u.status]}"
    port = u.effective_port
    userinfo = ", userinfo" if u.has_at else ""
    return f"scheme {u.scheme}{userinfo}, host {u.host} ({ip_class(u)}), port {port}"


def url_check(value: str, schemes_in: Optional[list[str]] = None, hosts_in: Optional[list[str]] = None,
              host_suffixes_in: Optional[list[str]] = None, ports_in: Optional[list[int]] = None,
              userinfo: bool = True, ip: Optional[str] = None) -> tuple[str, Url]:
    """The value of a UrlCheck ("T", "F" or "U") over a string, with the parse; the lists are
    the policy's (canonicalized here as the compiler does)."""
    u = parse_url(value)
    if u.status != URL_OK:
        return "U", u
    if schemes_in is not None and u.scheme not in schemes_in:
        return "F", u
    if not userinfo and u.has_at:
        return "F", u
    match = u.host[:-1] if u.kind == "domain" and len(u.host) > 1 and u.host.endswith(".") else u.host
    if hosts_in is not None or host_suffixes_in is not None:
        ok = hosts_in is not None and match in {canonical_host(h) for h in hosts_in}
        if not ok and host_suffixes_in is not None and u.kind == "domain":
            suffixes = {canonical_suffix(h) for h in host_suffixes_in}
            labels = match.split(".")
            ok = any(".".join(labels[k:]) in suffixes for k in range(len(labels)))
        if not ok:
            return "F", u
    if ports_in is not None and u.effective_port not in ports_in:
        return "F", u
    if ip == "public" and ip_class(u) != "public":
        return "F", u
    return "T", u


def path_found(n: NormPath) -> str:
    """What the path normalizer found, as `callgate explain` shows it."""
    if n.status != PATH_OK:
        return f"not read: the path {PATH_STATUS[n.status]}"
    return f"normalized {n.path}" + (f", extension {n.ext}" if n.ext else "")


def path_check(value: str, style: str = "posix", within: Optional[list[str]] = None,
               not_within: Optional[list[str]] = None, absolute: bool = True,
               extensions_in: Optional[list[str]] = None) -> tuple[str, NormPath]:
    """The value of a PathCheck ("T", "F" or "U") over a string, with the normalization."""
    n = normalize_path(value, style, not absolute)
    if n.status != PATH_OK:
        return "U", n
    win = style == "windows"
    sep = "\\" if win else "/"
    path = _fold(n.path) if win else n.path

    def under(roots: list[str]) -> bool:
        for root in roots:
            r = canonical_root(root, style, not absolute)
            if path == r or path.startswith(r if r.endswith(sep) else r + sep):
                return True
        return False

    def may_be_under(roots: list[str]) -> bool:
        # POSIX on a case-insensitive volume (cg_check.c may_be_within)
        return not win and any(_may_be_under(canonical_root(r, style, not absolute), path) for r in roots)
    unsure = False
    if within is not None and not under(within):
        if not may_be_under(within):
            return "F", n
        unsure = True
    if not_within is not None:
        if under(not_within):
            return "F", n
        unsure = unsure or may_be_under(not_within)
    if extensions_in is not None:
        ext = _fold(n.ext) if win else n.ext
        if not ext or ext not in {canonical_extension(e, style) for e in extensions_in}:
            return "F", n
    return ("U" if unsure else "T"), n


def _may_be_under(root: str, path: str) -> bool:
    """Whether the normalized POSIX path may lie under root on a case-insensitive volume: both
    absolute or both relative, the path at least as deep, and no segment pair different for
    certain (both ASCII and unequal with ASCII case folded); a pair with a non-ASCII byte that
    is not equal folded may be one name (Unicode folding, normalization: the volume's)."""
    r, p = root.encode("utf-8", "surrogatepass"), path.encode("utf-8", "surrogatepass")
    if r.startswith(b"/") != p.startswith(b"/"):
        return False

    def segments(x: bytes) -> list[bytes]:
        return [] if x == b"/" else x.removeprefix(b"/").split(b"/")
    rs, ps = segments(r), segments(p)
    if len(ps) < len(rs):
        return False
    for a, b in zip(rs, ps):
        if _ascii_lower_bytes(a) == _ascii_lower_bytes(b):
            continue
        if a.isascii() and b.isascii():
            return False
    return True


# ---------------------------------------------------------------- SQL (csrc/cg_sql.c)

SQL_KINDS = ("other", "select", "with", "insert", "update", "delete", "merge", "DDL", "copy", "call", "set",
             "explain", "transaction control")
(SQL_OK, SQL_EMPTY, SQL_UNTERMINATED, SQL_BACKSLASH, SQL_DEPTH, SQL_SEMICOLON, SQL_NAME,
 SQL_CTES, SQL_MODE, SQL_HIDDEN, SQL_CTE_CLAUSE, SQL_PARAMETER) = range(12)
SQL_STATUS = ("scanned", "has no statement", "has an unterminated string, comment or quoted name",
              "has a backslash in a standard string (standard_conforming_strings decides)",
              "has unbalanced or too deeply nested parentheses", "has a ';' inside parentheses",
              "has a name too long or not canonical (quoted with escapes, too many parts)",
              "has more than 32 WITH queries",
              "has a quote or backslash whose reading sql_mode decides (ANSI_QUOTES, NO_BACKSLASH_ESCAPES)",
              "has an executable comment, optimizer hint or client command (/*! */, /*+ */, DELIMITER, \\)",
              "has a WITH query's SEARCH or CYCLE clause",
              "has a parameter SQLite reads in a Tcl form or not at all ($a(...), $a::b, a lone $ : @ #)")
SQL_MAX_DEPTH, SQL_NAME_MAX, SQL_MAX_CTES = 64, 200, 32
_K = {name: i for i, name in enumerate(("NONE", "SELECT", "WITH", "INSERT", "UPDATE", "DELETE", "MERGE", "DDL",
                                        "COPY", "CALL", "SET", "EXPLAIN", "TRANSACTION"))}
_SQL_WORDS: Optional[dict[str, tuple[int, frozenset[str]]]] = None
# MySQL's own roles (csrc/cg_sql.c role_in): words before INSERT's or UPDATE's table, a join
_MY_SKIP = frozenset(("low_priority", "high_priority", "delayed", "ignore"))
_ENDS_FROM = frozenset(("where", "group", "having", "order", "limit", "offset", "union", "except", "intersect",
                        "window", "fetch", "for", "returning", "into", "values", "set", "qualify", "select"))


# csrc/cg_sql.c decimal_number: digits with an optional fraction and exponent (1, 1., .5, 1.5e-3)
_DECIMAL = re.compile(rb"(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_EXPLAINED = frozenset((_K["SELECT"], _K["WITH"], _K["INSERT"], _K["UPDATE"], _K["DELETE"], _K["MERGE"]))
_LITE_OPERATORS = frozenset(("match", "regexp", "glob", "like"))


def _sql_role(dialect: str, word: str) -> Optional[str]:
    """csrc/cg_sql.c role_in: the word's role in the dialect (LITE_* in SQLite only, MY_* in
    MySQL only), None for none."""
    from .sql_words import ROLES
    role = ROLES.get(word)
    if role is None or (role.startswith("LITE_") and dialect != "sqlite") or \
            (role.startswith("MY_") and dialect != "mysql"):
        return None
    return role


def _never_table(dialect: str, word: str) -> bool:
    """csrc/cg_sql.c never_table: a clause word the dialect reserves, never a table's name."""
    role = _sql_role(dialect, word)
    if role in ("INTO", "FROM"):
        return True
    if role in ("JOIN", "MY_JOIN"):
        return dialect != "sqlite"
    if dialect == "sqlite" or role not in ("FOR", "ENDS"):
        return False
    if role == "FOR":
        return True
    return word not in ("set", "values", "qualify") and not (dialect == "mysql" and word in ("offset", "fetch",
                                                                                            "returning"))


def _sql_words() -> dict[str, tuple[int, frozenset[str]]]:
    """The word table of csrc/cg_sql_words.h, read from the generator's lists."""
    global _SQL_WORDS
    if _SQL_WORDS is None:
        from .sql_words import FLAGS, KINDS
        _SQL_WORDS = {w: (_K[KINDS.get(w, "NONE")], flags) for w, flags in FLAGS.items()}
    return _SQL_WORDS


def sql_builtin(dialect: str, name: str) -> bool:
    """Whether an unqualified lower-case name is a built-in function known not to write."""
    entry = _sql_words().get(name)
    return entry is not None and {"postgres": "pg", "sqlite": "sqlite"}.get(dialect, "mysql") in entry[1]


class _Tok:
    __slots__ = ("type", "off", "len", "quote")

    def __init__(self, type_: str, off: int, length: int, quote: str = "") -> None:
        self.type, self.off, self.len, self.quote = type_, off, length, quote


def _ident_start(c: int) -> bool:
    return (0x41 <= c <= 0x5A) or (0x61 <= c <= 0x7A) or c == 0x5F or c >= 0x80


def _ident_char(c: int) -> bool:
    return _ident_start(c) or 0x30 <= c <= 0x39 or c == 0x24


class _SqlScan:
    """One scan of csrc/cg_sql.c's cg_sql_scan, event for event."""

    def __init__(self, s: bytes, dialect: str) -> None:
        self.s, self.n, self.i, self.pg = s, len(s), 0, dialect == "postgres"
        self.lite, self.my = dialect == "sqlite", dialect == "mysql"
        self.err = SQL_OK
        self.events: list[tuple[str, int, Any]] = []

    def at(self, k: int) -> int:
        return self.s[k] if k < self.n else 0

    # -- tokens
    def skip_space(self) -> bool:
        s = self.s
        while self.i < self.n:
            c = s[self.i]
            if c in b" \t\n\r\f\v":
                self.i += 1
            elif self.my and c == 0x23:  # MySQL: '#' to the end of the line
                while self.i < self.n and s[self.i] != 0x0A:
                    self.i += 1
            elif c == 0x2D and self.at(self.i + 1) == 0x2D and (
                    not self.my or self.i + 2 >= self.n or s[self.i + 2] <= 0x20 or s[self.i + 2] == 0x7F):
                # PostgreSQL's ends at a carriage return too, the others' at a newline only
                while self.i < self.n and s[self.i] != 0x0A and not (self.pg and s[self.i] == 0x0D):
                    self.i += 1
            elif c == 0x2F and self.at(self.i + 1) == 0x2A:
                depth = 1
                self.i += 2
                if self.my and self.i < self.n and (s[self.i] in b"!+" or (s[self.i] == 0x4D and self.at(self.i + 1) == 0x21)):
                    self.err = SQL_HIDDEN  # executable comment (MariaDB /*M!), optimizer hint
                    return False
                while self.i < self.n and depth > 0:
                    if self.pg and s[self.i] == 0x2F and self.at(self.i + 1) == 0x2A:
                        depth += 1
                        self.i += 2
                    elif s[self.i] == 0x2A and self.at(self.i + 1) == 0x2F:
                        depth -= 1
                        self.i += 2
                    else:
                        self.i += 1
                if depth > 0:
                    self.err = SQL_UNTERMINATED
                    return False
            else:
                return True
        return True

    def quoted(self, q: int, backslash_escapes: bool) -> tuple[bool, bool]:
        """(terminated, saw a backslash)"""
        s, bs = self.s, False
        self.i += 1
        while self.i < self.n:
            c = s[self.i]
            if c == 0x5C:
                bs = True
                if backslash_escapes:
                    self.i += 2
                    continue
            if c == q:
                if self.i + 1 < self.n and s[self.i + 1] == q:
                    self.i += 2
                    continue
                self.i += 1
                return True, bs
            self.i += 1
        self.err = SQL_UNTERMINATED
        return False, bs

    def my_quoted(self, q: int) -> bool:
        """A MySQL string (or "..." name under ANSI_QUOTES) read with and without backslash
        escapes: when the readings end elsewhere the token depends on sql_mode."""
        start = self.i
        plain, bs = self.quoted(q, False)
        if not bs:
            return plain
        end = self.i
        self.err, self.i = SQL_OK, start
        esc = self.quoted(q, True)[0]
        if plain and esc and self.i == end:
            return True
        self.err = SQL_UNTERMINATED if not plain and not esc else SQL_MODE
        return False

    def my_number(self) -> bool:
        """A MySQL token from a digit: a number (digits, fraction, exponent, 0x.., 0b..) or a
        name that begins with a digit (not read)."""
        s, start = self.s, self.i
        i = start
        while i < self.n:
            d = s[i]
            if _ident_char(d) or (d == 0x2E and 0x30 <= self.at(i + 1) <= 0x39):
                i += 1
            elif d in b"+-" and i > start and (s[i - 1] | 0x20) == 0x65:
                i += 1
            else:
                break
        self.i = i
        tok = s[start:i]
        if len(tok) > 2 and tok[0] == 0x30 and tok[1] in b"xb":
            digits = b"0123456789abcdefABCDEF" if tok[1] == 0x78 else b"01"
            if all(ch in digits for ch in tok[2:]):
                return True
        elif _DECIMAL.fullmatch(tok):
            return True
        self.err = SQL_NAME
        return False

    def my_token(self, t: _Tok, c: int, c1: int) -> _Tok:
        """csrc/cg_sql.c next_token's MySQL branch."""
        s, start = self.s, t.off
        if c in (0x27, 0x22) or (c in b"xXbBnN" and c1 == 0x27):
            if c not in (0x27, 0x22):
                self.i += 1
            t.type = "STRING" if self.my_quoted(self.at(self.i)) else "END"
            t.quote = '"' if c == 0x22 else ""
        elif c == 0x60:
            ok = self.quoted(c, False)[0]
            t.type, t.quote = ("QIDENT" if ok else "END"), "`"
            t.off, t.len = start + 1, (self.i - 1 - (start + 1)) if ok else 0
            return t
        elif c == 0x3F:
            self.i += 1
            t.type = "PARAM"
        elif c == 0x40:
            self.i += 2 if c1 == 0x40 else 1
            frm = self.i
            while self.i < self.n and (_ident_char(s[self.i]) or s[self.i] == 0x2E):
                self.i += 1
            t.type = "PARAM" if self.i > frm else "OP"
            if self.i == frm:
                self.i = start + 1
        elif c == 0x24 or _ident_start(c):
            self.i += 1
            while self.i < self.n and _ident_char(s[self.i]):
                self.i += 1
            t.type = "WORD"
        elif 0x30 <= c <= 0x39 or (c == 0x2E and 0x30 <= c1 <= 0x39):
            t.type = "NUMBER" if self.my_number() else "END"
        elif c == 0x3A and c1 == 0x3D:
            self.i += 2
            t.type = "OP"
        elif c == 0x5C:
            self.err = SQL_HIDDEN
        else:
            self.i += 1
            t.type = {0x28: "LP", 0x29: "RP", 0x2C: "COMMA", 0x3B: "SEMI", 0x2E: "DOT"}.get(c, "OP")
        t.len = self.i - start
        return t

    def next_token(self) -> _Tok:
        if not self.skip_space() or self.i >= self.n:
            return _Tok("END", 0, 0)
        s, start = self.s, self.i
        c, c1, c2 = s[self.i], self.at(self.i + 1), self.at(self.i + 2)
        t = _Tok("END", start, 0)
        if self.my:
            return self.my_token(t, c, c1)
        if self.pg and c in b"eE" and c1 == 0x27:
            self.i += 1
            t.type = "STRING" if self.quoted(0x27, True)[0] else "END"
        elif self.pg and c in b"uU" and c1 == 0x26 and c2 in (0x27, 0x22):
            self.i += 2
            ok = self.quoted(c2, False)[0]
            t.type = "END" if not ok else "QIDENT" if c2 == 0x22 else "STRING"
            t.off, t.len, t.quote = start + 3, (self.i - 1 - (start + 3)) if ok else 0, ""
            if t.type != "QIDENT":
                t.len = self.i - start
            return t
        elif (c in b"xX" or (self.pg and c in b"bBnN")) and c1 == 0x27:
            self.i += 1
            ok, bs = self.quoted(0x27, False)
            t.type = "STRING" if ok else "END"
            if self.pg and bs:
                self.err, t.type = SQL_BACKSLASH, "END"
        elif c == 0x27:
            ok, bs = self.quoted(0x27, False)
            t.type = "STRING" if ok else "END"
            if self.pg and bs:
                self.err, t.type = SQL_BACKSLASH, "END"
        elif c == 0x22 or (not self.pg and c in (0x60, 0x5B)):
            if c == 0x5B:
                self.i += 1
                while self.i < self.n and s[self.i] != 0x5D:
                    self.i += 1
                ok = self.i < self.n
                if ok:
                    self.i += 1
                else:
                    self.err = SQL_UNTERMINATED
            else:
                ok = self.quoted(c, False)[0]
            t.type = "QIDENT" if ok else "END"
            t.quote = "]" if c == 0x5B else chr(c)
            t.off, t.len = start + 1, (self.i - 1 - (start + 1)) if ok else 0
            return t
        elif self.pg and c == 0x24:
            d = self._dollar()
            if d > 0:
                t.type = "STRING"
            elif d < 0:
                t.type = "END"
            else:
                self.i += 1
                while self.i < self.n and 0x30 <= s[self.i] <= 0x39:
                    self.i += 1
                t.type = "PARAM" if self.i > start + 1 else "OP"
        elif not self.pg and c == 0x3F:  # SQLite: ?NNN
            self.i += 1
            while self.i < self.n and 0x30 <= s[self.i] <= 0x39:
                self.i += 1
            t.type = "PARAM"
        elif not self.pg and c in b":@$#":  # SQLite: :a @a $a #a (not the Tcl forms)
            self.i += 1
            while self.i < self.n and _ident_char(s[self.i]):
                self.i += 1
            d = self.at(self.i)
            if self.i == start + 1 or d == 0x28 or (d == 0x3A and self.at(self.i + 1) == 0x3A):
                self.err = SQL_PARAMETER
                t.type = "END"
            else:
                t.type = "PARAM"
        elif _ident_start(c):
            while self.i < self.n and _ident_char(s[self.i]):
                self.i += 1
            t.type = "WORD"
        elif 0x30 <= c <= 0x39 or (c == 0x2E and 0x30 <= c1 <= 0x39):
            self.i += 1
            dot = c == 0x2E
            while self.i < self.n:
                d = s[self.i]
                pg_dot = self.pg and d == 0x2E and not dot and self.at(self.i + 1) != 0x2E  # 1. and 1.e5
                if (0x30 <= d <= 0x39 or 0x61 <= (d | 0x20) <= 0x7A or d == 0x5F
                        or (d == 0x2E and 0x30 <= self.at(self.i + 1) <= 0x39) or pg_dot):
                    dot = dot or d == 0x2E
                    self.i += 1
                elif d in b"+-" and (s[self.i - 1] | 0x20) == 0x65:
                    self.i += 1
                else:
                    break
            t.type = "NUMBER"
            if self.pg and not _DECIMAL.fullmatch(s[start:self.i]):
                self.err, t.type = SQL_NAME, "END"  # 1from: 1 FROM before PostgreSQL 15
        else:
            self.i += 1
            t.type = {0x28: "LP", 0x29: "RP", 0x2C: "COMMA", 0x3B: "SEMI", 0x2E: "DOT"}.get(c, "OP")
        t.len = self.i - start
        return t

    def _dollar(self) -> int:
        s, j = self.s, self.i + 1
        if j < self.n and 0x30 <= s[j] <= 0x39:
            return 0
        while j < self.n and _ident_char(s[j]) and s[j] != 0x24:
            j += 1
        if j >= self.n or s[j] != 0x24:
            return 0
        tag = s[self.i:j + 1]
        k = s.find(tag, j + 1)
        if k < 0:
            self.err = SQL_UNTERMINATED
            return -1
        self.i = k + len(tag)
        return 1


def sql_scan(text: str, dialect: str) -> tuple[int, int, list[tuple[str, int, Any]]]:
    """(status, statements, events) as cg_sql_scan gives them: events ("T", stmt, (name,
    parts)), ("F", stmt, (name, parts)), ("W", stmt, word), ("L", stmt, text), ("S", stmt, kind)."""
    data = text.encode("utf-8", "surrogatepass")
    x = _SqlScan(data, dialect)
    words = _sql_words()
    pg, lite, my = x.pg, x.lite, x.my
    st: dict[str, Any] = {"stmt": 0, "depth": 0, "kind": 0, "body": 0, "started": False, "kind_set": False,
                          "with": "NONE", "ctes": [], "plain": 0, "prev_word": None, "prev_type": "END",
                          "explain_next": False, "after_dq": False, "in_table": None,
                          "distinct_op": False, "lite_or": False, "explain_open": False,
                          "write_target": False, "recursive": False}
    call = [0] * (SQL_MAX_DEPTH + 1)
    frm = ["NONE"] * (SQL_MAX_DEPTH + 1)
    target = [0] * (SQL_MAX_DEPTH + 1)
    run: Optional[dict[str, Any]] = None

    def fail(err: int) -> None:
        if not x.err:
            x.err = err

    def run_add(r: dict[str, Any], t: _Tok) -> None:
        # EXPLAIN s.f(), EXPLAIN "x": that statement, other (MySQL's EXPLAIN t names a table);
        # the core's run_add sees quoted names and later parts only, its scan loop the first word
        if (t.type == "QIDENT" or r["parts"]) and st["explain_open"] and st["depth"] == 0 \
                and not st["explain_next"] and st["prev_type"] != "OP":
            st["explain_open"] = False
            st["kind"] = st["body"] = 0
        raw = data[t.off:t.off + t.len]
        q = t.type == "QIDENT"
        if q and t.quote == "":
            r["bad"] = True
        if q:
            r["quoted"] = True
        part = bytearray()
        close = ord(t.quote) if t.quote else 0  # (U&"...": no quote of its own, as the core's 0)
        i = 0
        while i < len(raw):
            c = raw[i]
            if q and t.quote != "]" and c == close:
                i += 1
            if q and c == 0x2E:
                r["bad"] = True
            part.append(c)
            i += 1
        if not part or (pg and len(part) > 63):
            r["bad"] = True
        r["raw"].append((bytes(part), q))
        # (what the word lookup and the lengths read: unquoted parts lower case; name_of is the name)
        r["name"] += (b"." if r["parts"] else b"") + (_ascii_lower_bytes(bytes(part)) if not q or lite else bytes(part))
        r["parts"] += 1
        if r["parts"] > 3 or len(r["name"]) > SQL_NAME_MAX:
            r["bad"] = True

    def name_of(r: dict[str, Any], function: bool) -> str:
        """The canonical name (csrc/cg_sql.c name_of): unquoted parts lower case (MySQL: only a
        function's last part), quoted parts as written (SQLite: lower case)."""
        out = []
        for k, (part, q) in enumerate(r["raw"]):
            fold = (lite if q else (not my or (function and k == len(r["raw"]) - 1)))
            out.append(_ascii_lower_bytes(part) if fold else part)
        return b".".join(out).decode("utf-8", "surrogateescape")

    def is_cte(name: str) -> bool:  # inside a WITH query's body its own name is a table, unless RECURSIVE
        seen = st["ctes"][:-1] if st["with"] == "BODY" and not st["recursive"] else st["ctes"]
        return name in seen

    def word_of(r: dict[str, Any]) -> Optional[str]:
        if r["parts"] != 1 or r["quoted"]:
            return None
        w = r["name"].decode("utf-8", "replace")
        return w if w in words else None

    def set_body(w: Optional[str]) -> None:
        k = words[w][0] if w is not None else 0
        st["body"] = k
        if k == _K["WITH"]:
            st["with"] = "NAME"
        if k == _K["UPDATE"] or (k == _K["SELECT"] and w == "table") or (my and k == _K["INSERT"]):
            frm[st["depth"]], target[st["depth"]] = "EXPECT", 1
            st["write_target"] = k != _K["SELECT"]
        if my and k == _K["EXPLAIN"]:
            st["explain_next"] = True

    def set_kind(w: Optional[str]) -> None:
        st["kind"] = words[w][0] if w is not None else 0
        st["explain_open"] = st["kind"] == _K["EXPLAIN"]
        set_body(w)

    def explain_option(w: Optional[str]) -> bool:  # csrc/cg_sql.c explain_option
        return (w is not None and _sql_role(dialect, w) == "EXPLAIN_OPTION") or st["prev_type"] == "OP"

    def explained(w: Optional[str]) -> bool:
        return w is not None and words[w][0] in _EXPLAINED

    def word_writes(w: Optional[str]) -> None:
        if w is not None and "writes" in words[w][1]:
            x.events.append(("W", st["stmt"], w))

    def after_operand() -> bool:  # SQLite: x REGEXP (y) is the operator, regexp(y, x) a call
        t = st["prev_type"]
        if t in ("STRING", "NUMBER", "PARAM", "RP"):
            return True
        p = st["prev_word"]
        return t == "WORD" and (p is None or not ("struct" in words[p][1] or words[p][0] != 0
                                                  or _sql_role(dialect, p) is not None))

    def keyword(w: Optional[str], nxt: _Tok) -> None:
        d = st["depth"]
        if not st["kind_set"]:
            if my and w == "delimiter":
                fail(SQL_HIDDEN)
            set_kind(w)
            st["kind_set"] = st["started"] = True
            if st["kind"] == _K["EXPLAIN"] and nxt.type == "LP":  # EXPLAIN (ANALYZE) ...: options
                st["plain"] = 1
        elif (st["body"] == _K["WITH"] and d == 0 and st["with"] == "AFTER_BODY" and w is not None
              and explained(w) and words[w][0] != _K["WITH"]):
            if st["kind"] == _K["WITH"]:
                st["kind"] = words[w][0]
            set_body(w)
            st["with"] = "NONE"
        elif st["explain_open"] and d == 0 and not explain_option(w):  # EXPLAIN [options] statement
            st["explain_open"] = False
            if explained(w):
                set_body(w)
            else:  # EXPLAIN ANALYZE CREATE ... AS, DECLARE, EXECUTE: that statement
                k = words[w][0] if w is not None else 0
                st["kind"] = st["body"] = 0 if k == _K["EXPLAIN"] else k
        elif st["explain_open"] and d == 0 and nxt.type == "LP":  # EXPLAIN ANALYZE (SELECT ...)
            st["plain"] = 1
        if w is None:
            return
        if st["with"] == "NAME" and d == 0 and w == "recursive":
            st["recursive"] = True
            return
        if st["with"] == "AFTER_NAME" and w == "as":
            st["with"] = "AS"
        if "writes" in words[w][1]:
            x.events.append(("W", st["stmt"], w))
        if w == "for" and nxt.type == "WORD":
            nw = data[nxt.off:nxt.off + nxt.len].lower() if nxt.len < 8 else b""
            if nw in (b"update", b"share", b"no", b"key"):
                x.events.append(("L", st["stmt"], "locks rows (FOR UPDATE / SHARE)"))
        if w == "distinct":  # x IS [NOT] DISTINCT FROM y (SELECT x distinct FROM t: a bare label)
            st["distinct_op"] = st["prev_type"] == "WORD" and st["prev_word"] in ("is", "not")
        if w == "from":
            if not call[d] and not (st["prev_word"] == "distinct" and st["distinct_op"]):
                frm[d], target[d] = "EXPECT", 0
                st["write_target"] = (st["prev_type"] == "WORD" and st["prev_word"] is not None
                                      and words[st["prev_word"]][0] == _K["DELETE"])  # DELETE FROM t
        elif w == "join" or (my and w == "straight_join"):
            frm[d], target[d] = "EXPECT", 0
        elif w == "into" and (st["body"] in (_K["INSERT"], _K["MERGE"])
                              or (st["body"] in (_K["SELECT"], _K["WITH"]) and not my)):
            frm[d], target[d] = "EXPECT", 1
            st["write_target"] = True
        elif w == "using" and nxt.type != "LP":
            frm[d], target[d] = "EXPECT", 0
        elif w in ("only", "lateral"):
            pass
        elif w == "update" and st["prev_type"] == "LP" and d > 0:  # (UPDATE t ...): a WITH query
            frm[d], target[d] = "EXPECT", 1
            st["write_target"] = True
        elif w in ("search", "cycle") and d == 0 and st["with"] == "AFTER_BODY":
            fail(SQL_CTE_CLAUSE)  # its column list's commas would read as new WITH queries
        elif w == "table":
            frm[d], target[d] = "EXPECT", 1
        elif w in _ENDS_FROM:
            if not (w != "into" and frm[d] == "IN" and nxt.type == "COMMA"):  # FROM t set, s: an alias
                frm[d] = "NONE"
        elif lite and w == "in" and nxt.type in ("WORD", "QIDENT", "STRING"):  # x IN t
            st["in_table"] = (frm[d], target[d])
            frm[d], target[d] = "EXPECT", 0

    def finish_run(r: dict[str, Any], nxt: _Tok) -> None:
        d = st["depth"]
        w = word_of(r)
        single = r["parts"] == 1 and not r["quoted"]
        name = name_of(r, False)
        if not single:  # "a word that writes ... anywhere": the parts of a dotted name too (3 at most)
            for part, q in r["raw"][:3]:
                lw = part.lower().decode("utf-8", "replace")
                if not q and lw in words:
                    word_writes(lw)
            # past the third part (a.b.c.delete), the first word that writes, as the core keeps it
            past = [lw for lw in (p.lower().decode("utf-8", "replace") for p, q in r["raw"][3:] if not q)
                    if lw in words and "writes" in words[lw][1]]
            if past:
                word_writes(past[0])
        if pg and st["prev_type"] == "DOT" and nxt.type != "LP":  # attribute notation: (x).f is f(x)
            if r["bad"]:
                return fail(SQL_NAME)
            x.events.append(("F", st["stmt"], (name_of(r, True), r["parts"])))
        if my and single and nxt.type != "LP" and r["name"] in (b"current_user", b"current_role"):
            x.events.append(("F", st["stmt"], (name_of(r, True), 1)))  # information functions without "()"
        in_item = st["in_table"] is not None  # x IN t: this run is IN's table, whatever its word
        in_saved, st["in_table"] = st["in_table"], None
        if st["explain_next"]:  # MySQL: EXPLAIN t reads t's columns
            st["explain_next"] = False
            if d == 0 and not (w is not None and (words[w][0] != 0 or _sql_role(dialect, w) in ("EXPLAIN_OPTION",
                                                                                                  "FOR"))):
                st["explain_open"] = False
                if single:
                    word_writes(w)
                if r["bad"]:
                    return fail(SQL_NAME)
                if not (r["parts"] == 1 and len(r["name"]) <= 64 and is_cte(name)):
                    x.events.append(("T", st["stmt"], (name, r["parts"])))
                st["prev_word"], st["prev_type"] = None, "WORD"
                return
        if st["with"] == "NAME" and d == 0 and not in_item and not (single and w == "recursive"):
            if len(st["ctes"]) == SQL_MAX_CTES:
                return fail(SQL_CTES)
            if r["parts"] != 1 or r["bad"] or len(r["name"]) > 64:
                return fail(SQL_NAME)
            if single:
                word_writes(w)
            st["ctes"].append(name)
            st["with"] = "AFTER_NAME"
            if nxt.type == "LP":
                st["plain"] = 1
            return
        subquery_word = (single and w is not None and words[w][0] in (_K["SELECT"], _K["WITH"])
                         and not (w == "values" and nxt.type != "LP"))  # DELETE FROM values: a table
        skip_word = single and ((w in ("only", "lateral") and not lite) or (my and (w in _MY_SKIP or w == "into")))
        reserved = single and w is not None and _never_table(dialect, w)  # csrc/cg_sql.c never_table
        # SQLite's UPDATE OR {ROLLBACK | ABORT | REPLACE | FAIL | IGNORE} t: the table is after them
        if not in_item and frm[d] == "EXPECT" and target[d] and lite and single and (st["lite_or"] or w == "or"):
            st["lite_or"] = not st["lite_or"]
            st["prev_word"], st["prev_type"] = w, "WORD"
            return
        if in_item or (frm[d] == "EXPECT" and not skip_word and not subquery_word and not reserved):
            frm[d] = "IN"
            if single:
                word_writes(w)
            if my and single and w == "dual":  # MySQL's FROM DUAL: no table
                pass
            elif r["bad"]:
                return fail(SQL_NAME)
            elif nxt.type == "LP" and not target[d]:
                x.events.append(("F", st["stmt"], (name_of(r, True), r["parts"])))
                st["plain"] = 2
            else:  # (a WITH query's name does not hide a written table)
                if st["write_target"] or not (r["parts"] == 1 and len(r["name"]) <= 64 and is_cte(name)):
                    x.events.append(("T", st["stmt"], (name, r["parts"])))
                if nxt.type == "LP":
                    st["plain"] = 1
            target[d] = 0
            st["write_target"] = False
            if in_saved is not None:  # x IN t: the clause IN stood in goes on
                frm[d], target[d] = in_saved
            st["prev_word"] = None
            return
        if single:
            keyword(w, nxt)
            if (nxt.type == "LP" and w is not None and words[w][1] & {"struct", "type"}
                    and not (lite and w in _LITE_OPERATORS and not after_operand())):
                st["plain"] = 1
        else:
            st["kind_set"] = st["started"] = True
        if nxt.type == "LP" and not st["plain"]:
            if st["prev_type"] == "WORD" and st["prev_word"] == "as":
                st["plain"] = 1
            else:
                if r["bad"]:
                    return fail(SQL_NAME)
                x.events.append(("F", st["stmt"], (name_of(r, True), r["parts"])))
                st["plain"] = 2
        st["prev_word"] = w
        st["prev_type"] = "WORD"

    def end_statement() -> None:
        if st["started"]:
            x.events.append(("S", st["stmt"], st["kind"]))
            st["stmt"] += 1
        st.update(started=False, kind_set=False, kind=0, body=0, prev_word=None, prev_type="END",
                  explain_next=False, after_dq=False, in_table=None, lite_or=False, explain_open=False,
                  write_target=False, recursive=False)
        st["with"] = "NONE"
        st["ctes"] = []
        frm[0], target[0], call[0] = "NONE", 0, 0

    while True:
        t = x.next_token()
        if x.err:
            break
        if st["after_dq"]:  # MySQL: "x"( and "x". are names under ANSI_QUOTES
            st["after_dq"] = False
            if t.type in ("LP", "DOT"):
                fail(SQL_MODE)
                break
        if t.type == "STRING" and t.quote == '"' and ((run is not None and run["dot"]) or st["prev_type"] == "DOT"):
            fail(SQL_MODE)
            break
        if run is not None:
            if t.type == "DOT" and not run["dot"]:
                run["dot"] = True
                continue
            if run["dot"] and t.type in ("WORD", "QIDENT"):
                run["dot"] = False
                run_add(run, t)
                continue
            if run["dot"] and t.type == "STRING" and lite:  # main.'secret': SQLite reads a name
                fail(SQL_NAME)
                break
            r, run = run, None
            finish_run(r, t)
            if x.err:
                break
        if t.type in ("WORD", "QIDENT"):
            run = {"dot": False, "bad": False, "quoted": False, "parts": 0, "name": b"", "raw": []}
            run_add(run, t)
            continue
        d = st["depth"]
        if t.type == "LP":
            if d == SQL_MAX_DEPTH:
                fail(SQL_DEPTH)
                break
            item = frm[d] == "EXPECT"
            if item:
                frm[d] = "IN"
            if st["with"] == "AS" and d == 0:
                st["with"] = "BODY"
            st["depth"] = d + 1
            call[d + 1] = 1 if st["plain"] == 2 else 0
            frm[d + 1], target[d + 1] = ("EXPECT" if item else "NONE"), 0
            st["plain"] = 0
            st["started"] = True
            st["write_target"] = False
        elif t.type == "RP":
            if d == 0:
                fail(SQL_DEPTH)
                break
            st["depth"] = d - 1
            if st["with"] == "BODY" and d - 1 == 0:
                st["with"] = "AFTER_BODY"
            st["kind_set"] = True  # ()SELECT: a statement that opens with no word has no kind
        elif t.type == "COMMA":
            if frm[d] == "IN":
                frm[d] = "EXPECT"
            if st["with"] == "AFTER_BODY" and d == 0:
                st["with"] = "NAME"
            st["started"] = st["kind_set"] = True  # a statement that starts with ',' has no kind
        elif t.type == "SEMI":
            if d > 0:
                fail(SQL_SEMICOLON)
                break
            end_statement()
        elif t.type != "END":
            if t.type == "STRING" and lite and frm[d] == "EXPECT":
                fail(SQL_NAME)
                break
            if my:
                dq = t.type == "STRING" and t.quote == '"'
                if t.type in ("STRING", "NUMBER") and frm[d] == "EXPECT":
                    fail(SQL_MODE if dq else SQL_NAME)
                if dq and st["with"] == "NAME" and d == 0:
                    fail(SQL_MODE)
                if dq and st["explain_next"] and d == 0:
                    fail(SQL_MODE)  # EXPLAIN "t": under ANSI_QUOTES, t's columns
                st["explain_next"] = False  # EXPLAIN's table is the token after it, or none
                st["after_dq"] = dq
                if t.type == "OP" and t.len == 2:
                    x.events.append(("W", st["stmt"], ":="))
                if t.type == "PARAM" and data[t.off:t.off + 2] == b"@@" and t.len > 2:  # the server's settings
                    x.events.append(("W", st["stmt"], data[t.off:t.off + t.len].decode("utf-8", "surrogateescape")))
                if x.err:
                    break
            st["started"] = st["kind_set"] = True
            st["plain"] = 0
        if x.err or t.type == "END":
            break
        st["prev_type"] = t.type
        if t.type != "WORD":
            st["prev_word"] = None
    if not x.err and st["depth"] != 0:
        fail(SQL_DEPTH)
    if x.err:
        return x.err, st["stmt"], x.events
    end_statement()
    return (SQL_EMPTY if st["stmt"] == 0 else SQL_OK), st["stmt"], x.events


def sql_check(value: str, dialect: str, read_only: bool = False, max_statements: Optional[int] = None,
              schemas_in: Optional[list[str]] = None, tables_in: Optional[list[str]] = None,
              functions_allowed: Optional[list[str]] = None) -> tuple[str, str]:
    """The value of a SqlCheck ("T", "F" or "U") over a string, with what the scanner found
    (for `callgate explain`), as csrc/cg_check.c decides it."""
    if "\x00" in value:  # as csrc/cg_check.c: the servers end the text at a NUL, drivers refuse it
        return "U", "not read: the SQL has a NUL byte (servers and drivers end the text there, or refuse it)"
    status, count, events = sql_scan(value, dialect)
    if status != SQL_OK:
        return "U", f"not read: the SQL {SQL_STATUS[status]}"
    def fold(name: str) -> str:
        return _fold(name) if dialect == "sqlite" else name

    def fold_function(name: str) -> str:  # MySQL: a routine's name is case-insensitive, its schema may not be
        head, dot, last = name.rpartition(".")
        return head + dot + ascii_lower(last) if dialect == "mysql" else fold(name)
    schemas = None if schemas_in is None else {fold(x) for x in schemas_in}
    tables = None if tables_in is None else {fold(x) for x in tables_in}
    functions = {fold_function(x) for x in functions_allowed or ()}
    tabled = schemas is not None or tables is not None
    # (as csrc/cg_check.c: a read_only failure in any statement speaks before a table failure)
    first_ro: Optional[str] = None
    first_tab: Optional[str] = None
    first_u: Optional[str] = None
    ro: Optional[str] = None
    tab: Optional[tuple[str, str]] = None
    kinds: list[str] = []
    for what, stmt, data in events:
        if what == "T":
            name, parts = data
            if tables is not None and name not in tables and tab is None:
                tab = ("F", f"statement {stmt + 1} names table {name}")
            if schemas is not None and tab is None:
                if parts < 2:
                    tab = ("U", "")
                elif name.split(".")[-2] not in schemas:
                    tab = ("F", f"statement {stmt + 1} names table {name} outside schemas_in")
        elif what == "F":
            name, parts = data
            if not ((parts == 1 and sql_builtin(dialect, name)) or name in functions):
                if read_only and ro is None:
                    ro = f"statement {stmt + 1} calls function {name}"
                if tabled and tab is None:
                    tab = ("U", "")
        elif what in ("W", "L"):
            if read_only and ro is None:
                ro = f"statement {stmt + 1} " + (f"contains {data}" if what == "W" else data)
        else:  # the statement's end
            kind = data
            kinds.append(SQL_KINDS[kind])
            query = kind in (_K["SELECT"], _K["EXPLAIN"])
            dml = query or kind in (_K["INSERT"], _K["UPDATE"], _K["DELETE"], _K["MERGE"])
            if read_only and first_ro is None:
                first_ro = f"statement {stmt + 1} is {SQL_KINDS[kind]}" if not query else ro
            if tabled and first_tab is None:
                fail = ("U", "") if not dml else tab
                if fail is not None and fail[0] == "U":
                    first_u = first_u or "U"
                elif fail is not None:
                    first_tab = fail[1]
            ro, tab = None, None
    found = f"{count} statement{'s' if count != 1 else ''}: {', '.join(kinds)}"
    if max_statements is not None and count > max_statements:
        return "F", found
    first_f = first_ro if first_ro is not None else first_tab
    if first_f is not None:
        return "F", f"{found}; {first_f}"
    return ("U" if first_u else "T"), found
