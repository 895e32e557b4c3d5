"""Forged chains and lines that are not records: a chain anyone can start (seq 0 links to
zeros, no key needed) is caught by writer keys (a signed genesis record at seq 0) or by a
checkpoint that does not name it; without either verify says chains are not
authenticated. A JSONL line that is not exactly a canonical envelope is a finding unless a
crash explains it (the log's unterminated last line, or bytes a later writer's start
marker vouches for). A SQLite row whose record or hash is TEXT is a finding, never a
traceback; and verify returns a report, never raises, on any garbage."""

from __future__ import annotations

import base64
import hashlib
import random
import sqlite3
import uuid
from pathlib import Path

import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callgate import Engine, audit, examples
from callgate.audit.chain import GENESIS, link
from callgate.audit.checkpoint import make_checkpoint, verify_with_checkpoint
from callgate.audit.genesis import trusted_keys
from callgate.audit.records import encode_line, event_columns
from callgate.audit.source import Source
from callgate.audit.verify import Report, verify
from support.cli import invoke

SORT = orjson.OPT_SORT_KEYS
ALLOWED = ("view_customer", {"customer_id": "C-1"})
DENIED = ("delete_customer", {"customer_id": "C-1"})


def write_log(sink, n: int = 4) -> None:
    with Engine.from_dict(examples.policy("crm"), audit=sink) as engine:
        for i in range(n):
            engine.evaluate(*(ALLOWED if i % 2 == 0 else DENIED), role="agent", principal=f"user:{i}")


def keypair(tmp_path: Path, name: str) -> tuple:
    """(private key object, path of the private PEM, path of the public PEM)."""
    key = Ed25519PrivateKey.generate()
    private = tmp_path / f"{name}.pem"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    public = tmp_path / f"{name}.pub.pem"
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    return key, private, public


def forged_record(chain: str = "forged", seq: int = 0) -> dict:
    """A backdated Allow of a destructive call, in a chain of the forger's own."""
    return {"kind": "decision", "chain": chain, "seq": seq, "id": "00000000-0000-4000-8000-000000000000",
            "trace_id": "t", "timestamp": "2020-01-01T00:00:00.000000Z", "tool": "delete_customer",
            "args": {"customer_id": "C-9"}, "role": "admin", "principal": "user:mallory",
            "agent_attributes": {}, "resource_attributes": {}, "decision": "Allow",
            "reason": "delete_customer allowed for role 'admin'", "rule": 4, "approvals_required": 0,
            "policy_version": "perso-1.0.0", "policy_digest": "0" * 64, "engine_version": "0.1.0"}


def forged_line(record: dict, prev: bytes = GENESIS) -> bytes:
    body = orjson.dumps(record, option=SORT)
    return encode_line(body, link(prev, body))


