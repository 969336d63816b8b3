"""Child process for the growth benchmark: one timed sync pass, the result as JSON on stdout.

Usage: ``python -m benchmarks.syncchild CONFIG``. The timer covers
``maildesk.service.sync_once`` (state lock, migrations check, IMAP sync and
outbox pass), not the interpreter start and imports.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

from maildesk.config import load_config
from maildesk.service import sync_once


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    config = load_config(Path(argv[0]))
    began = time.perf_counter()
    stats, _sent = sync_once(config)
    seconds = time.perf_counter() - began
    print(json.dumps({
        "seconds": seconds, "stored": stats.stored, "duplicates": stats.duplicates,
        "new_tickets": stats.new_tickets, "replies_queued": stats.replies_queued,
        "quarantined": stats.quarantined,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
