"""Tests for the demo's sample mail and its loopback IMAP and SMTP servers."""

from __future__ import annotations

import email
import smtplib
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.utils import parseaddr, parsedate_to_datetime
from pathlib import Path

import pytest
from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from maildesk import demo_servers
from maildesk.demo_mail import DEMO_OWN_ADDRESSES, DEMO_SUPPORT_ADDRESS, sample_messages
from maildesk.demo_servers import (
    DemoServerError,
    ImapServer,
    SinkMessage,
    SmtpSink,
    start_imap_server,
    start_smtp_sink,
)

NOW = datetime(2025, 3, 14, 10, 30, tzinfo=UTC)
USER = "tuki"
PASSWORD = "demo-salasana"


@pytest.fixture
def samples() -> list[bytes]:
    return sample_messages(NOW)


@pytest.fixture
def parsed(samples: list[bytes]) -> list[EmailMessage]:
    return [email.message_from_bytes(raw, policy=policy.default) for raw in samples]  # type: ignore[misc]


@pytest.fixture
def imap_server() -> Iterator[ImapServer]:
    with start_imap_server(USER, PASSWORD) as server:
        yield server


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    with start_smtp_sink() as sink:
        yield sink


def _login(server: ImapServer) -> IMAPClient:
    client = IMAPClient(server.host, server.port, ssl=False, timeout=10)
    client.login(USER, PASSWORD)
    return client


def _by_subject(messages: list[EmailMessage], prefix: str) -> EmailMessage:
    found = [message for message in messages if str(message["Subject"]).startswith(prefix)]
    assert len(found) == 1, f"expected one sample with subject {prefix!r}, found {len(found)}"
    return found[0]


# --- sample mail ------------------------------------------------------------


def test_samples_count_twelve(samples: list[bytes]) -> None:
    """sample_messages returns a dozen messages."""
    assert len(samples) == 12


def test_samples_parse_without_defects(parsed: list[EmailMessage]) -> None:
    """Every sample and every MIME part parses without a defect."""
    for message in parsed:
        for part in message.walk():
            assert part.defects == [], f"{message['Subject']}: {part.defects}"


def test_samples_have_message_id(parsed: list[EmailMessage]) -> None:
    """Every sample has a Message-ID."""
    for message in parsed:
        assert message["Message-ID"], message["Subject"]


def test_samples_message_ids_unique(parsed: list[EmailMessage]) -> None:
    """No two samples share a Message-ID."""
    ids = [str(message["Message-ID"]) for message in parsed]
    assert len(set(ids)) == len(ids)


def test_samples_message_id_sender_domain(parsed: list[EmailMessage]) -> None:
    """Each Message-ID ends in the domain of its From address."""
    for message in parsed:
        sender_domain = parseaddr(str(message["From"]))[1].rpartition("@")[2].lower()
        id_domain = str(message["Message-ID"]).strip("<>").rpartition("@")[2].lower()
        assert id_domain == sender_domain, message["Subject"]


def test_samples_new_ids_each_call() -> None:
    """Two calls return messages with different Message-IDs."""
    first = {email.message_from_bytes(raw)["Message-ID"] for raw in sample_messages(NOW)}
    second = {email.message_from_bytes(raw)["Message-ID"] for raw in sample_messages(NOW)}
    assert first.isdisjoint(second)


def test_samples_addressed_to_support(parsed: list[EmailMessage]) -> None:
    """Every sample is addressed to the demo support address."""
    for message in parsed:
        assert parseaddr(str(message["To"]))[1] == DEMO_SUPPORT_ADDRESS, message["Subject"]


def test_samples_dated_within_hour(parsed: list[EmailMessage]) -> None:
    """Every Date lies within the hour before now."""
    for message in parsed:
        sent_at = parsedate_to_datetime(str(message["Date"]))
        assert NOW - timedelta(hours=1) < sent_at < NOW, message["Subject"]


def test_samples_oldest_first(parsed: list[EmailMessage]) -> None:
    """The list is sorted by Date, oldest first."""
    dates = [parsedate_to_datetime(str(message["Date"])) for message in parsed]
    assert dates == sorted(dates)


def test_samples_crlf_line_ends(samples: list[bytes]) -> None:
    """Every line ends in CRLF, as IMAP APPEND expects."""
    for raw in samples:
        assert b"\n" not in raw.replace(b"\r\n", b"")


def test_samples_customer_domains(parsed: list[EmailMessage]) -> None:
    """Customers write from example.com or example.net."""
    machine_senders = {"mailer-daemon@mx.example.net", *DEMO_OWN_ADDRESSES}
    for message in parsed:
        sender = parseaddr(str(message["From"]))[1].lower()
        if sender in machine_senders:
            continue
        assert sender.rpartition("@")[2] in {"example.com", "example.net"}, sender