def insert_forged_row(db: Path, record: dict) -> None:
    body = orjson.dumps(record, option=SORT)
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO audit_events (chain, seq, ts, kind, principal, tool, role, decision, rule, record, "
                     "hash) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                     (record["chain"], record["seq"], *event_columns(record), body, link(GENESIS, body)))


def verify_cli(*args: str) -> tuple:
    r = invoke("audit", "verify", *map(str, args))
    return r.exit_code, r.output


# ---------------------------------------------------------------- forged chains


@pytest.mark.parametrize("at", [0, 3, -1])
def test_a_forged_chain_in_jsonl_needs_a_writer_key_or_checkpoint_to_be_caught(tmp_path, at):
    """A one-record chain of the forger's own, inserted anywhere in a JSONL log: verify
    alone passes it but says chains are not authenticated; --writer-key reports it as not
    vouched for; a checkpoint taken before reports it as a chain it does not name."""
    key, private, public = keypair(tmp_path, "writer")
    path = tmp_path / "a.jsonl"
    write_log(audit.JsonlSink(path, writer_key=private))
    checkpoint = tmp_path / "cp.json"
    checkpoint.write_bytes(orjson.dumps(make_checkpoint(Source(str(path)), str(private))))
    lines = path.read_bytes().splitlines(keepends=True)
    lines.insert(at if at >= 0 else len(lines), forged_line(forged_record()))
    path.write_bytes(b"".join(lines))

    code, out = verify_cli(path)
    assert code == 0 and "note: chains are not authenticated" in out
    code, out = verify_cli(path, "--writer-key", public)
    assert code == 1
    assert ("FAILED: " in out and "unvouched: chain 'forged' is not vouched for by a trusted writer key: its first "
            "record (seq 0) is a 'decision' record, not a signed genesis record") in out
    assert "chain 'main'" not in out.split("FAILED")[1]  # the genuine chain is vouched for
    report = verify_with_checkpoint(Source(str(path)), str(checkpoint), str(tmp_path / "writer.pub.pem"))
    assert not report.ok and [p.chain for p in report.findings] == ["forged"]
    assert "is not named in the checkpoint and not vouched for by a writer key" in report.problem.message


def test_a_forged_chain_in_sqlite_is_caught_by_writer_key_and_checkpoint(tmp_path):
    """The same forgery as a SQLite row (columns consistent, hash from the genesis link):
    --writer-key and --checkpoint report it; without them it is counted by query and stats,
    with --writer-key they leave it out and say so."""
    key, private, public = keypair(tmp_path, "writer")
    db = tmp_path / "a.db"
    write_log(audit.SqliteSink(db, writer_key=key))
    checkpoint = tmp_path / "cp.json"
    checkpoint.write_bytes(orjson.dumps(make_checkpoint(Source(str(db)), str(private))))
    insert_forged_row(db, forged_record())
    assert verify(Source(str(db))).ok
    report = verify(Source(str(db)), writer_keys=trusted_keys([public]))
    assert [(p.kind, p.chain, p.where) for p in report.findings] == [("unvouched", "forged", "row pos=8")]  # after genesis, start, 4, stop
    report = verify_with_checkpoint(Source(str(db)), str(checkpoint))
    assert [(p.kind, p.chain) for p in report.findings] == [("unvouched", "forged")]

    plain = invoke("audit", "stats", str(db), "--json")
    assert orjson.loads(plain.output)["records"] == 5
    keyed = invoke("audit", "stats", str(db), "--json", "--writer-key", str(public))
    assert keyed.exit_code == 0
    stats = orjson.loads(keyed.stdout)
    assert stats["records"] == 4 and stats["excluded"] == {"forged": 1}
    r = invoke("audit", "query", str(db), "--json", "--writer-key", str(public))
    assert "mallory" not in r.stdout and len(r.stdout.splitlines()) == 4
    assert "note: 1 events of chains not vouched for by a trusted writer key were left out: 'forged' (1)" in r.stderr


def test_writer_key_signs_each_new_chain(tmp_path):
    """With writer_key= (an object or a PEM path) a new chain begins with a genesis record at
    seq 0 (kind "chain", the public key, an Ed25519 signature), then the start marker; a
    writer resuming the chain adds none; verify --writer-key passes it and says chains are
    authenticated; another key, or an altered genesis (chain rehashed by the forger), is a
    finding."""
    key, private, public = keypair(tmp_path, "writer")
    path = tmp_path / "a.jsonl"
    write_log(audit.JsonlSink(path, writer_key=str(private)), 2)
    write_log(audit.JsonlSink(path, writer_key=key), 2)
    recs = [orjson.loads(line)["record"] for line in path.read_bytes().splitlines()]
    assert [r["kind"] for r in recs].count("chain") == 1
    genesis = recs[0]
    assert (genesis["kind"], genesis["seq"], genesis["chain"]) == ("chain", 0, "main")
    assert base64.b64decode(genesis["public_key"]) == key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert recs[1]["kind"] == "writer" and recs[1]["state"] == "start"
    code, out = verify_cli(path, "--writer-key", public)
    assert code == 0 and "note: chains are authenticated by writer keys" in out

    _, _, other = keypair(tmp_path, "other")
    code, out = verify_cli(path, "--writer-key", other)
    assert code == 1 and "its genesis record is signed by a key that is not trusted" in out
    code, _ = verify_cli(path, "--writer-key", other, "--writer-key", public)
    assert code == 0

    # the forger edits the genesis record's time and rehashes the whole chain: it links, but
    # the signature no longer covers what the record says
    prev, out_lines = GENESIS, []
    for i, record in enumerate(recs):
        if i == 0:
            record = dict(record, timestamp="2020-01-01T00:00:00.000000Z")
        line = forged_line(record, prev)
        prev = bytes.fromhex(orjson.loads(line)["hash"])
        out_lines.append(line)
    path.write_bytes(b"".join(out_lines))
    assert verify(Source(str(path))).ok
    report = verify(Source(str(path)), writer_keys=trusted_keys([public]))
    assert "its genesis signature does not verify" in report.problem.message


def test_bad_writer_keys_are_one_line_errors(tmp_path):
    """A writer_key that is no Ed25519 private key is a ValueError saying so; a --writer-key
    file that is no public key is a one-line error (exit 2), never a traceback."""
    with pytest.raises(ValueError, match="writer_key .*missing.pem: cannot load"):
        audit.JsonlSink(tmp_path / "a.jsonl", writer_key=str(tmp_path / "missing.pem"))
    with pytest.raises(ValueError, match="expected an Ed25519 private key"):
        audit.SqliteSink(tmp_path / "a.db", writer_key=b"not a key")
    junk = tmp_path / "junk.pem"
    junk.write_text("hello")
    path = tmp_path / "a.jsonl"
    write_log(audit.JsonlSink(path), 1)
    r = invoke("audit", "verify", str(path), "--writer-key", str(junk))
    assert r.exit_code == 2 and r.output.startswith("error: writer key") and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1


# ---------------------------------------------------------------- lines that are not records


def test_a_torn_looking_line_mid_file_is_a_finding(tmp_path):
    """A line that looks like a record cut short, inserted between records, is not explained
    by any crash (no writer accounted for it): a finding, not a warning."""
    path = tmp_path / "a.jsonl"
    write_log(audit.JsonlSink(path))
    lines = path.read_bytes().splitlines(keepends=True)
    lines.insert(2, lines[1][:60] + b"\n")
    path.write_bytes(b"".join(lines))
    report = verify(Source(str(path)))
    assert not report.ok and report.problem.kind == "corrupt"
    assert "a torn record that no writer accounted for" in report.problem.message
    assert report.torn == []


@pytest.mark.parametrize("tail", [b"\r\n", b"\r", b"x"])
def test_bytes_after_the_last_record_are_a_finding(tmp_path, tail):
    """A carriage return (or anything else) added to the last line does not pass that record
    off as torn: the line is not exactly an envelope, and it is a finding."""
    path = tmp_path / "a.jsonl"
    write_log(audit.JsonlSink(path))
    data = path.read_bytes()
    path.write_bytes(data[:-1] + tail)
    report = verify(Source(str(path)))
    assert not report.ok and report.problem.kind == "corrupt" and report.torn == []
    if b"\r" in tail:
        assert "carriage return" in report.problem.message


def test_upper_case_hash_hex_is_a_finding(tmp_path):
    """The envelope must be exactly canonical: a hash in upper-case hex is a finding."""
    path = tmp_path / "a.jsonl"
    write_log(audit.JsonlSink(path))
    lines = path.read_bytes().splitlines(keepends=True)
    head = orjson.loads(lines[2])["hash"]
    lines[2] = lines[2].replace(head.encode(), head.upper().encode())
    path.write_bytes(b"".join(lines))
    report = verify(Source(str(path)))
    assert not report.ok and report.problem.kind == "corrupt"
    assert report.problem.where == f"a.jsonl byte {len(lines[0]) + len(lines[1])}"


def test_the_writer_vouches_for_the_torn_tail_it_leaves(tmp_path):
    """A writer opening a file whose end was torn by a crash records, in its start marker,
    the offset, length and SHA-256 of those bytes; verify then reports them as a torn
    record accounted for (a warning). The same bytes altered, or a torn line elsewhere,
    stay findings."""
    path = tmp_path / "a.jsonl"
    write_log(audit.JsonlSink(path))
    data = path.read_bytes()
    torn = data.splitlines(keepends=True)[2][:150]  # half a record, as a crash leaves it
    path.write_bytes(data + torn)
    report = verify(Source(str(path)))
    assert report.ok and len(report.torn) == 1 and "at the end of the log" in report.torn[0]

    write_log(audit.JsonlSink(path), 1)
    start = [r for r in (orjson.loads(line)["record"] for line in path.read_bytes().splitlines() if
                         line.startswith(b'{"hash":"') and line.endswith(b"}"))
             if r["kind"] == "writer" and r["state"] == "start"][-1]
    assert start["torn"] == {"offset": len(data), "length": len(torn), "sha256": hashlib.sha256(torn).hexdigest()}
    report = verify(Source(str(path)))
    assert report.ok, str(report.problem)
    assert len(report.torn) == 1 and "accounted for by the writer that started at a.jsonl byte" in report.torn[0]

    altered = path.read_bytes()
    at = len(data) + 100
    path.write_bytes(altered[:at] + (b"0" if altered[at:at + 1] != b"0" else b"1") + altered[at + 1:])
    report = verify(Source(str(path)))
    assert not report.ok and "a torn record that no writer accounted for" in report.problem.message


# ---------------------------------------------------------------- SQLite column types


@pytest.mark.parametrize("column", ["record", "hash"])
def test_a_text_column_is_a_finding_not_a_traceback(tmp_path, column):
    """A row whose record or hash column holds TEXT (what a hand-made INSERT leaves) is a
    modified record, named by row, from the library and from the command line (exit 1, no
    traceback)."""
    db = tmp_path / "a.db"
    write_log(audit.SqliteSink(db))
    with sqlite3.connect(db) as conn:
        conn.execute(f"UPDATE audit_events SET {column} = CAST({column} AS TEXT) WHERE pos = 3")
    report = verify(Source(str(db)))
    assert not report.ok and report.problem.kind == "modified" and report.problem.where == "row pos=3"
    assert report.problem.message.startswith(f"column {column} is TEXT, not a BLOB")
    code, out = verify_cli(db)
    assert code == 1 and f"FAILED: row pos=3: modified: column {column} is TEXT, not a BLOB" in out
    assert "Traceback" not in out


def test_a_hash_of_the_wrong_length_is_a_finding(tmp_path):
    """A hash column of other than 32 bytes is a modified record."""
    db = tmp_path / "a.db"
    write_log(audit.SqliteSink(db))
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE audit_events SET hash = x'0102' WHERE pos = 2")
    report = verify(Source(str(db)))
    assert report.problem.kind == "modified" and "holds 2 bytes" in report.problem.message


def test_unreadable_stores_are_one_line_answers(tmp_path):
    """A file with SQLite's header and garbage after it: verify reports it as a finding
    (exit 1); query and stats say it cannot be read (exit 2); a malformed checkpoint is a
    one-line error; never a traceback."""
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 8)
    code, out = verify_cli(bad)
    assert code == 1 and "FAILED" in out and "cannot be read" in out and "Traceback" not in out
    for command in ("query", "stats"):
        r = invoke("audit", command, str(bad))
        assert r.exit_code == 2 and "cannot be read" in r.output and "Traceback" not in r.output
    log = tmp_path / "a.jsonl"
    write_log(audit.JsonlSink(log), 1)
    cp = tmp_path / "cp.json"
    for content in (b"[]", b'{"payload": {"chains": {"main": 3}}}', b"not json",
                    b'{"payload": {"chains": {}}, "signature": 5}'):
        cp.write_bytes(content)
        code, out = verify_cli(log, "--checkpoint", cp)
        assert code in (1, 2) and out.startswith("error: ") and "Traceback" not in out


