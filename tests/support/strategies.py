"""Hypothesis strategies for callgate policies and requests.

Names come from small alphabets on purpose: tools, roles and field names collide often, so
globs hit, duplicate (tool, role) rules occur, and requests reach the fields conditions read.

- ``policies(semantics)``: random valid policies. For ``"strict"`` rules only name declared
  roles and declared (or glob) tools; for ``"perso"`` they also name undeclared ones (which
  is also what the strict-rejection test feeds to the strict loader).
- ``requests(policy)``: ``(tool, role, args, agent_attributes, resource_attributes)``.

No NaN or infinity anywhere: those are request errors, tested separately.

Policy language v2 (docs/policy-v2.md, strict semantics) has its own section at the end:
``v2_policies()``, ``v2_requests(policy)`` (6-tuples with ``context``),
``v2_policy_and_request()``, ``v2_leaf_policy_and_request()`` and ``v2_rules(...)``.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Optional

from hypothesis import strategies as st

# Tool names: chosen so that "a*", "*_x", "*", "a?b*" ('?' literal), "a*b" and "*a*" each
# match some declared tools; "zz*" matches none.
TOOL_NAMES = ["a", "ab", "a_x", "b_x", "axb", "a?b", "ba", "read_file", "é_x"]
GLOBS = ["a*", "*_x", "*", "a?b*", "a*b", "*a*", "b*", "zz*", "**"]
ROLE_NAMES = ["admin", "viewer", "agent", "admin\u0000x", "rôle", ""]
FIELDS = ["amount", "env", "owner", "a.b", ""]
SOURCES = ["Arguments", "AgentAttributes", "ResourceAttributes"]

# Strings for StringCheck sets and for request values: the same pool so In/NotIn hit.
STRINGS = ["production", "staging", "admin", "", "admin\u0000x", "é", "日本",
           "\U0001F600", "a" * 70, "é" * 40]

NUMBERS = [0, 1, -1, 500, 500.0, 0.5, 0.0, -0.0, 0.1, 1e16, 1e300, -1e300,
           2**53, 2**53 + 1, -(2**31), 1e-300, 123456789.123]

# Interesting request integers: 64-bit edges and beyond (serde corners).
REQUEST_INTS = [0, -1, 1, 500, 2**53 + 1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1,
                2**64 - 1, 2**64, 2**64 + 1]
REQUEST_FLOATS = [0.0, -0.0, 1e308, -1e308, 0.1, 500.0, 1.0, -1.0, 1e16, 9007199254740992.0]


# --------------------------------------------------------------------------------------
# Policies.
# --------------------------------------------------------------------------------------

finite_floats = st.floats(allow_nan=False, allow_infinity=False)

policy_numbers = st.one_of(
    st.sampled_from(NUMBERS),
    st.integers(min_value=-(2**60), max_value=2**60),
    finite_floats,
)

string_sets = st.lists(st.one_of(st.sampled_from(STRINGS), st.text(max_size=5)), max_size=8)

fields = st.sampled_from(FIELDS)
sources = st.sampled_from(SOURCES)


def _leaves(fields: st.SearchStrategy = fields) -> st.SearchStrategy:
    """One condition leaf of each kind, over all sources and the given field names."""
    numeric = st.fixed_dictionaries({
        "source": sources, "field": fields,
        "op": st.sampled_from(["Lt", "Lte", "Gt", "Gte", "Eq"]), "value": policy_numbers,
    }).map(lambda spec: {"NumericCheck": spec})
    string = st.fixed_dictionaries({
        "source": sources, "field": fields,
        "op": st.sampled_from(["In", "NotIn"]), "value": string_sets,
    }).map(lambda spec: {"StringCheck": spec})
    present = st.fixed_dictionaries({"source": sources, "field": fields}).map(
        lambda spec: {"FieldPresent": spec})
    equals = st.fixed_dictionaries({
        "source_a": sources, "field_a": fields, "source_b": sources, "field_b": fields,
    }).map(lambda spec: {"FieldEquals": spec})
    return st.one_of(numeric, string, present, equals)


def conditions(depth: int = 3) -> st.SearchStrategy:
    """A condition tree with All/Any (possibly empty) and Not nested up to ``depth``."""
    if depth == 0:
        return _leaves()
    inner = conditions(depth - 1)
    return st.one_of(
        _leaves(),
        st.lists(inner, max_size=3).map(lambda cs: {"All": cs}),
        st.lists(inner, max_size=3).map(lambda cs: {"Any": cs}),
        inner.map(lambda c: {"Not": c}),
    )


@st.composite
def policies(draw, semantics: str = "strict") -> dict:
    """A random valid policy for ``semantics`` ("strict" or "perso")."""
    tools = draw(st.lists(st.sampled_from(TOOL_NAMES), min_size=1, max_size=6, unique=True))
    roles = draw(st.lists(st.sampled_from(ROLE_NAMES), min_size=1, max_size=4, unique=True))
    if semantics == "strict":
        rule_tools = st.one_of(st.sampled_from(tools), st.sampled_from(GLOBS))
        rule_roles = st.sampled_from(roles)
    else:
        rule_tools = st.one_of(st.sampled_from(tools), st.sampled_from(GLOBS),
                               st.sampled_from(TOOL_NAMES + ["unknown_tool"]))
        rule_roles = st.sampled_from(ROLE_NAMES + ["intern"])
    rule = st.fixed_dictionaries({
        "tool_name": rule_tools,
        # A role may repeat inside one rule (rarely); it still collects the rule once.
        "roles": st.lists(rule_roles, min_size=0, max_size=3),
        "condition": st.one_of(st.none(), conditions(3)),
    })
    # Few distinct tools/roles and up to 10 rules: the same (tool, role) recurs often.
    rules = draw(st.lists(rule, max_size=10))
    return {
        "version": "test-1",
        "default_action": draw(st.sampled_from(["Allow", "Deny"])),
        "tools": tools,
        "roles": roles,
        "rules": rules,
    }


# --------------------------------------------------------------------------------------
# Requests.
# --------------------------------------------------------------------------------------

# Values that are equal, or nearly, under one of the two equalities: two fields drawn from
# this pool often meet the serde / exact-decimal corners (1 vs 1.0, 0 vs -0.0, 2**64+1 vs
# 2.0**64, true vs 1, [1] vs [1.0]); numeric ones also sit on the policies' thresholds.
EQUALISH = REQUEST_INTS + REQUEST_FLOATS + NUMBERS + [
    float(2**64), float(-(2**63)), True, False, "1", [1], [1.0], [-0.0], [0],
    {"k": 1}, {"k": 1.0}, {"k": 1, "a.b": None}, {"a.b": None, "k": 1}, [None], [], {}]

# A small pool where the two equalities disagree or nearly do, so pairs drawn from it meet
# often: strict says 1 == 1.0 and 2**64+1 != 2.0**64, serde the opposite; true is never 1.
EQUALITY_CORNERS = [0, 0.0, -0.0, 1, 1.0, True, None, "1", 2**64 + 1, float(2**64), 2**64 - 1,
                    -(2**63), float(-(2**63)), -(2**63) - 1, 10**16, 1e16, 2**53 + 1,
                    float(2**53), [1], [1.0], {"k": 1}, {"k": 1.0}]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from(REQUEST_INTS),
    st.integers(min_value=-1000, max_value=1000),
    st.sampled_from(REQUEST_FLOATS),
    finite_floats,
    st.sampled_from(STRINGS),
    st.text(max_size=8),
    st.text(min_size=20, max_size=70),  # long enough to be cut at 64 bytes in reasons
)

# Scalars, or lists/dicts of them nested up to depth 2 (keys from the field names).
_keys = st.sampled_from(FIELDS + ["k"])
_depth1 = st.one_of(st.lists(scalars, max_size=3), st.dictionaries(_keys, scalars, max_size=3))
_depth2 = st.one_of(st.lists(st.one_of(scalars, _depth1), max_size=3),
                    st.dictionaries(_keys, st.one_of(scalars, _depth1), max_size=3))
json_values = st.one_of(scalars, scalars, st.sampled_from(EQUALISH), st.sampled_from(EQUALISH),
                        st.sampled_from(STRINGS), _depth1, _depth2)


def policy_fields(policy: dict) -> list:
    """Every field name a policy's conditions read, plus the shared pool."""
    found = set(FIELDS)

    def visit(cond):
        if cond is None:
            return
        ((kind, spec),) = cond.items()
        if kind in ("All", "Any"):
            for child in spec:
                visit(child)
        elif kind == "Not":
            visit(spec)
        elif kind == "FieldEquals":
            found.update((spec["field_a"], spec["field_b"]))
        else:
            found.add(spec["field"])

    for rule in policy.get("rules", []):
        visit(rule.get("condition"))
    return sorted(found)


