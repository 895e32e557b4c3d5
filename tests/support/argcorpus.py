"""Generated inputs for the argument parsers' tests (tests/core/test_url_parser.py,
test_path_parser.py, test_arguments_port.py): URLs assembled from pieces that cover the
WHATWG parser's branches and the bypass forms, and paths from segments that cover `.`, `..`,
repeated separators and Windows' special names."""

from __future__ import annotations

import random

HOSTS = ["example.com", "EXAMPLE.com", "a.b.c", "a..b", ".", "..", "127.1", "0x7f.1", "0x7F.0.0.1",
         "2130706433", "0177.1", "08.1", "1.2.3.4.", "1.2.3.4..", "0x", "0x.0x", "1.0x100",
         "4294967295", "4294967296", "255.255.255.255", "256.0.0.1", "1.256", "1.65536",
         "1.2.16777216", "[::1]", "[::]", "[::ffff:1.2.3.4]", "[1:2:3:4:5:6:7:8]", "[1:2:3:4:5:6:7:8:9]",
         "[::1:2:3:4:5:6:7]", "[1::]", "[1:::2]", "[:1]", "[1:2:3:4:5:6:1.2.3.4]",
         "[1:2:3:4:5:1.2.3.4]", "[::1.2.3]", "[::1.2.3.4.5]", "[0:0:0:0:0:0:0:0]", "[00000::1]",
         "[fE80:0:0::01]", "[::ffff:0:0]", "%41.com", "%7e.com", "%2e", "%zz.com", "a%", "a_b",
         "a-.com", "-a.com", "a*b", "a!b", "a$b", "a'b", "a(b)", "a,b", "a;b", "a=b", "a+b",
         "a~b", "a`b", "a{b}", "a\"b", "a<b", "a^b", "a|b", "localhost", "xn--a", "XN--abc",
         "b\u00fccher.de", "\u0130.com", "a\u00adb.com", "exa\u200bmple.com", "0xffffffff", "1.0x",
         "09", "0.09", "1e1", "12345678901234567890", "1.2.3.0x100", "0x1.0x2.0x3.0x4"]
USERINFO = ["", "@", "u@", "u:p@", ":@", "u:@", ":p@", "a@b@", "a:b:c@", "a%40b@", "us er@",
            "a\\b@", "\u00e9@"]
PORTS = ["", ":", ":0", ":80", ":443", ":21", ":65535", ":65536", ":08080", ":1a", ":-1", ": 1",
         ":99999999999999"]
SCHEMES = ["http", "HTTP", "https", "hTTps", "ws", "wss", "ftp"]
SEPS = ["://", ":", ":/", ":\\\\", ":/\\/", ":////"]
TAILS = ["", "/", "/a/b", "?q", "#f", "\\x", "/@x", "?@x", "#@x", "/:1"]


def generated_urls(n: int, seed: int) -> list[str]:
    """n URLs built from the pieces above (seeded): scheme, separator, userinfo, host, port,
    tail, and in a fifth of them a tab, newline, control or '%' inserted anywhere."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        url = (rng.choice(SCHEMES) + rng.choice(SEPS) + rng.choice(USERINFO) + rng.choice(HOSTS)
               + rng.choice(PORTS) + rng.choice(TAILS))
        if rng.random() < 0.2:  # tabs, newlines, leading/trailing controls anywhere
            k = rng.randrange(len(url) + 1)
            url = url[:k] + rng.choice(["\t", "\n", "\r", " ", "\x00", "\x1f", "%"]) + url[k:]
        out.append(url)
    return out


SEGMENTS = ["a", "b", "data", "database", ".", "..", "", "x.csv", "...", ".hidden", "a b", "\u00e9",
            "CON", "nul.txt", "x.", "x ", "a:b", "*", "com1", "LPT9.log", "conout$", "SECRE~1", "a~b"]
PATH_HEADS = ["", "/", "//", "C:", "c:\\", "\\", "\\\\srv\\share", "//srv/share", "\\\\?\\", "..", "\x00",
              "\\\\srv\\C$"]


def generated_paths(n: int, seed: int, seps: list[str]) -> list[str]:
    """n paths (seeded): a head (roots of both styles, relative starts), then 1-7 segments,
    each after a separator drawn from seps."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        k = rng.randrange(1, 8)
        out.append(rng.choice(PATH_HEADS) + "".join(rng.choice(seps) + rng.choice(SEGMENTS) for _ in range(k)))
    return out
