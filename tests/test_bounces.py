"""Tests for bounce detection, run through the full parser."""

from __future__ import annotations

from parser_samples import build_message, mime_part, multipart_body, simple_message

from maildesk.parsing import parse_message

DAEMON_HEADERS = (
    "Return-Path: <>",
    "From: MAILER-DAEMON@mx.example.net (Mail Delivery System)",
    "To: tuki@example.fi",
    "Subject: Undelivered Mail Returned to Sender",
    "Date: Fri, 20 Nov 2026 11:31:08 +0200",
    "Message-ID: <dsn-1@mx.example.net>",
    "MIME-Version: 1.0",
)


def dsn(
    *recipient_blocks: str, returned: bytes | None = None, report_type: str = "delivery-status"
) -> bytes:
    """Return a multipart/report with one delivery-status part of ``recipient_blocks``."""
    status = "Reporting-MTA: dns; mx.example.net\r\n\r\n" + "\r\n\r\n".join(recipient_blocks)
    parts = [
        mime_part(
            "Content-Type: text/plain; charset=us-ascii",
            body="Your message could not be delivered.\r\n",
        ),
        mime_part("Content-Type: message/delivery-status", body=status + "\r\n"),
    ]
    if returned is not None:
        parts.append(returned)
    headers = (
        *DAEMON_HEADERS,
        f'Content-Type: multipart/report; report-type={report_type}; boundary="r1"',
    )

    return build_message(*headers, body=multipart_body("r1", *parts))


RETURNED_HEADERS = mime_part(
    "Content-Type: text/rfc822-headers",
    body="From: tuki@example.fi\r\nTo: olli@example.com\r\nMessage-ID: <reply-1@example.fi>\r\n",
)


def test_dsn_failed_recipient():
    """A failed recipient of an RFC 3464 report is listed lower-case."""
    parsed = parse_message(
        dsn("Final-Recipient: rfc822; Olli.Vanha@Example.com\r\nAction: failed\r\nStatus: 5.1.1")
    )

    assert parsed.is_bounce is True
    assert parsed.failed_recipients == ("olli.vanha@example.com",)


def test_dsn_bounced_message_id_from_headers():
    """The bounced Message-ID comes from the returned text/rfc822-headers part."""
    parsed = parse_message(
        dsn(
            "Final-Recipient: rfc822; olli@example.com\r\nAction: failed", returned=RETURNED_HEADERS
        )
    )

    assert parsed.bounced_message_id == "reply-1@example.fi"


def test_dsn_bounced_message_id_from_message():
    """The bounced Message-ID comes from a returned message/rfc822 part."""
    returned = mime_part(
        "Content-Type: message/rfc822",
        body="From: tuki@example.fi\r\nMessage-ID: <reply-2@example.fi>\r\nSubject: Re\r\n\r\nText\r\n",
    )

    parsed = parse_message(
        dsn("Final-Recipient: rfc822; olli@example.com\r\nAction: failed", returned=returned)
    )

    assert parsed.bounced_message_id == "reply-2@example.fi"


def test_dsn_original_recipient_fallback():
    """Without Final-Recipient, Original-Recipient names the failed recipient."""
    parsed = parse_message(dsn("Original-Recipient: rfc822;<Olli@Example.com>\r\nAction: failed"))

    assert parsed.failed_recipients == ("olli@example.com",)


def test_dsn_only_failed_actions():
    """Delayed and delivered recipients are not failed recipients."""
    parsed = parse_message(
        dsn(
            "Final-Recipient: rfc822; slow@example.com\r\nAction: delayed\r\nStatus: 4.4.1",
            "Final-Recipient: rfc822; ok@example.com\r\nAction: delivered\r\nStatus: 2.0.0",
            "Final-Recipient: rfc822; gone@example.com\r\nAction: failed\r\nStatus: 5.1.1",
        )
    )

    assert parsed.is_bounce is True
    assert parsed.failed_recipients == ("gone@example.com",)


def test_delay_report_is_bounce_without_failures():
    """A report with only delayed recipients is a bounce with no failed recipients."""
    parsed = parse_message(dsn("Final-Recipient: rfc822; slow@example.com\r\nAction: delayed"))

    assert parsed.is_bounce is True
    assert parsed.failed_recipients == ()


def test_delay_report_ignores_text():
    """A delay report does not list the recipient its text names."""
    raw = dsn("Final-Recipient: rfc822; slow@example.com\r\nAction: delayed").replace(
        b"Your message could not be delivered.",
        b"<slow@example.com>: temporary failure, still trying",
    )

    assert parse_message(raw).failed_recipients == ()


def test_dsn_without_fields_reads_text():
    """A report whose status part has no recipient fields reads the recipient from its text."""
    raw = dsn("X-Unknown: 1").replace(
        b"Your message could not be delivered.",
        b"<olli@example.com>: host mx.example.com said: 550 unknown user",
    )

    assert parse_message(raw).failed_recipients == ("olli@example.com",)