def attribute_dicts(keys: list) -> st.SearchStrategy:
    """An object keyed by ``keys``; a key absent from the dict is the "missing" case.

    Half the time every key is present, so conditions get past "is missing" and reach
    type checks, comparisons and equality."""
    values = {k: json_values for k in keys}
    return st.one_of(st.fixed_dictionaries(values),
                     st.fixed_dictionaries({}, optional=values))


def _star_match(pattern: str, name: str) -> bool:
    """'*' = any run (possibly empty), everything else literal; used to aim requests."""
    regex = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.fullmatch(regex, name, flags=re.DOTALL) is not None


def covered_pairs(policy: dict) -> list:
    """(tool, role) pairs that some rule names, so that requests often reach rules."""
    pairs = []
    for rule in policy["rules"]:
        name = rule["tool_name"]
        tools = [t for t in policy["tools"] if _star_match(name, t)] if "*" in name else [name]
        roles = [r for r in rule["roles"] if r in policy["roles"]]  # perso drops the rest
        pairs.extend((t, r) for t in tools for r in roles)
    return pairs


def requests(policy: dict, semantics: str = "strict") -> st.SearchStrategy:
    """``(tool, role, args, agent_attributes, resource_attributes)`` for ``policy``.

    Mostly a (tool, role) pair some rule names; otherwise tools and roles from the policy
    (declared or named in rules) or outside it. ``args`` may be None (= {}); under perso it
    may also be a non-object JSON value. Attribute objects may be None (= {}).
    """
    keys = policy_fields(policy)
    named_tools = list(policy["tools"]) + [r["tool_name"] for r in policy["rules"]]
    named_roles = list(policy["roles"]) + [x for r in policy["rules"] for x in r["roles"]]
    tool = st.one_of(st.sampled_from(named_tools), st.sampled_from(named_tools),
                     st.sampled_from(TOOL_NAMES + ["unknown_tool"]))
    role = st.one_of(st.sampled_from(named_roles), st.sampled_from(named_roles),
                     st.sampled_from(ROLE_NAMES + ["intern", "admin\u0000"]))
    pair = st.tuples(tool, role)
    pairs = covered_pairs(policy)
    if pairs:
        pair = st.one_of(st.sampled_from(pairs), st.sampled_from(pairs), st.sampled_from(pairs),
                         pair)
    args = st.one_of(attribute_dicts(keys), attribute_dicts(keys), st.none())
    if semantics == "perso":
        args = st.one_of(args, json_values)  # perso: non-object arguments have no fields
    attrs = st.one_of(attribute_dicts(keys), attribute_dicts(keys), st.none())
    return st.tuples(pair, args, attrs, attrs).map(
        lambda t: (t[0][0], t[0][1], t[1], t[2], t[3]))


