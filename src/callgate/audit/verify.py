"""Verifying a log: every chain, every link, and the first record that was modified,
deleted, inserted or reordered, named by where it is stored; chains nobody vouches for;
lines that are not records; writers that did not stop cleanly.

A fast pass checks records in storage order against each chain's expected sequence
number and link. Only when that fails is the affected chain read again and diagnosed:
the genuine chain is rebuilt from its first record by following links (whatever the
storage order), and what does not fit it is classified.

Findings (the log does not verify): an integrity problem (modified, deleted, inserted,
reordered, corrupt), a JSONL line that is not exactly an envelope and that no crash
explains, a database row that is not a record, and, when asked for, a chain that is not
vouched for (its seq-0 record is not a genesis record signed by a trusted writer key, or,
with a checkpoint and no writer keys, the checkpoint does not name it). Warnings (the log
verifies): torn records a crash explains (the unterminated last line of the log, or bytes
a later writer's start marker vouches for exactly), and writers that did not stop cleanly
(audit.markers). Notes: what was not checked (chains not authenticated)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Set

import orjson

from .chain import GENESIS, link
from .genesis import unvouched
from .markers import START, STOP, voucher_of
from .markers import KIND as WRITER
from .source import Entry, Source, SourceError

# database column -> record field (columns are query copies; they must agree with the record)
_COLUMN_FIELDS = {"chain": "chain", "seq": "seq", "ts": "timestamp", "kind": "kind", "principal": "principal",
                  "tool": "tool", "role": "role", "decision": "decision", "rule": "rule"}


@dataclass
class Problem:
    """One finding of verify: its kind, where it is (for people), what is wrong, and the
    chain and sequence number when known."""

    kind: str  # modified | deleted | inserted | reordered | corrupt | unvouched
    where: str
    message: str
    chain: Optional[str] = None
    seq: Optional[int] = None

    def __str__(self) -> str:
        return f"{self.where}: {self.kind}: {self.message}"


@dataclass
class Report:
    """What verify found: records and chains checked, findings (problems), warnings (torn
    records a crash explains, unclean stops) and notes on what was authenticated."""

    records: int = 0
    chains: Dict[str, Dict[str, Any]] = field(default_factory=dict)  # chain -> {"size", "head"}
    findings: List[Problem] = field(default_factory=list)
    torn: List[str] = field(default_factory=list)  # warnings: torn records a crash explains
    unclean: List[str] = field(default_factory=list)  # warnings: writers that did not stop cleanly
    notes: List[str] = field(default_factory=list)  # what was (not) checked
    heads_at: Dict[str, Dict[int, str]] = field(default_factory=dict)  # hashes asked for (checkpoints)
    first_at: Dict[str, str] = field(default_factory=dict)  # where each chain's first record is
    checkpoint: Optional[str] = None  # a checkpoint failure

    @property
    def problem(self) -> Optional[Problem]:
        """The first finding (None when there is none)."""
        return self.findings[0] if self.findings else None

    @property
    def ok(self) -> bool:
        """Whether the log verifies: no finding and no checkpoint failure (warnings allowed)."""
        return not self.findings and self.checkpoint is None

    @property
    def warnings(self) -> List[str]:
        """The torn records a crash explains, then the writers that did not stop cleanly."""
        return self.torn + self.unclean

    def to_dict(self) -> Dict[str, Any]:
        """The JSON form (`callgate audit verify --json`)."""
        return {"ok": self.ok, "records": self.records, "chains": self.chains, "torn": self.torn,
                "unclean_stops": self.unclean, "notes": self.notes,
                "problem": None if self.problem is None else vars(self.problem),
                "findings": [vars(p) for p in self.findings], "checkpoint": self.checkpoint}


class _Chain:
    """The fast pass's state of one chain."""

    __slots__ = ("next_seq", "head", "running", "markers")

    def __init__(self) -> None:
        self.next_seq = 0
        self.head = GENESIS
        self.running = False  # the last writer marker seen is a start
        self.markers = False


