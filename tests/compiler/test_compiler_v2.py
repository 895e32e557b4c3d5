"""The compiler for policy language v2 (docs/policy-v2.md, csrc/cg_opcodes.h).

- expansion: tiers (tool_tiers precedence, tier rules, discovered tools), the (tool, role)
  table in entry order, tier defaults;
- lowering: every new node's instructions and descriptors, read back with bytecode.decode;
- time zones: the compiled UTC-offset tables against zoneinfo;
- end to end: decisions and exact reasons through callgate.Engine (these need the C core's
  v2 opcodes).
"""

from __future__ import annotations

import random
import struct
from datetime import datetime, timezone as dt_timezone
from zoneinfo import ZoneInfo

import pytest

from callgate import Engine, PolicyError
from callgate import bytecode as bc
from callgate.compiler import compile_policy, offset_at, zone_offsets
from callgate.language import format_number, window_text

TOOLS = ["search_docs", "read_file", "write_file", "delete_file", "delete_user", "transfer"]


def policy(rules=(), **over) -> dict:
    p = {"version": "v2", "default_action": "Deny", "tools": list(TOOLS), "roles": ["agent", "admin"],
         "rules": list(rules)}
    p.update(over)
    return p


def rule(tool="read_file", roles=("agent",), condition=None, **over) -> dict:
    r = {"tool_name": tool, "roles": list(roles)}
    if condition is not None:
        r["condition"] = condition
    r.update(over)
    return r


def insns(d: bc.DecodedBlob, start: int = 0, end: int | None = None) -> list[tuple[str, int, tuple]]:
    """The instructions of d.code[start:end] as (name, flags, operands)."""
    out, pc = [], start
    end = len(d.code) if end is None else end
    while pc < end:
        op = bc.OPCODES[d.code[pc]]
        out.append((op.name, d.code[pc + 1], struct.unpack_from(f"<{op.operands}I", d.code, pc + 2)))
        pc += bc.insn_len(op)
    return out


def rule_code(d: bc.DecodedBlob, index: int) -> list[tuple[str, int, tuple]]:
    """The instructions of policy rule `index` (from any rule slot naming it)."""
    for policy_index, off, length, _effect in d.rules:
        if policy_index == index:
            return insns(d, off, off + length)
    raise AssertionError(f"rule {index} not in the blob")


def lowered(cond: dict) -> tuple[bc.DecodedBlob, list[tuple[str, int, tuple]]]:
    d = bc.decode(compile_policy(policy([rule(condition=cond)])).blob)
    return d, rule_code(d, 0)


def path_words(d: bc.DecodedBlob, at: int) -> tuple[int, str, list[str]]:
    """(base, display, tokens) of the path descriptor at words[at] (the key-only bit aside)."""
    base, n, display = d.words[at:at + 3]
    n &= ~bc.PATH_KEY
    return base, d.strings[display], [d.strings[s] for s in d.words[at + 3:at + 3 + n]]


def glob_words(d: bc.DecodedBlob, at: int) -> list[str]:
    n = d.words[at]
    parts = []
    for k in range(n):
        sid, table = d.words[at + 1 + 2 * k:at + 3 + 2 * k]
        part = d.strings[sid]
        assert d.words[table:table + len(part.encode())] == bc.kmp_table(part.encode())
        parts.append(part)
    return parts


# ---------------------------------------------------------------- expansion


def test_tool_tiers_exact_beats_glob_and_strictest_glob_wins():
    """An exact tool_tiers key wins over every glob; among globs matching a tool the strictest
    tier wins; a tool nothing matches has no tier."""
    c = compile_policy(policy(tool_tiers={"*_file": "write", "delete_*": "destructive", "read_file": "public",
                                          "*": "read", "search_*": "public"}))
    assert c.tiers == {"search_docs": "read", "read_file": "public", "write_file": "write",
                       "delete_file": "destructive", "delete_user": "destructive", "transfer": "read"}
    c = compile_policy(policy(tool_tiers={"delete_*": "write", "*_user": "public"}))
    assert c.tiers == {"delete_file": "write", "delete_user": "write"}


def test_tool_tiers_exact_key_must_be_declared():
    """An exact tool_tiers key that is not a declared (or discovered) tool is a PolicyError."""
    with pytest.raises(PolicyError) as exc:
        compile_policy(policy(tool_tiers={"drop_table": "destructive"}))
    assert str(exc.value) == "tool_tiers.drop_table: tool 'drop_table' is not declared in tools"
    c = compile_policy(policy(tool_tiers={"drop_table": "destructive"}), discovered_tools={"drop_table": "write"})
    assert c.tiers["drop_table"] == "write"


def test_tier_rules_expand_like_globs():
    """A tier rule covers every tool of its tier (in tools order), exactly as if each were
    listed; a tier without tools contributes nothing."""
    c = compile_policy(policy(
        [{"tier": "destructive", "roles": ["admin"]}, {"tier": "public", "roles": ["agent", "admin"]},
         rule(tool="transfer")],
        tool_tiers={"delete_*": "destructive", "write_file": "write"}))
    assert c.table == {("delete_file", "admin"): [0], ("delete_user", "admin"): [0], ("transfer", "agent"): [2]}
    d = bc.decode(c.blob)
    assert sorted((d.strings[t], d.strings[r]) for t, r, _, _ in d.entries) == sorted(c.table)


def test_discovered_tools_join_the_declared_ones():
    """discovered_tools: new names are added after the declared tools, their given tier
    overrides tool_tiers, globs and tier rules expand over them, and strict accepts exact
    rules naming them."""
    c = compile_policy(
        policy([rule(tool="mcp_*", roles=["admin"]), {"tier": "write", "roles": ["agent"], "effect": "deny"},
                rule(tool="mcp_search")],
               tool_tiers={"read_file": "read", "mcp_*": "public"}),
        discovered_tools={"mcp_search": "read", "mcp_drop": "write", "read_file": "write"})
    assert c.tools == (*TOOLS, "mcp_search", "mcp_drop")
    assert c.tiers == {"read_file": "write", "mcp_search": "read", "mcp_drop": "write"}
    assert c.table == {("mcp_search", "admin"): [0], ("mcp_drop", "admin"): [0], ("read_file", "agent"): [1],
                       ("mcp_drop", "agent"): [1], ("mcp_search", "agent"): [2]}
    with pytest.raises(PolicyError) as exc:
        compile_policy(policy([rule(tool="mcp_search")]))
    assert str(exc.value) == "rules[0].tool_name: tool 'mcp_search' is not declared in tools"