def policy_and_request(semantics: str) -> st.SearchStrategy:
    """A policy for ``semantics`` together with a request drawn for it."""
    return policies(semantics).flatmap(
        lambda p: st.tuples(st.just(p), requests(p, semantics)))


def leaf_policy_and_request(semantics: str) -> st.SearchStrategy:
    """A one-rule policy whose condition is a single leaf (or ``Not`` of one), with a
    request for its (tool, role) whose two fields hold values from the corner pools.

    Dense where the random trees are sparse: every example exercises one leaf's
    comparison, equality or reason text (set truncation, value cut, K display)."""
    two_fields = st.sampled_from(["x", "y"])
    leaf = _leaves(two_fields)
    condition = st.one_of(leaf, leaf.map(lambda c: {"Not": c}))
    policy = st.builds(
        lambda cond, default: {"version": "leaf", "default_action": default, "tools": ["t"],
                               "roles": ["r"],
                               "rules": [{"tool_name": "t", "roles": ["r"], "condition": cond}]},
        condition, st.sampled_from(["Allow", "Deny"]))
    corner = st.sampled_from(EQUALITY_CORNERS)
    values = {k: st.one_of(corner, corner, st.sampled_from(EQUALISH), json_values)
              for k in ("x", "y")}
    obj = st.one_of(st.fixed_dictionaries(values), st.fixed_dictionaries({}, optional=values))
    return st.tuples(policy, st.tuples(st.just("t"), st.just("r"), obj, obj, obj))


# ======================================================================================
# Policy language v2 (docs/policy-v2.md), strict semantics.
#
# - ``v2_policies()``: effects (allow / deny / elevate with approvals 1|2), tool_tiers
#   (exact keys and globs), tier rules, tier_defaults, and every v2 condition node:
#   NumericCheck Ne/Between, StringCheck Eq..PathGlob, Length, Type, TimeWindow,
#   Every/Some with Element leaves (nested), field and JSON Pointer references over the
#   four sources.
# - ``v2_requests(policy)``: ``(tool, role, args, agent, resource, context)`` with nested
#   objects and arrays built from the same key pool the pointers use (so they hit and
#   miss), strings with escapes and non-ASCII, times as numbers and RFC 3339 strings.
# ======================================================================================

V2_TOOLS = ["read_file", "write_file", "delete_file", "list_dir", "pay", "refund",
            "search_docs", "a?b"]
V2_GLOBS = ["*_file", "delete_*", "*", "re*", "*a*", "zz*", "a?b*"]
V2_ROLES = ["agent", "admin", "viewer"]
V2_SOURCES = ["Arguments", "AgentAttributes", "ResourceAttributes", "Context"]
V2_TIERS = ["public", "read", "write", "destructive"]
V2_DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
# Keys of request objects, and the raw tokens pointers are made of: "a/b" and "m~n" need
# escaping (~1, ~0; "~1" escapes to "~01"), "" is the empty key ("/" points at it), "0" is
# a key that looks like an index.
V2_KEYS = ["amount", "path", "items", "time", "a.b", "a/b", "m~n", "~1", "", "0", "tags",
           "nested"]
INDEX_TOKENS = ["0", "1", "2", "01", "-", "10"]
TIMEZONES = ["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata", "Asia/Kathmandu",
             "Australia/Lord_Howe", "Pacific/Chatham", "America/St_Johns", "Africa/Monrovia",
             "Pacific/Apia", "Pacific/Kiritimati", "America/Sao_Paulo", "Europe/London"]
STARTS = ["00:00", "06:00", "09:00", "12:30", "17:00", "22:00", "23:59"]
ENDS = ["00:01", "06:00", "09:00", "12:30", "17:00", "22:00", "23:59", "24:00"]

PATTERNS = ["", "*", "**", "/data/*.csv", "/data/*", "*.csv", "a*b*c", "*/*", "é*", "ab",
            "/data/", "a", "\u0000", '"', "\\", "*\U0001F600", "\x7f*", "*\u2028", "\t"]
V2_STRINGS = ["/data/a.csv", "/data/x/a.csv", "/data/", "/data/.csv", "abc", "a/b/c", "ab",
              "aXbYc", "", "é", "éa", "日本", "\U0001F600", "a\u0000b", 'q"uote', "back\\slash",
              "line\nbreak", "production", "a" * 70, "é" * 40, "\x7f\u2028\t", "/data/日本.csv"]

# Times: numbers (Unix seconds; in range, at and beyond the bounds, fractions, negative)
# and RFC 3339 strings (valid with Z/z/offsets/lowercase t/fractions, and invalid ones).
TIME_NUMBERS = [0, -0.0, -1, -0.5, 0.5, 1, 4102444799, 4102444799.9, 4102444800, 1e300,
                1700000000, 1711846799, 1711846800, 1711850400, 1729990800, 1730000000.75,
                1293840000, 1325239200, 1325282400, 86399, 86400, 63072000, 1710054000]
