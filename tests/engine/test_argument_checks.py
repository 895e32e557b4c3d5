"""UrlCheck and PathCheck through the engine (docs/arguments.md): the policy language refuses
what the checks cannot compare, the core's loader refuses malformed descriptors, the native
engine and the wasm module give the same decision and exact reason, JSON escapes cannot
smuggle a bypass past the parsers, inputs of any size cost time linear in their length, and
`callgate explain` shows what each parser found and agrees with the engine.

(The per-case corpus with its exact reasons is tests/corpus/arguments_*.json, run against the
reference, native, wasm and `callgate test` by tests/engine/test_v2_differential.py.)
"""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest

import callgate
from callgate import BlobError, PolicyError
from callgate.bytecode import NONE_SET, disassemble
from callgate.compiler import compile_policy
from callgate.explain import explain_request
from callgate._native import LoadedPolicy
from support.v2blobs import build

A = {"source": "Arguments", "field": "v"}


def _policy(cond: dict[str, Any], effect: str = "allow") -> dict[str, Any]:
    return {"version": "args-test", "default_action": "Deny", "tools": ["t"], "roles": ["r"],
            "rules": [{"tool_name": "t", "roles": ["r"], "effect": effect, "condition": cond}]}


def _engines(cond: dict[str, Any]) -> list[Any]:
    engines = [callgate.Engine.from_dict(_policy(cond))]
    try:
        from callgate.wasm import WasmEngine
        engines.append(WasmEngine.from_dict(_policy(cond)))
    except ImportError:  # pragma: no cover - wasmtime is in the test extra
        pass
    return engines


def _decide(cond: dict[str, Any], value: Any) -> tuple[str, str]:
    out = {(d.decision, d.reason) for d in (e.evaluate("t", {"v": value}, role="r") for e in _engines(cond))}
    assert len(out) == 1, out
    return out.pop()


@pytest.mark.parametrize("cond,message", [
    ({"UrlCheck": {**A, "hosts_in": ["example.com:443"]}}, "is not a host alone"),
    ({"UrlCheck": {**A, "hosts_in": ["https://example.com"]}}, "is not a host alone"),
    ({"UrlCheck": {**A, "hosts_in": ["b\u00fccher.de"]}}, "IDNA"),
    ({"UrlCheck": {**A, "hosts_in": ["1.2.3.999"]}}, "invalid IPv4"),
    ({"UrlCheck": {**A, "host_suffixes_in": ["10.0.0.1"]}}, "not a domain name suffix"),
    ({"UrlCheck": {**A, "schemes_in": ["file"]}}, "schemes_in"),
    ({"UrlCheck": {**A, "ports_in": [65536]}}, "ports_in"),
    ({"UrlCheck": {**A, "ip": "private"}}, "ip"),
    ({"UrlCheck": {**A, "hosts_in": []}}, "hosts_in"),
    ({"UrlCheck": {**A, "host": ["a"]}}, "host"),
    ({"PathCheck": {**A, "within": ["srv/data"]}}, "is relative"),
    ({"PathCheck": {**A, "within": ["/srv/\u0000"]}}, "NUL"),
    ({"PathCheck": {**A, "style": "windows", "within": ["C:data"]}}, "drive"),
    ({"PathCheck": {**A, "style": "windows", "not_within": ["C:\\CON"]}}, "Windows device"),
    ({"PathCheck": {**A, "extensions_in": ["csv"]}}, "is not an extension"),
    ({"PathCheck": {**A, "extensions_in": [".a/b"]}}, "is not an extension"),
    ({"PathCheck": {**A, "style": "mac"}}, "style"),
])
def test_policy_refuses_what_the_checks_cannot_compare(cond: dict[str, Any], message: str) -> None:
    """A host, root or extension the parsers would never produce is a PolicyError naming it,
    not a rule that silently never matches."""
    with pytest.raises(PolicyError) as exc:
        compile_policy(_policy(cond))
    assert message in str(exc.value)