def test_discovered_tools_checked_and_ignored_in_perso():
    """A discovered tool's tier must be one of the four; perso has no tiers and ignores
    discovered tools (its globs expand over the declared tools only, as the original did)."""
    with pytest.raises(PolicyError) as exc:
        compile_policy(policy(), discovered_tools={"x": "admin"})
    assert str(exc.value) == "(discovered_tools): unknown tier 'admin' for discovered tool 'x'; " \
                             "expected public, read, write, destructive"
    c = compile_policy(policy([rule(tool="*")]), "perso", discovered_tools={"x": "read"})
    assert c.tiers == {} and "x" not in c.tools and ("x", "agent") not in c.table


def test_entry_order_deny_allow_elevate():
    """An entry's rules: deny rules (policy order), allow rules (policy order), elevate rules
    by approvals descending then policy order; the blob's rule slots carry effect words in
    that order (the C core's precedence relies on it)."""
    rules = [rule(effect="elevate", approvals=1), rule(), rule(effect="deny"), rule(effect="elevate", approvals=2),
             rule(effect="elevate", approvals=1), rule(effect="deny"), rule(), rule(effect="elevate", approvals=2)]
    c = compile_policy(policy(rules))
    assert c.table[("read_file", "agent")] == [2, 5, 1, 6, 3, 7, 0, 4]
    d = bc.decode(c.blob)
    (tool, role, first, n), = d.entries
    slots = d.rules[first:first + n]
    assert [s[0] for s in slots] == [2, 5, 1, 6, 3, 7, 0, 4]
    assert [s[3] for s in slots] == [0, 0, 1, 1, 2 | 2 << 2, 2 | 2 << 2, 2 | 1 << 2, 2 | 1 << 2]
    assert [c.rule_effect(i) for i in range(4)] == [("Elevate", 1), ("Allow", 0), ("Deny", 0), ("Elevate", 2)]
    assert c.rule_effect(3) == ("Elevate", 2)


def test_perso_rules_are_all_allow_last_wins():
    """perso: one rule per pair (the last), effect word Allow, no defaults."""
    c = compile_policy(policy([rule(), rule(effect="deny")]), "perso")
    d = bc.decode(c.blob)
    assert c.table == {("read_file", "agent"): [1]}
    assert [r[3] for r in d.rules] == [bc.effect_word(bc.ALLOW)] and d.defaults == []


def test_tier_defaults_one_per_tool_of_a_tier_with_a_default():
    """defaults: (tool sid, effect word, tier name sid) for each tool whose tier has a
    tier_default, in tools order; tools without a tier, or of a tier without a default,
    get none."""
    c = compile_policy(policy(
        tool_tiers={"search_docs": "public", "read_file": "read", "write_file": "write", "delete_*": "destructive"},
        tier_defaults={"public": "allow", "read": "deny", "destructive": {"effect": "elevate", "approvals": 2}}))
    d = bc.decode(c.blob)
    got = [(d.strings[t], w, d.strings[tier]) for t, w, tier in d.defaults]
    assert got == [("search_docs", 1, "public"), ("read_file", 0, "read"),
                   ("delete_file", 2 | 2 << 2, "destructive"), ("delete_user", 2 | 2 << 2, "destructive")]
    assert c.default_effect("delete_user") == ("Elevate", 2, "destructive")
    assert c.default_effect("write_file") == ("Deny", 0, None)
    assert c.default_effect("transfer") == ("Deny", 0, None)


# ---------------------------------------------------------------- lowering


def test_v1_leaves_lower_as_before():
    """A v1 policy's code is the v1 code: field operands (no path flags), no words, no
    defaults, every rule slot Allow."""
    cond = {"All": [{"NumericCheck": {"source": "Arguments", "field": "a", "op": "Lte", "value": 10}},
                    {"Not": {"StringCheck": {"source": "AgentAttributes", "field": "env", "op": "NotIn",
                                             "value": ["prod"]}}},
                    {"FieldEquals": {"source_a": "Arguments", "field_a": "o", "source_b": "ResourceAttributes",
                                     "field_b": "owner"}}]}
    d, code = lowered(cond)
    assert [(n, f) for n, f, _ in code] == [("NUM", 1), ("JF", 0), ("IN", bc.F_NEGATED | bc.F_NOTIN), ("NOT", 0),
                                            ("AND", 0), ("JF", 0), ("EQ", 0), ("AND", 0), ("RET", 0)]
    assert d.words == [] and d.defaults == [] and {r[3] for r in d.rules} == {bc.ALLOW}
    assert [d.strings[f[2]] for f in d.fields] == ["Arguments.a", "AgentAttributes.env", "Arguments.o",
                                                   "ResourceAttributes.owner"]


