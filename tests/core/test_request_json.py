"""The strict request reader: every kind of bad input gets its own error, never a decision."""

from __future__ import annotations

import pytest

from callgate import Engine, RequestError, examples

CTX = b'{"role":"agent","agent_attrs":{},"resource_attrs":{}}'


@pytest.fixture(scope="module", params=["strict", "perso"])
def engine(request) -> Engine:
    return Engine.from_dict(examples.policy("crm"), request.param)


BAD_ARGS = [
    (b'{"amount":1,"amount":2}', "duplicate_key"),
    (b'{"x":{"a":1,"a":2}}', "duplicate_key"),
    (b'{"x":[{"a":1},{"b":1,"b":1}]}', "duplicate_key"),
    (b'{"a":1,"\\u0061":2}', "duplicate_key"),
    (b'{' + b",".join(b'"k%d":%d' % (i, i) for i in range(40)) + b',"k7":0}', "duplicate_key"),
    (b'{"amount":NaN}', "nonfinite"),
    (b'{"amount":Infinity}', "nonfinite"),
    (b'{"amount":-Infinity}', "nonfinite"),
    (b'{"amount":1e400}', "number_range"),
    (b'{"amount":-1e400}', "number_range"),
    (b'{"amount":1' + b"0" * 400 + b'}', "number_range"),
    (b'{"a":"\\ud800"}', "surrogate"),
    (b'{"a":"\\udc00"}', "surrogate"),
    (b'{"a":"\\ud800\\u0041"}', "surrogate"),
    (b'{"a":"\xc0\xaf"}', "utf8"),
    (b'{"a":"\xe0\x80\xaf"}', "utf8"),
    (b'{"a":"\xed\xa0\x80"}', "utf8"),
    (b'{"a":"\xf4\x90\x80\x80"}', "utf8"),
    (b'{"a":"\xff"}', "utf8"),
    (b'{"\xc0\xaf":1}', "utf8"),
    (b'{"a":"\x01"}', "control_char"),
    (b'{"a":"\\x"}', "escape"),
    (b'{"a":"\\u12G4"}', "escape"),
    (b'{"a":', "truncated"),
    (b'{"a":"abc', "truncated"),
    (b'{"a":[1,2', "truncated"),
    (b'', "truncated"),
    (b'{"a":1} x', "trailing"),
    (b'{}{}', "trailing"),
    (b'{"a":01}', "syntax"),
    (b'{"a":1,}', "syntax"),
    (b'{"a" 1}', "syntax"),
    (b"{'a':1}", "syntax"),
    (b'{"a":tru}', "syntax"),
    (b'{"a":-}', "syntax"),
    (b'{"a":1.}', "syntax"),
    (b'{"a":.5}', "syntax"),
]


@pytest.mark.parametrize("args,code", BAD_ARGS, ids=[c + "-" + repr(a[:24]) for a, c in BAD_ARGS])
def test_bad_arguments_json(engine, args, code):
    """Each malformed or hostile arguments text raises RequestError with its own code."""
    with pytest.raises(RequestError) as exc:
        engine.evaluate_json("process_refund", args, CTX)
    assert exc.value.code == code
    assert exc.value.input == "arguments"


BAD_CTX = [
    (b'{"role":"agent","role":"admin"}', "duplicate_key"),
    (b'{"agent_attrs":{}}', "no_role"),
    (b'{"role":7}', "type"),
    (b'{"role":"agent","agent_attrs":[1]}', "type"),
    (b'{"role":"agent","resource_attrs":"x"}', "type"),
    (b'["agent"]', "type"),
    (b'{"role":"agent","agent_attrs":{"a":1,"a":1}}', "duplicate_key"),
    (b'{"role":"agent"', "truncated"),
]


@pytest.mark.parametrize("ctx,code", BAD_CTX, ids=[c for _, c in BAD_CTX])
def test_bad_context_json(engine, ctx, code):
    """The context object is read as strictly as the arguments, and must carry a string role."""
    with pytest.raises(RequestError) as exc:
        engine.evaluate_json("view_customer", b"{}", ctx)
    assert exc.value.code == code
    assert exc.value.input == "context"


