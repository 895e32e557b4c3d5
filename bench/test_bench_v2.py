"""Policy v2 on the hot path: the `ops` example against the v1 CRM call, in one run.

Run: pytest bench/test_bench_v2.py bench/test_bench_engine.py --benchmark-enable
     --benchmark-columns=median,iqr,ops
The target (docs/policy-v2.md, issue 7): a v2 policy with tiers, a deny rule, a time window
and a JSON Pointer stays at or under 1.5 us median per evaluate(); the CRM call is unchanged.
"""

from __future__ import annotations

import pytest

from cases import V2_ALLOW, V2_DENY

CASES = {"allow": V2_ALLOW, "deny": V2_DENY}


@pytest.mark.parametrize("name", CASES)
def test_v2_evaluate(benchmark, ops, name):
    """evaluate() on the v2 ops policy: deny rule on a pointer, then time window + Context + Between."""
    c = CASES[name]
    d = benchmark(ops.evaluate, c["tool"], c["args"], role=c["role"], context=c["context"])
    assert d.decision == name.capitalize()


def test_v2_tier_default(benchmark, ops):
    """A call decided by a tier default (no rule covers the pair): the extra lookup."""
    d = benchmark(ops.evaluate, "delete_file", {"path": "/tmp/x"}, role="oncall")
    assert d.decision == "Elevate" and d.approvals_required == 2


def test_v2_evaluate_with_reason(benchmark, ops):
    """evaluate() + the reason text of a time-window denial."""
    c = V2_DENY

    def run():
        return ops.evaluate(c["tool"], c["args"], role=c["role"], context=c["context"]).reason

    assert "outside" in benchmark(run)