def test_references_fields_pointers_element():
    """A field is a field operand; a pointer is a path (F_PATH_A) over its first token's field
    with the unescaped remaining tokens and the pointer as written for display (a one-token
    pointer too); Element is a path from CG_ELEMENT."""
    cond = {"All": [
        {"FieldPresent": {"source": "Context", "field": "a.b"}},
        {"FieldPresent": {"source": "Arguments", "pointer": "/filters/0/a~1b~0c"}},
        {"FieldPresent": {"source": "ResourceAttributes", "pointer": "/owner"}},
        {"Every": {"source": "Arguments", "field": "xs", "condition": {"All": [
            {"FieldPresent": {"source": "Element"}},
            {"FieldPresent": {"source": "Element", "pointer": ""}},
            {"FieldPresent": {"source": "Element", "field": "k/1"}},
            {"FieldPresent": {"source": "Element", "pointer": "/a/~01"}},
        ]}}},
    ]}
    d, code = lowered(cond)
    present = [(f, ops[0]) for n, f, ops in code if n == "PRESENT"]
    (f0, ctx), (f1, p1), (f2, p2), (f3, e0), (f4, e1), (f5, e2), (f6, e3) = present
    assert f0 == 0 and d.fields[ctx][0] == 3 and d.strings[d.fields[ctx][2]] == "Context.a.b"
    assert all(f == bc.F_PATH_A for f in (f1, f2, f3, f4, f5, f6))
    base, display, tokens = path_words(d, p1)
    assert (d.strings[d.fields[base][1]], display, tokens) == ("filters", "Arguments/filters/0/a~1b~0c", ["0", "a/b~c"])
    base, display, tokens = path_words(d, p2)
    assert (d.fields[base][0], d.strings[d.fields[base][1]], display, tokens) == (2, "owner", "ResourceAttributes/owner", [])
    assert path_words(d, e0) == (bc.ELEMENT, "element", []) and e0 == e1
    assert path_words(d, e2) == (bc.ELEMENT, "element.k/1", ["k/1"])
    assert d.words[e2 + 1] & bc.PATH_KEY  # an element's field is a key, never an index
    assert path_words(d, e3) == (bc.ELEMENT, "element/a/~01", ["a", "~1"])


def test_field_equals_paths_set_both_flags():
    """FieldEquals with pointers: F_PATH_A for the first ref, F_PATH_B for the second."""
    _, code = lowered({"FieldEquals": {"source_a": "Arguments", "pointer_a": "/a/b", "source_b": "Context",
                                       "field_b": "c"}})
    assert code[0][:2] == ("EQ", bc.F_PATH_A)
    _, code = lowered({"FieldEquals": {"source_a": "Arguments", "field_a": "a", "source_b": "Context",
                                       "pointer_b": "/c/0"}})
    assert code[0][:2] == ("EQ", bc.F_PATH_B)


def test_numeric_ne_and_between():
    """NUM Ne is cmp 5 with the constant's display; Between is cmp 6 over two consecutive
    numbers, displayed `LO and HI`."""
    d, code = lowered({"All": [
        {"NumericCheck": {"source": "Arguments", "field": "a", "op": "Ne", "value": 0.5}},
        {"Not": {"NumericCheck": {"source": "Arguments", "field": "a", "op": "Between", "value": [-1, 1e20]}}}]})
    name, flags, (ref, num, text) = code[0]
    assert (name, flags, d.numbers[num], d.strings[text]) == ("NUM", 5, 0.5, "0.5")
    name, flags, (ref, num, text) = code[2]
    assert (name, flags, d.numbers[num:num + 2], d.strings[text]) == \
        ("NUM", bc.F_NEGATED | 6, [-1.0, 1e20], "-1 and 1e+20")


@pytest.mark.parametrize("op, value, flags, parts, true_text, false_text", [
    ("Eq", "a*b", 0, ["a*b"], 'is "a*b"', 'is not "a*b"'),
    ("Ne", "x", bc.F_STR_NOT, ["x"], 'is not "x"', 'is "x"'),
    ("StartsWith", "ab", 0, ["ab", ""], 'starts with "ab"', 'does not start with "ab"'),
    ("EndsWith", ".csv", 0, ["", ".csv"], 'ends with ".csv"', 'does not end with ".csv"'),
    ("Contains", 'q"é', 0, ["", 'q"é', ""], 'contains "q\\"é"', 'does not contain "q\\"é"'),
    ("Glob", "a**b*", 0, ["a", "", "b", ""], 'matches glob "a**b*"', 'does not match glob "a**b*"'),
])
def test_string_match_ops(op, value, flags, parts, true_text, false_text):
    """STR operands: (ref, glob of the op's literal parts, T text, F text), the texts being the
    doc's leaf texts after `S = V ` with the value as an orjson string; Ne inverts (F_STR_NOT)."""
    d, code = lowered({"StringCheck": {"source": "Arguments", "field": "s", "op": op, "value": value}})
    name, fl, (ref, glob, t, f) = code[0]
    assert (name, fl) == ("STR", flags)
    assert glob_words(d, glob) == parts
    assert (d.strings[t], d.strings[f]) == (true_text, false_text)


def test_path_glob_is_a_glob_per_component():
    """PathGlob: F_STR_PATH and a pglob of one glob per `/`-separated component."""
    d, code = lowered({"Not": {"StringCheck": {"source": "Arguments", "pointer": "/p/0", "op": "PathGlob",
                                               "value": "/data/*.csv"}}})
    name, fl, (ref, pglob, t, f) = code[0]
    assert (name, fl) == ("STR", bc.F_NEGATED | bc.F_PATH_A | bc.F_STR_PATH)
    n = d.words[pglob]
    assert [glob_words(d, g) for g in d.words[pglob + 1:pglob + 1 + n]] == [[""], ["data"], ["", ".csv"]]
    assert (d.strings[t], d.strings[f]) == ('matches path glob "/data/*.csv"', 'does not match path glob "/data/*.csv"')


def test_length_and_type():
    """LEN: cmp in the flags, the count as a number, its display; TYPE: the CG_TY_* index and
    the type name."""
    d, code = lowered({"All": [{"Length": {"source": "Arguments", "field": "xs", "op": "Ne", "value": 3}},
                               {"Type": {"source": "Arguments", "field": "xs", "is": "integer"}},
                               {"Type": {"source": "Context", "pointer": "/a/b", "is": "object"}}]})
    name, fl, (ref, num, text) = code[0]
    assert (name, fl, d.numbers[num], d.strings[text]) == ("LEN", 5, 3.0, "3")
    assert code[2][0] == "TYPE" and code[2][1] == 0 and code[2][2][1:] == (2, d.strings.index("integer"))
    assert code[5][0] == "TYPE" and code[5][1] == bc.F_PATH_A and code[5][2][1] == 6
    assert d.strings[code[5][2][2]] == "object"