def test_null_attributes_mean_empty(engine):
    """null attributes are the same as {} (missing data, never an error or a grant)."""
    d = engine.evaluate_json("access_pii", b"{}", b'{"role":"manager","agent_attrs":null,"resource_attrs":null}')
    assert d.decision == "Deny"


def test_error_offset_points_at_the_problem():
    """A duplicate key's error names the byte offset of the repeated key."""
    engine = Engine.from_dict(examples.policy("crm"))
    with pytest.raises(RequestError) as exc:
        engine.evaluate_json("view_customer", b'{"aa":1, "aa":2}', CTX)
    assert exc.value.offset == 10
    assert "at byte 10 of arguments" in str(exc.value)


def test_arguments_must_be_object_in_strict():
    """Default semantics: arguments that are not an object are a request error."""
    with pytest.raises(RequestError) as exc:
        Engine.from_dict(examples.policy("crm")).evaluate_json("view_customer", b"[1]", CTX)
    assert exc.value.code == "type"


def test_arguments_not_object_have_no_fields_in_perso():
    """perso semantics: arguments that are not an object simply have no fields."""
    engine = Engine.from_dict(examples.policy("crm"), "perso")
    assert engine.evaluate_json("view_customer", b"[1]", CTX).decision == "Allow"
    assert engine.evaluate_json("process_refund", b"500", CTX).decision == "Deny"


def test_nesting_limit(engine):
    """Nesting up to max_depth (128) is read; one more level is an error; 100,000 levels do not crash."""
    ok = b'{"a":' + b"[" * 127 + b"]" * 127 + b"}"
    assert engine.evaluate_json("view_customer", ok, CTX).decision == "Allow"
    too_deep = b'{"a":' + b"[" * 128 + b"]" * 128 + b"}"
    with pytest.raises(RequestError) as exc:
        engine.evaluate_json("view_customer", too_deep, CTX)
    assert exc.value.code == "depth"
    hostile = b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(RequestError) as exc:
        engine.evaluate_json("view_customer", hostile, CTX)
    assert exc.value.code == "depth"


def test_depth_limit_is_a_setting():
    """max_depth is per engine."""
    engine = Engine.from_dict(examples.policy("crm"), max_depth=3)
    assert engine.evaluate_json("view_customer", b'{"a":[[1]]}', CTX).allowed
    with pytest.raises(RequestError):
        engine.evaluate_json("view_customer", b'{"a":[[[1]]]}', CTX)


def test_size_limit(engine):
    """A 50 MB argument exceeds the default 16 MiB limit: too_large, checked before reading."""
    big = b'{"blob":"' + b"x" * (50 << 20) + b'"}'
    with pytest.raises(RequestError) as exc:
        engine.evaluate_json("view_customer", big, CTX)
    assert exc.value.code == "too_large"


def test_size_limit_is_a_setting():
    """max_bytes is per engine: a larger limit reads a 20 MB argument and decides."""
    engine = Engine.from_dict(examples.policy("crm"), max_bytes=64 << 20)
    big = b'{"blob":"' + b"x" * (20 << 20) + b'","amount":5}'
    assert engine.evaluate_json("process_refund", big, CTX).allowed


def test_key_limit():
    """More keys open at once than max_keys is an error of its own."""
    engine = Engine.from_dict(examples.policy("crm"), max_keys=8)
    many = b"{" + b",".join(b'"k%d":1' % i for i in range(9)) + b"}"
    with pytest.raises(RequestError) as exc:
        engine.evaluate_json("view_customer", many, CTX)
    assert exc.value.code == "too_many_keys"


def test_nul_inside_string_is_significant():
    """'admin\\u0000x' is not 'admin': a StringCheck In ['admin'] does not pass."""
    engine = Engine.from_dict(examples.policy("crm"))
    d = engine.evaluate_json("delete_customer", b"{}",
                             b'{"role":"admin","agent_attrs":{"user_id":"a","role":"admin\\u0000x"},'
                             b'"resource_attrs":{"owner_id":"b"}}')
    assert d.decision == "Deny"
    assert d.reason.startswith('delete_customer denied for role \'admin\': AgentAttributes.user_id = "a" does not equal')


