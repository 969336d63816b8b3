"""A private Dovecot for the benchmarks, with mailboxes filled straight from the generator.

The server and SMTP sink classes are the test suite's (``tests/servers.py``), so
the benchmarks run against the same Dovecot 2.3 set-up as the tests.
"""

from __future__ import annotations

import logging
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from benchmarks.corpus import CorpusSpec, CorpusStats, write_maildir

_TESTS = Path(__file__).resolve().parent.parent / "tests"
if str(_TESTS) not in sys.path:
    sys.path.append(str(_TESTS))

from servers import (  # noqa: E402 - tests/ is put on the path first
    DovecotServer,
    ImapAccount,
    SmtpSink,
    find_dovecot,
    make_dovecot_root,
)

log = logging.getLogger(__name__)

__all__ = ["DovecotServer", "FilledMailbox", "ImapAccount", "SmtpSink", "dovecot", "fill_account"]


@dataclass
class FilledMailbox:
    """A Dovecot account whose INBOX holds a generated corpus."""

    account: ImapAccount
    spec: CorpusSpec
    stats: CorpusStats


@contextmanager
def dovecot() -> Iterator[DovecotServer]:
    """Start a private Dovecot on 127.0.0.1 and remove its files afterwards."""
    root = make_dovecot_root()
    server = DovecotServer(find_dovecot(), root)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def fill_account(server: DovecotServer, spec: CorpusSpec) -> FilledMailbox:
    """Create an account and write ``spec``'s corpus into its INBOX, then let Dovecot index it.

    The first SELECT after the files are written assigns the UIDs, so it is
    done here and not inside a timed run.
    """
    account = server.create_account()
    users = server.users
    stats = write_maildir(account.maildir, spec, uid=users.mail_uid, gid=users.mail_gid)
    # The account logs this connection out when it closes.
    info = account.client().select_folder("INBOX", readonly=True)
    exists = int(info[b"EXISTS"])
    if exists != stats.messages:
        raise RuntimeError(f"Dovecot lists {exists} messages, but {stats.messages} were written")
    log.info(
        "mailbox %s: %d messages in %d threads, %.1f MB",
        account.username, stats.messages, stats.threads, stats.bytes / 1e6,
    )
    return FilledMailbox(account, spec, stats)