def test_time_window_descriptor():
    """TIME: the window (days mask bit 0 Monday, start/end minutes, 24:00 = 1440, the zone's
    offset table) and its display `days start-end zone`, days in week order."""
    d, code = lowered({"TimeWindow": {"days": ["Sun", "Mon", "Fri"], "start": "22:30", "end": "24:00",
                                      "timezone": "Asia/Kolkata"}})
    name, fl, (ref, window, text) = code[0]
    assert name == "TIME" and fl == 0 and d.strings[d.fields[ref][2]] == "Context.time"
    assert d.words[window:window + 4] == [1 | 16 | 64, 22 * 60 + 30, 1440, len(zone_offsets("Asia/Kolkata"))]
    n = d.words[window + 3]
    pairs = d.words[window + 4:window + 4 + 2 * n]
    assert [(pairs[2 * k], struct.unpack("<i", struct.pack("<I", pairs[2 * k + 1]))[0]) for k in range(n)] == \
        list(zone_offsets("Asia/Kolkata"))
    assert d.strings[text] == "Mon,Fri,Sun 22:30-24:00 Asia/Kolkata"
    assert window_text(list(("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")), "09:00", "17:00", "UTC") == \
        "Mon,Tue,Wed,Thu,Fri,Sat,Sun 09:00-17:00 UTC"
    d, code = lowered({"TimeWindow": {"source": "Arguments", "pointer": "/when/0", "start": "09:00",
                                      "end": "17:00", "timezone": "UTC"}})
    assert code[0][1] == bc.F_PATH_A and path_words(d, code[0][2][0])[1:] == ("Arguments/when/0", ["0"])
    assert d.words[code[0][2][1]:code[0][2][1] + 6] == [127, 540, 1020, 1, 0, 0]


def test_quantifiers_bodies_end_and_parity():
    """EVERY/SOME (ref, end): the body follows, ends with ENDQ, and `end` is the offset just
    after it; the body's leaves count only the Nots inside it; the quantifier itself carries
    the outer parity; bodies nest."""
    d, code = lowered({"Not": {"Every": {"source": "Arguments", "field": "xs", "condition": {
        "Not": {"Some": {"source": "Element", "pointer": "/ys", "condition": {
            "NumericCheck": {"source": "Element", "op": "Gt", "value": 1}}}}}}}})
    names = [(n, f) for n, f, _ in code]
    assert names == [("EVERY", bc.F_NEGATED), ("SOME", bc.F_NEGATED | bc.F_PATH_A), ("NUM", bc.F_PATH_A | 2), ("ENDQ", 0),
                     ("NOT", 0), ("ENDQ", 0), ("NOT", 0), ("RET", 0)]
    off = d.rules[0][1]
    pcs, pc = [], off
    for n, _, _ in code:
        pcs.append(pc)
        pc += bc.insn_len(bc.OP[n])
    assert code[0][2][1] == pcs[6]     # EVERY ends after the outer ENDQ
    assert code[1][2][1] == pcs[4]     # SOME ends after the inner ENDQ
    assert path_words(d, code[1][2][0]) == (bc.ELEMENT, "element/ys", ["ys"])
    assert path_words(d, code[2][2][0]) == (bc.ELEMENT, "element", [])


def test_quantifier_body_jumps_stay_inside():
    """All/Any jumps inside a body land inside that body (before its ENDQ)."""
    d, code = lowered({"Some": {"source": "Arguments", "field": "xs", "condition": {"Any": [
        {"Type": {"source": "Element", "is": "null"}}, {"Type": {"source": "Element", "is": "string"}}]}}})
    assert [n for n, _, _ in code] == ["SOME", "TYPE", "JT", "TYPE", "OR", "ENDQ", "RET"]
    endq_at = d.rules[0][1] + sum(bc.insn_len(bc.OP[n]) for n, _, _ in code[:5])
    assert code[2][2][0] == endq_at


def test_deep_body_refused():
    """A quantifier body deeper than the core's stack is a PolicyError at the body."""
    cond = {"FieldPresent": {"source": "Element"}}
    for _ in range(70):
        cond = {"All": [{"FieldPresent": {"source": "Element"}}, cond]}
    with pytest.raises(PolicyError) as exc:
        compile_policy(policy([rule(condition={"Every": {"source": "Arguments", "field": "x", "condition": cond}})]))
    assert str(exc.value) == "rules[0].condition.Every.condition: condition nested too deeply (at most 63 levels)"


def test_format_number():
    """K, LO and HI read as v1 numbers."""
    assert [format_number(v) for v in (500.0, 0.5, 1e20, -0.0, 1e16, 2.5e-7)] == \
        ["500", "0.5", "1e+20", "0", "1e+16", "2.5e-07"]


# ---------------------------------------------------------------- time zone tables

ZONES = ["Europe/Paris", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "UTC",
         "Pacific/Apia", "Africa/Casablanca", "America/Sao_Paulo", "Asia/Tehran", "Europe/Moscow"]


def _zoneinfo_offset(tz: ZoneInfo, t: int) -> int:
    return int(datetime.fromtimestamp(t, tz).utcoffset().total_seconds())


def _check_table(table) -> None:
    assert table[0][0] == 0
    assert all(a[0] < b[0] for a, b in zip(table, table[1:]))
    assert all(a[1] != b[1] for a, b in zip(table, table[1:]))
    assert all(abs(o) < 86400 for _, o in table) and table[-1][0] < bc.TIME_END


@pytest.mark.parametrize("name", ZONES)
def test_zone_table_matches_zoneinfo(name):
    """The compiled offset table gives zoneinfo's UTC offset at 5000 random instants of
    [0, TIME_END), at every one of its transitions and the second before, and around the
    zone's DST changes (including Lord Howe's 30-minute DST and Kolkata's +05:30)."""
    table = zone_offsets(name)
    _check_table(table)
    tz = ZoneInfo(name)
    rng = random.Random(name)
    instants = [rng.randrange(0, bc.TIME_END) for _ in range(5000)]
    for start, _ in table[1:]:
        instants += [start - 1, start, start + 1, start + 1800]
    for t in instants:
        assert offset_at(table, t) == _zoneinfo_offset(tz, t), (name, t)


