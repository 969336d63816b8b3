"""A parse worker process, started by :class:`maildesk.prepare.ProcessPreparer`.

Run as ``python -m maildesk.parseworker PARENT_PID``: pickled messages come in on stdin
and pickled results go out on stdout. Everything else that would go to stdout
is sent to stderr.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

from maildesk.prepare import PIPE_BUFFER_BYTES, serve

# From <linux/prctl.h>: the signal this process gets when the thread that started it ends.
PR_SET_PDEATHSIG = 1


def main() -> None:
    # The main process ends a worker by closing its stdin, also when the service stops.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _end_with_parent(int(sys.argv[1]))
    # Buffers of a batch's size: a batch and its results cross in few system calls.
    results = os.fdopen(os.dup(sys.stdout.fileno()), "wb", buffering=PIPE_BUFFER_BYTES)
    requests = os.fdopen(os.dup(sys.stdin.fileno()), "rb", buffering=PIPE_BUFFER_BYTES)
    # Anything else written to stdout, from Python or from C, goes to stderr.
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    serve(requests, results)


def _end_with_parent(parent: int) -> None:
    """Have Linux kill this worker when the main process dies, even in the middle of a message.

    A closed stdin ends an idle worker, but a stopped or busy one would not
    read it. The kernel sends the signal when the thread that started the
    worker ends, which is why one thread starts, uses and closes a
    ProcessPreparer.
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            print(f"parse worker: prctl(PR_SET_PDEATHSIG) failed: {os.strerror(ctypes.get_errno())}", file=sys.stderr)
    if os.getppid() != parent:
        # The main process died before the request above took effect.
        os._exit(1)


if __name__ == "__main__":
    main()
