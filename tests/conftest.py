"""Shared fixtures: a private Dovecot per test session and an SMTP sink per test.

Tests that use the Dovecot fixtures get the ``dovecot`` marker, so
``-m "not dovecot"`` deselects them. Where Dovecot is missing they are skipped, unless
``MAILDESK_REQUIRE_DOVECOT=1`` is set (as in CI), which turns the skip into an error.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from servers import (
    DovecotServer,
    DovecotUnavailable,
    ImapAccount,
    SmtpSink,
    find_dovecot,
    make_dovecot_root,
)

# Every Dovecot fixture depends on this one, so it is in the fixture closure of each such test.
DOVECOT_FIXTURE = "dovecot_binary"


@pytest.fixture(autouse=True)
def english_locale(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Run every test with English CLI output, whatever the machine's locale.

    Tests of other languages pass --lang or set the variables themselves.
    """
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LC_ALL", "C")
    yield
    # The CLI activates a language for the whole process; the next test starts in English.
    from maildesk.i18n import activate

    activate("en")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if DOVECOT_FIXTURE in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.dovecot)


@pytest.fixture(scope="session")
def dovecot_binary() -> str:
    """Path of a supported dovecot binary; skips or fails the test where there is none."""
    try:
        return find_dovecot()
    except DovecotUnavailable as error:
        if os.environ.get("MAILDESK_REQUIRE_DOVECOT") == "1":
            pytest.fail(f"MAILDESK_REQUIRE_DOVECOT=1 but {error}", pytrace=False)
        pytest.skip(f"{error} (set MAILDESK_REQUIRE_DOVECOT=1 to fail instead of skipping)")


@pytest.fixture(scope="session")
def dovecot_server(dovecot_binary: str) -> Iterator[DovecotServer]:
    """Private Dovecot on 127.0.0.1 with plain IMAP only, stopped at the end of the session."""
    root = make_dovecot_root()
    server = DovecotServer(dovecot_binary, root)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def imap_account(dovecot_server: DovecotServer) -> Iterator[ImapAccount]:
    """Fresh Dovecot user with an empty INBOX and Sent folder."""
    account = dovecot_server.create_account()
    try:
        yield account
    finally:
        account.close()


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """Plain SMTP server on 127.0.0.1 that stores what it accepts, stopped after the test."""
    with SmtpSink() as sink:
        yield sink
