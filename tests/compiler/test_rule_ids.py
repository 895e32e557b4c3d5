"""Rule ids and rule numbers: a rule may carry an "id" that every text uses in place of its
number; texts count rules from 1 ("rule 4"), data holds the index from 0 (Decision.rule,
rules[3]). The decisions and reasons of a policy with ids are in the shared corpus
(tests/corpus/rule_ids_policy.json and rule_ids_cases.json: native, wasm, Node, `callgate test`
and the reference)."""

from __future__ import annotations

import struct
import zlib

import orjson
import pytest

from callgate import BlobError, Engine, PolicyError, examples
from callgate import bytecode as bc
from callgate._native import LoadedPolicy
from callgate.audit import JsonlSink

from support.cli import invoke


def crm_with_ids(**ids: str) -> dict:
    """The CRM example with ids on some rules (`rule3="refund-cap"` gives rules[3] one)."""
    policy = examples.policy("crm")
    for key, value in ids.items():
        policy["rules"][int(key.removeprefix("rule"))]["id"] = value
    return policy


@pytest.mark.parametrize("bad", ["4", "9lives", "has space", "a" * 65, "", "é", "refund/cap"])
def test_an_id_that_is_not_a_name_is_refused_where_it_is(bad):
    """An id starts with a letter and has at most 64 of [A-Za-z0-9_.:-]: an id such as "4"
    would read as a rule number in "rule 4"."""
    with pytest.raises(PolicyError) as exc:
        Engine.from_dict(crm_with_ids(rule3=bad))
    assert exc.value.location == "rules[3].id"
    assert "is not a rule id" in exc.value.message


@pytest.mark.parametrize("bad", [None, 4, ["a"]])
def test_an_id_of_another_type_is_refused(bad):
    """null, a number or a list is a type error at rules[i].id, never a rule without an id."""
    policy = examples.policy("crm")
    policy["rules"][3]["id"] = bad
    with pytest.raises(PolicyError) as exc:
        Engine.from_dict(policy)
    assert exc.value.location == "rules[3].id"


def test_an_id_used_twice_is_refused_at_its_second_use():
    """Two rules with one id: the second is the error, and it names the first."""
    with pytest.raises(PolicyError) as exc:
        Engine.from_dict(crm_with_ids(rule1="same", rule4="same"))
    assert (exc.value.location, exc.value.message) == ("rules[4].id", "rule id 'same' is already the id of rules[1]")


def test_check_reports_a_duplicate_id_with_its_line(tmp_path):
    """`callgate check` places the duplicate id in the file."""
    path = tmp_path / "p.json"
    text = orjson.dumps(crm_with_ids(rule1="same", rule4="same"), option=orjson.OPT_INDENT_2).decode()
    path.write_text(text)
    r = invoke("check", str(path))
    assert r.exit_code == 1
    line = text[:text.index('"id": "same"', text.index('"id": "same"') + 1)].count("\n") + 1
    assert f"{path}:{line}:" in r.stdout and "error: rules[4].id: rule id 'same' is already the id of rules[1]" in r.stdout


def test_perso_semantics_ignores_ids_as_the_original_engine_does():
    """Under perso semantics an id is an unknown key, dropped as the original engine drops
    it: the perso reasons (which name no rule) are the same with or without it."""
    plain = Engine.from_dict(examples.policy("crm"), "perso")
    with_ids = Engine.from_dict(crm_with_ids(rule3="refund-cap"), "perso")
    for case in examples.cases("crm"):
        a = plain.evaluate(case["tool"], case["args"], role=case["role"], agent_attributes=case["agent_attributes"],
                           resource_attributes=case["resource_attributes"])
        b = with_ids.evaluate(case["tool"], case["args"], role=case["role"], agent_attributes=case["agent_attributes"],
                              resource_attributes=case["resource_attributes"])
        assert (a.decision, a.reason, a.rule) == (b.decision, b.reason, b.rule)


def test_decision_rule_stays_the_index_from_0():
    """The id changes texts only: Decision.rule is still the index in rules."""
    d = Engine.from_dict(crm_with_ids(rule3="refund-cap")).evaluate("process_refund", {"amount": 800}, role="agent")
    assert d.rule == 3
    assert d.reason == "process_refund denied for role 'agent': Arguments.amount = 800 is not <= 500 (rule refund-cap)"


