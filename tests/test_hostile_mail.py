"""Hostile and broken mail never stops the desk: each is stored or quarantined, and the mail behind it flows."""

from __future__ import annotations

import gc
import json
import re
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from casekit import make_desk
from faultkit import account_config, rows
from hostile_mail import CORPUS, huge_attachment
from maildesk.config import LimitSettings, load_config
from maildesk.db import attachments, messages
from maildesk.limits import NOTE_HEADING, PartialMessage, trim_for_ticket
from maildesk.message import Address, Attachment, IncomingMessage, ParsedMessage
from maildesk.service import Desk, sync_once
from maildesk.storage import FileStore
from servers import SmtpSink
from tests.mailkit import make_mail

RESERVED_NAMES = re.compile(r"^(con|prn|aux|nul|com[1-9]|lpt[1-9])(\..*)?$", re.IGNORECASE)
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory: pytest.TempPathFactory, dovecot_server: Any) -> dict[str, Any]:
    """Every corpus mail, each followed by an ordinary one, synced in batches of four."""
    tmp_path = tmp_path_factory.mktemp("corpus")
    account = dovecot_server.create_account()
    with SmtpSink() as sink:
        config = load_config(account_config(tmp_path, account, sink, batch_size=4))
        sync_once(config)
        uids: dict[str, int] = {}
        for name, build in CORPUS.items():
            uids[name] = account.append(build())
            uids[f"canary-{name}"] = account.append(make_mail(sender=f"canary-{name}@example.com"))
        account.close()
        stats, _ = sync_once(config)
    stored = {row.uid: row for row in rows(config, messages)}
    files = rows(config, attachments)
    return {"config": config, "uids": uids, "stored": stored, "files": files, "stats": stats}


def row_of(run: dict[str, Any], name: str) -> Any:
    return run["stored"][run["uids"][name]]


def files_of(run: dict[str, Any], name: str) -> list[Any]:
    message_id = row_of(run, name).id
    return [row for row in run["files"] if row.message == message_id]


@pytest.mark.dovecot
@pytest.mark.parametrize("name", sorted(CORPUS))
def test_corpus_mail_stored(corpus_run: dict[str, Any], name: str) -> None:
    """Each hostile mail is on a ticket or quarantined with a reason."""
    row = row_of(corpus_run, name)

    assert row.ticket is not None or (row.kind == "quarantined" and row.reason)


@pytest.mark.dovecot
@pytest.mark.parametrize("name", sorted(CORPUS))
def test_mail_behind_corpus_flows(corpus_run: dict[str, Any], name: str) -> None:
    """The ordinary mail right after each hostile one becomes its own ticket."""
    row = row_of(corpus_run, f"canary-{name}")

    assert ("customer", f"canary-{name}@example.com") == (row.kind, row.from_addr)
    assert row.ticket is not None


@pytest.mark.dovecot
def test_corpus_names_made_safe(corpus_run: dict[str, Any]) -> None:
    """Attachment names keep no path, no control character and no Windows device name."""
    names = [row.filename for row in files_of(corpus_run, "hostile-names")]

    assert 9 == len(names)
    for name in names:
        assert "/" not in name, name
        assert "\\" not in name, name
        assert not CONTROL.search(name), repr(name)
        assert not RESERVED_NAMES.match(name), name
        assert name not in ("", ".", "..")


@pytest.mark.dovecot
def test_corpus_encoded_newline_flattened(corpus_run: dict[str, Any]) -> None:
    """An encoded word that decodes to CR LF leaves no line break in the stored subject."""
    subject = row_of(corpus_run, "encoded-newlines").subject

    assert "Hei Bcc: uhri@example.org" == subject


@pytest.mark.dovecot
def test_corpus_recipients_capped(corpus_run: dict[str, Any]) -> None:
    """10,000 Cc addresses are cut to max_recipients, and the text states how many were left out."""
    row = row_of(corpus_run, "many-recipients")
    kept = len(json.loads(row.to_addrs)) + len(json.loads(row.cc_addrs))

    assert LimitSettings().max_recipients == kept
    assert "- 9801 of 10001 To and Cc addresses, over max_recipients (200)" in row.text


@pytest.mark.dovecot
def test_corpus_broken_tnef_kept(corpus_run: dict[str, Any]) -> None:
    """A winmail.dat that cannot be unpacked is kept as the file winmail.dat."""
    names = [row.filename for row in files_of(corpus_run, "broken-tnef")]

    assert ["winmail.dat"] == names


@pytest.mark.dovecot
@pytest.mark.parametrize("name", ["smime-signed", "pgp-signed"])
def test_corpus_signature_not_a_file(corpus_run: dict[str, Any], name: str) -> None:
    """A signature part is no customer file, but stays in the stored raw message."""
    row = row_of(corpus_run, name)
    raw = FileStore(corpus_run["config"].storage_path).get("raw", row.raw_sha256)

    assert [] == files_of(corpus_run, name)
    assert b"application/p" in raw
    assert b"-signature" in raw
    assert any(defect.startswith("signature part") for defect in json.loads(row.defects))


