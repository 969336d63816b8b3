"""connect_imap and connect_smtp against a private Dovecot and an aiosmtpd sink."""

from __future__ import annotations

import logging
import shutil
import smtplib
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from maildesk.config import MailboxSettings
from maildesk.connections import connect_imap, connect_smtp
from maildesk.errors import ConnectionSetupError
from servers import (
    DovecotServer,
    ImapAccount,
    SmtpSink,
    TlsFiles,
    make_dovecot_root,
    unused_port,
)

RAW_MESSAGE = (
    b"From: Asiakas <asiakas@example.com>\r\n"
    b"To: tuki@example.fi\r\n"
    b"Subject: Tilaus 1234\r\n"
    b"Message-ID: <order-1234@example.com>\r\n"
    b"\r\n"
    b"Hei, missa tilaukseni on?\r\n"
)


@dataclass(frozen=True)
class Certificates:
    """A throwaway CA and a server certificate for 127.0.0.1 and localhost."""

    ca_file: Path
    server: TlsFiles
    server_context: ssl.SSLContext


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    directory = tmp_path_factory.mktemp("certificates")
    authority = trustme.CA()
    issued = authority.issue_cert("127.0.0.1", "localhost")

    ca_file = directory / "ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    chain = directory / "server-chain.pem"
    for index, blob in enumerate(issued.cert_chain_pems):
        blob.write_to_path(str(chain), append=index > 0)
    key = directory / "server-key.pem"
    issued.private_key_pem.write_to_path(str(key))

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    issued.configure_cert(context)
    return Certificates(ca_file, TlsFiles(chain, key), context)


@pytest.fixture(scope="module")
def dovecot_tls_server(
    dovecot_binary: str, certificates: Certificates
) -> Iterator[DovecotServer]:
    """Second private Dovecot that offers STARTTLS on ``port`` and TLS on ``imaps_port``."""
    root = make_dovecot_root()
    server = DovecotServer(dovecot_binary, root, tls=certificates.server)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def tls_account(dovecot_tls_server: DovecotServer) -> Iterator[ImapAccount]:
    account = dovecot_tls_server.create_account()
    try:
        yield account
    finally:
        account.close()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """Port of a loopback socket that accepts connections but never sends a greeting."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def _send(smtp: smtplib.SMTP, recipients: list[str]) -> None:
    smtp.sendmail("tuki@example.fi", recipients, RAW_MESSAGE)


# --- IMAP ------------------------------------------------------------------------------


def test_imap_login_lists_folders(imap_account: ImapAccount) -> None:
    """connect_imap logs in, and LIST returns the INBOX and the Sent folder."""
    client = connect_imap(imap_account.settings())
    try:
        names = [name for _flags, _delimiter, name in client.list_folders()]
    finally:
        client.logout()

    assert "INBOX" in names
    assert "Sent" in names


def test_imap_debug_level_reset(imap_account: ImapAccount) -> None:
    """connect_imap leaves imaplib's debug level at 0, not imapclient's 5."""
    client = connect_imap(imap_account.settings())
    try:
        assert client._imap.debug == 0
    finally:
        client.logout()


def test_imap_wrong_password_raises(imap_account: ImapAccount) -> None:
    """A rejected login names section, host, port and Dovecot's reply, not the password."""
    settings = imap_account.settings(password="wrong-Secret-42")

    with pytest.raises(ConnectionSetupError) as caught:
        connect_imap(settings)

    message = str(caught.value)
    assert message.startswith("[mailbox] ")
    assert f"127.0.0.1:{imap_account.port}" in message
    assert f"as {imap_account.username}" in message
    assert "[AUTHENTICATIONFAILED] Authentication failed." in message
    assert "wrong-Secret-42" not in message


def test_short_password_reply_withheld(imap_account: ImapAccount) -> None:
    """A reply that happens to contain a short wrong password is withheld whole, not masked letter by letter."""
    settings = imap_account.settings(password="tion")

    with pytest.raises(ConnectionSetupError) as caught:
        connect_imap(settings)

    message = str(caught.value)
    assert "Authentica" not in message
    assert "the server's reply is withheld because it contains the password" in message
    assert ".." not in message