# ---------------------------------------------------------------- garbage in, a report out


def _valid_jsonl(tmp_path: Path) -> bytes:
    path = tmp_path / "valid.jsonl"
    if not path.exists():
        write_log(audit.JsonlSink(path), 3)
    return path.read_bytes()


def _valid_db(tmp_path: Path) -> bytes:
    path = tmp_path / "valid.db"
    if not path.exists():
        write_log(audit.SqliteSink(path), 3)
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA journal_mode=DELETE")  # everything in the one file, which is copied
        conn.close()
    return path.read_bytes()


def _mutate(data: bytes, seed: int, edits: int) -> bytes:
    rng = random.Random(seed)
    out = bytearray(data)
    for _ in range(edits):
        op = rng.randrange(4)
        at = rng.randrange(len(out) + 1)
        if op == 0 and out:
            out[min(at, len(out) - 1)] = rng.randrange(256)
        elif op == 1:
            out[at:at] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 8)))
        elif op == 2:
            del out[at:at + rng.randrange(1, 64)]
        else:
            out[at:at] = rng.choice([b"\n", b"\r", b"}", b'{"hash":"', b"\x00" * 4])
    return bytes(out)


def _verify_file(path: Path, data: bytes) -> Report:
    path.write_bytes(data)
    report = verify(Source(str(path)))
    assert isinstance(report, Report)
    assert report.ok == (not report.findings and report.checkpoint is None)
    return report


