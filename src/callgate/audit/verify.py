"""Verifying a log: every chain, every link, and the first record that was modified,
deleted, inserted or reordered, named by where it is stored.

A fast pass checks records in storage order against each chain's expected sequence
number and link. Only when that fails is the affected chain read again and diagnosed:
the genuine chain is rebuilt from its first record by following links (whatever the
storage order), and what does not fit it is classified."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import orjson

from .chain import GENESIS, link
from .source import Entry, Source

# database column -> record field (columns are query copies; they must agree with the record)
_COLUMN_FIELDS = {"chain": "chain", "seq": "seq", "ts": "timestamp", "kind": "kind", "principal": "principal",
                  "tool": "tool", "role": "role", "decision": "decision", "rule": "rule"}


@dataclass
class Problem:
    kind: str  # modified | deleted | inserted | reordered | corrupt
    where: str
    message: str
    chain: Optional[str] = None
    seq: Optional[int] = None

    def __str__(self) -> str:
        return f"{self.where}: {self.kind}: {self.message}"


@dataclass
class Report:
    records: int = 0
    chains: Dict[str, Dict[str, Any]] = field(default_factory=dict)  # chain -> {"size", "head"}
    problem: Optional[Problem] = None
    torn: List[str] = field(default_factory=list)
    heads_at: Dict[str, Dict[int, str]] = field(default_factory=dict)  # hashes asked for (checkpoints)
    checkpoint: Optional[str] = None  # a checkpoint failure

    @property
    def ok(self) -> bool:
        return self.problem is None and self.checkpoint is None

    def to_dict(self) -> dict:
        return {"ok": self.ok, "records": self.records, "chains": self.chains, "torn": self.torn,
                "problem": None if self.problem is None else vars(self.problem), "checkpoint": self.checkpoint}


def _parse(entry: Entry) -> Optional[dict]:
    try:
        record = orjson.loads(entry.body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(record, dict) or not isinstance(record.get("chain"), str) or type(record.get("seq")) is not int:
        return None
    return record


def verify(source: Source, want: Optional[Dict[str, int]] = None) -> Report:
    """Check every chain of `source`. want: {chain: seq} whose hashes to keep (checkpoints)."""
    report = Report()
    want = want or {}
    state: Dict[str, list] = {}  # chain -> [next seq, last hash]
    for entry in source.entries():
        if entry.torn:
            report.torn.append(f"{entry.where}: torn record (a write cut short by a crash; never acknowledged)")
            continue
        if entry.junk:
            report.problem = Problem("corrupt", entry.where, "not an audit record (inserted or corrupted line)")
            return report
        record = _parse(entry)
        if record is None:
            report.problem = Problem("corrupt", entry.where, "record is not valid JSON with chain and seq (modified)")
            return report
        if entry.columns is not None:
            for column, name in _COLUMN_FIELDS.items():
                if entry.columns[column] != record.get(name):
                    report.problem = Problem("modified", entry.where,
                                             f"column {column}={entry.columns[column]!r} differs from the hashed "
                                             f"record ({name}={record.get(name)!r})", record["chain"], record["seq"])
                    return report
        chain, seq = record["chain"], record["seq"]
        st = state.get(chain)
        if st is None:
            st = state[chain] = [0, GENESIS]
        if seq != st[0] or link(st[1], entry.body) != entry.hash:
            report.problem = diagnose(source, chain)
            return report
        st[0] = seq + 1
        st[1] = entry.hash
        report.records += 1
        if want.get(chain) == seq:
            report.heads_at.setdefault(chain, {})[seq] = entry.hash.hex()
    report.chains = {c: {"size": st[0], "head": st[1].hex()} for c, st in state.items()}
    return report


def diagnose(source: Source, chain: str) -> Problem:
    """Rebuild `chain` by following links and classify the first entry that does not fit."""
    entries: List[tuple] = []  # (storage index, where, seq, body, hash)
    for entry in source.entries():
        if entry.torn or entry.junk:
            continue
        record = _parse(entry)
        if record is not None and record["chain"] == chain:
            entries.append((len(entries), entry.where, record["seq"], entry.body, entry.hash))
    by_seq: Dict[int, List[tuple]] = defaultdict(list)
    for e in entries:
        by_seq[e[2]].append(e)
    genuine: List[tuple] = []
    prev, s = GENESIS, 0
    while True:
        fits = [e for e in by_seq.get(s, ()) if link(prev, e[3]) == e[4]]
        if not fits:
            break
        pick = fits[0]
        if len(fits) > 1:  # two records both link here: the genuine one is what the next links from
            for e in fits:
                if any(link(e[4], n[3]) == n[4] for n in by_seq.get(s + 1, ())):
                    pick = e
                    break
        genuine.append(pick)
        prev, s = pick[4], s + 1
    findings: List[tuple] = []  # (storage index, Problem)
    on_chain = {id(e) for e in genuine}
    for e in entries:
        if id(e) in on_chain:
            continue
        if e[2] < s:
            g = genuine[e[2]]
            findings.append((e[0], Problem("inserted", e[1], f"a second record with seq {e[2]} that is not part of "
                                           f"the chain (the genuine one is at {g[1]})", chain, e[2])))
        elif e[2] == s:
            findings.append((e[0], Problem("modified", e[1], f"record seq {e[2]} does not match its hash and the "
                                           "record before it (this record, or its hash, was altered)", chain, e[2])))
    later = [e for e in entries if e[2] > s]
    if later and not by_seq.get(s):
        first = min(later, key=lambda e: e[2])
        gap = f"seq {s}" if first[2] == s + 1 else f"seq {s}..{first[2] - 1}"
        findings.append((first[0], Problem("deleted", first[1], f"{gap} missing before this record (seq {first[2]})",
                                           chain, s)))
    for k in range(1, len(genuine)):
        if genuine[k][0] < genuine[k - 1][0]:
            findings.append((genuine[k][0], Problem("reordered", genuine[k][1], f"seq {k} is stored before seq {k - 1} "
                                                    f"(at {genuine[k - 1][1]})", chain, k)))
            break
    if not findings:  # should not happen: the fast pass saw something
        return Problem("modified", "(unknown)", "the chain does not verify", chain)
    return min(findings, key=lambda f: f[0])[1]