def test_zone_table_known_values():
    """Spot values: UTC is one entry; Paris changed to CEST at 2026-03-29T01:00:00Z; Lord
    Howe is +10:30 / +11:00; Kolkata +05:30 since 1970."""
    assert zone_offsets("UTC") == ((0, 0),)
    assert zone_offsets("Asia/Kolkata") == ((0, 19800),)
    paris = zone_offsets("Europe/Paris")
    switch = int(datetime(2026, 3, 29, 1, 0, tzinfo=dt_timezone.utc).timestamp())
    assert (switch, 7200) in paris and offset_at(paris, switch - 1) == 3600
    assert {o for s, o in zone_offsets("Australia/Lord_Howe") if s > 10 ** 9} == {37800, 39600}


@pytest.mark.slow
def test_zone_tables_against_zoneinfo_transitions():
    """For a spread of the zones zoneinfo knows (every one with CALLGATE_ALL_ZONES=1, about a
    minute), each explicit transition of its TZif data inside [0, TIME_END) that changes the
    offset is in the table, and 300 random instants agree."""
    import os
    from zoneinfo import _zoneinfo, available_timezones

    names = sorted(available_timezones() - {"localtime", "posixrules"})
    if os.environ.get("CALLGATE_ALL_ZONES") != "1":
        names = names[::20]
    for name in names:
        table = zone_offsets(name)
        _check_table(table)
        tz = ZoneInfo(name)
        pure = _zoneinfo.ZoneInfo.no_cache(name)
        starts = {s for s, _ in table}
        for t in getattr(pure, "_trans_utc", ()):
            if 0 < t < bc.TIME_END and _zoneinfo_offset(tz, t - 1) != _zoneinfo_offset(tz, t):
                assert t in starts, (name, t)
        rng = random.Random(name)
        for t in (rng.randrange(0, bc.TIME_END) for _ in range(300)):
            assert offset_at(table, t) == _zoneinfo_offset(tz, t), (name, t)


# ---------------------------------------------------------------- end to end (needs the v2 core)


def engine_for(cond: dict, **over) -> Engine:
    return Engine.from_dict(policy([rule(condition=cond)], **over))


def denied(engine: Engine, args=None, context=None, tool="read_file", role="agent") -> str:
    d = engine.evaluate(tool, args or {}, role=role, context=context)
    assert d.decision == "Deny", d
    return d.reason


def explanation(cond: dict, args=None, context=None) -> str:
    """The explanation of a single-rule denial: the blame leaf's text."""
    reason = denied(engine_for(cond), args, context)
    head, tail = "read_file denied for role 'agent': ", " (rule 1)"
    assert reason.startswith(head) and reason.endswith(tail), reason
    return reason[len(head):-len(tail)]


def arg(kind: str, field="v", **body) -> dict:
    return {kind: dict(source="Arguments", field=field, **body)}


def neg(cond: dict) -> dict:
    return {"Not": cond}


@pytest.mark.parametrize("cond, args, expected", [
    (arg("NumericCheck", op="Ne", value=5), {"v": 5}, "Arguments.v = 5 is not != 5"),
    (neg(arg("NumericCheck", op="Ne", value=5)), {"v": 6}, "Arguments.v = 6 is != 5 (negated by Not)"),
    (arg("NumericCheck", op="Ne", value=5), {"v": "5"}, 'Arguments.v = "5" is not a number'),
    (arg("NumericCheck", op="Between", value=[1, 2.5]), {"v": 3}, "Arguments.v = 3 is not between 1 and 2.5"),
    (neg(arg("NumericCheck", op="Between", value=[1, 2.5])), {"v": 2.5},
     "Arguments.v = 2.5 is between 1 and 2.5 (negated by Not)"),
    (arg("NumericCheck", op="Between", value=[1, 2]), {}, "Arguments.v is missing"),
    (arg("StringCheck", op="Eq", value="x"), {"v": "y"}, 'Arguments.v = "y" is not "x"'),
    (neg(arg("StringCheck", op="Eq", value="x")), {"v": "x"}, 'Arguments.v = "x" is "x" (negated by Not)'),
    (arg("StringCheck", op="Eq", value="x"), {"v": 1}, "Arguments.v = 1 is not a string"),
    (arg("StringCheck", op="Ne", value="x"), {"v": "x"}, 'Arguments.v = "x" is "x"'),
    (neg(arg("StringCheck", op="Ne", value="x")), {"v": "y"}, 'Arguments.v = "y" is not "x" (negated by Not)'),
    (arg("StringCheck", op="StartsWith", value="/tmp"), {"v": "/etc"}, 'Arguments.v = "/etc" does not start with "/tmp"'),
    (neg(arg("StringCheck", op="StartsWith", value="/tmp")), {"v": "/tmp/a"},
     'Arguments.v = "/tmp/a" starts with "/tmp" (negated by Not)'),
    (arg("StringCheck", op="EndsWith", value=".csv"), {"v": "a.txt"}, 'Arguments.v = "a.txt" does not end with ".csv"'),
    (arg("StringCheck", op="Contains", value="--"), {"v": "ab"}, 'Arguments.v = "ab" does not contain "--"'),
    (neg(arg("StringCheck", op="Contains", value="é")), {"v": "café"}, 'Arguments.v = "café" contains "é" (negated by Not)'),
    (arg("StringCheck", op="Glob", value="/data/*.csv"), {"v": "/tmp/a.csv"},
     'Arguments.v = "/tmp/a.csv" does not match glob "/data/*.csv"'),
    (neg(arg("StringCheck", op="Glob", value="/data/*.csv")), {"v": "/data/x/a.csv"},
     'Arguments.v = "/data/x/a.csv" matches glob "/data/*.csv" (negated by Not)'),
    (arg("StringCheck", op="PathGlob", value="/data/*.csv"), {"v": "/data/x/a.csv"},
     'Arguments.v = "/data/x/a.csv" does not match path glob "/data/*.csv"'),
    (neg(arg("StringCheck", op="PathGlob", value="/data/*.csv")), {"v": "/data/a.csv"},
     'Arguments.v = "/data/a.csv" matches path glob "/data/*.csv" (negated by Not)'),
    (arg("Length", op="Lte", value=2), {"v": [1, 2, 3]}, "length of Arguments.v is 3, not <= 2"),
    (arg("Length", op="Ne", value=2), {"v": "é!"}, "length of Arguments.v is 2, not != 2"),
    (neg(arg("Length", op="Gt", value=2)), {"v": "abc"}, "length of Arguments.v is 3, > 2 (negated by Not)"),
    (arg("Length", op="Lt", value=2), {"v": 12}, "Arguments.v = 12 is neither a string nor an array"),
    (arg("Length", op="Lt", value=2), {"v": None}, "Arguments.v is null"),
    (arg("Type", **{"is": "integer"}), {"v": 1.5}, "Arguments.v = 1.5 is not of type integer"),
    (arg("Type", **{"is": "string"}), {}, "Arguments.v is missing"),
    (arg("Type", **{"is": "string"}), {"v": None}, "Arguments.v is null"),
    (neg(arg("Type", **{"is": "integer"})), {"v": 2.0}, "Arguments.v is of type integer (negated by Not)"),
    (neg(arg("Type", **{"is": "null"})), {"v": None}, "Arguments.v is of type null (negated by Not)"),
])
def test_e2e_leaf_reasons(cond, args, expected):
    """Each new leaf's text for U, F and (negated) T, exactly as docs/policy-v2.md's table."""
    assert explanation(cond, args) == expected


