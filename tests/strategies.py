"""Hypothesis strategies for callgate policies and requests.

Names come from small alphabets on purpose: tools, roles and field names collide often, so
globs hit, duplicate (tool, role) rules occur, and requests reach the fields conditions read.

- ``policies(semantics)``: random valid policies. For ``"strict"`` rules only name declared
  roles and declared (or glob) tools; for ``"perso"`` they also name undeclared ones (which
  is also what the strict-rejection test feeds to the strict loader).
- ``requests(policy)``: ``(tool, role, args, agent_attributes, resource_attributes)``.

No NaN or infinity anywhere: those are request errors, tested separately.
"""

from __future__ import annotations

import re

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
        pair = st.one_of(st.sampled_from(pairs), st.sampled_from(pairs), pair)
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
