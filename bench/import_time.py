"""How long `import callgate` takes, as a user's process sees it: the median wall time of
`python -c "import callgate"` minus that of `python -c pass`, interleaved, in fresh
interpreters (no warm module cache shared between runs).

    python bench/import_time.py [PYTHON] [-n 21]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def _wall(python: str, code: str) -> float:
    start = time.perf_counter()
    subprocess.run([python, "-c", code], check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("python", nargs="?", default=sys.executable)
    parser.add_argument("-n", type=int, default=21)
    args = parser.parse_args()
    bare, imported = [], []
    for _ in range(args.n):  # interleaved: both see the same machine load
        bare.append(_wall(args.python, "pass"))
        imported.append(_wall(args.python, "import callgate"))
    b, i = statistics.median(bare) * 1e3, statistics.median(imported) * 1e3
    print(f"python -c pass {b:.1f} ms, python -c 'import callgate' {i:.1f} ms: import callgate costs {i - b:.1f} ms "
          f"(medians of {args.n})")


if __name__ == "__main__":
    main()