def test_qmail_bounce_recipient():
    """qmail's plain-text bounce is recognized and its recipient read."""
    body = (
        "Hi. This is the qmail-send program at mx.example.net.\r\n"
        "I'm afraid I wasn't able to deliver your message to the following addresses.\r\n\r\n"
        "<Olli@Example.com>:\r\n192.0.2.7 does not like recipient.\r\n\r\n"
        "--- Below this line is a copy of the message.\r\n\r\n"
        "Message-ID: <reply-3@example.fi>\r\nSubject: Re: tilaus\r\n"
    )

    parsed = parse_message(
        simple_message(body=body, From="MAILER-DAEMON@mx.example.net", Return_Path="<>")
    )

    assert parsed.is_bounce is True
    assert parsed.failed_recipients == ("olli@example.com",)
    assert parsed.bounced_message_id == "reply-3@example.fi"


def test_postfix_text_bounce():
    """A plain-text bounce from MAILER-DAEMON with an empty Return-Path is a bounce."""
    body = (
        "This is the mail system at host mx.example.net.\r\n\r\n"
        "<olli@example.com>: host mx.example.com[192.0.2.9] said: 550 5.1.1 unknown user\r\n"
    )

    parsed = parse_message(
        simple_message(body=body, From="MAILER-DAEMON@mx.example.net", Return_Path="<>")
    )

    assert parsed.is_bounce is True
    assert parsed.failed_recipients == ("olli@example.com",)


def test_exchange_text_bounce():
    """Exchange's "Delivery has failed to these recipients" list is read."""
    body = (
        "Delivery has failed to these recipients or groups:\r\n\r\n"
        "olli@example.com (olli@example.com)\r\n"
        "The email address you entered couldn't be found.\r\n"
    )

    parsed = parse_message(
        simple_message(body=body, From="postmaster@example.com", Return_Path="<>")
    )

    assert parsed.failed_recipients == ("olli@example.com",)


def test_exim_text_bounce():
    """Exim's "following address(es) failed" list is read, not the reason lines."""
    body = (
        "A message that you sent could not be delivered to one or more of its\r\n"
        "recipients. This is a permanent error. The following address(es) failed:\r\n\r\n"
        "  olli@example.com\r\n"
        "    SMTP error from remote mail server after RCPT TO:<olli@example.com>:\r\n"
        "  eeva@example.com\r\n\r\n"
        "Reporting-MTA: dns; mx.example.net\r\n"
    )

    parsed = parse_message(
        simple_message(
            body=body, From="Mail Delivery System <Mailer-Daemon@mx.example.net>", Return_Path="<>"
        )
    )

    assert parsed.failed_recipients == ("olli@example.com", "eeva@example.com")


def test_daemon_without_domain_recognized():
    """A From of a bare "MAILER-DAEMON" still marks a null-path text bounce."""
    body = "<olli@example.com>: host mx.example.com said: 550 no such user\r\n"

    parsed = parse_message(
        simple_message(body=body, From="MAILER-DAEMON (Mail Delivery System)", Return_Path="<>")
    )

    assert parsed.from_ is None
    assert parsed.is_bounce is True


def test_customer_mail_not_bounce():
    """A customer writing about undelivered mail is not a bounce."""
    body = "Hi. This is the qmail-send program at my ISP, it said my mail was undeliverable.\r\n"

    parsed = parse_message(simple_message(body=body, Subject="Undelivered Mail Returned to Sender"))

    assert parsed.is_bounce is False
    assert parsed.failed_recipients == ()


def test_forwarded_bounce_not_bounce():
    """A customer forwarding a bounce as an attachment does not make a bounce."""
    inner = dsn("Final-Recipient: rfc822; olli@example.com\r\nAction: failed")
    parts = [
        mime_part("Content-Type: text/plain; charset=utf-8", body="Sain tämän, mikä vika?\r\n"),
        mime_part("Content-Type: message/rfc822", body=inner),
    ]
    raw = build_message(
        "From: Aino <aino@example.com>",
        "Subject: Fwd: Undelivered Mail",
        'Content-Type: multipart/mixed; boundary="f1"',
        body=multipart_body("f1", *parts),
    )

    parsed = parse_message(raw)

    assert parsed.is_bounce is False
    assert parsed.failed_recipients == ()


def test_feedback_report_not_bounce():
    """A feedback-loop report is not a bounce and keeps its headers for the loop guard."""
    raw = build_message(
        "From: abuse@isp.example.net",
        "Return-Path: <>",
        "Subject: FW: complaint",
        'Content-Type: multipart/report; report-type=feedback-report; boundary="fb"',
        body=multipart_body(
            "fb",
            mime_part("Content-Type: text/plain", body="This is an abuse report.\r\n"),
            mime_part("Content-Type: message/feedback-report", body="Feedback-Type: abuse\r\n"),
        ),
    )

    parsed = parse_message(raw)

    assert parsed.is_bounce is False
    assert "report-type=feedback-report" in (parsed.header("Content-Type") or "")
