"""Run a command and write its peak RSS (``ru_maxrss`` from ``wait4``, KiB) to a file.

Usage: ``python -m benchmarks.rusage OUTPUT -- COMMAND [ARG ...]``; the exit
code is the command's.

On Linux a child's ``ru_maxrss`` starts from the peak RSS of the process that
started it, because exec records the high-water mark of the memory the child
shared with its parent before it (vfork) or copied from it (fork). The
benchmark process keeps generated mail in memory and can be larger than maildesk, so
its children would report its size. This small launcher starts the command
instead, so the figure is the command's own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python -m benchmarks.rusage OUTPUT -- COMMAND [ARG ...]", file=sys.stderr)
        return 2
    output, command = Path(argv[0]), argv[2:]
    child = subprocess.Popen(command)
    _, status, usage = os.wait4(child.pid, 0)
    output.write_text(str(usage.ru_maxrss), encoding="ascii")
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
