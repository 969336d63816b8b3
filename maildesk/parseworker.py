"""A parse worker process, started by :class:`maildesk.prepare.ProcessPreparer`.

Run as ``python -m maildesk.parseworker``: pickled messages come in on stdin
and pickled results go out on stdout. Everything else that would go to stdout
is sent to stderr.
"""

from __future__ import annotations

import os
import signal
import sys

from maildesk.prepare import PIPE_BUFFER_BYTES, serve


def main() -> None:
    # The main process ends a worker by closing its stdin, also when the service stops.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Results are written out at each batch's flush marker, not one system call per message.
    results = os.fdopen(os.dup(sys.stdout.fileno()), "wb", buffering=PIPE_BUFFER_BYTES)
    requests = os.fdopen(os.dup(sys.stdin.fileno()), "rb", buffering=PIPE_BUFFER_BYTES)
    # Anything else written to stdout, from Python or from C, goes to stderr.
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    serve(requests, results)


if __name__ == "__main__":
    main()
