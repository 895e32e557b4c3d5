"""The URL parser of UrlCheck (csrc/cg_url.c), tested natively through tests/core/url_probe.c.

Pins: the known bypass forms parse to the host a browser would contact (userinfo tricks,
IPv4 in hex, octal, dotless and short forms, IPv4-mapped IPv6, backslashes, tabs and
newlines, percent-encoded hosts), each IP range is classified for `ip: "public"`, and on a
corpus plus generated URLs the parser agrees component by component (scheme, username,
password, host, port, and valid vs invalid) with two WHATWG parsers nobody here wrote:
Node's `URL` and ada-url. Inputs it cannot decide (IDNA, other schemes, a backslash that
RFC 3986 clients read differently) it says so.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest

from support import REPO
from support.argcorpus import generated_urls
from support.cprobe import CSRC, build_probe, call_probe

OK, NO_SCHEME, EMPTY_HOST, BAD_PORT, BAD_IPV4, BAD_IPV6, BAD_HOST = range(7)
TOO_LONG, HOST_TOO_LONG, SCHEME_UNSUPPORTED, IDNA, BACKSLASH = 7, 8, 9, 10, 11
FIRST_UNDECIDED = TOO_LONG


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The parser and its probe, built once for the module."""
    lib = build_probe([CSRC / "cg_url.c", REPO / "tests" / "core" / "url_probe.c"],
                      tmp_path_factory.mktemp("url"), "urlprobe")

    def parse(url: str) -> dict[str, Any]:
        f = call_probe(lib.probe_url, url)
        return {"status": int(f[0]), "scheme": f[1], "at": f[2] == "1", "user": f[3],
                "has_pass": f[4] == "1", "password": f[5], "host": f[6], "port": int(f[8]),
                "class": f[9]}
    return parse


