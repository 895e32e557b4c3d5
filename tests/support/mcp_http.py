"""Helpers for the Streamable HTTP front's tests (no tests here): the issuer and audience the
fronts are started with, RSA keys that sign bearer JWTs, and a bounded wait for a front to
answer. jwt, httpx and cryptography are imported where they are used, so that a test file's
own `pytest.importorskip` still decides whether it runs."""

from __future__ import annotations

import subprocess
import time

ISS, AUD = "https://idp.example.test", "callgate-test"


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the front exited: {proc.stderr.read().decode(errors='replace')}")
        try:
            httpx.post(url, content=b"{}", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise TimeoutError(url)


class Keys:
    def __init__(self) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.public_pem = self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def token(self, key=None, alg="RS256", headers=None, **claims) -> str:
        import jwt

        body = {"iss": ISS, "aud": AUD, "sub": "user-1", "exp": int(time.time()) + 600, **claims}
        body = {k: v for k, v in body.items() if v is not None}
        return jwt.encode(body, key or self.private, algorithm=alg, headers=headers)
