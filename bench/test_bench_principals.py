"""Principal chains on the hot path (docs/principals.md, issue 18), in one run:

- evaluate() of the CRM call with a cached verified chain and a ScopeCheck (the CRM policy
  with its view_customer rule also requiring a scope), next to the same call without a
  chain: target <= 1.5 us median;
- the first verification of a form-1 token (Ed25519): target <= 100 us;
- the first verification of a 3-link attenuated chain (form 3: the token and two
  delegations, each Ed25519): target <= 300 us.

Run: pytest bench/test_bench_principals.py --benchmark-enable --benchmark-columns=median,iqr,ops
(pytest-benchmark runs them one after the other; compare the medians of one run).
"""

from __future__ import annotations

import itertools

import pytest

pytest.importorskip("jwt")
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from callgate import Engine, examples, principals  # noqa: E402

ISSUER = Ed25519PrivateKey.generate()
SUPERVISOR = Ed25519PrivateKey.generate()
WORKER = Ed25519PrivateKey.generate()
ARGS = {"customer_id": "C-1042"}


def _scoped_crm() -> dict:
    policy = examples.policy("crm")
    rules = []
    for rule in policy["rules"]:
        if rule["tool_name"] == "view_customer":
            scope = {"ScopeCheck": {"requires": ["crm.read.customers"]}}
            rule = {**rule, "condition": scope if rule.get("condition") is None
                    else {"All": [rule["condition"], scope]}}
        rules.append(rule)
    return {**policy, "version": "2", "rules": rules, "principals": {"worker:*": {"max_scopes": ["crm.read.*"]}}}


@pytest.fixture(scope="module")
def scoped() -> Engine:
    e = Engine.from_dict(_scoped_crm())
    e.trust_issuer("auth", ISSUER.public_key())
    return e


def _token(**kw) -> str:
    return principals.mint(ISSUER, issuer="auth", subject="user:alice", agents=["supervisor:triage", "worker:crm"],
                           scopes=["crm.*.*"], ttl=3600, **kw)


def test_evaluate_with_a_cached_chain(benchmark, scoped):
    """The CRM call with a ScopeCheck, the chain's Principal source cached by token."""
    role = next(r["roles"][0] for r in _scoped_crm()["rules"] if r["tool_name"] == "view_customer")
    token = _token()
    d = benchmark(scoped.evaluate, "view_customer", ARGS, role=role, chain=token)
    assert d.decision == "Allow"


def test_evaluate_without_a_chain(benchmark):
    """The plain CRM call, for the ratio."""
    crm = Engine.from_dict(examples.policy("crm"))
    d = benchmark(crm.evaluate, "view_customer", ARGS, role="agent")
    assert d.decision == "Allow"


def _fresh(make):
    """A new token per round: the verifier's own cache never answers."""
    counter = itertools.count()

    def setup():
        return (make(next(counter)),), {}
    return setup


def test_first_verification_form_1(benchmark):
    """Verify a form-1 Ed25519 token never seen before."""
    trust = principals.Trust()
    trust.trust_issuer("auth", ISSUER.public_key())
    chain = benchmark.pedantic(trust.verify, setup=_fresh(lambda n: _token(jti=f"f1-{n}")), rounds=300)
    assert chain.actor == "worker:crm"


def test_first_verification_form_3_three_links(benchmark):
    """Verify a token plus two attenuations (user -> supervisor -> worker -> sub-worker)."""
    trust = principals.Trust()
    trust.trust_issuer("auth", ISSUER.public_key())

    def make(n: int) -> str:
        base = principals.mint(ISSUER, issuer="auth", subject="user:alice", agents=["supervisor:triage"],
                               scopes=["crm.*.*"], ttl=3600, holder=SUPERVISOR.public_key(), jti=f"f3-{n}")
        one = principals.attenuate(base, SUPERVISOR, delegate="worker:crm", scopes=["crm.read.*"],
                                   delegate_key=WORKER.public_key())
        return principals.attenuate(one, WORKER, delegate="worker:lookup", scopes=["crm.read.customers"])

    chain = benchmark.pedantic(trust.verify, setup=_fresh(make), rounds=200)
    assert chain.depth == 4
