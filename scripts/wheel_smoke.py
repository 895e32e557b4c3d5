"""Smoke test of an installed wheel (cibuildwheel's test-command, and the manual proof).

Imports the engine, decides every CRM scenario in both semantics from the installed
package, checks the bundled WebAssembly module and, where wasmtime installs, runs the
scenarios through it too. Exits non-zero on any mismatch.
"""

from __future__ import annotations

import sys

import callgate
from callgate import examples


def main() -> int:
    failures = 0
    for semantics in ("strict", "perso"):
        engine = callgate.Engine.from_file(examples.policy_path("crm"), semantics=semantics)
        for case in examples.cases("crm"):
            d = engine.evaluate(case["tool"], case["args"], role=case["role"],
                                agent_attributes=case["agent_attributes"],
                                resource_attributes=case["resource_attributes"])
            if d.decision != case["expected"] or not d.reason:
                print(f"MISMATCH {semantics} {case['name']}: {d}")
                failures += 1
    from callgate.wasm import wasm_path

    module = wasm_path().read_bytes()
    assert module[:4] == b"\0asm", "the bundled callgate.wasm is not a WebAssembly module"
    try:
        import wasmtime  # noqa: F401
    except ImportError:
        print(f"callgate.wasm present ({len(module)} bytes); wasmtime not installed here, not run")
    else:
        from callgate.wasm import WasmEngine

        wasm = WasmEngine.from_dict(examples.policy("crm"))
        for case in examples.cases("crm"):
            d = wasm.evaluate(case["tool"], case["args"], role=case["role"],
                              agent_attributes=case["agent_attributes"],
                              resource_attributes=case["resource_attributes"])
            if d.decision != case["expected"]:
                print(f"WASM MISMATCH {case['name']}: {d}")
                failures += 1
    print(f"callgate {callgate.__version__} from {callgate.__file__}: {2 * len(examples.cases('crm'))} native "
          f"decisions, wasm module {len(module)} bytes, {failures} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
