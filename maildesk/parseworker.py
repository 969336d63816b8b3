"""A parse worker process, started by :class:`maildesk.prepare.ProcessPreparer`.

Run as ``python -m maildesk.parseworker``: pickled messages come in on stdin
and pickled results go out on stdout, so nothing else may write to stdout.
"""

from __future__ import annotations

import signal
import sys

from maildesk.prepare import serve


def main() -> None:
    # The main process ends a worker by closing its stdin, also when the service stops.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    results = sys.stdout.buffer
    sys.stdout = sys.stderr
    serve(sys.stdin.buffer, results)


if __name__ == "__main__":
    main()
