"""CRM evaluate() and evaluate_json() at another git revision against the working tree,
interleaved in one run.

    pip install -e . && python bench/compare_revisions.py a756fe8 [--rounds 11]

Builds REV into a temporary directory (git worktree + pip install --target), then times the
same calls (process_refund over the agent's cap; evaluate_json with ready bytes) in fresh
interpreters, alternating old and new, and prints both medians and their ratio for each. On a shared machine only the ratio means much.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

TIMER = r'''
import statistics, sys, time
sys.path.insert(0, sys.argv[1])
from callgate import Engine, examples
engine = Engine.from_dict(examples.policy("crm"))
evaluate, evaluate_json = engine.evaluate, engine.evaluate_json
args, agent = {"order_id": "ORD-8821", "amount": 800}, {"user_id": "agt-099", "env": "production"}
tool, args_b = b"process_refund", b'{"order_id":"ORD-8821","amount":800}'
ctx_b = b'{"role":"agent","agent_attrs":{"user_id":"agt-099","env":"production"},"resource_attrs":{}}'
def rounds(n):
    for _ in range(n):
        evaluate("process_refund", args, role="agent", agent_attributes=agent, resource_attributes={})
def rounds_json(n):
    for _ in range(n):
        evaluate_json(tool, args_b, ctx_b)
out = []
for run in (rounds, rounds_json):
    run(20000)
    times = []
    for _ in range(15):
        t = time.perf_counter_ns()
        run(20000)
        times.append((time.perf_counter_ns() - t) / 20000)
    out.append(statistics.median(times))
print(*out)
'''


def build(rev: str, into: Path) -> Path:
    tree = into / "tree"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-f", str(tree), rev], check=True,
                   capture_output=True)
    try:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(into / "pkg"),
                        str(tree)], check=True)
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], capture_output=True)
    return into / "pkg"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("rev", help="the git revision to compare with (e.g. the commit before a change)")
    ap.add_argument("--rounds", type=int, default=11, help="interleaved runs of each side")
    opts = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sides = {"old": build(opts.rev, Path(tmp)), "new": ROOT / "src"}
        out: dict[str, list[list[float]]] = {"old": [], "new": []}
        for _ in range(opts.rounds):
            for name, path in sides.items():
                run = subprocess.run([sys.executable, "-c", TIMER, str(path)], capture_output=True, text=True,
                                     check=True)
                out[name].append([float(x) for x in run.stdout.split()])
    for k, call in enumerate(("evaluate()", "evaluate_json()")):
        old = statistics.median(r[k] for r in out["old"])
        new = statistics.median(r[k] for r in out["new"])
        print(f"{call} at {opts.rev}: {old:.0f} ns; working tree: {new:.0f} ns; new/old {new / old:.3f}")


if __name__ == "__main__":
    main()