TIME_STRINGS = [
    "2024-03-31T01:30:00Z", "2024-03-31T00:59:59Z", "2024-03-31t03:00:00z",
    "2024-06-03T09:00:00+02:00", "2024-06-03T08:59:59.999+02:00", "2024-06-03T17:00:00+02:00",
    "2024-06-03T16:59:59.5+02:00", "2024-06-02T23:30:00-05:30", "2024-02-29T12:00:00Z",
    "1970-01-01T00:00:00Z", "1970-01-01T00:30:00+01:00", "2099-12-31T23:59:59Z",
    "2099-12-31T23:30:00-01:00", "2100-01-01T00:00:00Z", "1969-12-31T23:59:59Z",
    "2023-02-29T12:00:00Z", "2024-04-31T12:00:00Z", "2024-06-03T24:00:00Z",
    "2024-06-03T12:00:60Z", "2024-06-03T12:00:00", "2024-06-03 12:00:00Z",
    "2024-06-03T12:00:00+24:00", "2024-06-03T12:00:00+05:60", "2024-06-03T12:00Z",
    "2024-06-03T12:00:00.Z", "2024-06-03T12:00:00Z\n", "２０２４-06-03T12:00:00Z",
    "0000-01-01T00:00:00Z", "2024-13-01T00:00:00Z", "2024-06-03T12:00:00-00:00",
    "2011-12-30T12:00:00+14:00", "2024-11-03T01:30:00-04:00", "2024-11-03T01:30:00-05:00",
    "1972-01-06T23:30:00Z", "", "now", "1717405200",
]


def escape_token(token: str) -> str:
    """RFC 6901: "~" -> "~0", "/" -> "~1"."""
    return token.replace("~", "~0").replace("/", "~1")


pointer_tokens = st.one_of(st.sampled_from(V2_KEYS).map(escape_token),
                           st.sampled_from(INDEX_TOKENS))
pointers = st.lists(pointer_tokens, min_size=1, max_size=3).map(lambda ts: "/" + "/".join(ts))


def _ref(source: str, side: str = "") -> st.SearchStrategy:
    """A reference for ``source``: field or pointer; for Element also neither (the element
    itself) or the empty pointer. Keys are suffixed with ``side`` ("_a"/"_b")."""
    options = [st.sampled_from(V2_KEYS).map(lambda f: {"field" + side: f}),
               pointers.map(lambda p: {"pointer" + side: p})]
    if source == "Element":
        options += [st.just({}), st.just({"pointer" + side: ""})]
    return st.one_of(*options).map(lambda r: {"source" + side: source, **r})


def _refs(in_quantifier: bool, side: str = "") -> st.SearchStrategy:
    """A reference over the four sources, and Element (often) inside a quantifier."""
    outer = st.sampled_from(V2_SOURCES).flatmap(lambda s: _ref(s, side))
    if in_quantifier:
        return st.one_of(outer, _ref("Element", side), _ref("Element", side))
    return outer


def _with(ref_strategy: st.SearchStrategy, rest: st.SearchStrategy, kind: str) -> st.SearchStrategy:
    return st.tuples(ref_strategy, rest).map(lambda t: {kind: {**t[0], **t[1]}})


v2_policy_numbers = st.one_of(st.sampled_from(NUMBERS), st.integers(-1000, 1000),
                              st.sampled_from(TIME_NUMBERS[:10]), finite_floats)


def _between_value() -> st.SearchStrategy:
    return st.tuples(v2_policy_numbers, v2_policy_numbers).map(
        lambda t: sorted(t, key=float))


def _windows() -> st.SearchStrategy:
    """A TimeWindow spec without its reference: days (omitted or a non-empty subset in any
    order), start != end (overnight when end < start), a timezone."""
    start_end = st.tuples(st.sampled_from(STARTS), st.sampled_from(ENDS)).filter(
        lambda t: t[0] != t[1])
    days = st.one_of(st.none(), st.lists(st.sampled_from(V2_DAYS), min_size=1, max_size=7,
                                         unique=True))

    def build(se, ds, tz):
        spec = {"start": se[0], "end": se[1], "timezone": tz}
        if ds is not None:
            spec["days"] = ds
        return spec
    return st.builds(build, start_end, days, st.sampled_from(TIMEZONES))


# UrlCheck / PathCheck policy hosts and request values: the bypass forms and their neighbours
URL_HOSTS = ["example.com", "127.1", "[::1]", "169.254.169.254", "api.example.com."]
URL_VALUES = ["https://example.com/", "http://example.com:8080/x", "https://api.example.com./",
              "https://a@example.com/", "http://example.com@evil.org/", "http://127.1/", "http://0x7f000001/",
              "http://[::ffff:127.0.0.1]/", "http://[::1]/", "https://169.254.169.254/", "http://localhost/",
              "https://evil-example.com/", "https://x.org/", "http:\\\\x.org\\", "ftp://example.com:21/",
              "file:///etc", "https://b\u00fccher.org/", "not a url", "https://a:99999/", "ws://1.1.1.1:443/"]
PATH_VALUES = ["/srv/data/a.csv", "/srv/data/../etc/passwd", "/srv/database/x.csv", "/srv/data/secret/k.json",
               "/etc/x.CSV", "/", "srv/data/a.csv", "data/../x", "data/x.csv", "C:\\Data\\a.txt",
               "c:/data/../x.TXT", "\\\\srv\\share\\a.txt", "C:\\Data\\con.txt", "", "/a\u0000b",
               "/tmp//x.json", "../x"]
