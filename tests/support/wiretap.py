"""Between a proxy and a real MCP server: passes bytes both ways unchanged and keeps a copy of
each direction, so a test can see exactly what the server received and sent.

    python tests/support/wiretap.py IN_LOG OUT_LOG SERVER_COMMAND [ARGS...]
"""

from __future__ import annotations

import subprocess
import sys
import threading


def main() -> int:
    log_in, log_out, command = sys.argv[1], sys.argv[2], sys.argv[3:]
    child = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def down() -> None:
        with open(log_out, "ab") as log:
            while chunk := child.stdout.read1(1 << 16):
                log.write(chunk)
                log.flush()
                sys.stdout.buffer.write(chunk)
                sys.stdout.buffer.flush()

    reader = threading.Thread(target=down, daemon=True)
    reader.start()
    with open(log_in, "ab") as log:
        while chunk := sys.stdin.buffer.read1(1 << 16):
            log.write(chunk)
            log.flush()
            try:
                child.stdin.write(chunk)
                child.stdin.flush()
            except BrokenPipeError:
                break
    try:
        child.stdin.close()
    except BrokenPipeError:
        pass
    try:
        rc = child.wait(timeout=10)
    except subprocess.TimeoutExpired:
        child.kill()
        rc = child.wait()
    reader.join(timeout=5)
    return rc


if __name__ == "__main__":
    sys.exit(main())