def test_samples_reject_naive_now() -> None:
    """A datetime without time zone raises ValueError."""
    with pytest.raises(ValueError, match="timezone-aware"):
        sample_messages(datetime(2025, 3, 14, 10, 30))


def test_thread_replies_reference_first(parsed: list[EmailMessage]) -> None:
    """Both replies carry the first message's Message-ID in References."""
    first = _by_subject(parsed, "Tilaus 10482")
    replies = [m for m in parsed if str(m["Subject"]).startswith("Re: Tilaus 10482")]
    assert len(replies) == 2
    for reply in replies:
        assert str(first["Message-ID"]) in str(reply["References"]).split()


def test_thread_second_reply_chain(parsed: list[EmailMessage]) -> None:
    """The second reply replies to the first reply and lists both earlier Message-IDs."""
    first = _by_subject(parsed, "Tilaus 10482")
    replies = [m for m in parsed if str(m["Subject"]).startswith("Re: Tilaus 10482")]
    earlier, later = replies
    assert str(earlier["In-Reply-To"]) == str(first["Message-ID"])
    assert str(later["In-Reply-To"]) == str(earlier["Message-ID"])
    assert str(later["References"]).split() == [
        str(first["Message-ID"]),
        str(earlier["Message-ID"]),
    ]


def test_thread_reply_quotes_earlier(parsed: list[EmailMessage]) -> None:
    """A reply quotes the earlier text with "> " lines."""
    replies = [m for m in parsed if str(m["Subject"]).startswith("Re: Tilaus 10482")]
    body = replies[0].get_content()
    assert "> Uusi osoite: Koivukuja 3 B 12, 33100 Tampere" in body.splitlines()


def test_urgent_subject(parsed: list[EmailMessage]) -> None:
    """One sample's subject starts with "Kiireellinen:"."""
    message = _by_subject(parsed, "Kiireellinen:")
    assert str(message["Subject"]) == "Kiireellinen: väärä koko tilauksessa 10490"


def test_invoice_charset_iso_8859_15(parsed: list[EmailMessage]) -> None:
    """The invoice question is ISO-8859-15 and decodes to Finnish letters and the euro sign."""
    message = _by_subject(parsed, "Lasku 2025-0417")
    assert message.get_content_charset() == "iso-8859-15"
    assert "toimitusmaksu 6,90 €" in message.get_content()
    assert str(message["Subject"]) == "Lasku 2025-0417: eräpäivän siirto?"


def test_invoice_raw_header_encoding(samples: list[bytes]) -> None:
    """The invoice's Subject is an ISO-8859-15 encoded-word on the wire."""
    raw = next(sample for sample in samples if b"Lasku_2025-0417" in sample)
    assert b"Subject: =?iso-8859-15?q?Lasku_2025-0417" in raw


def test_html_only_has_paragraphs(parsed: list[EmailMessage]) -> None:
    """The gift card question is a single text/html part with <p> text."""
    message = _by_subject(parsed, "Lahjakortin voimassaolo")
    assert message.get_content_type() == "text/html"
    assert "<p>Kiitos!<br>Kaisa Lehtonen</p>" in message.get_content()


def test_attachment_named_kuitti_pdf(parsed: list[EmailMessage]) -> None:
    """The warranty mail has one application/pdf attachment named kuitti.pdf."""
    message = _by_subject(parsed, "Takuu:")
    attachments = list(message.iter_attachments())
    assert [part.get_filename() for part in attachments] == ["kuitti.pdf"]
    assert attachments[0].get_content_type() == "application/pdf"
    assert attachments[0].get_content().startswith(b"%PDF-")


def test_out_of_office_auto_submitted(parsed: list[EmailMessage]) -> None:
    """The out-of-office reply is marked Auto-Submitted: auto-replied."""
    message = _by_subject(parsed, "Automaattinen vastaus:")
    assert str(message["Auto-Submitted"]) == "auto-replied"


def test_bounce_is_multipart_report(parsed: list[EmailMessage]) -> None:
    """The bounce is multipart/report with report-type delivery-status."""
    message = _by_subject(parsed, "Undelivered Mail")
    assert message.get_content_type() == "multipart/report"
    assert message.get_param("report-type") == "delivery-status"


def test_bounce_null_return_path(parsed: list[EmailMessage]) -> None:
    """The bounce comes from MAILER-DAEMON with the null Return-Path."""
    message = _by_subject(parsed, "Undelivered Mail")
    assert str(message["Return-Path"]) == "<>"
    assert parseaddr(str(message["From"]))[1] == "MAILER-DAEMON@mx.example.net"