def test_policy_lists_are_stored_canonical() -> None:
    """Hosts listed in any form a browser accepts match the canonical host (127.1, [0::1],
    a trailing dot, upper case); Windows roots match case-insensitively."""
    cond = {"UrlCheck": {**A, "hosts_in": ["127.1", "[0::1]", "Example.COM."]}}
    for url in ("http://127.0.0.1/", "http://0x7f000001/", "http://[::1]/", "http://example.com/",
                "http://EXAMPLE.com./"):
        assert _decide(cond, url)[0] == "Allow", url
    cond = {"PathCheck": {**A, "style": "windows", "within": ["c:/DATA/"]}}
    assert _decide(cond, "C:\\data\\x")[0] == "Allow"


def _blob_with(desc_words: list[int], op: str = "URL") -> bytes:
    def cond(c: Any) -> None:
        s = c.b.set(["https"], '["https"]')
        words = [s if w == -1 else w for w in desc_words]
        at = len(c.b.words)
        c.b.words.extend(words)
        c.b.emit(op, 0, c.ref(0, "v")[0], at)
    return build(cond).encode()


def _load_error(blob: bytes) -> str:
    with pytest.raises(BlobError) as exc:
        LoadedPolicy(blob)
    return str(exc.value.code)


def test_loader_refuses_malformed_descriptors() -> None:
    """The trust boundary: unknown flag bits, a set index out of range, a descriptor running
    past the words section; a well-formed one loads."""
    LoadedPolicy(_blob_with([1, -1, NONE_SET, NONE_SET, NONE_SET]))
    LoadedPolicy(_blob_with([3, NONE_SET, NONE_SET, NONE_SET], "PATHCHK"))
    assert "blob_descriptor" in _load_error(_blob_with([4, -1, NONE_SET, NONE_SET, NONE_SET]))
    assert "blob_descriptor" in _load_error(_blob_with([4, NONE_SET, NONE_SET, NONE_SET], "PATHCHK"))
    assert "blob_bounds" in _load_error(_blob_with([0, 7, NONE_SET, NONE_SET, NONE_SET]))
    assert "blob_bounds" in _load_error(_blob_with([0, NONE_SET, NONE_SET]))


def test_loader_checks_the_sql_dialect_flags() -> None:
    """A sqlchk descriptor names one dialect: PostgreSQL (no bit), SQLite or MySQL, each with or
    without read_only; both dialect bits, or a bit it does not know, are refused."""
    for flags in (0, 1, 2, 3, 4, 6):
        LoadedPolicy(_blob_with([flags, 0, NONE_SET, NONE_SET, NONE_SET], "SQL"))
    for flags in (5, 7, 8):
        assert "blob_descriptor" in _load_error(_blob_with([flags, 0, NONE_SET, NONE_SET, NONE_SET], "SQL"))


def test_loader_refuses_a_descriptor_used_as_two_kinds() -> None:
    """One words index named as a url descriptor and as a pathchk descriptor is refused."""
    def cond(c: Any) -> None:
        at = len(c.b.words)
        c.b.words.extend([0, NONE_SET, NONE_SET, NONE_SET, NONE_SET])
        c.b.emit("URL", 0, c.ref(0, "v")[0], at)
        c.b.emit("PATHCHK", 0, c.ref(0, "v")[0], at)
        c.b.emit("AND")
    assert "blob_descriptor" in _load_error(build(cond).encode())


@pytest.mark.parametrize("raw,decision", [
    ('"http:\\/\\/127.1\\/"', "Deny"),                       # escaped slashes
    ('"http://\\u0031\\u0032\\u0037.0.0.1/"', "Deny"),         # escaped digits
    ('"http://exa\\u0009mple.com/"', "Allow"),                # an escaped tab is removed
    ('"http://example.com\\u0040evil.org/"', "Deny"),         # an escaped '@'
    ('"https://example.com/"', "Allow"),
])
def test_json_escapes_are_decoded_before_parsing(raw: str, decision: str) -> None:
    """The check sees the decoded string, so an escape cannot hide a bypass."""
    cond = {"UrlCheck": {**A, "host_suffixes_in": ["example.com"], "ip": "public"}}
    for e in _engines(cond):
        d = e.evaluate_json("t", b'{"v":' + raw.encode() + b"}", b'{"role":"r"}')
        assert d.decision == decision, (raw, d.reason)