def test_imap_password_not_logged(
    imap_account: ImapAccount, caplog: pytest.LogCaptureFixture
) -> None:
    """No log record at any level contains the right or the wrong password."""
    caplog.set_level(logging.DEBUG)

    connect_imap(imap_account.settings()).logout()
    with pytest.raises(ConnectionSetupError):
        connect_imap(imap_account.settings(password="wrong-Secret-42"))

    assert f"as {imap_account.username}" in caplog.text
    assert imap_account.password not in caplog.text
    assert "wrong-Secret-42" not in caplog.text


def test_imap_refused_port_names_endpoint(imap_account: ImapAccount) -> None:
    """A closed loopback port raises ConnectionSetupError naming host, port and the refusal."""
    port = unused_port()

    with pytest.raises(ConnectionSetupError) as caught:
        connect_imap(imap_account.settings(port=port))

    message = str(caught.value)
    assert f"[mailbox] connecting to 127.0.0.1:{port} failed" in message
    assert "Connection refused" in message


def test_imap_silent_server_times_out(imap_account: ImapAccount, silent_port: int) -> None:
    """A server that never greets raises ConnectionSetupError after the configured timeout."""
    settings = imap_account.settings(port=silent_port, timeout=0.3)

    with pytest.raises(ConnectionSetupError) as caught:
        connect_imap(settings)

    assert "timed out after 0.3 s" in str(caught.value)


def test_dovecot_without_ssl_omits_starttls(imap_account: ImapAccount) -> None:
    """The plain test Dovecot (ssl = no) does not advertise STARTTLS."""
    capabilities = imap_account.client().capabilities()

    assert b"STARTTLS" not in capabilities


def test_imap_starttls_missing_raises(imap_account: ImapAccount) -> None:
    """security "starttls" against a server without STARTTLS fails instead of going plain."""
    with pytest.raises(ConnectionSetupError) as caught:
        connect_imap(imap_account.settings(security="starttls"))

    message = str(caught.value)
    assert f"[mailbox] 127.0.0.1:{imap_account.port} does not offer STARTTLS" in message
    assert imap_account.password not in message


def test_append_fetch_keeps_unseen(imap_account: ImapAccount) -> None:
    """A message appended unread stays unread after FETCH BODY.PEEK[]."""
    uid = imap_account.append(RAW_MESSAGE)
    client = connect_imap(imap_account.settings())
    try:
        client.select_folder("INBOX")
        body = client.fetch([uid], ["BODY.PEEK[]"])[uid][b"BODY[]"]
        flags = client.get_flags([uid])[uid]
    finally:
        client.logout()

    assert body == RAW_MESSAGE
    assert b"\\Seen" not in flags


def test_append_keeps_flags(imap_account: ImapAccount) -> None:
    """append stores the given system flags and custom keywords."""
    uid = imap_account.append(RAW_MESSAGE, flags=["\\Seen", "maildesk-ticket"])
    client = imap_account.client()
    client.select_folder("INBOX", readonly=True)

    flags = client.get_flags([uid])[uid]

    assert b"\\Seen" in flags
    assert b"maildesk-ticket" in flags


def test_accounts_are_isolated(
    imap_account: ImapAccount, dovecot_server: DovecotServer
) -> None:
    """Mail appended to one test account does not show up in another."""
    imap_account.append(RAW_MESSAGE)
    other = dovecot_server.create_account()
    try:
        status = other.client().folder_status("INBOX", [b"MESSAGES"])
    finally:
        other.close()

    assert status[b"MESSAGES"] == 0


def test_reset_uidvalidity_changes_value(imap_account: ImapAccount) -> None:
    """reset_uidvalidity gives INBOX a new UIDVALIDITY and keeps its messages."""
    imap_account.append(RAW_MESSAGE)
    before = imap_account.uidvalidity()

    after = imap_account.reset_uidvalidity()

    assert after != before
    client = imap_account.client()
    assert client.select_folder("INBOX")[b"UIDVALIDITY"] == after
    assert client.search("ALL") == [1]