def test_bounce_delivery_status_fields(parsed: list[EmailMessage]) -> None:
    """The delivery-status part names the failed recipient."""
    message = _by_subject(parsed, "Undelivered Mail")
    parts = [part.get_content_type() for part in message.iter_parts()]
    assert parts == ["text/plain", "message/delivery-status", "text/rfc822-headers"]
    status = list(message.iter_parts())[1]
    per_message, per_recipient = status.get_payload()
    assert per_message["Reporting-MTA"] == "dns; mx.example.net"
    assert per_recipient["Final-Recipient"] == "rfc822; t.hamalainen@example.net"
    assert per_recipient["Action"] == "failed"
    assert per_recipient["Status"] == "5.1.1"


def test_contact_form_reply_to(parsed: list[EmailMessage]) -> None:
    """The contact-form mail comes from the shop and names the customer in Reply-To."""
    message = _by_subject(parsed, "Yhteydenottolomake:")
    assert parseaddr(str(message["From"]))[1] == "noreply@demo.example"
    assert parseaddr(str(message["Reply-To"]))[1] == "anna.lindholm@example.net"


# --- IMAP server --------------------------------------------------------------


def test_imap_binds_loopback(imap_server: ImapServer) -> None:
    """The IMAP server reports 127.0.0.1 as its host."""
    assert imap_server.host == "127.0.0.1"


def test_imap_inbox_starts_empty(imap_server: ImapServer) -> None:
    """A new server has an empty INBOX and no other folder."""
    client = _login(imap_server)
    assert [name for _, _, name in client.list_folders()] == ["INBOX"]
    assert client.select_folder("INBOX")[b"EXISTS"] == 0
    client.logout()


def test_imap_append_fetch_samples(imap_server: ImapServer, samples: list[bytes]) -> None:
    """Every sample appended to INBOX is fetched back byte for byte."""
    client = _login(imap_server)
    for raw in samples:
        client.append("INBOX", raw)
    client.select_folder("INBOX", readonly=True)
    uids = client.search("ALL")
    fetched = client.fetch(uids, ["BODY.PEEK[]"])
    client.logout()

    assert len(uids) == len(samples)
    assert [fetched[uid][b"BODY[]"] for uid in sorted(uids)] == samples


def test_imap_rejects_wrong_password(imap_server: ImapServer) -> None:
    """Login with another password fails."""
    client = IMAPClient(imap_server.host, imap_server.port, ssl=False, timeout=10)
    with pytest.raises(LoginError):
        client.login(USER, "wrong")
    client.shutdown()


def test_imap_stop_closes_port() -> None:
    """After stop() the port refuses connections, and a second stop() does nothing."""
    server = start_imap_server(USER, PASSWORD)
    server.stop()
    server.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((server.host, server.port), timeout=5).close()


def test_imap_start_failure_shows_stderr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When pymap exits at start, the error includes its exit status and stderr."""
    fake = tmp_path / "pymap"
    fake.write_text("#!/bin/sh\necho 'fake pymap: no backend' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setattr(demo_servers, "find_pymap", lambda: fake)

    with pytest.raises(DemoServerError) as caught:
        start_imap_server(USER, PASSWORD)
    assert "status 3" in str(caught.value)
    assert "fake pymap: no backend" in str(caught.value)


# --- SMTP sink ----------------------------------------------------------------


def test_smtp_sink_binds_loopback(smtp_sink: SmtpSink) -> None:
    """The SMTP sink reports 127.0.0.1 as its host."""
    assert smtp_sink.host == "127.0.0.1"


def test_smtp_sink_records_message(smtp_sink: SmtpSink) -> None:
    """A message sent with smtplib is recorded with its envelope and bytes."""
    data = b"From: tuki@demo.example\r\nSubject: Testi\r\n\r\nHei!\r\n"
    with smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=10) as client:
        client.sendmail("tuki@demo.example", ["liisa@example.com", "aino@demo.example"], data)

    assert smtp_sink.messages == [
        SinkMessage(
            mail_from="tuki@demo.example",
            rcpt_tos=("liisa@example.com", "aino@demo.example"),
            data=data,
        )
    ]


def test_smtp_sink_null_sender(smtp_sink: SmtpSink) -> None:
    """A message with the null reverse-path is recorded with an empty sender."""
    with smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=10) as client:
        client.sendmail("<>", ["tuki@demo.example"], b"Subject: x\r\n\r\ny\r\n")

    assert smtp_sink.messages[0].mail_from == ""


def test_smtp_sink_messages_snapshot(smtp_sink: SmtpSink) -> None:
    """Changing the returned list leaves the recorded messages alone."""
    smtp_sink.messages.append(SinkMessage(mail_from="a@example.com", rcpt_tos=(), data=b""))
    assert smtp_sink.messages == []