# SqlCheck request values (docs/arguments.md): bypass forms of the dialects, reads and writes
SQL_VALUES = ["SELECT a FROM t", "SELECT * FROM s.t JOIN u ON true", "SELECT 1; DELETE FROM s.t", "DELETE FROM s.t",
              "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", "SELECT * INTO s.c FROM s.t",
              "SELECT * FROM s.t FOR UPDATE", "SELECT count(*), lower(a) FROM s.t -- ; DROP TABLE t",
              "SELECT ';', $$;$$ FROM s.t", "SELECT E'\\';DROP' FROM t", "SELECT '\\'; DELETE FROM t; --'",
              "SELECT nextval('q')", "SELECT pg_read_file('x') FROM s.t", "SELECT f(a) FROM s.t",
              "SELECT * FROM \"t\" JOIN u ON 1", "select load_extension('x')", "PRAGMA x = 1", "COPY t TO STDOUT",
              "SELECT 1 /* ", "SELECT * FROM \"T\"", "EXPLAIN SELECT * FROM s.t", "VALUES (1)", "BEGIN", "",
              "SELECT 1 # ; DROP TABLE t", "SELECT @a := 1 FROM s.t", "INSERT s.t VALUES (1)", 'EXPLAIN "t"',
              "SELECT * FROM `s`.`T` STRAIGHT_JOIN u", "SELECT 1 /*! ; DROP TABLE t */", "SELECT a FROM s.t INTO @v"]


@functools.lru_cache(maxsize=None)
def v2_leaves(in_quantifier: bool = False) -> st.SearchStrategy:
    """One leaf of each v1 and v2 kind, with field / pointer / Element references."""
    refs = _refs(in_quantifier)
    numeric = _with(refs, st.one_of(
        st.fixed_dictionaries({"op": st.sampled_from(["Lt", "Lte", "Gt", "Gte", "Eq", "Ne"]),
                               "value": v2_policy_numbers}),
        st.fixed_dictionaries({"op": st.just("Between"), "value": _between_value()})),
        "NumericCheck")
    string = _with(refs, st.one_of(
        st.fixed_dictionaries({"op": st.sampled_from(["In", "NotIn"]),
                               "value": st.lists(st.sampled_from(V2_STRINGS), max_size=7)}),
        st.fixed_dictionaries({"op": st.sampled_from(["Eq", "Ne", "StartsWith", "EndsWith",
                                                      "Contains"]),
                               "value": st.one_of(st.sampled_from(V2_STRINGS),
                                                  st.sampled_from(PATTERNS))}),
        st.fixed_dictionaries({"op": st.sampled_from(["Glob", "PathGlob"]),
                               "value": st.sampled_from(PATTERNS)})),
        "StringCheck")
    present = _with(refs, st.just({}), "FieldPresent")
    equals = st.tuples(_refs(in_quantifier, "_a"), _refs(in_quantifier, "_b")).map(
        lambda t: {"FieldEquals": {**t[0], **t[1]}})
    length = _with(refs, st.fixed_dictionaries({
        "op": st.sampled_from(["Lt", "Lte", "Gt", "Gte", "Eq", "Ne"]),
        "value": st.one_of(st.integers(0, 4), st.sampled_from([0, 1, 3, 63, 70]))}), "Length")
    typed = _with(refs, st.fixed_dictionaries({"is": st.sampled_from(
        ["string", "number", "integer", "boolean", "null", "array", "object"])}), "Type")
    boolean = _with(refs, st.fixed_dictionaries({"value": st.booleans()}), "BooleanCheck")
    # TimeWindow: mostly the defaults (Context.time), else an explicit outer reference.
    # (Element with neither field nor pointer is left out: see reference.leaf_ref.)
    window_ref = st.one_of(st.just({}), st.just({}), st.sampled_from(V2_SOURCES).flatmap(_ref))
    if in_quantifier:
        window_ref = st.one_of(window_ref, st.sampled_from(V2_KEYS).map(
            lambda f: {"source": "Element", "field": f}))
    window = _with(window_ref, _windows(), "TimeWindow")
    # UrlCheck / PathCheck (docs/arguments.md): any subset of their keys
    url = _with(refs, st.fixed_dictionaries({}, optional={
        "schemes_in": st.lists(st.sampled_from(["http", "https", "ws", "ftp"]), min_size=1, max_size=2),
        "hosts_in": st.lists(st.sampled_from(URL_HOSTS), min_size=1, max_size=3),
        "host_suffixes_in": st.lists(st.sampled_from(["example.com", ".org", "localhost"]), min_size=1, max_size=2),
        "ports_in": st.lists(st.sampled_from([80, 443, 8080]), min_size=1, max_size=2),
        "userinfo": st.booleans(), "ip": st.just("public")}), "UrlCheck")
    path = _with(refs, st.one_of(
        st.fixed_dictionaries({}, optional={
            "within": st.lists(st.sampled_from(["/srv/data", "/", "/tmp/"]), min_size=1, max_size=2),
            "not_within": st.lists(st.sampled_from(["/srv/data/secret", "/etc"]), min_size=1, max_size=2),
            "extensions_in": st.lists(st.sampled_from([".csv", ".json", ".CSV"]), min_size=1, max_size=2),
            "absolute": st.just(True)}),
        st.fixed_dictionaries({"style": st.just("windows")}, optional={
            "within": st.lists(st.sampled_from(["C:\\Data", "\\\\srv\\share", "c:/"]), min_size=1, max_size=2),
            "extensions_in": st.lists(st.sampled_from([".txt", ".TXT"]), min_size=1, max_size=2)}),
        st.fixed_dictionaries({"absolute": st.just(False)}, optional={
            "within": st.lists(st.sampled_from(["data", "/srv"]), min_size=1, max_size=2)})), "PathCheck")
    # SqlCheck (docs/arguments.md): a dialect and any subset of the other keys
    sql = _with(refs, st.fixed_dictionaries({"dialect": st.sampled_from(["postgres", "sqlite", "mysql"])}, optional={
        "read_only": st.booleans(), "max_statements": st.integers(1, 2),
        "tables_in": st.lists(st.sampled_from(["t", "s.t", "u", "T"]), min_size=1, max_size=2),
        "schemas_in": st.lists(st.sampled_from(["s", "public"]), min_size=1, max_size=2),
        "functions_allowed": st.lists(st.sampled_from(["f", "s.f"]), min_size=1, max_size=2)}), "SqlCheck")
    return st.one_of(numeric, string, present, equals, length, typed, boolean, window, url, path, sql)