def test_reset_uidvalidity_of_subfolder(imap_account: ImapAccount) -> None:
    """reset_uidvalidity also works on a created folder below another one."""
    imap_account.create_folder("Arkisto/2024")
    before = imap_account.uidvalidity("Arkisto/2024")

    after = imap_account.reset_uidvalidity("Arkisto/2024")

    assert after != before


def test_imap_tls_with_ca_file(tls_account: ImapAccount, certificates: Certificates) -> None:
    """security "tls" verifies Dovecot's certificate against ca_file and logs in."""
    settings = tls_account.settings(
        security="tls", port=tls_account.server.imaps_port, ca_file=certificates.ca_file
    )

    client = connect_imap(settings)
    try:
        assert isinstance(client.socket(), ssl.SSLSocket)
        assert client.select_folder("INBOX")[b"EXISTS"] == 0
    finally:
        client.logout()


def test_imap_starttls_with_ca_file(
    tls_account: ImapAccount, certificates: Certificates
) -> None:
    """security "starttls" upgrades the plain port and logs in."""
    settings = tls_account.settings(security="starttls", ca_file=certificates.ca_file)

    client = connect_imap(settings)
    try:
        assert isinstance(client.socket(), ssl.SSLSocket)
        assert client.select_folder("INBOX")[b"EXISTS"] == 0
    finally:
        client.logout()


def test_imap_untrusted_certificate_raises(tls_account: ImapAccount) -> None:
    """Without ca_file the test CA is unknown, so the TLS handshake fails with a hint."""
    settings = tls_account.settings(security="tls", port=tls_account.server.imaps_port)

    with pytest.raises(ConnectionSetupError) as caught:
        connect_imap(settings)

    message = str(caught.value)
    assert "TLS certificate verification failed" in message
    assert "Set ca_file" in message


def test_missing_ca_file_raises(tmp_path: Path) -> None:
    """A ca_file that does not exist raises ConnectionSetupError naming the file."""
    missing = tmp_path / "missing-ca.pem"
    settings = MailboxSettings(
        section="mailbox",
        host="127.0.0.1",
        port=unused_port(),
        security="tls",
        username="tuki",
        password="unused-Secret-42",
        ca_file=missing,
    )

    with pytest.raises(ConnectionSetupError) as caught:
        connect_imap(settings)

    assert f"[mailbox] loading ca_file {missing} failed" in str(caught.value)


# --- SMTP ------------------------------------------------------------------------------


def test_smtp_login_and_send(smtp_sink: SmtpSink) -> None:
    """connect_smtp logs in with AUTH and the sink records the envelope and message."""
    smtp = connect_smtp(smtp_sink.settings())
    try:
        _send(smtp, ["asiakas@example.com"])
    finally:
        smtp.quit()

    [received] = smtp_sink.wait_for(1)
    assert received.login == smtp_sink.username
    assert received.mail_from == "tuki@example.fi"
    assert received.rcpt_tos == ["asiakas@example.com"]
    assert received.raw == RAW_MESSAGE
    assert received.message["Message-ID"] == "<order-1234@example.com>"


def test_smtp_wrong_password_raises(smtp_sink: SmtpSink) -> None:
    """A rejected AUTH names section, host, port and the 535 reply, not the password."""
    with pytest.raises(ConnectionSetupError) as caught:
        connect_smtp(smtp_sink.settings(password="wrong-Secret-42"))

    message = str(caught.value)
    assert message.startswith(f"[smtp] logging in to 127.0.0.1:{smtp_sink.port} as maildesk")
    assert "535 5.7.8 Authentication credentials invalid" in message
    assert "wrong-Secret-42" not in message


def test_smtp_password_not_logged(smtp_sink: SmtpSink, caplog: pytest.LogCaptureFixture) -> None:
    """No log record at any level contains the right or the wrong SMTP password."""
    caplog.set_level(logging.DEBUG)

    connect_smtp(smtp_sink.settings()).quit()
    with pytest.raises(ConnectionSetupError):
        connect_smtp(smtp_sink.settings(password="wrong-Secret-42"))

    assert "Logged in to SMTP server" in caplog.text
    assert smtp_sink.password not in caplog.text
    assert "wrong-Secret-42" not in caplog.text


