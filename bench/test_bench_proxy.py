"""The proxy's cost on the wire (not in the default test run).

    python bench/test_bench_proxy.py            # prints the figures
    pytest bench/test_bench_proxy.py -s         # the same, as tests with the targets asserted

1. Added latency per tools/call round trip: one client, one raw JSON-RPC responder
   (bench/raw_responder.py), measured in one run, alternating direct and through
   `callgate proxy`; target: median(proxied) - median(direct) <= 100 us; p99 reported.
2. Throughput: the client pipelines 50,000 allowed tools/call requests (a writer thread
   sending chunks of 64, the main thread counting answers) through the proxy to the
   responder; target >= 10,000 calls/s.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson

HERE = Path(__file__).resolve().parent
PY = sys.executable
RESPONDER = [PY, str(HERE / "raw_responder.py")]
PROXY = [PY, "-m", "callgate", "proxy", "--policy", "crm", "--role", "agent", "--agent-attr", "user_id=agt-099",
         "--agent-attr", "env=production", "--"]
CALL = b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"process_refund","arguments":{"order_id":"ORD-8821","amount":200}}}\n'
INIT = orjson.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}}}) + b"\n"


class Peer:
    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
        self.w, self.r = self.proc.stdin, self.proc.stdout
        self.w.write(INIT)
        self.r.readline()
        self.w.write(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')

    def roundtrip(self, i: int) -> int:
        t0 = time.perf_counter_ns()
        self.w.write(CALL % i)
        line = self.r.readline()
        dt = time.perf_counter_ns() - t0
        assert b'"ok process_refund"' in line, line
        return dt

    def close(self) -> None:
        self.w.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _pct(values: list[int], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p * len(values)))] / 1000


def latency(n: int = 5000, warmup: int = 500) -> dict:
    direct, proxied = Peer(RESPONDER), Peer(PROXY + RESPONDER)
    try:
        for i in range(1, warmup + 1):
            direct.roundtrip(i)
            proxied.roundtrip(i)
        d, p = [], []
        for i in range(warmup + 1, warmup + n + 1):  # alternate: both see the same machine state
            d.append(direct.roundtrip(i))
            p.append(proxied.roundtrip(i))
    finally:
        direct.close()
        proxied.close()
    med_d, med_p = statistics.median(d) / 1000, statistics.median(p) / 1000
    return {"calls": n, "direct_median_us": med_d, "proxied_median_us": med_p, "added_median_us": med_p - med_d,
            "direct_p99_us": _pct(d, 0.99), "proxied_p99_us": _pct(p, 0.99), "added_p99_us": _pct(p, 0.99) - _pct(d, 0.99)}


def throughput(n: int = 50000, chunk: int = 64) -> dict:
    """Pipelined: a writer thread sends the calls in chunks of `chunk` lines (pipe buffers
    bound how many are in flight), the main thread counts response lines with large reads;
    the client does as little per call as possible so that it measures the proxy."""
    peer = Peer(PROXY + RESPONDER)
    fd = peer.r.fileno()
    requests = [b"".join(CALL % i for i in range(start, min(start + chunk, n + 1)))
                for start in range(1, n + 1, chunk)]

    def writer() -> None:
        for data in requests:
            peer.w.write(data)

    t0 = time.perf_counter()
    t = threading.Thread(target=writer, daemon=True)
    t.start()
    seen, tail = 0, b""
    while seen < n:
        data = os.read(fd, 1 << 20)
        assert data, "the proxy closed the stream"
        seen += data.count(b"\n")
        tail = data[-200:]
    elapsed = time.perf_counter() - t0
    assert b'"ok process_refund"' in tail, tail
    t.join(timeout=10)
    peer.close()
    return {"calls": seen, "seconds": elapsed, "calls_per_s": seen / elapsed}


def test_added_latency_per_tools_call():
    """Median added latency of a tools/call round trip through the proxy is at most 100 us."""
    r = latency()
    print("\nlatency:", {k: round(v, 1) if isinstance(v, float) else v for k, v in r.items()})
    assert r["added_median_us"] <= 100


def test_throughput_of_allowed_calls():
    """One proxy relays at least 10,000 allowed tools/call per second to a raw responder."""
    r = throughput()
    print("\nthroughput:", {k: round(v, 1) if isinstance(v, float) else v for k, v in r.items()})
    assert r["calls_per_s"] >= 10000


if __name__ == "__main__":
    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    lat = latency()
    print(f"tools/call round trip over {lat['calls']} calls (alternating direct / proxied):")
    print(f"  direct   median {lat['direct_median_us']:8.1f} us   p99 {lat['direct_p99_us']:8.1f} us")
    print(f"  proxied  median {lat['proxied_median_us']:8.1f} us   p99 {lat['proxied_p99_us']:8.1f} us")
    print(f"  added    median {lat['added_median_us']:8.1f} us   p99 {lat['added_p99_us']:8.1f} us   (target: median <= 100 us)")
    thr = throughput()
    print(f"throughput: {thr['calls']} allowed calls in {thr['seconds']:.2f} s = {thr['calls_per_s']:,.0f} calls/s (target >= 10,000)")