@functools.lru_cache(maxsize=None)  # built once: strategy construction is not free
def v2_conditions(depth: int = 3, in_quantifier: bool = False) -> st.SearchStrategy:
    """A v2 condition tree: All/Any (possibly empty), Not, Every/Some (nested, their
    conditions read Element), and leaves, up to ``depth``."""
    leaves = v2_leaves(in_quantifier)
    if depth == 0:
        return leaves
    inner = v2_conditions(depth - 1, in_quantifier)
    quantified = v2_conditions(depth - 1, True)
    quantifier = st.tuples(st.sampled_from(["Every", "Some"]), _refs(in_quantifier),
                           quantified).map(lambda t: {t[0]: {**t[1], "condition": t[2]}})
    return st.one_of(
        leaves, leaves,
        quantifier,
        st.lists(inner, max_size=3).map(lambda cs: {"All": cs}),
        st.lists(inner, max_size=3).map(lambda cs: {"Any": cs}),
        inner.map(lambda c: {"Not": c}),
    )


effects = st.one_of(
    st.just({}), st.just({"effect": "allow"}), st.just({"effect": "deny"}),
    st.sampled_from([1, 2]).map(lambda n: {"effect": "elevate", "approvals": n}))

tier_default_values = st.sampled_from([
    "allow", "deny", {"effect": "allow"}, {"effect": "deny"},
    {"effect": "elevate", "approvals": 1}, {"effect": "elevate", "approvals": 2}])


def v2_rules(tools: list, roles: list, effect: st.SearchStrategy = effects,
             condition: Optional[st.SearchStrategy] = None) -> st.SearchStrategy:
    """A rule naming a declared tool, a glob or a tier, declared roles, an effect and an
    optional condition."""
    target = st.one_of(st.sampled_from(tools).map(lambda t: {"tool_name": t}),
                       st.sampled_from(V2_GLOBS).map(lambda g: {"tool_name": g}),
                       st.sampled_from(V2_TIERS).map(lambda t: {"tier": t}))
    condition = condition if condition is not None else st.one_of(st.none(), v2_conditions(3))
    return st.builds(
        lambda tg, rs, ef, c: {**tg, "roles": rs, **ef, "condition": c},
        target, st.lists(st.sampled_from(roles), min_size=1, max_size=3), effect, condition)


@st.composite
def v2_policies(draw, max_rules: int = 8) -> dict:
    """A random valid strict v2 policy."""
    tools = draw(st.lists(st.sampled_from(V2_TOOLS), min_size=1, max_size=6, unique=True))
    roles = draw(st.lists(st.sampled_from(V2_ROLES), min_size=1, max_size=3, unique=True))
    policy = {"version": "v2-test", "default_action": draw(st.sampled_from(["Allow", "Deny"])),
              "tools": tools, "roles": roles}
    # Exact keys must be declared tools; globs may match several tools or none.
    tier_keys = st.one_of(st.sampled_from(tools), st.sampled_from(V2_GLOBS))
    tiers = draw(st.dictionaries(tier_keys, st.sampled_from(V2_TIERS), max_size=4))
    if tiers or draw(st.booleans()):
        policy["tool_tiers"] = tiers
    defaults = draw(st.dictionaries(st.sampled_from(V2_TIERS), tier_default_values, max_size=4))
    if defaults or draw(st.booleans()):
        policy["tier_defaults"] = defaults
    # At least one rule unless the (rarely drawn) empty list: most requests reach rules.
    empty = draw(st.integers(0, 9)) == 9
    policy["rules"] = [] if empty else draw(
        st.lists(v2_rules(tools, roles), min_size=1, max_size=max_rules))
    return policy


# Request values.

v2_scalars = st.one_of(
    st.none(), st.booleans(),
    st.sampled_from(REQUEST_INTS), st.integers(-1000, 1000), st.sampled_from(REQUEST_FLOATS),
    st.sampled_from(NUMBERS), finite_floats,
    st.sampled_from(V2_STRINGS), st.sampled_from(PATTERNS), st.text(max_size=8),
    st.sampled_from(TIME_NUMBERS), st.sampled_from(TIME_STRINGS),
    st.integers(0, 4102444800 + 10),
)


