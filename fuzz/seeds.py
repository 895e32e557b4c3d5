"""Write a seed corpus for fuzz_request: the CRM cases in both request forms, plus
edge cases (escapes, deep nesting, big numbers, duplicate keys). With a second directory,
also write format-2 seed blobs for fuzz_blob that use every v2 instruction (paths, globs,
Length, Type, TimeWindow, nested Every/Some), built by tests/support/v2blobs.py."""

import sys
from pathlib import Path

import orjson

from callgate import examples

out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
seeds = []
for c in examples.cases("crm"):
    packed = orjson.dumps([c["tool"], c["role"], c["args"], c["agent_attributes"], c["resource_attributes"]])
    ctx = orjson.dumps({"role": c["role"], "agent_attrs": c["agent_attributes"], "resource_attrs": c["resource_attributes"]})
    seeds.append(b"\x00" + packed)
    seeds.append(b"\x01" + orjson.dumps(c["args"]) + b"\x00" + ctx)
seeds += [
    b'\x01{"amount":1e308,"x":"\\ud83d\\ude00\\u0000"}\x00{"role":"\\u0061gent"}',
    b'\x00["delete_customer","admin",{"a":[[[[[]]]]]},{"user_id":{"k":[1,2.5e-3,true,null]}},{"owner_id":{"k":[1,2.5e-3,true,null]}}]',
    b'\x02["delete_customer","manager",{"amount":-0.0},{"user_id":18446744073709551616},{"owner_id":1.8446744073709552e19}]',
    b'\x01{"a":1,"a":2}\x00{"role":"agent"}',
]
for i, s in enumerate(seeds):
    (out / f"seed-{i:03d}").write_bytes(s)


def v2_blobs() -> list[bytes]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from support.v2blobs import ARGS, CONTEXT, blob_for

    def leaves(c):
        c.string(c.ref(ARGS, "s"), "PathGlob", "/data/*.csv")
        c.string(c.ref(ARGS, "s"), "Glob", "*ab*abab*c", negated=True)
        c.op("OR")
        c.between(c.ref(ARGS, "n", "0"), 1, 2)
        c.op("AND")
        c.length(c.ref(ARGS, "s"), "Ne", 3)
        c.op("AND")
        c.type(c.ref(ARGS, "n"), "integer")
        c.op("AND")
        c.time(c.ref(CONTEXT, "time"), 0x1F, 22 * 60, 6 * 60, [(0, 3600), (1711846800, 7200)])
        c.op("AND")
        c.eq(c.ref(ARGS, "a", "b"), c.ref(ARGS, "items", "0", "x"))
        c.op("AND")

    def quantifiers(c):
        c.quant("SOME", c.ref(ARGS, "items"), lambda: c.quant(
            "EVERY", c.ref(None, "lines"),
            lambda: c.num(c.ref(None, "qty", display="element.qty"), "Gt", 0)))
        c.quant("EVERY", c.ref(ARGS, "tags"), lambda: c.string(c.ref(None), "StartsWith", "a"))
        c.op("AND")

    return [blob_for(leaves), blob_for(quantifiers)]


if len(sys.argv) > 2:
    blobs = Path(sys.argv[2])
    blobs.mkdir(parents=True, exist_ok=True)
    for i, blob in enumerate(v2_blobs()):
        (blobs / f"v2-{i}.blob").write_bytes(blob)