def test_path_escapes_are_decoded_before_normalizing() -> None:
    """A NUL written as \\u0000 is a NUL (U, never a shortened path); escaped dots still climb."""
    cond = {"PathCheck": {**A, "within": ["/srv/data"]}}
    for e in _engines(cond):
        d = e.evaluate_json("t", b'{"v":"/srv/data/x\\u0000/../../etc"}', b'{"role":"r"}')
        assert d.decision == "Deny" and d.reason.endswith("is not a path the check can read (rule 1)")
        d = e.evaluate_json("t", b'{"v":"/srv/data/\\u002e\\u002e/etc"}', b'{"role":"r"}')
        assert d.decision == "Deny" and 'normalizes to "/srv/etc"' in d.reason


def test_deny_rules_deny_what_cannot_be_read() -> None:
    """A deny over an unreadable URL applies (U denies): an IDNA host cannot dodge a blocklist."""
    cond = {"UrlCheck": {**A, "hosts_in": ["evil.org"]}}
    engine = callgate.Engine.from_dict(_policy(cond, "deny") | {"default_action": "Allow"})
    assert engine.evaluate("t", {"v": "https://evil.org/"}, role="r").decision == "Deny"
    assert engine.evaluate("t", {"v": "https://\uff45vil.org/"}, role="r").decision == "Deny"
    assert engine.evaluate("t", {"v": "https://good.org/"}, role="r").decision == "Allow"


def _elapsed(engine: Any, value: Any) -> float:
    start = time.perf_counter()
    engine.evaluate("t", {"v": value}, role="r")
    return time.perf_counter() - start


def test_cost_is_linear_in_the_input() -> None:
    """A 1 MB URL or path is refused (U) without being parsed; a 4 KB path of 2,000 segments
    under a deep root is decided in about the time of a short one (the prefixes share one
    hash), far from the quadratic bound."""
    url = callgate.Engine.from_dict(_policy({"UrlCheck": {**A, "ip": "public"}}))
    assert url.evaluate("t", {"v": "http://a/" + "x" * (1 << 20)}, role="r").reason.endswith(
        "is not a URL the check can read (rule 1)")
    deep = "/" + "/".join(["a"] * 2000)
    path = callgate.Engine.from_dict(_policy({"PathCheck": {**A, "within": ["/" + "/".join(["a"] * 1000)]}}))
    assert path.evaluate("t", {"v": deep}, role="r").decision == "Allow"
    assert path.evaluate("t", {"v": "/b" + deep}, role="r").decision == "Deny"
    short = min(_elapsed(path, "/a/a") for _ in range(20))
    long = min(_elapsed(path, "/b" + deep) for _ in range(20))
    assert long < short + 0.002, (short, long)


def test_explain_shows_what_the_parser_found() -> None:
    """`callgate explain` names the parsed host and its class, agrees with the engine, and
    shows the normalized path."""
    policy = _policy({"All": [{"UrlCheck": {**A, "ip": "public"}},
                              {"PathCheck": {"source": "Arguments", "field": "p", "within": ["/srv"]}}]})
    compiled = compile_policy(policy)
    engine = callgate.Engine.from_dict(policy)
    ex = explain_request(compiled, engine, "t", "r", {"v": "http://0x7f.1/", "p": "/srv/../etc"})
    assert ex.agrees and ex.engine.decision == "Deny"
    text = orjson.dumps(ex.to_dict()).decode()
    assert "host 127.0.0.1 (loopback), port 80" in text
    ex = explain_request(compiled, engine, "t", "r", {"v": "https://x.org/", "p": "/srv/../etc"})
    assert ex.agrees and "normalized /etc" in orjson.dumps(ex.to_dict()).decode()


