"""Decision service benchmarks (not in the default run).

    pytest bench/test_bench_service.py --benchmark-enable   one AuthZEN evaluation in process, telemetry off / on
    python bench/test_bench_service.py                      the figures, printed:

- `callgate serve` with one worker on loopback: AuthZEN decisions/s per worker, single
  evaluations (one decision per request) and batches (100 evaluations per request), driven
  by raw keep-alive sockets from 4 client threads (so the client's own cost stays small);
- the cost of telemetry: Decider.evaluation() in process with telemetry off and on, and the
  decision path with no telemetry test at all, interleaved round by round (medians), so the
  added cost when on and the cost when off (one attribute test) are read side by side.
The machine is shared: run it alone, and read the figures as this machine's."""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson

from callgate import Engine
from callgate.service import Decider, parse_authzen

HERE = Path(__file__).resolve().parent
POLICY = HERE.parent / "tests" / "service" / "authzen" / "certification_policy.json"
BODY = {"subject": {"type": "user", "id": "alice"}, "action": {"name": "write"},
        "resource": {"type": "record", "id": "record-1", "properties": {"status": "active"}}}
BATCH = {"subject": {"type": "user", "id": "alice"}, "action": {"name": "write"},
         "evaluations": [{"resource": {"type": "record", "id": f"record-{i}",
                                       "properties": {"status": "archived" if i % 3 else "active"}}}
                         for i in range(100)]}


def _telemetry():
    from callgate.telemetry import Telemetry

    return Telemetry.with_prometheus()


def test_evaluation_telemetry_off(benchmark) -> None:
    """One AuthZEN evaluation through the Decider, telemetry off (the default)."""
    decider = Decider(Engine.from_file(POLICY))
    benchmark(lambda: decider.evaluation(BODY))


def test_evaluation_telemetry_on(benchmark) -> None:
    """The same with telemetry on (a span and three metric updates per decision)."""
    decider = Decider(Engine.from_file(POLICY), telemetry=_telemetry())
    benchmark(lambda: decider.evaluation(BODY))


# ---------------------------------------------------------------- HTTP, one worker


def _request(path: str, body: dict) -> bytes:
    data = orjson.dumps(body)
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n").encode() + data


def _read_response(sock: socket.socket, buf: bytearray) -> None:
    """Read one HTTP response (Content-Length framed) off `sock`, leaving what follows in buf."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise AssertionError(head[:80])
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        rest += chunk
    buf[:] = rest[length:]


def _load(port: int, request: bytes, seconds: float, threads: int = 4) -> int:
    """Requests answered in `seconds` from `threads` keep-alive connections."""
    done = [0] * threads
    stop_at = time.monotonic() + seconds

    def run(i: int) -> None:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            buf = bytearray()
            while time.monotonic() < stop_at:
                sock.sendall(request)
                _read_response(sock, buf)
                done[i] += 1

    ts = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(done)


def http_figures(seconds: float = 4.0) -> None:
    """Decisions/s of one `callgate serve` worker, single evaluations and batches of 100."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "callgate", "serve", str(POLICY), "--listen", f"127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        single = _request("/access/v1/evaluation", BODY)
        batch = _request("/access/v1/evaluations", BATCH)
        _load(port, single, 1.0)   # warm-up
        n = _load(port, single, seconds)
        print(f"callgate serve, 1 worker, single evaluations: {n / seconds:,.0f} decisions/s "
              f"({n / seconds:,.0f} requests/s)")
        n = _load(port, batch, seconds)
        print(f"callgate serve, 1 worker, batches of 100:     {100 * n / seconds:,.0f} decisions/s "
              f"({n / seconds:,.0f} requests/s)")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(15)


# ---------------------------------------------------------------- telemetry, interleaved


def telemetry_figures(rounds: int = 15, per_round: int = 20_000) -> None:
    """Median ns per decision (Decider.decide of one parsed call): no telemetry test at all
    (the decision path itself), telemetry off, telemetry on; interleaved round by round."""
    engine = Engine.from_file(POLICY)
    off = Decider(engine)
    on = Decider(engine, telemetry=_telemetry())
    call = parse_authzen(BODY)
    bare = off._decide   # the path below the telemetry test: what "off" adds to it is the test
    variants = {"decision path alone": lambda: bare(call, None, "bench"),
                "telemetry off": lambda: off.decide(call, None, "bench"),
                "telemetry on": lambda: on.decide(call, None, "bench")}
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            start = time.perf_counter_ns()
            for _ in range(per_round):
                fn()
            times[name].append((time.perf_counter_ns() - start) / per_round)
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, v in med.items():
        print(f"{k:22s} {v:8.0f} ns per decision (median of {rounds} interleaved rounds)")
    print(f"telemetry on adds      {med['telemetry on'] - med['telemetry off']:8.0f} ns; "
          f"off adds {med['telemetry off'] - med['decision path alone']:+.0f} ns to the decision path")


if __name__ == "__main__":
    http_figures()
    telemetry_figures()