def test_escaped_strings_compare_decoded():
    """Escapes are decoded before comparing: "\\u0061dmin" is "admin", "\\ud83d\\ude00" is U+1F600."""
    engine = Engine.from_dict(examples.policy("crm"))
    d = engine.evaluate_json("delete_customer", b"{}",
                             b'{"role":"admin","agent_attrs":{"role":"\\u0061dmin"},"resource_attrs":{}}')
    assert d.allowed
    d = engine.evaluate_json("delete_customer", b"{}",
                             b'{"role":"admin","agent_attrs":{"user_id":"\\ud83d\\ude00"},'
                             b'"resource_attrs":{"owner_id":"\xf0\x9f\x98\x80"}}')
    assert d.allowed


class Unserializable:
    pass


@pytest.mark.parametrize("args,code", [
    ({"amount": float("nan")}, "nonfinite"),
    ({"amount": float("inf")}, "nonfinite"),
    ({"x": [1, {"y": float("-inf")}]}, "nonfinite"),
    ({"amount": {1, 2}}, "unserializable"),
    ({"amount": b"bytes"}, "unserializable"),
    ({"amount": Unserializable()}, "unserializable"),
    ({"s": "\ud800"}, "utf8"),
])
def test_python_values_json_cannot_carry(engine, args, code):
    """evaluate() refuses values JSON cannot carry (NaN, sets, bytes, objects, lone surrogates)."""
    with pytest.raises(RequestError) as exc:
        engine.evaluate("process_refund", args, role="agent")
    assert exc.value.code == code


def test_big_integers_are_carried(engine):
    """Integers beyond 64 bits are valid JSON and are decided on (as doubles by NumericCheck)."""
    d = engine.evaluate("process_refund", {"amount": 2**70}, role="agent")
    assert d.decision == "Deny"


def test_tool_and_role_must_be_unicode(engine):
    """A tool or role that is not valid Unicode is a request error."""
    with pytest.raises(RequestError):
        engine.evaluate("view\ud800", {}, role="agent")
    with pytest.raises(RequestError):
        engine.evaluate("view_customer", {}, role="\udfff")
    with pytest.raises(RequestError) as exc:
        engine.evaluate_json(b"view\xff", b"{}", CTX)
    assert exc.value.code == "utf8"


def test_error_is_never_an_allow_then_next_call_works(engine):
    """After any request error, the next valid call is decided normally."""
    for args, _ in BAD_ARGS:
        with pytest.raises(RequestError):
            engine.evaluate_json("view_customer", args, CTX)
        assert engine.evaluate_json("view_customer", b"{}", CTX).allowed


@pytest.mark.parametrize("bad,code", [(b"\x01", "control_char"), (b"\x1f", "control_char"), (b"\xff", "utf8"),
                                      (b"\xc0\xaf", "utf8"), (b"\\q", "escape"), (b"\\u12G4", "escape")])
def test_string_faults_at_every_offset_native_and_wasm(bad: bytes, code: str) -> None:
    """The string reader looks for a quote, a backslash, a control character or a byte >= 0x80
    16 bytes at a time (SSE2), then 8 at a time, then byte by byte; the wasm module has no
    SSE2. A fault placed at every offset of a long string, so that each of those paths meets
    it, gets the same code and the same byte offset from the native engine and the wasm module,
    and a plain string of every length up to 70 bytes reads as one."""
    wasm = pytest.importorskip("callgate.wasm")
    engines = [Engine.from_dict(examples.policy("crm")), wasm.WasmEngine.from_dict(examples.policy("crm"))]
    for pad in range(0, 70):
        args = b'{"order_id":"' + b"x" * pad + bad + b"y" * 40 + b'"}'
        for engine in engines:
            with pytest.raises(RequestError) as exc:
                engine.evaluate_json("view_customer", args, CTX)
            assert (exc.value.code, exc.value.offset) == (code, 13 + pad), (engine, pad)
        plain = b'{"order_id":"' + b"x" * pad + b'"}'
        assert len({e.evaluate_json("view_customer", plain, CTX).decision for e in engines}) == 1
