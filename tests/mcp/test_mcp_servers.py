"""Published MCP servers behind the proxy, driven by the official SDK client:
mcp-server-git (PyPI) on a temporary repository, and @modelcontextprotocol/server-filesystem
(npm) where it can be fetched and started."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess

import anyio
import orjson
import pytest

from support import TESTS
from support.mcp_helpers import PY, sdk_calls

pytest.importorskip("mcp")
HERE = os.path.dirname(os.path.abspath(__file__))


def _git(repo, *args) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True, timeout=30).stdout


@pytest.fixture
def repo(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    pytest.importorskip("mcp_server_git", reason="mcp-server-git is not installed")
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "a.txt").write_text("one\n")
    _git(repo, "add", "a.txt")
    _git(repo, "-c", "user.email=t@example.test", "-c", "user.name=t", "commit", "-qm", "first")
    (repo / "a.txt").write_text("two\n")
    return repo


GIT_POLICY = {"version": "git-1", "default_action": "Deny",
              "tools": ["git_status", "git_log", "git_diff", "git_add", "git_commit"], "roles": ["reader", "writer"],
              "rules": [{"tool_name": "git_status", "roles": ["reader", "writer"], "condition": None},
                        {"tool_name": "git_log", "roles": ["reader", "writer"], "condition": None},
                        {"tool_name": "git_diff", "roles": ["reader", "writer"], "condition": None},
                        {"tool_name": "git_add", "roles": ["writer"], "condition": None},
                        {"tool_name": "git_commit", "roles": ["writer"], "condition": None}]}


def test_mcp_server_git_reader_cannot_commit_writer_can(repo, tmp_path):
    """mcp-server-git behind the proxy: a reader sees and may use status/log/diff only; its
    git_add and git_commit are denied and the repository is unchanged; a writer commits."""
    policy = tmp_path / "git_policy.json"
    policy.write_bytes(orjson.dumps(GIT_POLICY))
    server = [PY, "-m", "mcp_server_git", "--repository", str(repo)]
    head = _git(repo, "rev-parse", "HEAD")
    r = str(repo)

    def proxied(role):
        return [PY, "-m", "callgate", "proxy", "--policy", str(policy), "--role", role, "--", *server]

    listed, results = anyio.run(sdk_calls, proxied("reader"), [
        ("git_status", {"repo_path": r}),
        ("git_add", {"repo_path": r, "files": ["a.txt"]}),
        ("git_commit", {"repo_path": r, "message": "reader was here"})])
    assert sorted(listed) == ["git_diff", "git_log", "git_status"]
    assert not results[0].is_error and "a.txt" in results[0].content[0].text
    for denied in results[1:]:
        assert denied.is_error and denied.content[0].text.startswith("Denied by policy: git_")
    assert _git(repo, "rev-parse", "HEAD") == head
    assert _git(repo, "diff", "--cached", "--name-only") == ""

    listed, results = anyio.run(sdk_calls, proxied("writer"), [
        ("git_add", {"repo_path": r, "files": ["a.txt"]}),
        ("git_commit", {"repo_path": r, "message": "writer was here"})])
    assert "git_commit" in listed
    assert not any(res.is_error for res in results), [res.content[0].text for res in results]
    assert _git(repo, "rev-parse", "HEAD") != head
    assert _git(repo, "log", "-1", "--format=%s").strip() == "writer was here"


FS_POLICY = {"version": "fs-1", "default_action": "Deny",
             "tools": ["read_file", "read_text_file", "list_directory", "write_file"], "roles": ["reader"],
             "rules": [{"tool_name": "read_*", "roles": ["reader"], "condition":
                        {"StringCheck": {"source": "ResourceAttributes", "field": "zone", "op": "In", "value": ["public"]}}},
                       {"tool_name": "list_directory", "roles": ["reader"], "condition":
                        {"StringCheck": {"source": "ResourceAttributes", "field": "zone", "op": "In", "value": ["public"]}}}]}


@functools.lru_cache(maxsize=1)
def _filesystem_server() -> list[str]:
    """The npx command for server-filesystem, or a skip reason (fetched once, bounded)."""
    npx = shutil.which("npx")
    if npx is None:
        return ["skip", "npx is not installed"]
    cmd = [npx, "-y", "@modelcontextprotocol/server-filesystem"]
    probe = '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"p","version":"0"}}}\n'
    try:
        run = subprocess.run([*cmd, HERE], input=probe.encode(), capture_output=True, timeout=30)
    except subprocess.TimeoutExpired:
        return ["skip", "server-filesystem could not be fetched and started within 30 s"]
    if b'"id":1' not in run.stdout:
        return ["skip", f"server-filesystem did not start: {run.stderr[-200:].decode(errors='replace')}"]
    return cmd


def test_server_filesystem_reads_only_under_one_directory(tmp_path):
    """@modelcontextprotocol/server-filesystem behind the proxy: with a resolver that places
    each path (after .. and symlinks) in a zone, a reader may read only under public/;
    secret files, traversal out of public/ and writes are denied."""
    cmd = _filesystem_server()
    if cmd[0] == "skip":
        pytest.skip(cmd[1])
    (tmp_path / "public").mkdir()
    (tmp_path / "secret").mkdir()
    (tmp_path / "public" / "hello.txt").write_text("hello from public\n")
    (tmp_path / "secret" / "key.txt").write_text("TOP SECRET\n")
    policy = tmp_path / "fs_policy.json"
    policy.write_bytes(orjson.dumps(FS_POLICY))
    pub, sec = tmp_path / "public", tmp_path / "secret"
    argv = [PY, "-m", "callgate", "proxy", "--policy", str(policy), "--role", "reader",
            "--resolver", "support.mcp_helpers:fs_zone", "--", *cmd, str(tmp_path)]
    env = {"PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
           "CALLGATE_TEST_PUBLIC_DIR": str(pub)}
    listed, results = anyio.run(functools.partial(sdk_calls, argv, [
        ("read_text_file", {"path": str(pub / "hello.txt")}),
        ("read_text_file", {"path": str(sec / "key.txt")}),
        ("read_text_file", {"path": str(pub / ".." / "secret" / "key.txt")}),
        ("write_file", {"path": str(pub / "new.txt"), "content": "x"})], env=env))
    assert sorted(listed) == ["list_directory", "read_file", "read_text_file"]
    assert not results[0].is_error and "hello from public" in results[0].content[0].text
    for denied in results[1:]:
        assert denied.is_error and denied.content[0].text.startswith("Denied by policy: ")
        assert "TOP SECRET" not in denied.content[0].text
    assert not (pub / "new.txt").exists()