BYPASSES = [
    # (url, host the parser must find, ip class)
    ("http://example.com@evil.com/", "evil.com", "public"),
    ("http://user@evil.com@good.com", "good.com", "public"),
    ("http://good.com:x@evil.com/", "evil.com", "public"),
    ("http://127.1", "127.0.0.1", "loopback"),
    ("http://0x7f.1/", "127.0.0.1", "loopback"),
    ("http://0x7f000001", "127.0.0.1", "loopback"),
    ("http://2130706433", "127.0.0.1", "loopback"),
    ("http://017700000001/", "127.0.0.1", "loopback"),
    ("http://0177.0.0.1/", "127.0.0.1", "loopback"),
    ("http://%31%32%37.0.0.1/", "127.0.0.1", "loopback"),
    ("http://0/", "0.0.0.0", "unspecified"),
    ("http://[::]/", "[::]", "unspecified"),
    ("http://[::1]:8080/", "[::1]", "loopback"),
    ("http://[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "IPv4-mapped or IPv4-embedding"),
    ("http://[::ffff:a9fe:a9fe]/", "[::ffff:a9fe:a9fe]", "IPv4-mapped or IPv4-embedding"),
    ("http://[64:ff9b::7f00:1]/", "[64:ff9b::7f00:1]", "IPv4-mapped or IPv4-embedding"),
    ("http://[fe80::1]/", "[fe80::1]", "link-local"),
    ("http://[fd00::1]/", "[fd00::1]", "unique-local"),
    ("http://[ff02::1]/", "[ff02::1]", "multicast"),
    ("http://169.254.169.254/latest/meta-data", "169.254.169.254", "link-local"),
    ("http://10.0.0.1/", "10.0.0.1", "private"),
    ("http://172.31.255.255/", "172.31.255.255", "private"),
    ("http://172.32.0.1/", "172.32.0.1", "public"),
    ("http://192.168.1.1/", "192.168.1.1", "private"),
    ("http://100.64.0.1/", "100.64.0.1", "shared address space (CGNAT)"),
    ("http://224.0.0.1/", "224.0.0.1", "multicast"),
    ("http://255.255.255.255/", "255.255.255.255", "broadcast"),
    ("http://localhost/", "localhost", "a localhost name"),
    ("http://LOCALHOST./", "localhost.", "a localhost name"),
    ("http://api.localhost:3000/", "api.localhost", "a localhost name"),
    ("http://notlocalhost/", "notlocalhost", "public"),
    ("http:evil.com/", "evil.com", "public"),
    ("https://ex\tam\nple.com/", "example.com", "public"),
    ("  https://EXAMPLE.COM:443/  ", "example.com", "public"),
    ("https://8.8.8.8/", "8.8.8.8", "public"),
    ("https://[2606:4700::1111]/", "[2606:4700::1111]", "public"),
]


@pytest.mark.parametrize("url,host,cls", BYPASSES)
def test_bypass_forms_find_the_real_host(probe: Any, url: str, host: str, cls: str) -> None:
    """Each bypass form parses to the host a browser would contact, and its IP class."""
    r = probe(url)
    assert r["status"] == OK, r
    assert (r["host"], r["class"]) == (host, cls)


@pytest.mark.parametrize("url,status", [
    ("http://a@/", EMPTY_HOST), ("http://:80/", EMPTY_HOST), ("http:///", EMPTY_HOST),
    ("http://a:65536/", BAD_PORT), ("http://a:8o/", BAD_PORT), ("http://a:-1/", BAD_PORT),
    ("http://1.2.3.09/", BAD_IPV4), ("http://256.1.1.1/", BAD_IPV4), ("http://1.2.3.4.5/", BAD_IPV4),
    ("http://999999999999999999999999/", BAD_IPV4), ("http://a.0x/", BAD_IPV4),
    ("http://[fe80::1%25eth0]/", BAD_IPV6), ("http://[::1/", BAD_IPV6), ("http://[1::2::3]/", BAD_IPV6),
    ("http://[::ffff:127.0.0.01]/", BAD_IPV6), ("http://exa%2Fmple/", BAD_HOST),
    ("http://a b/", BAD_HOST), ("http://a%00b/", BAD_HOST), ("//example.com/", NO_SCHEME),
    ("example.com", NO_SCHEME), ("", NO_SCHEME),
    ("http://b\u00fccher.com/", IDNA), ("http://xn--bcher-kva.com/", IDNA),
    ("http://%C3%BC.com/", IDNA), ("http://\uff11\uff12\uff17.0.0.1/", IDNA),
    ("file:///etc/passwd", SCHEME_UNSUPPORTED), ("javascript:alert(1)", SCHEME_UNSUPPORTED),
    ("http://" + "a" * 300 + "/", HOST_TOO_LONG), ("http://a/" + "x" * 9000, TOO_LONG),
])
def test_invalid_and_undecided_inputs(probe: Any, url: str, status: int) -> None:
    """What the standard refuses fails, and what the parser cannot normalise (IDNA, other
    schemes, oversized input) is reported as such, never parsed to a guess."""
    assert probe(url)["status"] == status


# URLs where a backslash among the slashes or ending the authority makes WHATWG (Node, browsers)
# and RFC 3986 clients (httpx, curl, urllib) read different hosts, and (last) URLs whose
# backslashes come after the authority, where both read one host
BACKSLASH_URLS = [
    # (url, host WHATWG reads, host urllib.parse reads)
    ("http://api.example.com\\@127.0.0.1:8765/secret", "api.example.com", "127.0.0.1"),
    ("https://api.example.com\\@evil.com/", "api.example.com", "evil.com"),
    ("https://api.example.com\\", "api.example.com", "api.example.com\\"),
    ("http:\\\\evil.com\\path", "evil.com", None),
    ("http:/\\evil.com/", "evil.com", None),
    ("http:\\/evil.com/", "evil.com", None),
    ("http:evil.com\\@127.0.0.1/", "evil.com", None),
]
BACKSLASH_LATER = ["https://api.example.com/a\\b", "https://api.example.com/?q=\\@127.0.0.1",
                   "https://api.example.com#\\@evil.com", "https://u@api.example.com:8443/\\@x"]


@pytest.mark.parametrize("url,whatwg,rfc3986", BACKSLASH_URLS)
def test_a_backslash_in_the_authority_is_not_decided(probe: Any, url: str, whatwg: str, rfc3986: str | None) -> None:
    """Pins: a backslash among the slashes after the scheme or ending the authority is
    BACKSLASH (undecided, so the check is U), though WHATWG reads a valid URL (ada-url agrees on
    the host it would read), because Python's urllib (an RFC 3986 reader, like httpx and curl)
    reads another host or none: `http://api.example.com\\@127.0.0.1/` reaches 127.0.0.1."""
    from urllib.parse import urlsplit
    ada_url = pytest.importorskip("ada_url")
    assert probe(url)["status"] == BACKSLASH
    assert ada_url.URL(url).hostname == whatwg
    assert urlsplit(url).hostname == rfc3986 != whatwg


@pytest.mark.parametrize("url", BACKSLASH_LATER)
def test_a_backslash_after_the_authority_is_read(probe: Any, url: str) -> None:
    """Pins: a backslash in the path, query or fragment (after a '/', '?' or '#' ended the
    authority) leaves the URL parsed: WHATWG and RFC 3986 read the same host there."""
    from urllib.parse import urlsplit
    r = probe(url)
    assert (r["status"], r["host"]) == (OK, "api.example.com")
    assert urlsplit(url).hostname == "api.example.com"


def test_default_ports_are_removed(probe: Any) -> None:
    """A scheme's default port is no port; another port is kept."""
    assert probe("https://a:443/")["port"] == -1
    assert probe("http://a:80/")["port"] == -1
    assert probe("ws://a:443/")["port"] == 443
    assert probe("ftp://a:21/")["port"] == -1
    assert probe("https://a:0080/")["port"] == 80
    assert probe("http://a:/")["port"] == -1


_USERINFO_SET = set(range(0, 0x20)) | {0x20, 0x22, 0x23, 0x3C, 0x3E, 0x3F, 0x60, 0x7B, 0x7D,
                                       0x2F, 0x3A, 0x3B, 0x3D, 0x40, 0x5B, 0x5C, 0x5D, 0x5E,
                                       0x7C} | set(range(0x7F, 0x100))


def _userinfo_encode(s: str) -> str:
    """WHATWG's userinfo percent-encode set applied to the parser's raw username span."""
    return "".join(chr(b) if b not in _USERINFO_SET else "%%%02X" % b for b in s.encode())


NODE_SCRIPT = r"""
const input = JSON.parse(require('fs').readFileSync(0, 'utf8'));
process.stdout.write(JSON.stringify(input.map(s => {
  try { const u = new URL(s);
        return [u.protocol, u.username, u.password, u.hostname, u.port]; }
  catch (e) { return null; } })));
"""


def _node(urls: list[str]) -> list[list[str] | None]:
    done = subprocess.run(["node", "-e", NODE_SCRIPT], input=json.dumps(urls),
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def _ada(urls: list[str]) -> list[list[str] | None]:
    ada_url = pytest.importorskip("ada_url")
    out: list[list[str] | None] = []
    for s in urls:
        try:
            u = ada_url.URL(s)
        except ValueError:
            out.append(None)
            continue
        out.append([u.protocol, u.username, u.password, u.hostname, u.port])
    return out


def _agree(probe: Any, urls: list[str], oracle: list[list[str] | None], name: str) -> int:
    checked = 0
    for url, want in zip(urls, oracle):
        got = probe(url)
        st = got["status"]
        if st >= FIRST_UNDECIDED:
            continue  # undecided: the check is U whatever the oracle says
        checked += 1
        if want is None:
            assert st != OK, (name, url, got)
            continue
        assert st == OK, (name, url, got, want)
        port = "" if got["port"] < 0 else str(got["port"])
        mine = [got["scheme"] + ":", _userinfo_encode(got["user"]),
                _userinfo_encode(got["password"]), got["host"], port]
        assert mine == want, (name, url)
    return checked


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_agrees_with_node_url(probe: Any) -> None:
    """Node's WHATWG URL and cg_url agree on validity and on scheme, username, password,
    host and port, over the bypass corpus and 6,000 generated URLs."""
    urls = [u for u, _, _ in BYPASSES + BACKSLASH_URLS] + BACKSLASH_LATER + generated_urls(6000, 19)
    assert _agree(probe, urls, _node(urls), "node") > 4000


def test_agrees_with_ada_url(probe: Any) -> None:
    """ada-url (the WHATWG parser in C++) and cg_url agree likewise."""
    urls = [u for u, _, _ in BYPASSES + BACKSLASH_URLS] + BACKSLASH_LATER + generated_urls(6000, 20)
    assert _agree(probe, urls, _ada(urls), "ada") > 4000