def _parse(entry: Entry) -> Optional[Dict[str, Any]]:
    try:
        record = orjson.loads(entry.body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(record, dict) or not isinstance(record.get("chain"), str) or type(record.get("seq")) is not int:
        return None
    return record


def verify(source: Source, want: Optional[Dict[str, int]] = None, writer_keys: Optional[Set[bytes]] = None,
           checkpoint_chains: Optional[Set[str]] = None) -> Report:
    """Check every chain of `source`. want: {chain: seq} whose hashes to keep (checkpoints).
    writer_keys: raw Ed25519 public keys; every chain must begin with a genesis record signed
    by one of them. checkpoint_chains: the chains a checkpoint names; without writer keys,
    any other chain is a finding. Never raises on what the store holds: a store that cannot
    be read is a finding too."""
    report = Report()
    try:
        _check(source, report, want or {}, writer_keys, checkpoint_chains)
    except SourceError as exc:
        report.findings.append(Problem("corrupt", exc.where, f"cannot be read ({exc.detail})"))
    _note_authentication(report, writer_keys, checkpoint_chains)
    return report


def _check(source: Source, report: Report, want: Dict[str, int], writer_keys: Optional[Set[bytes]],
           checkpoint_chains: Optional[Set[str]]) -> None:
    state: Dict[str, _Chain] = {}
    strays: List[Entry] = []  # JSONL lines that are not envelopes: judged once the vouchers are known
    vouchers: List[tuple[int, int, int, str, str]] = []  # (segment, offset, length, sha256 hex, where) from start markers
    for entry in source.entries():
        if entry.defect is not None:
            report.findings.append(Problem("modified", entry.where, entry.defect))
            return
        if entry.stray is not None:
            strays.append(entry)
            continue
        record = _parse(entry)
        if record is None:
            report.findings.append(Problem("corrupt", entry.where,
                                           "record is not valid JSON with chain and seq (modified)"))
            return
        if entry.columns is not None:
            for column, name in _COLUMN_FIELDS.items():
                if entry.columns[column] != record.get(name):
                    report.findings.append(Problem(
                        "modified", entry.where, f"column {column}={entry.columns[column]!r} differs from the hashed "
                        f"record ({name}={record.get(name)!r})", record["chain"], record["seq"]))
                    return
        chain, seq = record["chain"], record["seq"]
        st = state.get(chain)
        if st is None:
            st = state[chain] = _Chain()
            report.first_at[chain] = entry.where
        if seq != st.next_seq or link(st.head, entry.body) != entry.hash:
            # strays that cannot be torn records are findings whatever comes later
            report.findings.extend(_stray_problem(e) for e in strays if not e.cut_short)
            report.findings.append(diagnose(source, chain))
            return
        st.next_seq = seq + 1
        st.head = entry.hash
        report.records += 1
        if want.get(chain) == seq:
            report.heads_at.setdefault(chain, {})[seq] = entry.hash.hex()
        if seq == 0 and writer_keys is not None:
            why = unvouched(record, writer_keys)
            if why is not None:
                report.findings.append(Problem("unvouched", entry.where, f"chain {chain!r} is not vouched for by "
                                               f"a trusted writer key: {why}", chain, 0))
        if record.get("kind") == WRITER:
            _marker(report, chain, st, record, seq)
            found = voucher_of(record)
            if found is not None:
                vouchers.append((entry.segment, *found, entry.where))
    report.chains = {c: {"size": st.next_seq, "head": st.head.hex()} for c, st in state.items()}
    for chain, st in state.items():
        if st.running:
            report.unclean.append(f"writer of chain {chain!r} did not stop cleanly after seq {st.next_seq - 1} (or "
                                  "it is still running): decisions returned after it may be missing")
        elif not st.markers:
            report.notes.append(f"chain {chain!r} has no writer markers: a crash of its writer cannot be told "
                                "from a clean stop")
    _judge_strays(source, report, strays, vouchers)
    if checkpoint_chains is not None and writer_keys is None:
        for chain in state:
            if chain not in checkpoint_chains:
                report.findings.append(Problem(
                    "unvouched", report.first_at[chain], f"chain {chain!r} is not named in the checkpoint and not "
                    "vouched for by a writer key: it was started after the checkpoint was taken, or forged", chain))


def _marker(report: Report, chain: str, st: _Chain, record: Dict[str, Any], seq: int) -> None:
    """Follow a chain's writer markers: a start while the previous writer had not stopped
    means that writer did not stop cleanly."""
    st.markers = True
    state = record.get("state")
    if state == START:
        if st.running:
            report.unclean.append(f"writer of chain {chain!r} did not stop cleanly after seq {seq - 1}: decisions "
                                  "returned after it may be missing")
        st.running = True
    elif state == STOP:
        st.running = False


def _judge_strays(source: Source, report: Report, strays: List[Entry],
                  vouchers: List[tuple[int, int, int, str, str]]) -> None:
    """A line that is not a record is a warning only when a crash explains it: a start
    marker vouches for exactly its bytes, or it is the log's unterminated last line and
    has the shape of a write cut short. Anything else is a finding."""
    checked: Dict[tuple[int, int, int, str], bool] = {}
    unexplained: List[Entry] = []
    for e in strays:
        end = e.offset + len(e.stray)  # type: ignore[arg-type]  # (strays are the entries with a stray line)
        by = None
        for segment, offset, length, digest, where in vouchers:
            if segment < e.segment or not (offset <= e.offset and end <= offset + length):
                continue
            key = (e.segment, offset, length, digest)
            if key not in checked:
                checked[key] = hashlib.sha256(source.read_range(e.segment, offset, length)).hexdigest() == digest
            if checked[key]:
                by = where
                break
        if by is not None:
            report.torn.append(f"{e.where}: torn record (a write cut short by a crash; never acknowledged), "
                               f"accounted for by the writer that started at {by}")
        elif e.last and not e.terminated and e.cut_short:
            report.torn.append(f"{e.where}: torn record at the end of the log (a write cut short by a crash; "
                               "never acknowledged)")
        else:
            unexplained.append(e)
    report.findings.extend(_stray_problem(e) for e in unexplained[:_STRAYS_SHOWN])
    if len(unexplained) > _STRAYS_SHOWN:  # a file of garbage: one finding for the rest, not thousands
        rest = unexplained[_STRAYS_SHOWN:]
        report.findings.append(Problem("corrupt", rest[0].where, f"and {len(rest)} more lines that are not records "
                                       f"(the last at {rest[-1].where})"))


_STRAYS_SHOWN = 20


def _stray_problem(e: Entry) -> Problem:
    line = e.stray or b""
    if not line:
        what = "an empty line"
    elif e.cut_short:
        what = ("a torn record that no writer accounted for (only the log's unterminated last line, or bytes a "
                "later writer's start marker vouches for, are explained by a crash)")
    elif b"\r" in line:
        what = "a line with a carriage return: not exactly a canonical record line"
    else:
        what = ('not exactly a canonical record line {"hash":"<64 lower-case hex digits>","record":...}')
    return Problem("corrupt", e.where, f"{what} (inserted or altered)")


def _note_authentication(report: Report, writer_keys: Optional[Set[bytes]],
                         checkpoint_chains: Optional[Set[str]]) -> None:
    if writer_keys is not None:
        report.notes.insert(0, "chains are authenticated by writer keys: every chain must begin with a genesis "
                               "record signed by a trusted key (records appended to a chain are held by its links "
                               "and by checkpoints, not by the key)")
    elif checkpoint_chains is not None:
        report.notes.insert(0, "chains are authenticated by the checkpoint only: a chain it does not name is a "
                               "finding (no --writer-key was given)")
    else:
        report.notes.insert(0, "chains are not authenticated: without --writer-key or --checkpoint a chain that "
                               "anyone who can write the store started (a forged one) verifies like a genuine one")


def diagnose(source: Source, chain: str) -> Problem:
    """Rebuild `chain` by following links and classify the first entry that does not fit."""
    entries: List[tuple[int, str, int, bytes, bytes]] = []  # (storage index, where, seq, body, hash)
    for entry in source.entries():
        if not entry.is_record:
            continue
        record = _parse(entry)
        if record is not None and record["chain"] == chain:
            entries.append((len(entries), entry.where, record["seq"], entry.body, entry.hash))
    by_seq: Dict[int, List[tuple[int, str, int, bytes, bytes]]] = {}
    for e in entries:
        by_seq.setdefault(e[2], []).append(e)
    genuine: List[tuple[int, str, int, bytes, bytes]] = []
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
    findings: List[tuple[int, Problem]] = []  # (storage index, Problem)
    on_chain = {id(e) for e in genuine}
    for e in entries:
        if id(e) in on_chain:
            continue
        if e[2] < s:
            g = genuine[e[2]] if e[2] >= 0 else None
            at = f" (the genuine one is at {g[1]})" if g is not None else ""
            findings.append((e[0], Problem("inserted", e[1], f"a second record with seq {e[2]} that is not part of "
                                           f"the chain{at}", chain, e[2])))
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
