"""Signed policy bundles (callgate.bundles, `callgate bundle`): what a replica accepts and
what it refuses (bad or missing signature, unknown key, tampered payload, duplicate keys,
failing cases, a rollback), and the replica harness: three engines polling one static
HTTP server on loopback; a bundle published mid-run reaches every replica within the poll
interval; bad bundles are refused everywhere and the previous revision stays active."""

from __future__ import annotations

import base64
import json
import time

import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from callgate import Engine
from callgate.bundles import (BundleError, Poller, build_bundle, check_bundle, engine_activator, key_id,
                              verify_bundle)
from callgate.service import Decider, make_app
from support.cli import invoke
from support.service import StaticServer

KEY = Ed25519PrivateKey.generate()
OTHER = Ed25519PrivateKey.generate()


def policy(limit: int, version: str) -> dict:
    """Refunds up to `limit` are allowed for agents."""
    return {"version": version, "default_action": "Deny", "tools": ["refund"], "roles": ["agent"],
            "rules": [{"id": "cap", "tool_name": "refund", "roles": ["agent"],
                       "condition": {"NumericCheck": {"source": "Arguments", "field": "amount", "op": "Lte",
                                                      "value": limit}}}]}


def cases(amount: int, expect: str) -> list:
    return [{"name": f"refund {amount}", "tool": "refund", "role": "agent", "args": {"amount": amount},
             "expect": expect}]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def resign(payload: bytes, key=KEY) -> bytes:
    """An envelope around exact payload bytes, signed as build_bundle signs."""
    sig = key.sign(b"callgate-bundle-1\n" + payload)
    return orjson.dumps({"format": "callgate-bundle-1", "payload": b64(payload),
                         "signatures": [{"keyid": key_id(key.public_key()), "sig": b64(sig)}]})


def test_build_and_verify_round_trip():
    """A built bundle verifies under its key: revision (a digest unless named), creation
    time, policy, cases and the signer's key id; it compiles and its cases pass."""
    data = build_bundle(policy(100, "v1"), key=KEY, cases=cases(50, "Allow"))
    b = verify_bundle(data, [KEY.public_key()])
    assert len(b.revision) == 16 and b.policy == policy(100, "v1") and b.keyid == key_id(KEY.public_key())
    assert check_bundle(b).policy_version == "v1"
    assert verify_bundle(build_bundle(policy(1, "v1"), key=KEY, revision="r-7"), [KEY.public_key()]).revision == "r-7"


def test_a_bundle_is_never_built_broken():
    """build refuses a policy that does not compile and cases that fail."""
    with pytest.raises(BundleError, match="does not compile"):
        build_bundle({"version": "x", "default_action": "Deny", "tools": [], "roles": [], "rules": [],
                      "conditon": 1}, key=KEY)
    with pytest.raises(BundleError, match="1 of 1 of its own cases fail"):
        build_bundle(policy(100, "v1"), key=KEY, cases=cases(500, "Allow"))


def tampered(data: bytes) -> bytes:
    env = json.loads(data)
    body = json.loads(base64.urlsafe_b64decode(env["payload"] + "=="))
    body["policy"]["rules"][0]["condition"]["NumericCheck"]["value"] = 10 ** 9
    env["payload"] = b64(orjson.dumps(body, option=orjson.OPT_SORT_KEYS))
    return orjson.dumps(env)


@pytest.mark.parametrize("make, message", [
    (lambda d: tampered(d), "bad signature"),
    (lambda d: build_bundle(policy(100, "v1"), key=OTHER), "not signed by any configured key"),
    (lambda d: orjson.dumps({**json.loads(d), "signatures": []}), "not signed"),
    (lambda d: orjson.dumps({**json.loads(d), "format": "callgate-bundle-0"}), "unknown bundle format"),
    (lambda d: d.replace(b'"format"', b'"format": "x", "format"', 1), "not strict JSON"),
    (lambda d: resign(b'{"revision": "a", "revision": "b", "created": 1, "policy": {}, "pins": null, '
                      b'"cases": null, "metadata": {}}'), "not strict JSON"),
    (lambda d: resign(b'{"revision": "a", "created": 1, "policy": {}, "pins": null, "cases": null}'),
     "exactly cases, created, metadata"),
    (lambda d: resign(b'{"revision": "a", "created": NaN, "policy": {}, "pins": null, "cases": null, '
                      b'"metadata": {}}'), "not strict JSON"),
    (lambda d: b"\x00" * 10, "not strict JSON"),
    (lambda d: b"{" * 100_000, "not strict JSON"),
])
def test_refused_bundles(make, message):
    """Every way a bundle can be wrong is a BundleError with one line saying which, before
    anything of it is used."""
    bad = make(build_bundle(policy(100, "v1"), key=KEY))
    with pytest.raises(BundleError, match=message) as info:
        verify_bundle(bad, [KEY.public_key()])
    assert "\n" not in str(info.value)