GARBAGE = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@GARBAGE
@given(st.binary(max_size=2000))
def test_verify_of_random_bytes_returns_a_report(tmp_path, data):
    """Any bytes as a JSONL log: verify returns a report, never raises."""
    _verify_file(tmp_path / "random.jsonl", data)


@GARBAGE
@given(st.integers(0, 2**32), st.integers(1, 8))
def test_verify_of_a_mutated_jsonl_log_returns_a_report(tmp_path, seed, edits):
    """A valid JSONL log with random edits (bytes changed, inserted, deleted; newlines, CRs,
    braces, envelope heads, NULs added): verify returns a report, never raises."""
    _verify_file(tmp_path / "mutated.jsonl", _mutate(_valid_jsonl(tmp_path), seed, edits))


@GARBAGE
@given(st.integers(0, 2**32), st.integers(1, 8))
def test_verify_of_a_mutated_sqlite_file_returns_a_report(tmp_path, seed, edits):
    """A valid SQLite log with random edits to the database file (its header kept, so it is
    read as SQLite): verify returns a report, never raises."""
    data = _valid_db(tmp_path)
    mutated = data[:16] + _mutate(data[16:], seed, edits)
    _verify_file(tmp_path / f"mutated-{uuid.uuid4().hex}.db", mutated)  # a fresh file: no WAL of another example


