"""Reading policy files (callgate.policy_files): JSON and YAML with the same strictness, and
every PolicyError placed in the text (file, line, column) besides its path.

The positions are checked against writers written here, which note where they put each
value and key as they write it (random layout, escapes and characters outside ASCII):
an oracle independent of the scan and of PyYAML's marks. A mistake injected at a random
place of a random valid policy (a value of the wrong type, an unknown key, a key given
twice) must be reported at exactly that place.

Set CALLGATE_HYPOTHESIS_EXAMPLES to change the number of examples (default 150).
"""

from __future__ import annotations

import json
import os
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callgate import Engine, PolicyError, examples
from callgate.lint import lint
from callgate.policy import format_path
from callgate.policy_files import YAML_INSTALL, parse_policy, read_policy
from support.strategies import v2_policies

EXAMPLES = int(os.environ.get("CALLGATE_HYPOTHESIS_EXAMPLES", "150"))
prop_settings = settings(max_examples=EXAMPLES, deadline=None,
                         suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

BODIES = ("NumericCheck", "StringCheck", "FieldPresent", "FieldEquals", "Length", "Type", "TimeWindow",
          "Every", "Some")
UNKNOWN = "zz_unknown"


def line_column(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column (in characters) of an offset; lines end at "\\n"."""
    return text.count("\n", 0, offset) + 1, offset - (text.rfind("\n", 0, offset) + 1) + 1


# ---------------------------------------------------------------- writers (the oracle)


class Pairs(list):
    """An object as its (key, value) pairs in order: the writers can then give a key twice."""


def as_pairs(value):
    if isinstance(value, dict):
        return Pairs((k, as_pairs(v)) for k, v in value.items())
    if isinstance(value, list):
        return [as_pairs(v) for v in value]
    return value


class JsonWriter:
    """JSON text with random whitespace and random escapes (\\uXXXX, surrogate pairs, \\/),
    noting the offset of every value and every key (each occurrence) by path."""

    def __init__(self, rnd) -> None:
        self.rnd = rnd
        self.parts: list[str] = []
        self.size = 0
        self.values: dict[tuple, int] = {}
        self.keys: dict[tuple, list[int]] = {}

    def emit(self, text: str) -> None:
        self.parts.append(text)
        self.size += len(text)

    def ws(self) -> None:
        self.emit(self.rnd.choice(["", "", " ", "\n", "  ", "\n\t", "\r\n  ", "\n\n    "]))

    def string(self, s: str) -> None:
        out = ['"']
        for ch in s:
            code = ord(ch)
            if ch == '"' or ch == "\\":
                out.append("\\" + ch)
            elif code < 0x20 or self.rnd.random() < 0.15:
                if code > 0xFFFF:
                    code -= 0x10000
                    out.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04X}")
                else:
                    out.append(f"\\u{code:04x}")
            elif ch == "/" and self.rnd.random() < 0.5:
                out.append("\\/")
            else:
                out.append(ch)
        out.append('"')
        self.emit("".join(out))

    def value(self, v, path: tuple = ()) -> None:
        self.values[path] = self.size
        if isinstance(v, Pairs):
            self.emit("{")
            for n, (k, x) in enumerate(v):
                if n:
                    self.emit(",")
                self.ws()
                self.keys.setdefault(path + (k,), []).append(self.size)
                self.string(k)
                self.ws()
                self.emit(":")
                self.ws()
                self.value(x, path + (k,))
                self.ws()
            self.emit("}")
        elif isinstance(v, list):
            self.emit("[")
            for n, x in enumerate(v):
                if n:
                    self.emit(",")
                self.ws()
                self.value(x, path + (n,))
                self.ws()
            self.emit("]")
        elif isinstance(v, str):
            self.string(v)
        else:
            self.emit(json.dumps(v))

    def text(self) -> str:
        return "".join(self.parts)


# what YAML allows unescaped in a double-quoted scalar (PyYAML's printable set, without the
# characters YAML 1.1 takes as line breaks, and the BOM)
def _yaml_printable(ch: str) -> bool:
    code = ord(ch)
    if ch in "\x85\u2028\u2029\ufeff":
        return False
    return 0x20 <= code <= 0x7E or 0xA0 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD or code >= 0x10000


class YamlWriter:
    """Block-style YAML with random indentation, spacing and comment lines, every scalar
    double-quoted (escapes as JSON would, characters outside ASCII as they are), noting where
    each node starts: a scalar or flow collection at its first character, a block mapping
    at its first key, a block sequence at its first '-'."""

    def __init__(self, rnd) -> None:
        self.rnd = rnd
        self.step = rnd.choice([2, 3, 4])
        self.parts: list[str] = []
        self.size = 0
        self.values: dict[tuple, int] = {}
        self.keys: dict[tuple, list[int]] = {}

    def emit(self, text: str) -> None:
        self.parts.append(text)
        self.size += len(text)

    def newline(self, indent: int) -> None:
        if self.rnd.random() < 0.1:
            self.emit("\n" + " " * self.rnd.randrange(0, 6) + "# a comment: [not] {yaml}")
        self.emit("\n" + " " * indent)

    def scalar(self, v) -> None:
        if isinstance(v, str):
            out = ['"']
            for ch in v:
                if ch == '"' or ch == "\\":
                    out.append("\\" + ch)
                elif _yaml_printable(ch):
                    out.append(ch)
                elif ord(ch) <= 0xFFFF:
                    out.append(f"\\u{ord(ch):04x}")
                else:
                    out.append(f"\\U{ord(ch):08x}")
            out.append('"')
            self.emit("".join(out))
        else:
            self.emit(json.dumps(v))

    def _leaf(self, v) -> bool:
        return not isinstance(v, (Pairs, list)) or len(v) == 0

    def _flat(self, v, path: tuple) -> None:
        self.values[path] = self.size
        if isinstance(v, Pairs):
            self.emit("{}")
        elif isinstance(v, list):
            self.emit("[]")
        else:
            self.scalar(v)

    def mapping(self, pairs: Pairs, indent: int, path: tuple, inline: bool) -> None:
        for n, (k, x) in enumerate(pairs):
            if n or not inline:
                self.newline(indent)
            if n == 0:
                self.values[path] = self.size
            self.keys.setdefault(path + (k,), []).append(self.size)
            self.scalar(k)
            self.emit(":")
            if self._leaf(x):
                self.emit(" " * self.rnd.randint(1, 3))
                self._flat(x, path + (k,))
            elif isinstance(x, Pairs):
                self.mapping(x, indent + self.step, path + (k,), inline=False)
            else:
                self.sequence(x, indent + self.step, path + (k,), inline=False)

    def sequence(self, items: list, indent: int, path: tuple, inline: bool) -> None:
        for n, x in enumerate(items):
            if n or not inline:
                self.newline(indent)
            if n == 0:
                self.values[path] = self.size
            self.emit("-")
            pad = self.rnd.randint(1, 2)
            self.emit(" " * pad)
            if self._leaf(x):
                self._flat(x, path + (n,))
            elif isinstance(x, Pairs):
                self.mapping(x, indent + 1 + pad, path + (n,), inline=True)
            else:
                self.sequence(x, indent + 1 + pad, path + (n,), inline=True)

    def document(self, root: Pairs) -> None:
        if self.rnd.random() < 0.3:
            self.emit("# a policy\n")
        self.mapping(root, 0, (), inline=True)
        self.emit("\n")

    def text(self) -> str:
        return "".join(self.parts)


def write(fmt: str, tree, rnd):
    writer = JsonWriter(rnd) if fmt == "json" else YamlWriter(rnd)
    if fmt == "json":
        writer.ws()
        writer.value(tree)
        writer.ws()
    else:
        writer.document(tree)
    return writer


# ---------------------------------------------------------------- mistakes


def walk_objects(tree, path=(), role="policy"):
    """(path, Pairs) of every object that is a model, by its role in the language: the
    policy, a rule, a condition body, an object tier default."""
    if not isinstance(tree, Pairs):
        return
    if role in ("policy", "rule", "body", "tier default"):
        yield path, tree
    for k, v in tree:
        here = path + (k,)
        if role == "policy" and k == "rules":
            for i, rule in enumerate(v):
                yield from walk_objects(rule, here + (i,), "rule")
        elif role == "policy" and k == "tier_defaults" and isinstance(v, Pairs):
            for t, d in v:
                yield from walk_objects(d, here + (t,), "tier default")
        elif role in ("rule", "body") and k == "condition":
            yield from walk_objects(v, here, "condition")
        elif role == "condition":
            if k in ("All", "Any"):
                for i, c in enumerate(v):
                    yield from walk_objects(c, here + (i,), "condition")
            elif k == "Not":
                yield from walk_objects(v, here, "condition")
            elif k in BODIES:
                yield from walk_objects(v, here, "body")


def walk_all(tree, path=()):
    """(path, node) of every node."""
    yield path, tree
    if isinstance(tree, Pairs):
        for k, v in tree:
            yield from walk_all(v, path + (k,))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            yield from walk_all(v, path + (i,))


def node_at(tree, path):
    for step in path:
        tree = dict(tree)[step] if isinstance(tree, Pairs) else tree[step]
    return tree


def replace_at(tree, path, value):
    parent = node_at(tree, path[:-1])
    if isinstance(parent, Pairs):
        index = next(n for n, (k, _) in enumerate(parent) if k == path[-1])
        parent[index] = (path[-1], value)
    else:
        parent[path[-1]] = value


@st.composite
def policy_with_mistake(draw):
    """(tree, kind, path): a valid v2 policy as Pairs with one mistake made at `path`."""
    tree = as_pairs(draw(v2_policies(max_rules=4)))
    kind = draw(st.sampled_from(["type", "unknown key", "duplicate key"]))
    if kind == "type":
        strings = [p for p, v in walk_all(tree) if isinstance(v, str)]
        path = draw(st.sampled_from(strings))
        replace_at(tree, path, 12345)
        return tree, kind, path
    if kind == "unknown key":
        path, obj = draw(st.sampled_from(list(walk_objects(tree))))
        obj.insert(draw(st.integers(0, len(obj))), (UNKNOWN, draw(st.sampled_from([1, "x", None, [], {}]))))
        return tree, kind, path + (UNKNOWN,)
    objects = [(p, v) for p, v in walk_all(tree) if isinstance(v, Pairs) and len(v)]
    path, obj = draw(st.sampled_from(objects))
    index = draw(st.integers(0, len(obj) - 1))
    key = obj[index][0]
    obj.insert(draw(st.integers(index + 1, len(obj))), (key, draw(st.sampled_from([1, "x", None]))))
    return tree, kind, path + (key,)


def as_data(tree):
    if isinstance(tree, Pairs):
        return {k: as_data(v) for k, v in tree}
    if isinstance(tree, list):
        return [as_data(v) for v in tree]
    return tree


# ---------------------------------------------------------------- properties


@prop_settings
@given(policy=v2_policies(max_rules=4), fmt=st.sampled_from(["json", "yaml"]), rnd=st.randoms(use_true_random=False))
def test_every_position_is_where_the_writer_put_it(policy, fmt, rnd):
    """For a random valid policy written with random layout and escapes, the decoded data is
    the policy, and the position of every value and every key is exactly where the writer
    put it (JSON: the scan; YAML: PyYAML's marks under the core schema)."""
    writer = write(fmt, as_pairs(policy), rnd)
    text = writer.text()
    source = parse_policy(text, format=fmt)
    assert source.data == policy
    expected = {path: (line_column(text, at), line_column(text, writer.keys[path][0]) if path in writer.keys else None)
                for path, at in writer.values.items()}
    assert dict(source.positions) == expected


@prop_settings
@given(case=policy_with_mistake(), fmt=st.sampled_from(["json", "yaml"]), rnd=st.randoms(use_true_random=False))
def test_a_mistake_is_reported_where_it_was_made(case, fmt, rnd, tmp_path_factory):
    """A mistake injected at a random place (a string value made a number, an unknown key in
    a policy, rule, condition body or tier default, a key given twice in any object) is one
    PolicyError whose path is that place and whose line and column are those of the value,
    or of the key for an unknown key and of its second occurrence for a duplicate, in the
    file it names."""
    tree, kind, path = case
    writer = write(fmt, tree, rnd)
    text = writer.text()
    path_file = tmp_path_factory.mktemp("p") / f"policy.{fmt}"
    path_file.write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError) as info:
        read_policy(path_file).compile()
    exc = info.value
    if kind == "type":
        offset = writer.values[path]
    elif kind == "unknown key":
        offset = writer.keys[path][0]
        assert exc.message == f"unknown key '{UNKNOWN}'"
    else:
        offset = writer.keys[path][1]
        assert exc.message == f"duplicate key '{path[-1]}'"
    assert exc.location == format_path(path)
    assert (exc.file, exc.line, exc.column) == (str(path_file), *line_column(text, offset))
    assert str(exc) == f"{path_file}:{exc.line}:{exc.column}: {exc.location}: {exc.message}"


@prop_settings
@given(policy=v2_policies(max_rules=4), rnd=st.randoms(use_true_random=False), data=st.data())
def test_a_json_syntax_error_keeps_the_decoders_position(policy, rnd, data):
    """JSON cut short or broken at a random place: the message, line and column are the
    standard library decoder's own (the scan that names the path never hides them)."""
    text = write("json", as_pairs(policy), rnd).text().strip()
    cut = data.draw(st.integers(1, len(text) - 1))
    broken = text[:cut] + data.draw(st.sampled_from(["", "}", "]", ",", ":", "@", '"']))
    try:
        json.loads(broken)
    except json.JSONDecodeError as want:
        with pytest.raises(PolicyError) as info:
            parse_policy(broken)
        assert (info.value.line, info.value.column, info.value.message) == (want.lineno, want.colno, want.msg)
        assert str(info.value).startswith(f"line {want.lineno} column {want.colno}: ")
    else:  # the cut left valid JSON (a whole prefix, closed): it reads
        assert parse_policy(broken).data == json.loads(broken)


# ---------------------------------------------------------------- PolicyError's form


POLICY = {"version": "1", "default_action": "Deny", "tools": ["a"], "roles": ["r"],
          "rules": [{"tool_name": "a", "roles": ["r"],
                     "condition": {"NumericCheck": {"source": "Arguments", "field": "x", "op": "Nope", "value": 1}}}]}
POLICY_TEXT = json.dumps(POLICY, indent=2)


def test_error_format_file_line_column_path_message(tmp_path):
    """A file's error reads FILE:LINE:COLUMN: PATH: MESSAGE, the column the value's first
    character; text that is not a file reads `line L column C: PATH: MESSAGE`; a dict has
    only the path, as before."""
    path = tmp_path / "p.json"
    path.write_text(POLICY_TEXT)
    message = "unknown op 'Nope'; expected Lt, Lte, Gt, Gte, Eq, Ne, Between"
    location = "rules[0].condition.NumericCheck.op"
    line = next(n for n, text in enumerate(POLICY_TEXT.splitlines(), 1) if '"op"' in text)
    column = POLICY_TEXT.splitlines()[line - 1].index('"Nope"') + 1
    with pytest.raises(PolicyError) as info:
        Engine.from_file(path)
    assert str(info.value) == f"{path}:{line}:{column}: {location}: {message}"
    assert (info.value.file, info.value.line, info.value.column, info.value.location, info.value.message) == \
        (str(path), line, column, location, message)
    with pytest.raises(PolicyError) as info:
        Engine.from_json(POLICY_TEXT)
    assert str(info.value) == f"line {line} column {column}: {location}: {message}"
    assert info.value.file is None
    with pytest.raises(PolicyError) as info:
        Engine.from_dict(POLICY)
    assert str(info.value) == f"{location}: {message}"
    assert (info.value.file, info.value.line, info.value.column) == (None, None, None)


def test_unreadable_file_names_it(tmp_path):
    """A file that cannot be read: `FILE: cannot read policy file: REASON`, location (file)."""
    with pytest.raises(PolicyError) as info:
        Engine.from_file(tmp_path / "nope.json")
    assert str(info.value) == f"{tmp_path / 'nope.json'}: cannot read policy file: No such file or directory"
    assert info.value.location == "(file)" and info.value.line is None


def test_missing_key_points_at_the_object_that_lacks_it():
    """A required key that is missing is placed at the object that should hold it."""
    text = '{"version": "1",\n "default_action": "Deny", "tools": ["a"], "roles": ["r"],\n "rules": [\n   {"roles": ["r"]}]}'
    with pytest.raises(PolicyError) as info:
        parse_policy(text).compile()
    assert (info.value.location, info.value.line, info.value.column) == ("rules[0]", 4, 4)
    assert info.value.message == "tool_name or tier is required"


def test_compiler_errors_are_placed_too(tmp_path):
    """Errors the compiler finds after validation (an undeclared role) get their place."""
    text = '{"version": "1", "default_action": "Deny", "tools": ["a"], "roles": ["r"],\n' \
           ' "rules": [{"tool_name": "a", "roles": ["r", "ghost"]}]}'
    path = tmp_path / "p.json"
    path.write_text(text)
    with pytest.raises(PolicyError) as info:
        Engine.from_file(path)
    column = text.splitlines()[1].index('"ghost"') + 1
    assert str(info.value) == f"{path}:2:{column}: rules[0].roles[1]: role 'ghost' is not declared in roles"


def test_errors_outside_the_text_are_not_placed():
    """A location the text does not hold (the discovered tools) gets no file or line."""
    source = parse_policy(json.dumps(examples.policy("ops")))
    with pytest.raises(PolicyError) as info:
        source.compile(discovered_tools={"x": "admin"})
    assert info.value.location == "(discovered_tools)"
    assert (info.value.file, info.value.line) == (None, None)


def test_positions_under_escapes_and_astral_characters():
    """Keys written with escapes are found under their decoded names, and columns count
    characters (an astral character is one column, a \\u escape six)."""
    text = '{"version": "\\ud83d\\ude00\U0001F600", "default_action": "Deny", "t\\u006fols": ["\u00e9", 5], ' \
           '"roles": [], "rules": []}'
    with pytest.raises(PolicyError) as info:
        parse_policy(text).compile()
    assert info.value.location == "tools[1]"
    assert (info.value.line, info.value.column) == (1, text.index("5]") + 1)


# ---------------------------------------------------------------- JSON strictness, placed


def test_duplicate_key_placed_at_its_second_occurrence():
    """A key given twice is an error at its second occurrence, the first in the text when
    there are several (the decoder finds the innermost first)."""
    text = '{\n "version": "1",\n "x": {"a": 1, "a": 2},\n "version": "2"}'
    with pytest.raises(PolicyError) as info:
        parse_policy(text)
    assert str(info.value) == "line 3 column 16: x.a: duplicate key 'a'"
    assert info.value.at_key


def test_nan_and_infinity_placed():
    """NaN and Infinity are not JSON: an error at the literal, with its path."""
    with pytest.raises(PolicyError) as info:
        parse_policy('{"rules": [\n  {"x": [1, -Infinity]}]}')
    assert str(info.value) == "line 2 column 13: rules[0].x[1]: -Infinity is not JSON"


def test_syntax_error_names_the_path_being_read(tmp_path):
    """A JSON syntax error keeps the decoder's message, line and column, and names the
    path of the value being read where it broke."""
    path = tmp_path / "p.json"
    path.write_text('{\n "version": "1",\n "tools": ["a",\n   ]}')
    with pytest.raises(PolicyError) as info:
        read_policy(path)
    assert str(info.value) == f"{path}:4:4: tools[1]: Expecting value"
    with pytest.raises(PolicyError, match=r"^line 1 column 1: \(json\): Expecting value$"):
        parse_policy("")


def test_invalid_utf8_placed():
    """Bytes that are not UTF-8: the byte offset, and the line and column of the character
    they should have been."""
    with pytest.raises(PolicyError) as info:
        parse_policy(b'{"version":\n  "\xc3\xa9\xff"}')
    assert str(info.value) == "line 2 column 5: (json): invalid UTF-8 at byte 17"


# ---------------------------------------------------------------- YAML


OPS_YAML = """\
# the ops example, in YAML
version: ops-2.0.0
default_action: Deny
tools: [search_docs, read_file, list_dir, write_file, deploy, transfer_funds, delete_file, delete_bucket]
roles: [agent, oncall, admin]
tool_tiers:
  search_docs: public
  read_file: read
  list_dir: read
  write_file: write
  deploy: write
  transfer_funds: write
  delete_*: destructive
tier_defaults:
  public: allow
  read: allow
  write: {effect: elevate, approvals: 1}
  destructive: {effect: elevate, approvals: 2}
rules:
  - tool_name: read_file
    roles: [agent, oncall]
    effect: deny
    condition:
      Any:
        - StringCheck: {source: Arguments, field: path, op: Glob, value: /etc/*}
        - StringCheck: {source: Arguments, field: path, op: StartsWith, value: /root/}
  - {tier: destructive, roles: [agent], effect: deny}
  - tool_name: write_file
    roles: [agent, oncall]
    condition:
      StringCheck: {source: Arguments, field: path, op: PathGlob, value: /workspace/*/*}
  - tool_name: transfer_funds
    roles: [agent, oncall, admin]
    effect: deny
    condition:
      NumericCheck: {source: Arguments, pointer: /payment/amount, op: Gt, value: 10000}
  - tool_name: transfer_funds
    roles: [oncall, admin]
    condition:
      All:
        - TimeWindow: {days: [Mon, Tue, Wed, Thu, Fri], start: "09:00", end: 17:00, timezone: Europe/Paris}
        - NumericCheck: {source: Context, field: risk_score, op: Lt, value: 50}
        - NumericCheck: {source: Arguments, pointer: /payment/amount, op: Between, value: [0, 5000]}
  - tool_name: transfer_funds
    roles: [agent]
    effect: elevate
    approvals: 2
    condition:
      NumericCheck: {source: Arguments, pointer: /payment/amount, op: Lte, value: 1000}
  - tool_name: deploy
    roles: [oncall, admin]
    condition:
      All:
        - Every:
            source: Arguments
            field: services
            condition:
              StringCheck: {source: Element, op: In, value: [api, web, worker]}
        - Any:
            - Not: {FieldPresent: {source: Context, field: freeze}}
            - StringCheck: {source: Context, field: freeze, op: Ne, value: "on"}
"""


def test_yaml_policy_loads_as_its_json_twin(tmp_path):
    """The ops example written in YAML (plain scalars, 17:00 unquoted) decodes to exactly
    the bundled JSON policy, and from_file and reload decide with it."""
    path = tmp_path / "ops.yaml"
    path.write_text(OPS_YAML)
    assert read_policy(path).data == examples.policy("ops")
    engine = Engine.from_file(path)
    assert engine.blob == Engine.from_dict(examples.policy("ops")).blob
    crm = tmp_path / "crm.YML"
    crm.write_text(json.dumps(examples.policy("crm")))   # JSON is YAML: the name decides the reader
    engine.reload(crm)
    assert engine.evaluate("process_refund", {"amount": 800}, role="agent").decision == "Deny"


def test_yaml_errors_placed(tmp_path):
    """A YAML policy's validation error names the file, PyYAML's line and column, the path."""
    path = tmp_path / "p.yaml"
    path.write_text("version: '1'\ndefault_action: Deny\ntools: [a]\nroles: [r]\nrules:\n"
                    "  - tool_name: a\n    roles: [r]\n    efect: deny\n")
    with pytest.raises(PolicyError) as info:
        Engine.from_file(path)
    assert str(info.value) == f"{path}:8:5: rules[0].efect: unknown key 'efect'"
    engine = Engine.from_dict(examples.policy("crm"))
    with pytest.raises(PolicyError) as info:
        engine.reload(path)
    assert str(info.value) == f"{path}:8:5: rules[0].efect: unknown key 'efect'"


@pytest.mark.parametrize("text, expected", [
    ("a: 1\nb: 2\na: 3\n", "line 3 column 1: a: duplicate key 'a'"),
    ("x: {k: 1, 'k': 2}\n", "line 1 column 11: x.k: duplicate key 'k'"),
    ("tools:\n  1: a\n", "line 2 column 3: tools: a key must be a string, not '1' (quote it)"),
    ("yes: 1\ntrue: 2\n", "line 2 column 1: (policy): a key must be a string, not 'true' (quote it)"),
    ("a: &x [1]\nb: *x\n", "line 2 column 4: (yaml): aliases (*name) are not allowed in a policy: write the value out"),
    ("a: !!timestamp 2024-01-01\n", "line 1 column 4: (yaml): tag 'tag:yaml.org,2002:timestamp' is not allowed in a policy"),
    ("a: !!python/object:os.system x\n",
     "line 1 column 4: (yaml): tag 'tag:yaml.org,2002:python/object:os.system' is not allowed in a policy"),
    ("a: 1\n---\nb: 2\n", "line 2 column 1: (yaml): expected a single document in the stream: but found another document"),
    ("a: [1, 2\n", "line 2 column 1: (yaml): while parsing a flow sequence: expected ',' or ']', but got '<stream end>'"),
    ("a: \x07\n", "line 1 column 4: (yaml): character U+0007 is not allowed in YAML"),
    ("a: !!bool yes\n", "line 1 column 4: (yaml): 'yes' is not a boolean"),
])
def test_yaml_strictness(text, expected):
    """YAML is held to JSON's strictness, each refusal placed: duplicate keys (whatever the
    quoting), keys that are not strings, aliases, tags beyond the core schema (no Python
    objects), several documents, syntax errors, characters YAML refuses."""
    with pytest.raises(PolicyError) as info:
        parse_policy(text, format="yaml")
    assert str(info.value) == expected


def test_yaml_scalars_mean_what_their_json_would():
    """Plain scalars resolve by YAML 1.2's core schema: no yes/on booleans, dates,
    sexagesimal numbers or infinities (strings, as JSON would have them); 017 is 17;
    null, ~ and an empty value are null."""
    text = ("a: [yes, no, on, off, y, n]\nb: 2024-01-01\nc: 17:00\nd: [.inf, .nan, -.inf]\ne: 017\nf: 0o17\n"
            "g: 0x1f\nh: [1e3, 1.5, -0.0, .5]\ni: [null, ~, NULL]\nj: [true, False, TRUE]\nk: 1_000\nl: '5'\nm:\n")
    assert parse_policy(text, format="yaml").data == {
        "a": ["yes", "no", "on", "off", "y", "n"], "b": "2024-01-01", "c": "17:00",
        "d": [".inf", ".nan", "-.inf"], "e": 17, "f": 15, "g": 31, "h": [1000.0, 1.5, -0.0, 0.5],
        "i": [None, None, None], "j": [True, False, True], "k": "1_000", "l": "5", "m": None}


def test_yaml_without_pyyaml_is_one_line(tmp_path, monkeypatch):
    """Without PyYAML a YAML policy is one PolicyError line saying what to install; JSON
    policies do not need it."""
    path = tmp_path / "p.yaml"
    path.write_text(OPS_YAML)
    monkeypatch.setitem(sys.modules, "yaml", None)   # makes `import yaml` fail
    with pytest.raises(PolicyError) as info:
        Engine.from_file(path)
    assert str(info.value) == f"{path}: reading a YAML policy needs PyYAML: pip install 'callgate[yaml]'"
    assert YAML_INSTALL == "pip install 'callgate[yaml]'" and "\n" not in str(info.value)
    assert Engine.from_file(examples.policy_path("ops")).policy_version == "ops-2.0.0"


def test_lint_of_a_source_places_findings(tmp_path):
    """lint() given a PolicySource gives each finding its file, line and column (the key's
    for an unknown key), and str(finding) stays `level: location: message`."""
    path = tmp_path / "p.yaml"
    path.write_text("version: '1'\ndefault_action: Allow\ntools: [a, a]\nroles: [r]\nrules:\n"
                    "  - tool_name: a\n    roles: [r]\n    efect: deny\n")
    found = lint(read_policy(path))
    assert [(f.level, f.location, f.line, f.column) for f in found] == [
        ("warning", "default_action", 2, 17),
        ("warning", "tools[1]", 3, 12),
        ("error", "rules[0].efect", 8, 5),
    ]
    assert all(f.file == str(path) for f in found)
    assert str(found[2]) == "error: rules[0].efect: unknown key 'efect'"
    assert found[2].place == f"{path}:8:5"


def test_an_empty_yaml_file_is_named(tmp_path):
    """An empty YAML file is null, not a policy: the error names the file (there is no
    line to give)."""
    path = tmp_path / "empty.yml"
    path.write_text("# nothing yet\n")
    with pytest.raises(PolicyError) as info:
        Engine.from_file(path)
    assert str(info.value) == f"{path}: (policy): expected an object, got null"