def test_no_keys_no_bundle():
    """Without configured keys nothing verifies: unsigned bundles are never activated."""
    with pytest.raises(BundleError, match="no bundle key"):
        verify_bundle(build_bundle(policy(1, "v1"), key=KEY), [])


def test_cli_build_verify(tmp_path):
    """`callgate bundle build` writes a signed bundle of a policy file and its cases;
    `bundle verify` accepts it with the right key (exit 0) and refuses it with another
    (exit 1, the reason)."""
    (tmp_path / "p.json").write_text(json.dumps(policy(100, "v1")))
    (tmp_path / "c.json").write_text(json.dumps(cases(50, "Allow")))
    key_pem, pub, other = tmp_path / "k.pem", tmp_path / "k.pub.pem", tmp_path / "o.pub.pem"
    key_pem.write_bytes(KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    for path, k in ((pub, KEY), (other, OTHER)):
        path.write_bytes(k.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    out = tmp_path / "policy.bundle"
    r = invoke("bundle", "build", str(tmp_path / "p.json"), "--cases", str(tmp_path / "c.json"), "--key",
               str(key_pem), "-o", str(out), "--revision", "rev-1")
    assert r.exit_code == 0 and "revision rev-1" in r.output
    r = invoke("bundle", "verify", str(out), "--key", str(pub))
    assert r.exit_code == 0 and "ok: revision rev-1" in r.output and "1 cases pass" in r.output
    r = invoke("bundle", "verify", str(out), "--key", str(other))
    assert r.exit_code == 1 and "refused: not signed by any configured key" in r.output
    r = invoke("bundle", "build", str(tmp_path / "p.json"), "--key", str(pub), "-o", str(out))
    assert r.exit_code == 2 and "private key" in r.output


# ---------------------------------------------------------------- replicas


def refund(engine: Engine, amount: int) -> str:
    return engine.evaluate("refund", {"amount": amount}, role="agent").decision


def wait_for(check, timeout: float) -> float:
    """Seconds until check() held; AssertionError after `timeout`."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise AssertionError("not within the poll interval")
        time.sleep(0.02)
    return time.monotonic() - start


def test_replicas_follow_good_bundles_and_refuse_bad_ones():
    """Three replicas (engines) poll one URL every 0.3 s. A bundle published mid-run is
    active on all three within the interval (plus the fetch); then a bundle signed by an
    unknown key, one whose own cases fail, and a re-signed older one are refused by every
    replica, which keep the previous revision (and its decisions) and report why; an
    unchanged bundle costs a 304."""
    server = StaticServer()
    interval = 0.3
    replicas, pollers = [], []
    try:
        server.publish(build_bundle(policy(100, "v1"), key=KEY, revision="r1", cases=cases(50, "Allow"),
                                    created=1000))
        for _ in range(3):
            engine = Engine.from_dict(policy(10, "v0"))
            poller = Poller(server.url, [KEY.public_key()], engine_activator(engine), interval=interval)
            poller.start()
            replicas.append(engine)
            pollers.append(poller)
        wait_for(lambda: all(p.state.revision == "r1" for p in pollers), 5)
        assert [refund(e, 80) for e in replicas] == ["Allow"] * 3

        # published mid-run: every replica within the poll interval (and the fetch)
        server.publish(build_bundle(policy(1000, "v2"), key=KEY, revision="r2", cases=cases(900, "Allow"),
                                    created=2000))
        took = wait_for(lambda: all(p.state.revision == "r2" for p in pollers), interval + 1.0)
        assert took <= interval + 1.0 and [refund(e, 900) for e in replicas] == ["Allow"] * 3

        for bad, why in [
            (build_bundle(policy(10 ** 6, "evil"), key=OTHER, revision="r3", created=3000),
             "not signed by any configured key"),
            (resign(orjson.dumps({"revision": "r4", "created": 4000, "policy": policy(5, "v4"), "pins": None,
                                  "cases": cases(900, "Allow"), "metadata": {}})), "of its own cases fail"),
            (build_bundle(policy(1, "old"), key=KEY, revision="r0", created=1500), "a rollback is refused"),
        ]:
            server.publish(bad)
            wait_for(lambda: all(why in (p.state.last_error or "") for p in pollers), interval + 1.5)
            assert [p.state.revision for p in pollers] == ["r2"] * 3
            assert [e.policy_version for e in replicas] == ["v2"] * 3
            assert [refund(e, 900) for e in replicas] == ["Allow"] * 3

        hits = dict(server.hits)
        server.publish(build_bundle(policy(1000, "v2"), key=KEY, revision="r2", cases=cases(900, "Allow"),
                                    created=2000))
        wait_for(lambda: server.hits[304] >= hits[304] + 6, 5)
        assert all(p.state.revision == "r2" for p in pollers)
    finally:
        for p in pollers:
            p.stop()
        server.close()


def test_service_status_reports_revision_and_last_error():
    """The service's /v1/status: the revision a poller activated and when, then the reason a
    later bundle was refused while that revision stays active."""
    from starlette.testclient import TestClient

    server = StaticServer()
    try:
        engine = Engine.from_dict(policy(10, "v0"))
        decider = Decider(engine)
        poller = Poller(server.url, [KEY.public_key()], engine_activator(engine, decider.activated),
                        on_refused=lambda why: decider.activated(None, why))
        client = TestClient(make_app(decider, public_url="http://pdp.test"))
        server.publish(build_bundle(policy(100, "v1"), key=KEY, revision="r1"))
        assert poller.poll_once() == "activated"
        s = client.get("/v1/status").json()["policy"]
        assert (s["revision"], s["version"], s["last_error"]) == ("r1", "v1", None)
        server.publish(build_bundle(policy(100, "v9"), key=OTHER, revision="r9"))
        assert poller.poll_once().startswith("refused: not signed")
        s = client.get("/v1/status").json()["policy"]
        assert s["revision"] == "r1" and s["version"] == "v1" and "not signed" in s["last_error"]
        assert poller.poll_once().startswith("refused")   # the same bad bundle again: still refused
    finally:
        server.close()


def test_unreachable_url_keeps_the_policy():
    """A bundle URL that does not answer: the poll is refused with the cause and the engine
    keeps deciding with its policy."""
    from support.service import free_port

    engine = Engine.from_dict(policy(10, "v0"))
    poller = Poller(f"http://127.0.0.1:{free_port()}/policy.bundle", [KEY.public_key()], engine_activator(engine),
                    timeout=2)
    assert poller.poll_once().startswith("refused: cannot fetch")
    assert engine.policy_version == "v0" and refund(engine, 5) == "Allow"
    with pytest.raises(ValueError, match="http"):
        Poller("file:///etc/passwd", [KEY.public_key()], engine_activator(engine))


def test_an_endless_response_is_cut_off(monkeypatch):
    """A bundle server that sends more than MAX_BUNDLE bytes: the poller stops reading there
    and refuses it; the active policy stays."""
    import callgate.bundles as bundles

    monkeypatch.setattr(bundles, "MAX_BUNDLE", 64 * 1024)
    server = StaticServer()
    try:
        server.publish(b" " * (256 * 1024))
        engine = Engine.from_dict(policy(10, "v0"))
        poller = Poller(server.url, [KEY.public_key()], engine_activator(engine))
        assert poller.poll_once() == f"refused: {server.url}: the bundle is over {64 * 1024} bytes"
        assert engine.policy_version == "v0"
    finally:
        server.close()