def test_smtp_refused_port_names_endpoint(smtp_sink: SmtpSink) -> None:
    """A closed loopback port raises ConnectionSetupError naming host, port and the refusal."""
    port = unused_port()

    with pytest.raises(ConnectionSetupError) as caught:
        connect_smtp(smtp_sink.settings(port=port))

    message = str(caught.value)
    assert f"[smtp] connecting to 127.0.0.1:{port} failed" in message
    assert "Connection refused" in message


def test_smtp_starttls_missing_raises(smtp_sink: SmtpSink) -> None:
    """security "starttls" against a plain-only sink fails before AUTH."""
    with pytest.raises(ConnectionSetupError) as caught:
        connect_smtp(smtp_sink.settings(security="starttls"))

    assert f"[smtp] 127.0.0.1:{smtp_sink.port} does not offer STARTTLS" in str(caught.value)


def test_smtp_without_auth_skips_login(caplog: pytest.LogCaptureFixture) -> None:
    """A loopback server without AUTH is used without logging in."""
    caplog.set_level(logging.DEBUG, logger="maildesk.connections")
    with SmtpSink(offer_auth=False) as sink:
        smtp = connect_smtp(sink.settings())
        try:
            _send(smtp, ["asiakas@example.com"])
        finally:
            smtp.quit()
        [received] = sink.wait_for(1)

    assert received.login is None
    assert "offers no AUTH" in caplog.text


def test_smtp_fail_next_data_code(smtp_sink: SmtpSink) -> None:
    """fail_next(451) makes DATA fail once with 451, and the next message goes through."""
    smtp_sink.fail_next(code=451, count=1)
    smtp = connect_smtp(smtp_sink.settings())
    try:
        with pytest.raises(smtplib.SMTPDataError) as caught:
            _send(smtp, ["asiakas@example.com"])
        _send(smtp, ["asiakas@example.com"])
    finally:
        smtp.quit()

    assert caught.value.smtp_code == 451
    assert len(smtp_sink.wait_for(1)) == 1


def test_smtp_fail_next_rcpt_code(smtp_sink: SmtpSink) -> None:
    """fail_next at RCPT rejects every recipient of the next message with the code."""
    smtp_sink.fail_next(code=550, count=1, stage="RCPT")
    smtp = connect_smtp(smtp_sink.settings())
    try:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as caught:
            _send(smtp, ["a@example.com", "b@example.com"])
    finally:
        smtp.quit()

    codes = {address: reply[0] for address, reply in caught.value.recipients.items()}
    assert codes == {"a@example.com": 550, "b@example.com": 550}
    assert smtp_sink.messages == []


def test_smtp_tls_with_ca_file(certificates: Certificates) -> None:
    """security "tls" verifies the sink's certificate against ca_file and logs in."""
    with SmtpSink(tls_context=certificates.server_context, implicit_tls=True) as sink:
        smtp = connect_smtp(sink.settings(security="tls", ca_file=certificates.ca_file))
        try:
            _send(smtp, ["asiakas@example.com"])
        finally:
            smtp.quit()
        [received] = sink.wait_for(1)

    assert received.login == "maildesk"


def test_smtp_starttls_with_ca_file(certificates: Certificates) -> None:
    """security "starttls" upgrades the connection, after which the sink offers AUTH."""
    with SmtpSink(tls_context=certificates.server_context) as sink:
        smtp = connect_smtp(sink.settings(security="starttls", ca_file=certificates.ca_file))
        try:
            _send(smtp, ["asiakas@example.com"])
        finally:
            smtp.quit()
        [received] = sink.wait_for(1)

    assert received.login == "maildesk"


def test_smtp_untrusted_certificate_raises(certificates: Certificates) -> None:
    """Without ca_file the test CA is unknown, so the TLS handshake fails with a hint."""
    with SmtpSink(tls_context=certificates.server_context, implicit_tls=True) as sink:
        with pytest.raises(ConnectionSetupError) as caught:
            connect_smtp(sink.settings(security="tls"))

    message = str(caught.value)
    assert "TLS certificate verification failed" in message
    assert "Set ca_file" in message
