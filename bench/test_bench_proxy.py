"""The proxy's cost on the wire (not in the default test run).

    python bench/test_bench_proxy.py                 # prints the figures
    python bench/test_bench_proxy.py --audit         # and the same with an audit trail (async, durable)
    python bench/test_bench_proxy.py --baseline PATH # and the proxy of another checkout's src/ (PYTHONPATH)
    pytest bench/test_bench_proxy.py -s              # the first two, as tests with the targets asserted

1. Added latency per tools/call round trip: one client, one raw JSON-RPC responder
   (bench/raw_responder.py), measured in one run, alternating direct and through each
   `callgate proxy` variant; target: median(proxied) - median(direct) <= 100 us; p99 reported.
   The same on the 2026-07-28 path (no handshake, the protocol version and client
   capabilities in each call's _meta; the responder answers server/discover as a 2026
   server), direct and through the proxy, reported beside the 2025 path's.
2. Throughput: the client pipelines 50,000 allowed tools/call requests (a writer thread
   sending chunks of 64, the main thread counting answers) through the proxy to the
   responder; target >= 10,000 calls/s.
With --audit, both again with `--audit FILE.jsonl` / `FILE.db` in `--audit-mode async` and
`durable` (the default: a call is forwarded once its decision is durable, group commit).
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
CALL_2026 = (b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"process_refund","arguments":'
             b'{"order_id":"ORD-8821","amount":200},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28",'
             b'"io.modelcontextprotocol/clientCapabilities":{}}}}\n')
INIT = orjson.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}}}) + b"\n"


class Peer:
    """A client of one process (the responder, or a proxy in front of it); `modern`: it
    speaks 2026-07-28 (no handshake; every call carries the version in _meta)."""

    def __init__(self, argv: list[str], env: dict | None = None, modern: bool = False) -> None:
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0,
                                     env={**os.environ, **env} if env else None)
        self.w, self.r = self.proc.stdin, self.proc.stdout
        self.call = CALL_2026 if modern else CALL
        if not modern:
            self.w.write(INIT)
            self.r.readline()
            self.w.write(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')

    def roundtrip(self, i: int) -> int:
        t0 = time.perf_counter_ns()
        self.w.write(self.call % i)
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


def variants(audit_dir: str | None = None, baseline: str | None = None) -> dict[str, tuple[list[str], dict]]:
    """name -> (proxy argv prefix, environment) of each proxy to measure."""
    out = {"proxy": (PROXY, {})}
    if baseline:
        out["baseline proxy"] = (PROXY, {"PYTHONPATH": baseline})
    if audit_dir:
        for kind in ("jsonl", "db"):
            for mode in ("async", "durable"):
                path = os.path.join(audit_dir, f"{mode}.{kind}")
                out[f"proxy --audit .{kind} {mode}"] = (PROXY[:-1] + ["--audit", path, "--audit-mode", mode, "--"], {})
    return out


def latency(n: int = 5000, warmup: int = 500, proxies: dict | None = None) -> dict:
    """Round trips alternating direct and through every proxy: medians and p99 in us."""
    proxies = proxies or variants()
    peers = {"direct": Peer(RESPONDER), "direct 2026": Peer(RESPONDER, modern=True),
             "proxy 2026": Peer(PROXY + RESPONDER, modern=True)}
    peers.update({name: Peer(argv + RESPONDER, env) for name, (argv, env) in proxies.items()})
    times: dict[str, list[int]] = {name: [] for name in peers}
    try:
        for i in range(1, warmup + n + 1):  # alternate: all see the same machine state
            for name, peer in peers.items():
                dt = peer.roundtrip(i)
                if i > warmup:
                    times[name].append(dt)
    finally:
        for peer in peers.values():
            peer.close()
    direct = statistics.median(times["direct"]) / 1000
    out = {"calls": n, "direct_median_us": direct, "direct_p99_us": _pct(times["direct"], 0.99)}
    for name in proxies:
        out[name] = {"median_us": statistics.median(times[name]) / 1000, "p99_us": _pct(times[name], 0.99),
                     "added_median_us": statistics.median(times[name]) / 1000 - direct}
    out["added_median_us"] = out["proxy"]["added_median_us"]
    direct_2026 = statistics.median(times["direct 2026"]) / 1000
    out["2026"] = {"direct_median_us": direct_2026, "median_us": statistics.median(times["proxy 2026"]) / 1000,
                   "p99_us": _pct(times["proxy 2026"], 0.99),
                   "added_median_us": statistics.median(times["proxy 2026"]) / 1000 - direct_2026}
    return out


def throughput(n: int = 50000, chunk: int = 64, proxy: list[str] = PROXY, env: dict | None = None) -> dict:
    """Pipelined: a writer thread sends the calls in chunks of `chunk` lines (pipe buffers
    bound how many are in flight), the main thread counts response lines with large reads;
    the client does as little per call as possible so that it measures the proxy."""
    peer = Peer(proxy + RESPONDER, env)
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
    """Median added latency of a tools/call round trip through the proxy is at most 100 us,
    on the 2025 path and on the 2026-07-28 path (reported side by side)."""
    r = latency()
    print("\nlatency:", {k: round(v, 1) if isinstance(v, float) else v for k, v in r.items()})
    assert r["added_median_us"] <= 100
    assert r["2026"]["added_median_us"] <= 100


def test_throughput_of_allowed_calls():
    """One proxy relays at least 10,000 allowed tools/call per second to a raw responder."""
    r = throughput()
    print("\nthroughput:", {k: round(v, 1) if isinstance(v, float) else v for k, v in r.items()})
    assert r["calls_per_s"] >= 10000


if __name__ == "__main__":
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--audit", action="store_true", help="also measure with an audit trail")
    parser.add_argument("--baseline", help="also measure the proxy of this src/ directory (PYTHONPATH)")
    parser.add_argument("-n", type=int, default=5000, help="round trips per variant")
    options = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as tmp:
        proxies = variants(tmp if options.audit else None, options.baseline)
        lat = latency(options.n, proxies=proxies)
        print(f"tools/call round trip over {lat['calls']} calls (alternating direct and each proxy):")
        print(f"  {'direct':34} median {lat['direct_median_us']:8.1f} us   p99 {lat['direct_p99_us']:8.1f} us")
        for name in proxies:
            r = lat[name]
            print(f"  {name:34} median {r['median_us']:8.1f} us   p99 {r['p99_us']:8.1f} us   "
                  f"added median {r['added_median_us']:7.1f} us")
        m = lat["2026"]
        print(f"  {'direct, 2026-07-28':34} median {m['direct_median_us']:8.1f} us")
        print(f"  {'proxy, 2026-07-28':34} median {m['median_us']:8.1f} us   p99 {m['p99_us']:8.1f} us   "
              f"added median {m['added_median_us']:7.1f} us")
        print("  (target for the plain proxy: added median <= 100 us, on either path)")
        for name, (argv, env) in proxies.items():
            thr = throughput(proxy=argv, env=env)
            print(f"throughput, {name}: {thr['calls']} allowed calls in {thr['seconds']:.2f} s = "
                  f"{thr['calls_per_s']:,.0f} calls/s")
