"""The ready-made path resolver (callgate.realpaths, `callgate proxy --real-path`): the real
path of each named argument, its zone and whether it exists, in the resource attributes; and,
through the proxy in front of the real @modelcontextprotocol/server-filesystem, a read through
a symlink that leaves the root passes a lexical PathCheck (and is served) but is denied, and
never reaches the server, once the policy checks the real path."""

from __future__ import annotations

import json
import os

import orjson
import pytest

from callgate import Engine, examples
from callgate.realpaths import RealPaths, zones_from
from support.cli import run as run_cli
from support.mcp_helpers import PY, Wire, node_server, tapped, text_of


@pytest.fixture
def tree(tmp_path):
    """tmp/data/{report.csv, secret/key, link -> ../outside, up -> ..}, tmp/outside/secret.txt."""
    data, outside = tmp_path / "data", tmp_path / "outside"
    (data / "secret").mkdir(parents=True)
    outside.mkdir()
    (data / "report.csv").write_text("a,b\n")
    (data / "secret" / "key").write_text("k\n")
    (outside / "secret.txt").write_text("stolen\n")
    os.symlink(outside, data / "link")
    os.symlink("..", data / "up")
    return tmp_path


def test_real_path_zone_and_existence(tree):
    """A symlink is followed and `..` after it applies to its target (as the kernel does);
    the zone is the innermost root holding the real path, at a separator (data-other is not
    in data); relative paths resolve against the base; a path that does not exist is still
    resolved, with exists false."""
    data = tree / "data"
    r = RealPaths(["path"], {"data": str(data), "secret": str(data / "secret")}, base=str(tree))
    seen = lambda p: r("read", {"path": p})["paths"]["path"]  # noqa: E731
    assert seen(str(data / "report.csv")) == {"realpath": str(data / "report.csv"), "zone": "data", "exists": True}
    assert seen(str(data / "secret" / "key"))["zone"] == "secret"
    assert seen(str(data / "link" / "secret.txt")) == {"realpath": str(tree / "outside" / "secret.txt"),
                                                       "zone": None, "exists": True}
    assert seen(str(data / "up" / "data" / "report.csv"))["zone"] == "data"
    assert seen(str(data / "link" / ".." / "data" / "report.csv"))["realpath"] == str(tree / "data" / "report.csv")
    assert seen("data/report.csv")["realpath"] == str(data / "report.csv")
    assert seen(str(data) + "-other/x") == {"realpath": str(data) + "-other/x", "zone": None, "exists": False}


def test_values_that_are_not_paths_get_no_entry_and_pointers_are_read(tree):
    """A missing, non-string, empty or NUL-holding argument gets no entry (a condition over
    it is U); a JSON Pointer names a nested argument; another resolver's attributes are kept
    beside "paths", and one that returns its own "paths" is refused (the Gate denies)."""
    r = RealPaths(["path", "/copy/to"], base=str(tree))
    assert r("t", {"path": 3, "copy": {"to": "data/report.csv"}}) == {
        "paths": {"/copy/to": {"realpath": str(tree / "data" / "report.csv"), "zone": None, "exists": True}}}
    for bad in ({}, {"path": ""}, {"path": "a\x00b"}, {"path": None}, {"path": ["x"]}):
        assert r("t", bad) == {"paths": {}}
    both = RealPaths(["path"], base=str(tree), then=lambda tool, args: {"owner": "alice"})
    assert both("t", {"path": "data"})["owner"] == "alice"
    clash = RealPaths(["path"], then=lambda tool, args: {"paths": {}})
    with pytest.raises(ValueError, match="'paths' key of their own"):
        clash("t", {"path": "x"})


def test_configuration_errors_are_one_line():
    """Bad configuration is a ValueError (zones_from, RealPaths) and, from the command line,
    a one-line error with exit 2: a zone without =, a relative root, zones without
    --real-path, a --path-base that is not a directory."""
    with pytest.raises(ValueError, match="NAME=ROOT"):
        zones_from(["data"])
    with pytest.raises(ValueError, match="absolute"):
        RealPaths(["path"], {"data": "relative/root"})
    for extra, message in ((["--path-zone", "data=/srv"], "go with --real-path"),
                           (["--real-path", "path", "--path-base", "/nonexistent/dir"], "not a directory"),
                           (["--real-path", "path", "--path-zone", "data"], "NAME=ROOT")):
        result = run_cli("proxy", "--policy", "crm", "--role", "agent", *extra, "--", PY, "-c", "pass")
        assert result.returncode == 2, result
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


def _calls(received: bytes) -> list[dict]:
    return [m["params"] for m in map(orjson.loads, filter(None, received.splitlines()))
            if m.get("method") == "tools/call"]


def test_a_symlink_out_of_the_root_is_denied_through_the_proxy(tree):
    """With the filesystem example's lexical PathCheck only, data/link/secret.txt (link ->
    ../outside) is under the root and the real server serves the outside file. With
    `--real-path path --path-zone data=ROOT` and a rule that also requires the real path's
    zone to be data, the same call is denied by the proxy and never reaches the server,
    while a plain read under the root is still served."""
    data = tree / "data"
    lexical = json.loads(examples.path("filesystem_policy.json").read_text().replace("/srv/data", str(data)))
    guarded = json.loads(json.dumps(lexical))
    for rule in guarded["rules"]:
        if rule["tool_name"] == "read_text_file":
            rule["condition"] = {"All": [rule["condition"], {"StringCheck": {
                "source": "ResourceAttributes", "pointer": "/paths/path/zone", "op": "Eq", "value": "data"}}]}
    escape, plain = str(data / "link" / "secret.txt"), str(data / "report.csv")
    assert Engine.from_dict(lexical).evaluate("read_text_file", {"path": escape}, role="agent").decision == "Allow"
    for name, policy, options in (("lexical", lexical, []),
                                  ("guarded", guarded, ["--real-path", "path", "--path-zone", f"data={data}"])):
        policy_file = tree / f"{name}.json"
        policy_file.write_text(json.dumps(policy))
        server, received, _ = tapped(tree, name, node_server("mcp-server-filesystem") + [str(tree)])
        with Wire([PY, "-m", "callgate", "proxy", "--policy", str(policy_file), "--role", "agent", *options,
                   "--", *server]) as w:
            w.call(0, "initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                     "clientInfo": {"name": "t", "version": "1"}})
            w.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
            ok = w.call(1, "tools/call", {"name": "read_text_file", "arguments": {"path": plain}})
            assert text_of(ok) == "a,b\n", ok
            out = w.call(2, "tools/call", {"name": "read_text_file", "arguments": {"path": escape}})
            assert w.close() == 0
        paths = [c["arguments"]["path"] for c in _calls(received.read_bytes())]
        if name == "lexical":
            assert text_of(out) == "stolen\n" and paths == [plain, escape], out
        else:
            assert text_of(out).startswith("Denied by policy: read_text_file"), out
            assert "/paths/path/zone" in text_of(out) and paths == [plain], out
