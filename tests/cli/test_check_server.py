"""`callgate check POLICY --server -- SERVER_COMMAND`: the policy compared with the live CRM
demo server's tools/list. A field the schema lacks is an error at the rule's FILE:LINE; an
undeclared tool, a declared tool the server lacks, an unconstrained parameter of a write
tool and a destructive tool declared read are warnings; a tool changed since its pin is an
error; the exit codes are check's (0 ok, 1 errors, 2 unusable input)."""

from __future__ import annotations

import json
import sys

from callgate import examples
from support.cli import invoke

CRM = [sys.executable, "-m", "callgate.demo.crm_server"]


def _policy(tmp_path, mutate=None):
    doc = examples.policy("crm")
    if mutate:
        mutate(doc)
    path = tmp_path / "crm.json"
    path.write_text(json.dumps(doc, indent=2))
    return path


def test_the_bundled_policy_matches_its_server(tmp_path):
    """The CRM example and the CRM demo server agree: no server finding, exit 0."""
    r = invoke("check", str(_policy(tmp_path)), "--server", "--", *CRM)
    assert r.exit_code == 0, r.output
    assert "server" not in r.stdout and "schema" not in r.stdout


def test_a_misspelled_field_and_drift_are_reported(tmp_path):
    """A rule reading Arguments.amout (the schema says amount) is an error located at its
    condition; a tool the server lists but the policy does not declare, and a declared tool
    the server does not list, are warnings; exit 1."""
    def mutate(doc):
        doc["tools"] = [t for t in doc["tools"] if t != "bulk_update"] + ["archive_customer"]
        doc["rules"] = [r for r in doc["rules"] if r["tool_name"] != "bulk_update"]
        doc["rules"].append({"tool_name": "process_refund", "roles": ["agent"], "condition": {
            "NumericCheck": {"source": "Arguments", "field": "amout", "op": "Lte", "value": 10}}})
    path = _policy(tmp_path, mutate)
    r = invoke("check", str(path), "--server", "--", *CRM)
    assert r.exit_code == 1, r.output
    lines = r.stdout.splitlines()
    typo = next(line for line in lines if "Arguments.amout" in line)
    assert typo.startswith(f"{path}:") and "error:" in typo and "has no property 'amout'" in typo
    assert any("lists 'bulk_update', which the policy does not declare" in line for line in lines)
    assert any("'archive_customer' is declared but the server does not list it" in line for line in lines)


def test_pins_and_unusable_input(tmp_path):
    """With --pins, a tool whose definition differs from its pin is an error; a missing pins
    file, or both a command and a URL, is one line with exit 2; a server that does not start
    is one line with exit 1."""
    path = _policy(tmp_path)
    pins = tmp_path / "pins.json"
    assert invoke("init", "-o", str(tmp_path / "starter.json"), "--pins", str(pins), "--", *CRM).exit_code == 0
    doc = json.loads(pins.read_text())
    doc["tools"]["view_customer"]["digest"] = "sha256:" + "0" * 64
    pins.write_text(json.dumps(doc))
    r = invoke("check", str(path), "--pins", str(pins), "--server", "--", *CRM)
    assert r.exit_code == 1 and "'view_customer': tool definition changed since review" in r.stdout, r.output
    r = invoke("check", str(path), "--pins", str(tmp_path / "none.json"), "--server", "--", *CRM)
    assert r.exit_code == 2 and r.stderr.startswith("error: --pins")
    r = invoke("check", str(path), "--url", "http://127.0.0.1:9/mcp", "--server", "--", *CRM)
    assert r.exit_code == 2 and "give the server once" in r.stderr
    r = invoke("check", str(path), "--server", "--", str(tmp_path / "no-such-server"))
    assert r.exit_code == 1 and "cannot list the server's tools" in r.stderr and "Traceback" not in r.output


def test_tiers_parameters_and_annotations_are_compared():
    """server_check.compare on a listing: a write tool's parameter no condition reads is a
    warning (the one read is not); a destructiveHint on a tool declared read, and a
    readOnlyHint on one declared destructive, are warnings; a pointer's first token counts
    as the key read; a tool with no pin is an error when pins are given."""
    from callgate.compiler import compile_policy
    from callgate.server_check import compare

    policy = compile_policy({
        "version": "2", "default_action": "Deny", "tools": ["write_file", "read_file", "wipe"], "roles": ["r"],
        "tool_tiers": {"write_file": "write", "read_file": "read", "wipe": "destructive"},
        "rules": [{"tool_name": "write_file", "roles": ["r"], "condition": {
            "StringCheck": {"source": "Arguments", "pointer": "/path", "op": "StartsWith", "value": "/tmp/"}}}]})
    schema = {"type": "object", "properties": {"path": {"type": "string"}, "content": {"type": "string"}}}
    tools = [{"name": "write_file", "inputSchema": schema},
             {"name": "read_file", "inputSchema": {"type": "object"}, "annotations": {"destructiveHint": True}},
             {"name": "wipe", "inputSchema": {"type": "object"}, "annotations": {"readOnlyHint": True}}]
    found = [(f.level, f.message) for f in compare(policy, tools, pins={"write_file": "x", "read_file": "y"})]
    assert ("warning", "'write_file' (write) takes 'content', which no rule's condition reads") in found
    assert not any("takes 'path'" in m for _, m in found)
    assert ("warning", "'read_file' is declared read but the server marks it destructive (destructiveHint)") in found
    assert ("warning", "'wipe' is declared destructive but the server marks it read-only (readOnlyHint)") in found
    assert ("error", "'wipe' has no pin: its definition was never reviewed") in found
    assert ("error", "'write_file': tool definition changed since review (its pin)") in found
