"""The reference evaluator's UrlCheck and PathCheck (tests/support/reference.py uses it),
written from docs/arguments.md with parsers nobody here wrote: ada-url (the WHATWG URL
standard, in C++) for URLs, the standard library's ipaddress for address ranges, and
posixpath / ntpath for paths. Only the refusals the document adds to those parsers (what
the engine does not decide: IDNA hosts, other schemes, Windows device forms, sizes) are
written here, each from its sentence in the document.

This module must not import callgate.
"""

from __future__ import annotations

import ipaddress
import ntpath
import posixpath
import re
from typing import Any, Callable, Optional
from urllib.parse import unquote_to_bytes

SPECIAL = {"http": 80, "https": 443, "ws": 80, "wss": 443, "ftp": 21}
URL_MAX, HOST_MAX, PATH_MAX, SHOWN = 8192, 255, 4096, 64

# "leading and trailing C0 controls and spaces are removed, tabs and newlines anywhere";
# then the scheme, the slashes (either kind) and the authority, up to / \ ? #
_URL_HEAD = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):[/\\]*([^/\\?#]*)", re.S)

_V4 = [(n, ipaddress.ip_network(net)) for n, nets in (
    ("unspecified", ["0.0.0.0/8"]), ("loopback", ["127.0.0.0/8"]),
    ("private", ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]), ("link-local", ["169.254.0.0/16"]),
    ("shared address space (CGNAT)", ["100.64.0.0/10"]), ("broadcast", ["255.255.255.255/32"]),
    ("multicast", ["224.0.0.0/4"]), ("reserved", ["240.0.0.0/4", "192.0.0.0/24", "198.18.0.0/15"]),
    ("documentation", ["192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"]),
    ("reserved", ["192.88.99.0/24"])) for net in nets]
_V6 = [(n, ipaddress.ip_network(net)) for n, nets in (
    ("unspecified", ["::/128"]), ("loopback", ["::1/128"]),
    ("IPv4-mapped or IPv4-embedding", ["::ffff:0:0/96", "::/96", "64:ff9b::/32", "2002::/16", "2001::/32"]),
    ("unique-local", ["fc00::/7"]), ("link-local", ["fe80::/10"]), ("private", ["fec0::/10"]),
    ("multicast", ["ff00::/8"]), ("documentation", ["2001:db8::/32", "3fff::/20"]),
    ("reserved", ["100::/64", "2001::/23"])) for net in nets]
_GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")


def _ada() -> Any:
    import ada_url  # the test extra installs it
    return ada_url


def url_parts(value: str) -> Optional[dict[str, Any]]:
    """The URL's scheme, '@' flag, host, kind and effective port, or None when the engine does
    not read it (invalid for ada-url, another scheme, or a host needing IDNA, or too long)."""
    if len(value.encode("utf-8", "surrogatepass")) > URL_MAX:
        return None
    cleaned = re.sub(r"[\t\n\r]", "", value.strip("".join(map(chr, range(0x21)))))
    m = _URL_HEAD.match(cleaned)
    if m is None or m.group(1).lower() not in SPECIAL:
        return None
    try:
        u = _ada().URL(value)
    except ValueError:
        return None
    scheme = m.group(1).lower()
    authority = m.group(2)
    if "\\" in cleaned[len(m.group(1)) + 1:m.start(2)] or cleaned[m.end(2):m.end(2) + 1] == "\\":
        return None    # a backslash among the slashes or ending the authority: RFC 3986 clients differ
    host_text = authority.rsplit("@", 1)[-1]
    if not host_text.startswith("["):
        raw = unquote_to_bytes(host_text.split(":", 1)[0])
        if any(b >= 0x80 for b in raw) or any(lb.startswith(b"xn--") for lb in raw.lower().split(b".")):
            return None    # IDNA: not decided
        if len(raw) > HOST_MAX:
            return None
    host = u.hostname
    if host.startswith("["):
        kind, addr = "ipv6", ipaddress.IPv6Address(host[1:-1])
    else:
        try:
            kind, addr = "ipv4", ipaddress.IPv4Address(host)
        except ValueError:
            kind, addr = "domain", None
    port = int(u.port) if u.port else SPECIAL[scheme]
    return {"scheme": scheme, "at": "@" in authority, "host": host, "kind": kind, "addr": addr, "port": port}


def host_class(parts: dict[str, Any]) -> str:
    """"public", or the range (or localhost name) the host is in."""
    addr = parts["addr"]
    if parts["kind"] == "domain":
        name = parts["host"][:-1] if parts["host"].endswith(".") else parts["host"]
        return "a localhost name" if name == "localhost" or name.endswith(".localhost") else "public"
    table = _V4 if parts["kind"] == "ipv4" else _V6
    for name, net in table:
        if addr in net:
            return name
    if parts["kind"] == "ipv6" and addr not in _GLOBAL_UNICAST:
        return "reserved"
    return "public"


def _host_key(entry: str) -> str:
    h = _ada().URL(f"http://{entry}/").hostname
    return h[:-1] if len(h) > 1 and h.endswith(".") and not h.startswith("[") else h


def check_url_policy(spec: dict[str, Any], fail: Callable[[str], None]) -> None:
    """The UrlCheck keys the document lists, with their types; hosts must be hosts ada-url reads."""
    known = {"source", "field", "pointer", "schemes_in", "hosts_in", "host_suffixes_in", "ports_in",
             "userinfo", "ip"}
    if not set(spec) <= known:
        fail(f"UrlCheck: unknown keys {sorted(set(spec) - known)}")
    for key in ("schemes_in", "hosts_in", "host_suffixes_in", "ports_in"):
        if key in spec and (not isinstance(spec[key], list) or not spec[key]):
            fail(f"UrlCheck: {key} is a non-empty list")
    if "schemes_in" in spec and not all(s in SPECIAL for s in spec["schemes_in"]):
        fail("UrlCheck: schemes are http, https, ws, wss, ftp")
    for key in ("hosts_in", "host_suffixes_in"):
        for h in spec.get(key, []):
            if not isinstance(h, str) or url_parts(f"http://{h.lstrip('.') if key != 'hosts_in' else h}/") is None \
                    or any(c in h for c in "/?#@\\"):
                fail(f"UrlCheck: {h!r} is not a host")
    for p in spec.get("ports_in", []):
        if not isinstance(p, int) or isinstance(p, bool) or not 0 <= p <= 65535:
            fail("UrlCheck: ports are integers 0-65535")
    if "userinfo" in spec and not isinstance(spec["userinfo"], bool):
        fail("UrlCheck: userinfo is a boolean")
    if "ip" in spec and spec["ip"] != "public":
        fail('UrlCheck: ip is "public"')


def eval_url(spec: dict[str, Any], value: str, s: str, v: str, show_set: Callable[[list[Any]], str]) -> tuple[str, str]:
    """(T/F/U, the reason text) of a UrlCheck over a string: s is the display name, v the
    value's display; the checks in the document's order, the first failing one speaks."""
    parts = url_parts(value)
    if parts is None:
        return "U", f"{s} = {v} is not a URL the check can read"
    host = parts["host"]
    if "schemes_in" in spec and parts["scheme"] not in spec["schemes_in"]:
        return "F", f"{s} scheme {parts['scheme']} is not in {show_set(spec['schemes_in'])}"
    if spec.get("userinfo") is False and parts["at"]:
        return "F", f"{s} has userinfo before host {host}, which is not allowed"
    hosts, suffixes = spec.get("hosts_in"), spec.get("host_suffixes_in")
    if hosts is not None or suffixes is not None:
        key = host[:-1] if parts["kind"] == "domain" and len(host) > 1 and host.endswith(".") else host
        ok = hosts is not None and key in {_host_key(h) for h in hosts}
        if not ok and suffixes is not None and parts["kind"] == "domain":
            ok = any(key == suf or key.endswith("." + suf) for suf in {_host_key(x.lstrip(".")) for x in suffixes})
        if not ok:
            text = f"{s} host {host}"
            if hosts is not None:
                text += f" is not in {show_set(hosts)}"
            if suffixes is not None:
                text += f" nor under {show_set(suffixes)}" if hosts is not None else f" is not under {show_set(suffixes)}"
            return "F", text
    if "ports_in" in spec and parts["port"] not in spec["ports_in"]:
        return "F", f"{s} port {parts['port']} is not in {show_set(spec['ports_in'])}"
    if spec.get("ip") == "public":
        cls = host_class(parts)
        if cls != "public":
            return "F", f"{s} host {host} is {cls}, not public"
    return "T", f"{s} = {v} passes the URL check"


# ---------------------------------------------------------------- paths

_RESERVED = re.compile(r"(con|prn|aux|nul|conin\$|conout\$|com[0-9]|lpt[0-9])")
_UNC = re.compile(r"\\\\([^\\]+)\\([^\\]+)(\\.*)?", re.S)


def _windows_segment_ok(seg: str) -> bool:
    """Not one Windows would alter or route to a device (docs/arguments.md, Windows)."""
    if any(ord(c) >= 0x80 or ord(c) < 0x20 or c in ':*?"<>|' for c in seg) or seg[-1] in ". ":
        return False
    if re.search(r"~[0-9]", seg):
        return False                      # an 8.3 short name's form
    return _RESERVED.fullmatch(seg.split(".", 1)[0].rstrip(" ").lower()) is None


def norm_path(value: str, style: str, absolute: bool) -> Optional[str]:
    """The normalized path, or None when the engine does not decide it."""
    if not value or "\0" in value or len(value.encode("utf-8", "surrogatepass")) > PATH_MAX:
        return None
    if style == "posix":
        if not value.startswith("/") and absolute:
            return None
        out = posixpath.normpath(value)
        return out[1:] if out.startswith("//") and not out.startswith("///") else out
    p = value.replace("/", "\\")
    if re.match(r"\\\\[?.](\\|$)", p):
        return None                       # device paths
    unc = _UNC.fullmatch(p) if p.startswith("\\\\") else None
    if p.startswith("\\\\"):
        if unc is None or not all(_windows_segment_ok(x) for x in unc.group(1, 2)):
            return None                   # an incomplete UNC path
        if re.fullmatch(r"[A-Za-z]\$", unc.group(2)):
            return None                   # an administrative share (C$)
        rest = unc.group(3) or ""
    elif re.match(r"[A-Za-z]:", p):
        if not p[2:3] == "\\":
            return None                   # drive-relative
        rest = p[2:]
    elif p.startswith("\\"):
        return None                       # rooted on the current drive
    else:
        if absolute:
            return None
        rest = p
    if not all(_windows_segment_ok(seg) for seg in rest.split("\\") if seg not in ("", ".", "..")):
        return None
    out = ntpath.normpath(p)
    if unc is not None and out.rstrip("\\") == f"\\\\{unc.group(1)}\\{unc.group(2)}":
        out = out.rstrip("\\") + "\\"
    return out


def _cut(text: str) -> str:
    raw = text.encode()
    if len(raw) <= SHOWN:
        return text
    k = SHOWN
    while k > 0 and raw[k] & 0xC0 == 0x80:
        k -= 1
    return raw[:k].decode() + "…"


def check_path_policy(spec: dict[str, Any], fail: Callable[[str], None]) -> None:
    """The PathCheck keys the document lists; roots must normalize (absolute unless allowed)."""
    known = {"source", "field", "pointer", "style", "within", "not_within", "absolute", "extensions_in"}
    if not set(spec) <= known:
        fail(f"PathCheck: unknown keys {sorted(set(spec) - known)}")
    style = spec.get("style", "posix")
    if style not in ("posix", "windows"):
        fail("PathCheck: style is posix or windows")
    if "absolute" in spec and not isinstance(spec["absolute"], bool):
        fail("PathCheck: absolute is a boolean")
    for key in ("within", "not_within", "extensions_in"):
        if key in spec and (not isinstance(spec[key], list) or not spec[key]):
            fail(f"PathCheck: {key} is a non-empty list")
    for root in spec.get("within", []) + spec.get("not_within", []):
        if not isinstance(root, str) or norm_path(root, style, spec.get("absolute", True)) is None:
            fail(f"PathCheck: root {root!r} does not normalize")
    for ext in spec.get("extensions_in", []):
        if not isinstance(ext, str) or len(ext) < 2 or ext[0] != "." or "/" in ext or (
                style == "windows" and "\\" in ext):
            fail(f"PathCheck: {ext!r} is not an extension")


def eval_path(spec: dict[str, Any], value: str, s: str, v: str, show_set: Callable[[list[Any]], str]) -> tuple[str, str]:
    """(T/F/U, the reason text) of a PathCheck over a string."""
    style, absolute = spec.get("style", "posix"), spec.get("absolute", True)
    norm = norm_path(value, style, absolute)
    if norm is None:
        return "U", f"{s} = {v} is not a path the check can read"
    win = style == "windows"
    sep = "\\" if win else "/"

    def fold(x: str) -> str:
        return x.lower() if win else x

    def under(roots: list[str]) -> bool:
        for root in roots:
            r = fold(norm_path(root, style, absolute) or "")
            if fold(norm) == r or fold(norm).startswith(r.rstrip(sep) + sep):
                return True
        return False

    def maybe_under(roots: list[str]) -> bool:
        """POSIX, on a case-insensitive volume: segment for segment, no pair of ASCII names
        that differ with ASCII case ignored (a pair with a non-ASCII character may be one name)."""
        if win:
            return False
        for root in roots:
            r = norm_path(root, style, absolute) or ""
            if r.startswith("/") != norm.startswith("/"):
                continue
            rs, ps = [x for x in r.split("/") if x], [x for x in norm.split("/") if x]
            if len(ps) >= len(rs) and all(a.lower() == b.lower() if a.isascii() and b.isascii() else True
                                          for a, b in zip(rs, ps)):
                return True
        return False
    unsure = False
    head = f"{s} = {v}" + (f' normalizes to "{_cut(norm)}",' if norm != value else "")
    if "within" in spec and not under(spec["within"]):
        if not maybe_under(spec["within"]):
            return "F", f"{head} {'outside' if norm != value else 'is outside'} {show_set(spec['within'])}"
        unsure = True
    if "not_within" in spec and under(spec["not_within"]):
        return "F", f"{head} {'inside' if norm != value else 'is inside'} {show_set(spec['not_within'])}"
    if "not_within" in spec and maybe_under(spec["not_within"]):
        unsure = True
    if "extensions_in" in spec:
        ext = (ntpath if win else posixpath).splitext(norm)[1]
        if not ext or fold(ext) not in {fold(e) for e in spec["extensions_in"]}:
            what = f'has extension "{_cut(ext)}"' if ext else "has no extension"
            return "F", f"{s} = {v} {what}, not in {show_set(spec['extensions_in'])}"
    if unsure:
        return "U", f"{s} = {v} is not a path the check can read"
    return "T", f"{s} = {v} passes the path check"