def test_disassembler_lists_the_checks() -> None:
    """The listing shows each check's flags and lists as the policy wrote them."""
    blob = compile_policy(_policy({"All": [{"UrlCheck": {**A, "schemes_in": ["https"], "userinfo": False}},
                                           {"PathCheck": {**A, "within": ["/srv/data"]}}]})).blob
    text = disassemble(blob)
    assert 'URL     Arguments.v flags 0x1, schemes_in ["https"]' in text
    assert 'PATHCHK Arguments.v flags 0x0, within ["/srv/data"]' in text


@pytest.mark.parametrize("sql,decision", [('SELECT * FROM U&"d\\0061t"', "Deny"), ('INTO U&"d\\0061t"', "Deny"),
                                          ("SELECT U&'x'", "Allow")])
def test_explain_reads_unicode_escaped_names(sql: str, decision: str) -> None:
    """`callgate explain` on a PostgreSQL U&"..." name (the port of the scanner once failed on
    it with a TypeError, found by fuzz/fuzz_sql_ref_diff.py): an explanation that agrees with
    the engine, never an exception."""
    policy = _policy({"SqlCheck": {**A, "dialect": "postgres", "read_only": True, "tables_in": ["t"]}})
    ex = explain_request(compile_policy(policy), callgate.Engine.from_dict(policy), "t", "r", {"v": sql})
    assert ex.agrees and ex.engine.decision == decision


@pytest.mark.parametrize("dialect", ["postgres", "sqlite", "mysql"])
@pytest.mark.parametrize("sql", ["\x00", "SELECT 1\x00; DROP TABLE t", "SELECT 'a\x00b'", "SELECT 1 /* \x00 */",
                                 "SELECT * FROM t -- \x00\n", "SELECT 1 \\\x00"])
def test_sql_with_a_nul_byte_is_not_read(dialect: str, sql: str) -> None:
    """Pins: a NUL byte anywhere in the statement (JSON carries it as \\u0000, raw it is a
    JSON error) makes SqlCheck U, plain and under Not, in every dialect; `callgate explain`
    says so. PostgreSQL's protocol and SQLite's prepare end the text at a NUL and drivers
    refuse it, so the server would not run the text read (found by fuzz/fuzz_sql_ref_diff.py:
    pglast stops at the NUL)."""
    for negated in (False, True):
        cond = {"SqlCheck": {**A, "dialect": dialect, "read_only": True}}
        policy = _policy({"Not": cond} if negated else cond)
        engine = callgate.Engine.from_dict(policy)
        d = engine.evaluate("t", {"v": sql}, role="r")
        assert d.decision == "Deny" and "is not SQL the check can read" in d.reason
        ex = explain_request(compile_policy(policy), engine, "t", "r", {"v": sql})
        assert ex.agrees and "NUL byte" in orjson.dumps(ex.to_dict()).decode()


def _reason(value: str, text: str) -> str:
    """The deny reason of rule 1 over Arguments.v = value, for a text after the value."""
    return f"t denied for role 'r': Arguments.v = {orjson.dumps(value).decode()} {text} (rule 1)"


def _explained(cond: dict[str, Any], value: str, effect: str = "allow") -> str:
    """`callgate explain` over the value: it agrees with the engine (the Python port of the
    check decides as the core does); returns its text."""
    policy = _policy(cond, effect) | ({"default_action": "Allow"} if effect == "deny" else {})
    ex = explain_request(compile_policy(policy), callgate.Engine.from_dict(policy), "t", "r", {"v": value})
    assert ex.agrees, value
    return orjson.dumps(ex.to_dict()).decode()


URL_STRICT = {"UrlCheck": {**A, "schemes_in": ["https"], "host_suffixes_in": ["example.com"], "ports_in": [443],
                           "userinfo": False, "ip": "public"}}