def rfc3339_strings() -> st.SearchStrategy:
    """Generated RFC 3339 texts: mostly valid (any date 1969-2100, an offset), sometimes
    with a lowercase t/z, a fraction, or an impossible day."""
    def build(y, mo, d, h, mi, s, frac, t, off):
        return f"{y:04d}-{mo:02d}-{d:02d}{t}{h:02d}:{mi:02d}:{s:02d}{frac}{off}"
    offsets = st.one_of(st.sampled_from(["Z", "z", "+00:00", "-00:00"]),
                        st.builds(lambda sign, h, m: f"{sign}{h:02d}:{m:02d}",
                                  st.sampled_from("+-"), st.integers(0, 23),
                                  st.sampled_from([0, 30, 45, 59])))
    return st.builds(build, st.integers(1969, 2100), st.integers(1, 12), st.integers(1, 31),
                     st.integers(0, 23), st.integers(0, 59), st.integers(0, 59),
                     st.sampled_from(["", "", ".5", ".000001", ".999999999"]),
                     st.sampled_from(["T", "T", "t"]), offsets)


v2_times = st.one_of(st.sampled_from(TIME_NUMBERS), st.sampled_from(TIME_STRINGS),
                     rfc3339_strings(), st.integers(-10, 4102444800 + 10),
                     st.floats(min_value=-2.0, max_value=4.2e9, allow_nan=False))

v2_json = st.recursive(
    st.one_of(v2_scalars, v2_times),
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.sampled_from(V2_KEYS), children, max_size=4)),
    max_leaves=6)


def v2_objects() -> st.SearchStrategy:
    """A source object: keys from the pointer pool (absent keys are the "missing" case),
    values nested a few levels, sometimes a "time"; or None (= {})."""
    base = st.dictionaries(st.sampled_from(V2_KEYS), v2_json, max_size=4)
    with_time = st.builds(lambda d, t: {**d, "time": t}, base, v2_times)
    return st.one_of(base, with_time, st.none())


def _tokens(ref: dict, side: str = "") -> Optional[list]:
    """The raw tokens a reference walks (a field is one token); None for the element
    itself (no field, no pointer or the empty pointer)."""
    if ("field" + side) in ref:
        return [ref["field" + side]]
    pointer = ref.get("pointer" + side, "")
    if pointer == "":
        return None
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")]


def _collect_refs(cond: Any, top: list, here: list) -> None:
    """Gather ``(source, tokens, kind, spec)`` for every reference in a condition: outer
    sources into ``top``, Element references into ``here`` (the current element's list);
    a quantifier's entry carries the list of its own element references as ``spec``."""
    if cond is None:
        return
    ((kind, spec),) = cond.items()
    if kind in ("All", "Any"):
        for child in spec:
            _collect_refs(child, top, here)
        return
    if kind == "Not":
        _collect_refs(spec, top, here)
        return
    sides = ("_a", "_b") if kind == "FieldEquals" else ("",)
    for side in sides:
        source = spec.get("source" + side, "Context" if kind == "TimeWindow" else None)
        tokens = _tokens(spec, side)
        if kind == "TimeWindow" and tokens is None and source != "Element":
            tokens = ["time"]
        if kind in ("Every", "Some"):
            inner: list = []
            _collect_refs(spec["condition"], top, inner)
            entry = (source, tokens, kind, inner)
        else:
            entry = (source, tokens, kind, spec)
        (here if source == "Element" else top).append(entry)


def _plant(container: Any, tokens: list, value: Any) -> Any:
    """``container`` with ``value`` stored at ``tokens``, creating objects and arrays (an
    index-looking token makes an array long enough) and replacing scalars on the way."""
    if not tokens:
        return value
    token, rest = tokens[0], tokens[1:]
    if re.fullmatch(r"0|[1-9][0-9]?", token) and not isinstance(container, dict):
        index = int(token)
        items = list(container) if isinstance(container, list) else []
        items += [None] * (index + 1 - len(items))
        items[index] = _plant(items[index], rest, value)
        return items
    obj = dict(container) if isinstance(container, dict) else {}
    obj[token] = _plant(obj.get(token), rest, value)
    return obj


def _value_for(kind: str, spec: Any) -> st.SearchStrategy:
    """Values a leaf of ``kind`` is likely to decide on (its own threshold or pattern
    included), mixed with arbitrary JSON."""
    if kind == "NumericCheck":
        own = spec["value"] if isinstance(spec["value"], list) else [spec["value"]]
        near = st.sampled_from(own).flatmap(
            lambda v: st.sampled_from([v, v + 1, v - 1, float(v), -v]))
        return st.one_of(near, near, st.sampled_from(REQUEST_INTS + REQUEST_FLOATS), v2_scalars)
    if kind == "StringCheck":
        own = spec["value"] if isinstance(spec["value"], list) else [spec["value"]]
        own = [v for v in own] or [""]
        around = st.sampled_from(own).flatmap(lambda v: st.sampled_from(
            [v, v + "x", "x" + v, v.replace("*", ""), v.replace("*", "a/b"), v.upper()]))
        return st.one_of(around, around, st.sampled_from(V2_STRINGS), v2_scalars)
    if kind == "TimeWindow":
        return st.one_of(v2_times, v2_times, v2_times, v2_scalars)
    if kind == "Length":
        return st.one_of(st.text(max_size=5), st.lists(v2_scalars, max_size=5),
                         st.sampled_from(V2_STRINGS), v2_scalars)
    if kind == "FieldEquals":
        return st.one_of(st.sampled_from(EQUALITY_CORNERS), st.sampled_from(V2_STRINGS))
    if kind == "UrlCheck":
        return st.one_of(st.sampled_from(URL_VALUES), st.sampled_from(URL_VALUES), v2_scalars)
    if kind == "PathCheck":
        return st.one_of(st.sampled_from(PATH_VALUES), st.sampled_from(PATH_VALUES), v2_scalars)
    if kind == "SqlCheck":
        return st.one_of(st.sampled_from(SQL_VALUES), st.sampled_from(SQL_VALUES), v2_scalars)
    return v2_json