@pytest.mark.parametrize("cond, args, expected", [
    ({"NumericCheck": {"source": "Arguments", "pointer": "/filters/0/amount", "op": "Lt", "value": 10}},
     {"filters": [{"amount": 50}]}, "Arguments/filters/0/amount = 50 is not < 10"),
    ({"NumericCheck": {"source": "Arguments", "pointer": "/filters/1/amount", "op": "Lt", "value": 10}},
     {"filters": [{"amount": 50}]}, "Arguments/filters/1/amount is missing"),
    ({"NumericCheck": {"source": "Arguments", "pointer": "/filters/01/amount", "op": "Lt", "value": 10}},
     {"filters": [{"amount": 50}, {"amount": 1}]}, "Arguments/filters/01/amount is missing"),
    ({"FieldPresent": {"source": "Arguments", "pointer": "/a~1b/~0"}}, {"a/b": {"~": None}},
     "Arguments/a~1b/~0 is null"),
    ({"FieldPresent": {"source": "Arguments", "pointer": "/amount"}}, {}, "Arguments/amount is missing"),
    ({"StringCheck": {"source": "Context", "field": "geo", "op": "In", "value": ["FR"]}}, {},
     "Context.geo is missing"),
    ({"FieldEquals": {"source_a": "Arguments", "pointer_a": "/o/id", "source_b": "Context", "field_b": "user"}},
     {"o": {"id": 1}}, "Context.user is missing"),
])
def test_e2e_pointers_and_context(cond, args, expected):
    """Pointers walk objects and arrays (no leading zeros), display as written; Context is a
    source like the others."""
    assert explanation(cond, args, context={"risk": 1}) == expected


WORK = {"days": ["Mon", "Tue", "Wed", "Thu", "Fri"], "start": "09:00", "end": "17:00", "timezone": "Europe/Paris"}
W = "Mon,Tue,Wed,Thu,Fri 09:00-17:00 Europe/Paris"


@pytest.mark.parametrize("window, instant, expected", [
    (WORK, "2026-11-23T07:59:59Z", f'Context.time = "2026-11-23T07:59:59Z" is outside {W}'),
    (WORK, "2026-11-23T08:00:00Z", None),
    (WORK, "2026-11-23T15:59:59.9Z", None),
    (WORK, "2026-11-23T16:00:00Z", f'Context.time = "2026-11-23T16:00:00Z" is outside {W}'),
    (WORK, "2026-11-21T10:00:00Z", f'Context.time = "2026-11-21T10:00:00Z" is outside {W}'),
    (WORK, 1795422000.75, None),                     # Monday 2026-11-23T08:20:00.75Z, 09:20 in Paris
    (WORK, 1795420799, "Context.time = 1795420799 is outside " + W),   # 07:59:59Z, 08:59:59 in Paris
    (WORK, "2026-11-23T10:00:00", 'Context.time = "2026-11-23T10:00:00" is not a time'),
    (WORK, "2026-02-30T10:00:00Z", 'Context.time = "2026-02-30T10:00:00Z" is not a time'),
    (WORK, -1, "Context.time = -1 is not a time"),
    (WORK, 4102444800, "Context.time = 4102444800 is not a time"),
    (WORK, True, "Context.time = true is not a time"),
    (WORK, None, "Context.time is null"),
    (dict(WORK, start="03:00", end="04:00", days=["Sun"]), "2026-03-29T01:30:00Z", None),   # 03:30 CEST
    (dict(WORK, start="03:00", end="04:00", days=["Sun"]), "2026-03-29T00:30:00Z",
     'Context.time = "2026-03-29T00:30:00Z" is outside Sun 03:00-04:00 Europe/Paris'),    # 01:30 CET
    (dict(WORK, start="22:00", end="06:00", days=["Mon"]), "2026-11-24T04:59:00Z", None),  # Tue 05:59
    (dict(WORK, start="22:00", end="06:00", days=["Mon"]), "2026-11-23T04:59:00Z",
     'Context.time = "2026-11-23T04:59:00Z" is outside Mon 22:00-06:00 Europe/Paris'),     # Mon 05:59
    (dict(WORK, start="22:00", end="24:00", days=["Mon"]), "2026-11-23T22:59:59+00:00", None),
    (dict(WORK, timezone="Asia/Kolkata"), "2026-11-23T03:30:00Z", None),
    (dict(WORK, timezone="Asia/Kolkata"), "2026-11-23T03:29:59Z",
     'Context.time = "2026-11-23T03:29:59Z" is outside Mon,Tue,Wed,Thu,Fri 09:00-17:00 Asia/Kolkata'),
    (dict(WORK, timezone="Australia/Lord_Howe", start="09:00", end="09:30"), "2026-01-04T22:00:00Z", None),
    (dict(WORK, timezone="America/New_York"), "2026-03-09T13:00:00Z", None),   # 09:00 EDT, Monday
    (dict(WORK, timezone="America/New_York"), "2026-03-06T13:59:00Z",
     'Context.time = "2026-03-06T13:59:00Z" is outside Mon,Tue,Wed,Thu,Fri 09:00-17:00 America/New_York'),
])
def test_e2e_time_window(window, instant, expected):
    """TimeWindow: RFC 3339 (offset required) or Unix seconds, local time from the compiled
    zone table (DST, half-hour zones, Lord Howe's 30-minute DST), start inclusive and end
    exclusive, overnight windows counted from the previous day, out-of-range instants U."""
    e = engine_for({"TimeWindow": window})
    d = e.evaluate("read_file", {}, role="agent", context={"time": instant})
    if expected is None:
        assert (d.decision, d.reason) == ("Allow", "read_file allowed for role 'agent': rule 1 condition passed")
    else:
        assert (d.decision, d.reason) == ("Deny", f"read_file denied for role 'agent': {expected} (rule 1)")


