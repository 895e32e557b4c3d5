"""Where an MCP front finds a principal chain (callgate.mcp.chains): a --chain-file read at
start and again when it changes (a rotated credential without a restart; an unreadable file
later means no chain, never the stale one), CALLGATE_CHAIN, and a request's
_meta["callgate/chain"] only as a token string (ASCII, one word, bounded)."""

from __future__ import annotations

import os

import pytest

from callgate.mcp.chains import ChainFile, ChainSourceError, FixedChain, chain_in_meta, configured_chain


def test_the_chain_file_is_reread_when_it_changes(tmp_path):
    """The token in the file; a new token after the file is replaced; None once it is gone
    or empty (calls then carry no chain); an unusable file at start is one-line refused."""
    path = tmp_path / "chain.jwt"
    path.write_text("aaa.bbb.ccc\n")
    source = ChainFile(path)
    assert source.current() == "aaa.bbb.ccc"
    path.write_text("ddd.eee.fff")
    os.utime(path, ns=(1, 2))   # a changed stamp even within the clock's resolution
    assert source.current() == "ddd.eee.fff"
    path.unlink()
    assert source.current() is None
    path.write_text("")
    assert source.current() is None
    with pytest.raises(ChainSourceError, match="chain-file"):
        ChainFile(tmp_path / "missing.jwt")
    (tmp_path / "two").write_text("a.b.c d.e.f")
    with pytest.raises(ChainSourceError, match="more than one word"):
        ChainFile(tmp_path / "two")
    (tmp_path / "big").write_bytes(b"a" * (64 * 1024 + 1))
    with pytest.raises(ChainSourceError, match="at most"):
        ChainFile(tmp_path / "big")


def test_configured_chain_prefers_the_file_then_the_environment(tmp_path):
    """--chain-file wins over CALLGATE_CHAIN; without either there is no chain; a
    non-ASCII environment value is refused."""
    path = tmp_path / "c"
    path.write_text("from.the.file")
    assert configured_chain(str(path), {"CALLGATE_CHAIN": "from.the.env"}).current() == "from.the.file"
    assert configured_chain(None, {"CALLGATE_CHAIN": "from.the.env"}).current() == "from.the.env"
    assert configured_chain(None, {}) is None
    with pytest.raises(ChainSourceError, match="ASCII"):
        FixedChain("tök.en.x")


@pytest.mark.parametrize("params, want", [
    ({}, (None, None)),
    ({"_meta": {}}, (None, None)),
    ({"_meta": {"callgate/chain": "a.b.c"}}, ("a.b.c", None)),
    ({"_meta": {"callgate/chain": 7}}, (None, '_meta["callgate/chain"] must be a chain token (a string)')),
    ({"_meta": {"callgate/chain": "a b"}}, (None, '_meta["callgate/chain"]: not one chain token (empty, or more '
                                               'than one word)')),
    ("not an object", (None, None)),
])
def test_a_chain_in_meta_is_a_token_string_or_a_problem(params, want):
    """_meta["callgate/chain"]: absent is no chain; a token string is the token; anything
    else is a problem the gate turns into a denial."""
    assert chain_in_meta(params) == want