@GARBAGE
@given(st.integers(0, 2**32), st.sampled_from(["record", "hash", "chain", "seq", "kind", "ts"]),
       st.one_of(st.text(max_size=20), st.integers(-2**63, 2**63 - 1), st.binary(max_size=40), st.none(),
                 st.floats()))
def test_verify_of_odd_sqlite_values_returns_a_report(tmp_path, seed, column, value):
    """Any value of any type in any column of a row: verify returns a report (a finding),
    never raises."""
    db = tmp_path / f"odd-{uuid.uuid4().hex}.db"  # a fresh file: no WAL of another example
    db.write_bytes(_valid_db(tmp_path))
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute(f"UPDATE audit_events SET {column} = ? WHERE pos = ?", (value, 1 + seed % 5))
    except sqlite3.IntegrityError:  # NOT NULL: the schema keeps that one out
        return
    finally:
        conn.close()
    report = verify(Source(str(db)))
    assert isinstance(report, Report)


_ODD = st.recursive(st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.floats(allow_nan=False)
                    | st.text(max_size=12) | st.sampled_from(["decision", "gap", "approval", "Elevate", "Allow",
                                                             "writer", "chain", "2026-01-01T00:00:00.000000Z"]),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                    max_leaves=6)
_FIELDS = ["kind", "timestamp", "tool", "role", "principal", "decision", "rule", "reason", "args", "approval",
           "approvals_required", "lost", "masked", "context", "chain", "seq", "state"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.fixed_dictionaries({}, optional={f: _ODD for f in _FIELDS}), min_size=1, max_size=4))
def test_reading_commands_answer_any_record_values(tmp_path, bodies):
    """Records of any shape (fields of any JSON type, as an unverified log may hold) in
    well-formed lines: query, stats, tail and replay answer (exit 0, 1 or 2), never with a
    traceback."""
    path = tmp_path / f"odd-{uuid.uuid4().hex}.jsonl"
    lines = []
    for body in bodies:
        data = orjson.dumps(body, option=SORT)
        lines.append(encode_line(data, link(GENESIS, data)))
    path.write_bytes(b"".join(lines))
    policy = tmp_path / "crm.json"
    policy.write_bytes(orjson.dumps(examples.policy("crm")))
    for command in (["audit", "query", str(path)], ["audit", "query", str(path), "--json", "--since", "1d"],
                    ["audit", "stats", str(path)], ["audit", "stats", str(path), "--json"],
                    ["audit", "tail", str(path)], ["replay", str(path), "--policy", str(policy)]):
        r = invoke(*command)
        assert r.exit_code in (0, 1, 2) and (r.exception is None or isinstance(r.exception, SystemExit)), \
            (command, r.exception)
