"""Tamper evidence: the hash chain, `callgate audit verify`, signed checkpoints. Each kind of
tampering (flip a byte, delete, swap, forged insert, truncate the tail, edit an indexed
column) is detected and located, in JSONL and in SQLite."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson
import pytest

from callgate import Engine, audit, examples
from callgate.audit.chain import link
from callgate.audit.checkpoint import generate_key, make_checkpoint, verify_with_checkpoint
from callgate.audit.records import encode_line
from callgate.audit.source import Source
from callgate.audit.verify import verify
from support.cli import invoke

N = 12  # decisions; the log also holds the writer's start and stop markers (seq 0 and N + 1)


def write_log(sink, n: int = N) -> None:
    with Engine.from_dict(examples.policy("crm"), audit=sink) as engine:
        for i in range(n):
            engine.evaluate("process_refund", {"order_id": f"O-{i}", "amount": 100 * i}, role="agent",
                            principal=f"user:{i % 3}")


@pytest.fixture
def jsonl(tmp_path) -> Path:
    p = tmp_path / "audit.jsonl"
    write_log(audit.JsonlSink(p))
    return p


@pytest.fixture
def db(tmp_path) -> Path:
    p = tmp_path / "audit.db"
    write_log(audit.SqliteSink(p))
    return p


def lines(p: Path) -> list:
    return p.read_bytes().splitlines(keepends=True)


def check(path: Path, kind: str, where: str) -> None:
    report = verify(Source(str(path)))
    assert not report.ok, "tampering went undetected"
    assert report.problem.kind == kind, str(report.problem)
    assert where in report.problem.where, str(report.problem)


def test_untouched_logs_verify(jsonl, db):
    """A log as written verifies: one chain, every record, seq 0..N+1 (N decisions between
    the writer's start and stop markers), with no warning."""
    for p in (jsonl, db):
        report = verify(Source(str(p)))
        assert report.ok and report.records == N + 2 and report.chains["main"]["size"] == N + 2
        assert report.warnings == []


def test_flip_a_byte_jsonl(jsonl):
    """A changed character inside a record (here an amount) is reported as a modification of that record."""
    data = lines(jsonl)
    k = next(i for i, line in enumerate(data) if b'"amount":500' in line)
    data[k] = data[k].replace(b'"amount":500', b'"amount":400')
    jsonl.write_bytes(b"".join(data))
    check(jsonl, "modified", f"byte {sum(map(len, data[:k]))}")


def test_delete_a_record_jsonl(jsonl):
    """A deleted line is reported as the missing seq, located where the chain resumes."""
    data = lines(jsonl)
    del data[4]
    jsonl.write_bytes(b"".join(data))
    report = verify(Source(str(jsonl)))
    assert report.problem.kind == "deleted" and "seq 4 missing" in report.problem.message


def test_swap_two_records_jsonl(jsonl):
    """Two records exchanged are reported as reordered."""
    data = lines(jsonl)
    data[3], data[4] = data[4], data[3]
    jsonl.write_bytes(b"".join(data))
    report = verify(Source(str(jsonl)))
    assert report.problem.kind == "reordered" and "seq 4 is stored before seq 3" in report.problem.message


def test_forged_insert_jsonl(jsonl):
    """A forged record that even links correctly to its predecessor (the attacker computed
    the hash) is reported as inserted, at its own location, not at the genuine record."""
    data = lines(jsonl)
    prev = orjson.loads(data[5])
    forged = dict(prev["record"], seq=6, decision="Allow", id="forged")
    body = orjson.dumps(forged, option=orjson.OPT_SORT_KEYS)
    data.insert(6, encode_line(body, link(bytes.fromhex(prev["hash"]), body)))
    jsonl.write_bytes(b"".join(data))
    check(jsonl, "inserted", f"byte {sum(map(len, data[:6]))}")


def test_junk_line_jsonl(jsonl):
    """A line that is not a record at all is reported, not skipped."""
    data = lines(jsonl)
    data.insert(2, b"hello\n")
    jsonl.write_bytes(b"".join(data))
    assert verify(Source(str(jsonl))).problem.kind == "corrupt"


def test_sqlite_tampering(db, tmp_path):
    """SQLite: an edited record, a deleted row, two swapped rows, a forged row and an edited
    indexed column (what query filters on) are each detected and located by row."""
    def fresh(name):
        p = tmp_path / name
        p.write_bytes(db.read_bytes())
        return p, sqlite3.connect(p, isolation_level=None)

    p, c = fresh("flip.db")
    rec = c.execute("SELECT record FROM audit_events WHERE pos=8").fetchone()[0]
    assert b'"decision":"Deny"' in rec
    c.execute("UPDATE audit_events SET record=? WHERE pos=8", (rec.replace(b"Deny", b"Allow"),))
    check(p, "modified", "pos=8")

    p, c = fresh("delete.db")
    c.execute("DELETE FROM audit_events WHERE pos=4")
    check(p, "deleted", "pos=5")

    p, c = fresh("swap.db")
    a = c.execute("SELECT chain, seq, ts, kind, principal, tool, role, decision, rule, record, hash FROM audit_events "
                  "WHERE pos IN (3, 4) ORDER BY pos").fetchall()
    for pos, row in ((3, a[1]), (4, a[0])):
        c.execute("UPDATE audit_events SET chain=?, seq=?, ts=?, kind=?, principal=?, tool=?, role=?, decision=?, "
                  "rule=?, record=?, hash=? WHERE pos=?", (*row, pos))
    check(p, "reordered", "pos=3")

    p, c = fresh("insert.db")
    body, h = c.execute("SELECT record, hash FROM audit_events WHERE pos=8").fetchone()
    forged = dict(orjson.loads(body), id="forged", decision="Allow")
    fbody = orjson.dumps(forged, option=orjson.OPT_SORT_KEYS)
    c.execute("INSERT INTO audit_events (pos, chain, seq, ts, kind, principal, tool, role, decision, rule, record, hash)"
              " VALUES (100, 'main', ?, ?, 'decision', ?, ?, ?, 'Allow', ?, ?, ?)",
              (forged["seq"], forged["timestamp"], forged["principal"], forged["tool"], forged["role"],
               forged["rule"], fbody, b"\x01" * 32))
    check(p, "inserted", "pos=100")

    p, c = fresh("column.db")
    c.execute("UPDATE audit_events SET decision='Allow' WHERE pos=9")
    check(p, "modified", "pos=9")


def test_truncated_tail_detected_by_checkpoint(jsonl, tmp_path):
    """Cutting records off the end leaves a valid, shorter chain: only a signed checkpoint
    taken earlier detects it. Appending after a checkpoint is fine; a forged checkpoint is not."""
    key = tmp_path / "ed25519.pem"
    public = generate_key(str(key))
    (tmp_path / "ed25519.pub").write_text(public)
    cp = tmp_path / "cp.json"
    cp.write_bytes(orjson.dumps(make_checkpoint(Source(str(jsonl)), str(key))))
    assert verify_with_checkpoint(Source(str(jsonl)), str(cp), str(tmp_path / "ed25519.pub")).ok

    write_log(audit.JsonlSink(jsonl), 3)  # the log grows: still consistent with the checkpoint
    assert verify_with_checkpoint(Source(str(jsonl)), str(cp)).ok

    data = lines(jsonl)
    jsonl.write_bytes(b"".join(data[:N - 2]))
    assert verify(Source(str(jsonl))).ok  # the chain alone cannot tell
    report = verify_with_checkpoint(Source(str(jsonl)), str(cp))
    assert not report.ok and "truncated" in report.checkpoint and f"{N - 2} " in report.checkpoint

    doc = orjson.loads(cp.read_bytes())
    doc["payload"]["chains"]["main"]["size"] = 1
    cp.write_bytes(orjson.dumps(doc))
    with pytest.raises(ValueError, match="signature"):
        verify_with_checkpoint(Source(str(jsonl)), str(cp))


def test_rotation_keeps_one_chain(tmp_path):
    """A JSONL log rotated by size is one chain across its segments; deleting the oldest
    segment is reported as missing records."""
    p = tmp_path / "rot.jsonl"
    write_log(audit.JsonlSink(p, max_bytes=2000, batch_size=2), 20)
    segs = sorted(tmp_path.glob("rot.jsonl*"))
    assert len([s for s in segs if not s.name.endswith(".lock")]) > 2
    report = verify(Source(str(p)))
    assert report.ok and report.records == 20 + 2
    (tmp_path / "rot.jsonl.1").unlink()
    assert verify(Source(str(p))).problem.kind == "deleted"


def test_cli_verify_checkpoint_and_exit_codes(jsonl, tmp_path):
    """`callgate audit verify` exits 0 on a sound log and 1 naming the record otherwise;
    `audit keygen` and `audit checkpoint` produce what `verify --checkpoint` checks."""
    r = invoke("audit", "verify", str(jsonl))
    assert r.exit_code == 0 and f"{N + 2} records" in r.output
    key = tmp_path / "k.pem"
    assert invoke("audit", "keygen", str(key)).exit_code == 0
    r = invoke("audit", "checkpoint", str(jsonl), "--key", str(key), "-o", str(tmp_path / "cp.json"))
    assert r.exit_code == 0, r.output
    r = invoke("audit", "verify", str(jsonl), "--checkpoint", str(tmp_path / "cp.json"),
               "--public-key", str(key) + ".pub")
    assert r.exit_code == 0, r.output
    jsonl.write_bytes(b"".join(lines(jsonl)[:-1]))
    r = invoke("audit", "verify", str(jsonl), "--checkpoint", str(tmp_path / "cp.json"), "--json")
    assert r.exit_code == 1 and orjson.loads(r.output)["checkpoint"].startswith("chain 'main' truncated")