@pytest.mark.parametrize("url", [
    "http://api.example.com\\@127.0.0.1:8765/secret", "https://api.example.com\\@evil.com/",
    "https:\\\\api.example.com/", "https:/\\api.example.com/", "https:\\/api.example.com/",
    "https://api.example.com\\", "https:api.example.com\\@evil.com/",
])
def test_a_backslash_in_the_authority_is_not_read(url: str) -> None:
    """Pins: a backslash among the slashes after the scheme or ending the authority makes
    UrlCheck U (denied by an allow rule, with the not-read reason, native and wasm alike;
    these URLs were allowed before): WHATWG reads host api.example.com, but RFC 3986 clients
    (httpx, curl, urllib) read userinfo `api.example.com\\` and connect to 127.0.0.1 or
    evil.com. `callgate explain` agrees and says what was found."""
    assert _decide(URL_STRICT, url) == ("Deny", _reason(url, "is not a URL the check can read"))
    assert "has a backslash before or ending its authority" in _explained(URL_STRICT, url)


@pytest.mark.parametrize("url", ["https://api.example.com/a\\b", "https://api.example.com/?q=\\@127.0.0.1",
                                 "https://api.example.com#\\@evil.com", "https://api.example.com:443/\\\\x"])
def test_a_backslash_after_the_authority_is_allowed(url: str) -> None:
    """Pins: a backslash in the path, query or fragment stays allowed: every reader finds
    host api.example.com there."""
    assert _decide(URL_STRICT, url) == ("Allow", "t allowed for role 'r': rule 1 condition passed")
    _explained(URL_STRICT, url)


WIN_DATA = {"PathCheck": {**A, "style": "windows", "within": ["C:\\data"], "not_within": ["C:\\data\\secret"],
                          "extensions_in": [".csv"]}}
WIN_NOT_SECRET = {"PathCheck": {**A, "style": "windows", "not_within": ["C:\\data\\secret"]}}


@pytest.mark.parametrize("cond,path,found", [
    (WIN_DATA, "C:\\data\\SECRE~1\\passwords.csv", "8.3 short name"),
    (WIN_DATA, "C:\\data\\NOTES~1.CSV", "8.3 short name"),
    (WIN_DATA, "C:/data/x/../PUBLIC~12/a.csv", "8.3 short name"),
    (WIN_NOT_SECRET, "\\\\localhost\\C$\\data\\secret\\x", "administrative share"),
    (WIN_NOT_SECRET, "\\\\127.0.0.1\\c$\\data\\secret\\x", "administrative share"),
    (WIN_NOT_SECRET, "//fileserver/D$/x", "administrative share"),
])
def test_windows_short_names_and_administrative_shares_are_not_read(cond: dict[str, Any], path: str,
                                                                    found: str) -> None:
    """Pins: on Windows a segment with '~' and a digit (an NTFS 8.3 short name: SECRE~1 may be
    `secret`, NOTES~1.CSV `notes.csv_backup`) and a UNC share that is a drive letter and '$'
    (the administrative share of C:, on any server) make PathCheck U: denied with the not-read
    reason, native and wasm alike (allowed before); explain agrees and names the form."""
    assert _decide(cond, path) == ("Deny", _reason(path, "is not a path the check can read"))
    assert found in _explained(cond, path)


def test_windows_paths_without_those_forms_are_decided_as_before() -> None:
    """Pins the control cases: a plain name, '~' without a digit and an ordinary share are
    allowed; the long name `secret` in any case is inside (F, Windows compares ASCII case
    insensitively, unchanged)."""
    allowed = ("Allow", "t allowed for role 'r': rule 1 condition passed")
    for path in ("C:\\data\\notes.csv", "C:\\data\\a~b.csv", "c:\\DATA\\x.csv"):
        assert _decide(WIN_DATA, path) == allowed, path
        _explained(WIN_DATA, path)
    assert _decide(WIN_NOT_SECRET, "\\\\srv\\share\\data\\secret\\x") == allowed
    path = "C:\\Data\\SECRET\\x.csv"
    assert _decide(WIN_DATA, path) == ("Deny", _reason(path, 'is inside ["C:\\\\data\\\\secret"]'))


POSIX_DATA = {"PathCheck": {**A, "style": "posix", "within": ["/Users/me/data"],
                            "not_within": ["/Users/me/data/secret"]}}