@st.composite
def _planted(draw, entries: list, base: Any) -> Any:
    """``base`` with values planted at (most of) ``entries``' references; for the element
    itself the value replaces ``base``."""
    for source, tokens, kind, spec in entries:
        if draw(st.integers(0, 3)) == 3:  # a quarter stay as they are: misses
            continue  # (the simplest draw, 0, plants: hypothesis starts from it)
        if kind in ("Every", "Some"):
            count = draw(st.sampled_from([2, 1, 3, 0]))
            value = [draw(_planted(spec, draw(v2_json))) for _ in range(count)]
        else:
            value = draw(_value_for(kind, spec))
        base = value if tokens is None else _plant(base, tokens, value)
    return base


@st.composite
def v2_requests(draw, policy: dict) -> tuple:
    """``(tool, role, args, agent, resource, context)`` for a v2 policy.

    Mostly a (tool, role) pair some rule covers, else a declared or undeclared one. The
    four objects start random (keys from the pointer pool, nested) and then, for most of
    the policy's references, get a value planted exactly where the field or pointer
    reads (arrays for Every/Some, each element again planted for the Element leaves),
    drawn near the leaf's threshold / pattern; the rest stay misses."""
    pairs = v2_covered_pairs(policy)
    tool = st.one_of(st.sampled_from(policy["tools"]), st.sampled_from(V2_TOOLS + ["unknown_tool"]))
    role = st.one_of(st.sampled_from(policy["roles"]), st.sampled_from(V2_ROLES + ["intern"]))
    pair = st.tuples(tool, role)
    if pairs:
        pair = st.one_of(st.sampled_from(pairs), st.sampled_from(pairs), st.sampled_from(pairs),
                         pair)
    tool, role = draw(pair)
    top: list = []
    for rule in policy["rules"]:
        _collect_refs(rule.get("condition"), top, [])
    objects = {}
    plant = not (draw(st.booleans()) and draw(st.booleans()))  # 3 in 4 requests aim
    for source in V2_SOURCES:
        base = draw(v2_objects())
        if plant:
            entries = [e for e in top if e[0] == source]
            planted = draw(_planted(entries, base if base is not None else {}))
            base = planted if isinstance(planted, dict) else base
        objects[source] = base
    return (tool, role, objects["Arguments"], objects["AgentAttributes"],
            objects["ResourceAttributes"], objects["Context"])


def v2_tiers_of(policy: dict) -> dict:
    """Declared tool -> tier (exact key wins, else the strictest matching glob); used only
    to aim requests at covered pairs."""
    keys = policy.get("tool_tiers", {})
    out = {}
    for tool in policy["tools"]:
        if tool in keys:
            out[tool] = keys[tool]
            continue
        found = [tier for key, tier in keys.items() if "*" in key and _star_match(key, tool)]
        if found:
            out[tool] = max(found, key=V2_TIERS.index)
    return out


def v2_covered_pairs(policy: dict) -> list:
    """(tool, role) pairs some rule of a v2 policy covers (tool_name, glob or tier)."""
    tiers = v2_tiers_of(policy)
    pairs = []
    for rule in policy["rules"]:
        if "tier" in rule:
            tools = [t for t in policy["tools"] if tiers.get(t) == rule["tier"]]
        elif "*" in rule["tool_name"]:
            tools = [t for t in policy["tools"] if _star_match(rule["tool_name"], t)]
        else:
            tools = [rule["tool_name"]]
        pairs.extend((t, r) for t in tools for r in rule["roles"])
    return pairs


def v2_policy_and_request(max_rules: int = 8) -> st.SearchStrategy:
    """A v2 policy with a request drawn for it."""
    return v2_policies(max_rules).flatmap(lambda p: st.tuples(st.just(p), v2_requests(p)))


def v2_leaf_policy_and_request() -> st.SearchStrategy:
    """A one-rule v2 policy whose condition is one v2 leaf (or a quantifier over one Element
    leaf), maybe under Not, with a random effect; and a request whose four objects hold
    the leaf's likely values. Dense where the random trees are sparse: every example
    reaches one leaf's comparison and reason text."""
    leaf = st.one_of(
        v2_leaves(False),
        st.tuples(st.sampled_from(["Every", "Some"]), _refs(False), v2_leaves(True)).map(
            lambda t: {t[0]: {**t[1], "condition": t[2]}}))
    condition = st.one_of(leaf, leaf.map(lambda c: {"Not": c}))
    policy = st.builds(
        lambda cond, eff, default: {"version": "leaf-v2", "default_action": default,
                                    "tools": ["t"], "roles": ["r"],
                                    "rules": [{"tool_name": "t", "roles": ["r"], **eff,
                                               "condition": cond}]},
        condition, effects, st.sampled_from(["Allow", "Deny"]))
    return policy.flatmap(lambda p: st.tuples(st.just(p), v2_requests(p)))