def test_e2e_time_window_negated_and_default_field():
    """A negated TimeWindow's T text, and the default reference Context.time."""
    assert explanation(neg({"TimeWindow": WORK}), context={"time": "2026-11-23T10:00:00+01:00"}) == \
        f'Context.time = "2026-11-23T10:00:00+01:00" is within {W} (negated by Not)'
    assert explanation({"TimeWindow": WORK}, context={}) == "Context.time is missing"


EVERY_SMALL = {"Every": {"source": "Arguments", "field": "items", "condition": {
    "NumericCheck": {"source": "Element", "field": "amount", "op": "Lte", "value": 100}}}}
SOME_ADMIN = {"Some": {"source": "Arguments", "pointer": "/user/roles", "condition": {
    "StringCheck": {"source": "Element", "op": "Eq", "value": "admin"}}}}


@pytest.mark.parametrize("cond, args, expected", [
    (EVERY_SMALL, {"items": [{"amount": 5}, {"amount": 500}, {"amount": 7}]},
     "Arguments.items: element 1: element.amount = 500 is not <= 100"),
    (EVERY_SMALL, {"items": [{"amount": 5}, {}, {"amount": 500}]},
     "Arguments.items: element 2: element.amount = 500 is not <= 100"),
    (EVERY_SMALL, {"items": [{"amount": 5}, {}, {"amount": None}]},
     "Arguments.items: element 1: element.amount is missing"),
    (EVERY_SMALL, {"items": {"amount": 5}}, 'Arguments.items = {"amount":5} is not an array'),
    (EVERY_SMALL, {}, "Arguments.items is missing"),
    (neg(EVERY_SMALL), {"items": []}, "Arguments.items: every element satisfies the condition (negated by Not)"),
    (SOME_ADMIN, {"user": {"roles": ["dev", "ops"]}}, "Arguments/user/roles: no element satisfies the condition"),
    (SOME_ADMIN, {"user": {"roles": []}}, "Arguments/user/roles: no element satisfies the condition"),
    (SOME_ADMIN, {"user": {"roles": ["dev", 3, "admin"]}}, None),
    (SOME_ADMIN, {"user": {"roles": ["dev", 3]}}, "Arguments/user/roles: element 1: element = 3 is not a string"),
    (neg(SOME_ADMIN), {"user": {"roles": ["dev", "admin"]}},
     'Arguments/user/roles: element 1: element = "admin" is "admin" (negated by Not)'),
    ({"Some": {"source": "Arguments", "field": "xs", "condition": {"Not": {
        "StringCheck": {"source": "Element", "op": "Eq", "value": "a"}}}}}, {"xs": ["a", "a"]},
     'Arguments.xs: no element satisfies the condition'),
    ({"Every": {"source": "Arguments", "field": "xs", "condition": {"Not": {
        "StringCheck": {"source": "Element", "op": "Eq", "value": "a"}}}}}, {"xs": ["b", "a"]},
     'Arguments.xs: element 1: element = "a" is "a" (negated by Not)'),
    ({"Every": {"source": "Arguments", "field": "m", "condition": {"Every": {
        "source": "Element", "condition": {"Type": {"source": "Element", "is": "integer"}}}}}},
     {"m": [[1, 2], [3, "x"]]}, 'Arguments.m: element 1: element: element 1: element = "x" is not of type integer'),
])
def test_e2e_quantifiers(cond, args, expected):
    """Every/Some: Kleene AND/OR over the elements, the deciding element's index (the first F
    for Every, else the first U; the first T for Some) and its own explanation (Nots counted
    inside the body), `[]`, non-arrays and missing arrays."""
    e = engine_for(cond)
    d = e.evaluate("read_file", args, role="agent")
    if expected is None:
        assert d.decision == "Allow"
    else:
        assert d.reason == f"read_file denied for role 'agent': {expected} (rule 1)"


def test_e2e_deny_rules_and_precedence():
    """Deny applies on T or U and beats allow; allow beats elevate; elevate takes the largest
    approval count (first rule with it); the decision texts of the doc."""
    amount = {"NumericCheck": {"source": "Arguments", "field": "amount", "op": "Gt", "value": 1000}}
    e = Engine.from_dict(policy([
        rule(effect="elevate", approvals=1),
        rule(effect="deny", condition=amount),
        rule(condition={"StringCheck": {"source": "Context", "field": "geo", "op": "Eq", "value": "FR"}}),
        rule(effect="elevate", approvals=2, condition={"Type": {"source": "Arguments", "field": "urgent",
                                                                "is": "boolean"}}),
        rule(tool="delete_file", effect="deny"),
        rule(tool="write_file", effect="deny", condition=amount),
    ]))

    def ev(args, context=None, tool="read_file"):
        d = e.evaluate(tool, args, role="agent", context=context)
        return d.decision, d.rule, d.approvals_required, d.reason

    assert ev({"amount": 5000}, {"geo": "FR"}) == (
        "Deny", 1, 0, "read_file denied for role 'agent': rule 2 forbids it: Arguments.amount = 5000 is > 1000")
    assert ev({}, {"geo": "FR"}) == (
        "Deny", 1, 0, "read_file denied for role 'agent': rule 2 forbids it and could not be evaluated: "
                      "Arguments.amount is missing")
    assert ev({"amount": 5}, {"geo": "FR"}) == ("Allow", 2, 0, "read_file allowed for role 'agent': rule 3 condition passed")
    assert ev({"amount": 5, "urgent": True}) == (
        "Elevate", 3, 2, "read_file requires 2 approvals for role 'agent': rule 4 condition passed")
    assert ev({"amount": 5}) == ("Elevate", 0, 1, "read_file requires 1 approval for role 'agent': rule 1 has no condition")
    assert ev({}, tool="delete_file") == ("Deny", 4, 0, "delete_file denied for role 'agent': rule 5 forbids it")
    assert ev({"amount": 1}, tool="write_file") == (
        "Deny", None, 0, "write_file denied for role 'agent': no rule grants this tool for this role (default_action Deny)")
    assert ev({}, tool="transfer") == (
        "Deny", None, 0, "transfer denied for role 'agent': no rule covers this tool for this role (default_action Deny)")