def test_explain_names_rules_by_id_and_number(tmp_path):
    """explain's text says `rule refund-cap (rules[3])` where a rule has an id and `rule 1
    (rules[0])` where it has none; its JSON has the id (null without one)."""
    path = tmp_path / "p.json"
    path.write_text(orjson.dumps(crm_with_ids(rule3="refund-cap")).decode())
    text = invoke("explain", str(path), "--tool", "process_refund", "--role", "agent", "--args", '{"amount": 800}').stdout
    assert "rule refund-cap (rules[3]) allow" in text
    assert "no rule granted it; rule refund-cap (rules[3]) is the one explained" in text
    doc = orjson.loads(invoke("explain", str(path), "--tool", "process_refund", "--role", "agent",
                              "--args", '{"amount": 800}', "--format", "json").stdout)
    assert [(r["rule"], r["number"], r["id"]) for r in doc["rules"]] == [(3, 4, "refund-cap")]
    doc = orjson.loads(invoke("explain", str(path), "--tool", "view_customer", "--role", "agent",
                              "--format", "json").stdout)
    assert [(r["rule"], r["number"], r["id"]) for r in doc["rules"]] == [(0, 1, None)]


def test_cases_may_expect_a_rule_by_id(tmp_path):
    """`callgate test`: "rule" may be the id; a failure names the rule by index and name."""
    policy = tmp_path / "p.json"
    policy.write_text(orjson.dumps(crm_with_ids(rule3="refund-cap")).decode())
    cases = tmp_path / "c.json"
    call = {"tool": "process_refund", "role": "agent", "args": {"amount": 800}}
    cases.write_text(orjson.dumps([{**call, "expect": {"decision": "Deny", "rule": "refund-cap"}},
                                   {**call, "expect": {"decision": "Deny", "rule": "other"}}]).decode())
    r = invoke("test", str(policy), str(cases))
    assert r.exit_code == 1
    assert "1/2 passed, 1 failed" in r.stdout
    assert "rule: expected rule other (the policy has no such rule), got rules[3] (rule refund-cap)" in r.stdout


def test_disasm_shows_ids():
    """The disassembler names a rule as reasons do, with its number."""
    listing = bc.disassemble(Engine.from_dict(crm_with_ids(rule3="refund-cap")).blob)
    assert "entry 'process_refund' x 'agent' -> rule 4 (refund-cap) (allow)" in listing
    assert "rule 4 (refund-cap): code" in listing


def test_audit_stats_text_counts_rules_from_1(tmp_path):
    """`audit stats` text names the rule as reasons do (`rule 4` for the index 3 the event
    holds); its JSON keeps the index."""
    log = tmp_path / "a.jsonl"
    engine = Engine.from_dict(examples.policy("crm"), audit=JsonlSink(str(log)))
    engine.evaluate("process_refund", {"amount": 800}, role="agent")
    engine.close()
    text = invoke("audit", "stats", str(log)).stdout
    assert "Deny        process_refund / agent / rule 4" in text
    stats = orjson.loads(invoke("audit", "stats", str(log), "--json").stdout)
    assert [row["rule"] for row in stats["by_tool_role_rule"]] == [3]


def _names_word_out_of_range() -> bytes:
    """The CRM blob with rule 0's names word pointing past the string table (resealed)."""
    policy = crm_with_ids(rule3="refund-cap")
    blob = bytearray(Engine.from_dict(policy).blob)
    d = bc.decode(bytes(blob))
    at = len(blob) - len(d.code) - sum(len(s.encode()) for s in d.strings) - 4 * d.n_policy_rules
    assert struct.unpack_from("<I", blob, at + 12)[0] == d.strings.index("refund-cap")   # rules[3]'s id
    struct.pack_into("<I", blob, at, len(d.strings))
    struct.pack_into("<I", blob, 12, zlib.crc32(bytes(blob[16:])))
    return bytes(blob)


def test_the_loader_refuses_a_name_outside_the_string_table():
    """The names section is checked at the trust boundary like every other string index."""
    with pytest.raises(BlobError):
        LoadedPolicy(_names_word_out_of_range())