@pytest.mark.dovecot
def test_huge_message_memory_bounded(tmp_path: Path, imap_account: Any, smtp_sink: SmtpSink) -> None:
    """A 50 MB attachment over max_message_size is fetched only in part, and the ticket lists what is missing."""
    limit = 4 * 1024 * 1024
    extra = f"""
    [limits]
    max_message_size = {limit}
    """
    config = load_config(account_config(tmp_path, imap_account, smtp_sink, extra))
    sync_once(config)
    imap_account.append(huge_attachment())
    gc.collect()
    desk = Desk.open(config)

    tracemalloc.start()
    try:
        stats = desk.mailbox_sync().sync_once()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    row = rows(config, messages)[0]
    assert 1 == stats.new_tickets
    # Measured: about 10 times the fetched size (imaplib's buffers, decoding, parsing).
    assert peak < 16 * limit
    assert NOTE_HEADING in row.text
    assert "attachment paketti.jpg, cut off by that limit" in row.text
    assert [] == rows(config, attachments)


def test_attachment_over_limit_left_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An attachment over max_attachment_size is not stored; the ticket text names it and its size."""
    from email.message import EmailMessage

    desk = make_desk(tmp_path, capsys, '[limits]\nmax_attachment_size = "1MB"\n')
    message = EmailMessage()
    message["From"] = "maija@example.com"
    message["To"] = "tuki@example.fi"
    message["Subject"] = "Kuva"
    message.set_content("Kuva liitteenä.")
    message.add_attachment(b"\xff" * (2 * 1024 * 1024), maintype="image", subtype="png", filename="iso.png")
    message.add_attachment(b"pieni", maintype="text", subtype="plain", filename="pieni.txt")
    path = tmp_path / "mail.eml"
    path.write_bytes(message.as_bytes())

    desk.import_files(path)
    shown = desk.ticket(1)["messages"][0]

    assert ["pieni.txt"] == [a["filename"] for a in shown["attachments"]]
    assert "- attachment iso.png (2.0 MiB), over max_attachment_size (1.0 MiB)" in shown["text"]


# --- trim_for_ticket on parsed values --------------------------------------------------


def parsed(**values: Any) -> ParsedMessage:
    base: dict[str, Any] = {"message_id": "m@example.com", "subject": "s", "from_": Address("a@example.com")}
    base.update(values)
    return ParsedMessage(**base)


def test_trim_unchanged_within_limits() -> None:
    """A message within every limit comes back as the same object."""
    message = parsed(attachments=(Attachment("a.pdf", "application/pdf", b"x"),))

    assert message is trim_for_ticket(message, IncomingMessage(raw=b""), LimitSettings())


def test_trim_drops_cut_attachment() -> None:
    """Of a partly fetched message the last attachment is dropped, and the note gives both sizes."""
    message = parsed(
        text="Hei",
        attachments=(
            Attachment("eka.pdf", "application/pdf", b"1"),
            Attachment("toka.zip", "application/zip", b"2"),
        ),
    )
    item = PartialMessage(raw=b"x" * 2048, full_size=30 * 1024 * 1024)

    trimmed = trim_for_ticket(message, item, LimitSettings(max_message_size=2048))

    assert ["eka.pdf"] == [a.filename for a in trimmed.attachments]
    assert trimmed.text.startswith("Hei\n\n" + NOTE_HEADING)
    assert "the message is 30.0 MiB, over max_message_size (2048 bytes)" in trimmed.text
    assert "- attachment toka.zip, cut off by that limit" in trimmed.text


def test_trim_keeps_to_before_cc() -> None:
    """Recipients are cut to the limit keeping To first, then Cc."""
    message = parsed(
        to=(Address("t1@example.com"), Address("t2@example.com")),
        cc=(Address("c1@example.com"), Address("c2@example.com")),
    )

    trimmed = trim_for_ticket(message, IncomingMessage(raw=b""), LimitSettings(max_recipients=3))

    assert ("t1@example.com", "t2@example.com") == tuple(a.addr for a in trimmed.to)
    assert ("c1@example.com",) == tuple(a.addr for a in trimmed.cc)


@pytest.mark.parametrize(
    ("filename", "content_type"),
    [
        ("smime.p7s", "application/pkcs7-signature"),
        ("smime.p7s", "application/octet-stream"),
        ("signature.asc", "application/pgp-signature"),
    ],
)
def test_trim_removes_signature(filename: str, content_type: str) -> None:
    """Signature parts leave the attachment list without a note in the text."""
    message = parsed(text="Hei", attachments=(Attachment(filename, content_type, b"sig"),))

    trimmed = trim_for_ticket(message, IncomingMessage(raw=b""), LimitSettings())

    assert () == trimmed.attachments
    assert "Hei" == trimmed.text
    assert (f"signature part {filename} kept only in the raw message",) == trimmed.defects