@pytest.mark.parametrize("path", [
    "/Users/me/data/SECRET/keys.txt", "/Users/me/data/Secret", "/Users/me/data/./sEcReT/../SECRET/x",
    "/Users/me/data/\u017fecret/keys.txt", "/Users/me/data/secre\u0301t/x", "/Users/me/data/\u00e9/x",
    "/Users/me/Data/x", "/USERS/me/data/x",
])
def test_posix_paths_a_case_insensitive_volume_may_place_in_a_root_are_not_read(path: str) -> None:
    """Pins: a POSIX path under a root only with ASCII case folded (`/Users/me/data/SECRET` on
    APFS, vfat, exFAT, CIFS or ext4 casefold is the secret directory), or with a non-ASCII byte
    in a segment at the depth of a root's segments that folding or normalization might make
    equal (`ſ` folds to `s`), makes PathCheck U: denied with the not-read reason, native and
    wasm alike (the first was allowed before); explain agrees."""
    assert _decide(POSIX_DATA, path) == ("Deny", _reason(path, "is not a path the check can read"))
    _explained(POSIX_DATA, path)


def test_posix_paths_no_folding_places_in_a_root_are_decided_exactly() -> None:
    """Pins the control cases: paths that differ from every root in an ASCII segment are
    decided as before (a non-ASCII name deeper than the roots' segments too)."""
    allowed = ("Allow", "t allowed for role 'r': rule 1 condition passed")
    for path in ("/Users/me/data/public/x", "/Users/me/data/secretariat/x", "/Users/me/data/x/\u00e9",
                 "/Users/me/data/SECRETS"):
        assert _decide(POSIX_DATA, path) == allowed, path
        _explained(POSIX_DATA, path)
    assert _decide(POSIX_DATA, "/Users/me/data/secret/x") == (
        "Deny", _reason("/Users/me/data/secret/x", 'is inside ["/Users/me/data/secret"]'))
    assert _decide(POSIX_DATA, "/Users/me/other") == (
        "Deny", _reason("/Users/me/other", 'is outside ["/Users/me/data"]'))
    assert _decide(POSIX_DATA, "/tmp/\u00e9") == ("Deny", _reason("/tmp/\u00e9", 'is outside ["/Users/me/data"]'))


@pytest.mark.parametrize("cond,path,control", [
    ({"PathCheck": {**A, "within": ["/Users/me/.ssh"]}}, "/Users/me/.SSH/id_rsa", "/Users/me/x"),
    ({"Not": {"PathCheck": {**A, "not_within": ["/Users/me/.ssh"]}}}, "/Users/me/.Ssh/id_rsa", "/Users/me/x"),
    ({"PathCheck": {**A, "not_within": ["/srv/public"]}}, "/srv/PUBLIC/x", "/srv/public/x"),
])
def test_posix_case_folding_denies_under_deny_rules_too(cond: dict[str, Any], path: str, control: str) -> None:
    """Pins: the case-insensitive reading is U, not F, so it fails closed whichever way a rule
    uses the check: a deny rule over `within` or a negated `not_within` still applies to a
    case variant of the root (F would let `/Users/me/.SSH/id_rsa` through on macOS), and a
    deny rule over `not_within` still applies to `/srv/PUBLIC/x` (another directory on a
    case-sensitive volume); the control path is allowed."""
    policy = _policy(cond, "deny") | {"default_action": "Allow"}
    for engine in (callgate.Engine.from_dict(policy), _wasm(policy)):
        d = engine.evaluate("t", {"v": path}, role="r")
        assert d.decision == "Deny" and d.reason.endswith(
            f"could not be evaluated: Arguments.v = {orjson.dumps(path).decode()} is not a path the check can read"), d.reason
        assert engine.evaluate("t", {"v": control}, role="r").decision == "Allow"
    _explained(cond, path, "deny")


def _wasm(policy: dict[str, Any]) -> Any:
    from callgate.wasm import WasmEngine
    return WasmEngine.from_dict(policy)
