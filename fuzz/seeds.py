"""Write a seed corpus for fuzz_request: the CRM cases in both request forms, plus
edge cases (escapes, deep nesting, big numbers, duplicate keys)."""

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
