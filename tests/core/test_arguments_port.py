"""callgate.arguments (the Python side's URL parser and path normalizer, for the policy
validator and `callgate explain`) against the C core's (csrc/cg_url.c, csrc/cg_path.c).

Pins: on generated URLs, byte-mutated URLs and generated paths of both styles, the two give
the same status and, when parsed, the same scheme, userinfo flag, host, port and IP class /
the same normalized path, root and extension.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from callgate import arguments
from support import REPO
from support.argcorpus import generated_paths, generated_urls
from support.cprobe import CSRC, build_probe, call_probe


@pytest.fixture(scope="module")
def lib(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Both probes in one library."""
    return build_probe([CSRC / "cg_url.c", CSRC / "cg_path.c", REPO / "tests" / "core" / "url_probe.c",
                        REPO / "tests" / "core" / "path_probe.c"], tmp_path_factory.mktemp("port"), "port")


def _mutate(rng: random.Random, s: str) -> str:
    b = bytearray(s.encode())
    for _ in range(rng.randrange(1, 4)):
        k = rng.randrange(len(b) + 1)
        op = rng.randrange(3)
        if op == 0:
            b.insert(k, rng.choice(b"%@:/\\[].?#x0F \t\x00\x7f"))
        elif op == 1 and k < len(b):
            del b[k]
        elif k < len(b):
            b[k] = rng.randrange(0x20, 0x7F)
    return b.decode("utf-8", "replace")


def test_url_parser_matches_the_core(lib: Any) -> None:
    """20,000 generated and mutated URLs: same status, and when parsed the same components."""
    rng = random.Random(1919)
    urls = generated_urls(10000, 7)
    urls += [_mutate(rng, u) for u in urls]
    for url in urls:
        f = call_probe(lib.probe_url, url)
        mine = arguments.parse_url(url)
        assert int(f[0]) == mine.status, url
        if mine.status != arguments.URL_OK:
            continue
        port = -1 if mine.port is None else mine.port
        assert (f[1], f[2] == "1", f[6], int(f[8]), f[9]) == (
            mine.scheme, mine.has_at, mine.host, port, arguments.ip_class(mine)), url


@pytest.mark.parametrize("style,code", [("posix", 0), ("windows", 1)])
@pytest.mark.parametrize("relative", [False, True])
def test_path_normalizer_matches_the_core(lib: Any, style: str, code: int, relative: bool) -> None:
    """5,000 generated paths per style: same status, path, root length and extension."""
    for text in generated_paths(5000, 11 + code, ["/", "\\", "//", "\\/"]):
        f = call_probe(lib.probe_path, text, code, int(relative))
        mine = arguments.normalize_path(text, style, relative)
        assert int(f[0]) == mine.status, (text, f)
        if mine.status == arguments.PATH_OK:
            assert (f[1], int(f[2]), f[3]) == (mine.path, mine.root_len, mine.ext), text