def test_e2e_step4_counts_grant_rules_only():
    """No grant applied: the v1 denial text, explained by the first grant rule (allow rules,
    then elevate by approvals descending), counting E's grant rules only."""
    small = {"NumericCheck": {"source": "Arguments", "field": "amount", "op": "Lte", "value": 10}}
    e = Engine.from_dict(policy([
        rule(effect="elevate", approvals=1, condition={"FieldPresent": {"source": "Context", "field": "ticket"}}),
        rule(effect="deny", condition={"FieldPresent": {"source": "Context", "field": "blocked"}}),
        rule(condition=small),
        rule(effect="elevate", approvals=2, condition={"FieldPresent": {"source": "Context", "field": "x"}}),
    ]))
    d = e.evaluate("read_file", {"amount": 50}, role="agent")
    assert (d.decision, d.rule) == ("Deny", 2)
    assert d.reason == ("read_file denied for role 'agent': Arguments.amount = 50 is not <= 10 "
                        "(rule 3; 2 other rules did not match)")
    e = Engine.from_dict(policy([rule(effect="elevate", approvals=1, condition=small), rule(effect="deny",
                                 condition={"FieldPresent": {"source": "Context", "field": "blocked"}})]))
    assert e.evaluate("read_file", {"amount": 50}, role="agent").reason == \
        "read_file denied for role 'agent': Arguments.amount = 50 is not <= 10 (rule 1)"


def test_e2e_tiers_and_defaults():
    """Tier defaults decide when no rule covers the pair or only deny rules do; tier rules
    cover the tier's tools; rules replace the default; the D texts of the doc."""
    e = Engine.from_dict(policy(
        [{"tier": "read", "roles": ["admin"]},
         rule(tool="delete_*", effect="deny", condition={"FieldPresent": {"source": "Context", "field": "freeze"}})],
        tool_tiers={"search_docs": "public", "read_file": "read", "write_file": "write", "delete_*": "destructive"},
        tier_defaults={"public": "allow", "read": "deny", "write": {"effect": "elevate", "approvals": 1},
                       "destructive": {"effect": "elevate", "approvals": 2}}))

    def ev(tool, role="agent", context=None):
        d = e.evaluate(tool, {}, role=role, context=context)
        return d.decision, d.rule, d.approvals_required, d.reason

    assert ev("search_docs") == (
        "Allow", None, 0, "search_docs allowed for role 'agent': no rule covers this tool for this role (tier 'public' default Allow)")
    assert ev("read_file") == (
        "Deny", None, 0, "read_file denied for role 'agent': no rule covers this tool for this role (tier 'read' default Deny)")
    assert ev("read_file", "admin")[:2] == ("Allow", 0)
    assert ev("write_file") == (
        "Elevate", None, 1, "write_file requires 1 approval for role 'agent': no rule covers this tool for this role "
                            "(tier 'write' default Elevate)")
    assert ev("delete_user") == (
        "Elevate", None, 2, "delete_user requires 2 approvals for role 'agent': no rule grants this tool for this role "
                            "(tier 'destructive' default Elevate)")
    assert ev("delete_user", context={"freeze": True}) == (
        "Deny", 1, 0, "delete_user denied for role 'agent': rule 2 forbids it: Context.freeze is present")
    assert ev("transfer") == (
        "Deny", None, 0, "transfer denied for role 'agent': no rule covers this tool for this role (default_action Deny)")


def test_e2e_discovered_tools():
    """A tool discovered at runtime joins the declared tools with its resolved tier: tier
    defaults and tier rules apply to it."""
    p = policy([{"tier": "read", "roles": ["agent"]}], tier_defaults={"destructive": "deny", "write": "allow"})
    e = Engine.from_dict(p, discovered_tools={"mcp_list": "read", "mcp_drop": "destructive", "mcp_put": "write"})
    assert e.evaluate("mcp_list", {}, role="agent").reason == "mcp_list allowed for role 'agent': rule 1 has no condition"
    assert e.evaluate("mcp_drop", {}, role="agent").reason == (
        "mcp_drop denied for role 'agent': no rule covers this tool for this role (tier 'destructive' default Deny)")
    assert e.evaluate("mcp_put", {}, role="admin").decision == "Allow"


def test_e2e_v1_policy_unchanged():
    """A v1 policy decides and explains as in docs/semantics.md."""
    e = Engine.from_dict(policy([rule(condition={"NumericCheck": {"source": "Arguments", "field": "a", "op": "Lte",
                                                                  "value": 10}}), rule()]))
    d = e.evaluate("read_file", {"a": 50}, role="agent")
    assert (d.decision, d.rule, d.reason) == ("Allow", 1, "read_file allowed for role 'agent': rule 2 has no condition")
    e = Engine.from_dict(policy([rule(condition={"NumericCheck": {"source": "Arguments", "field": "a", "op": "Lte",
                                                                  "value": 10}})]))
    assert e.evaluate("read_file", {"a": 50}, role="agent").reason == \
        "read_file denied for role 'agent': Arguments.a = 50 is not <= 10 (rule 1)"
