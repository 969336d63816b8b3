"""Send queued replies over SMTP, at most once each.

A row is claimed with one atomic UPDATE (queued -> sending) before SMTP is
talked to, and marked sent with one UPDATE right after the server accepts
it. The only way a reply goes out twice is a crash between those two: the
server has accepted the message but the "sent" UPDATE has not committed.
On the next start, rows left in "sending" by a dead process are queued
again, and only such a row can be a duplicate.

Transient failures (4xx answers, lost connections) are retried with
exponential backoff; permanent ones (5xx) mark the row failed at once. When
the SMTP server cannot be reached at all, no row is claimed, and the next
connection attempt waits with exponential backoff and jitter.
"""

from __future__ import annotations

import json
import logging
import smtplib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from imapclient import IMAPClient
from sqlalchemy import Engine, select, update

from maildesk.backoff import RetryGate
from maildesk.config import Config
from maildesk.connections import connect_imap, connect_smtp
from maildesk.db import outbox
from maildesk.errors import ConnectionSetupError
from maildesk.faults import crash_point

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
FIRST_RETRY = timedelta(minutes=1)
MAX_RETRY = timedelta(hours=2)


@dataclass
class SendStats:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    copied: int = 0


class OutboxSender:
    """The outbox job: send what is due, then copy sent replies to the Sent folder."""

    def __init__(
        self,
        config: Config,
        engine: Engine,
        *,
        connect_smtp: Callable[..., smtplib.SMTP] = connect_smtp,
        connect_imap: Callable[..., IMAPClient] = connect_imap,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.config = config
        self.engine = engine
        self.connect_smtp = connect_smtp
        self.connect_imap = connect_imap
        self.clock = clock
        self._recovered = False
        self.smtp_gate = RetryGate("SMTP connection")
        self.imap_gate = RetryGate("IMAP connection for copies to the Sent folder")

    def run_once(self, should_stop: Callable[[], bool] = lambda: False) -> SendStats:
        stats = SendStats()
        if not self._recovered:
            self.requeue_abandoned()
            self._recovered = True
        self.send_due(stats, should_stop)
        if self.config.mailbox is not None and self.config.mailbox.append_to_sent:
            self.copy_to_sent(stats, should_stop)
        return stats

    def requeue_abandoned(self) -> int:
        """Queue again the rows a dead process left in "sending".

        Only call this while holding the state directory lock, so that no live
        process is in the middle of sending them.
        """
        with self.engine.begin() as connection:
            result = connection.execute(
                update(outbox)
                .where(outbox.c.status == "sending")
                .values(status="queued", last_error="requeued after an interrupted send")
            )
        if result.rowcount:
            log.warning(
                "%d replies were being sent when the last process stopped; sending them again "
                "(a reply the server had already accepted goes out twice)", result.rowcount,
            )
        return result.rowcount

    def send_due(self, stats: SendStats, should_stop: Callable[[], bool]) -> None:
        with self.engine.connect() as connection:
            due = connection.execute(
                select(outbox.c.id)
                .where(outbox.c.status == "queued", outbox.c.next_attempt_at <= self.clock())
                .order_by(outbox.c.id)
            ).scalars().all()
        if not due:
            return

        if not self.smtp_gate.ready():
            log.debug(
                "%d replies wait %.0f s for the next SMTP connection attempt",
                len(due), self.smtp_gate.remaining(),
            )
            return
        smtp: smtplib.SMTP | None = None
        try:
            for row_id in due:
                if should_stop():
                    break
                if smtp is None:
                    smtp = self._connect(len(due))
                    if smtp is None:
                        break
                smtp = self._send_one(smtp, row_id, stats)
        finally:
            _quit(smtp)

    def _connect(self, waiting: int) -> smtplib.SMTP | None:
        try:
            smtp = self.connect_smtp(self.config.require_smtp())
        except ConnectionSetupError as exc:
            self.smtp_gate.failed(f"{exc} ({waiting} replies wait)")
            return None
        self.smtp_gate.succeeded()
        return smtp

    def _claim(self, row_id: int) -> bool:
        with self.engine.begin() as connection:
            result = connection.execute(
                update(outbox)
                .where(outbox.c.id == row_id, outbox.c.status == "queued")
                .values(status="sending", claimed_at=self.clock(), attempts=outbox.c.attempts + 1)
            )
        return result.rowcount == 1

    def _send_one(self, smtp: smtplib.SMTP, row_id: int, stats: SendStats) -> smtplib.SMTP | None:
        """Claim and send one row; return the connection, or None when it broke."""
        if not self._claim(row_id):
            return smtp
        crash_point("smtp-claimed")
        with self.engine.connect() as connection:
            row = connection.execute(select(outbox).where(outbox.c.id == row_id)).one()
        recipients = json.loads(row.to_addrs)
        try:
            smtp.sendmail(self.config.require_smtp().from_address, recipients, row.raw)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            self._failed(row, stats, f"recipients refused: {exc.recipients}", permanent=min(codes) >= 500)
            return smtp
        except smtplib.SMTPResponseException as exc:
            message = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
            self._failed(row, stats, f"{exc.smtp_code} {message}", permanent=exc.smtp_code >= 500)
            return smtp
        except (smtplib.SMTPException, OSError) as exc:
            self._failed(row, stats, f"{type(exc).__name__}: {exc}", permanent=False)
            _quit(smtp)
            return None

        crash_point("smtp-accepted")
        # The duplicate window: the server has the message and this UPDATE has not
        # committed yet. Keep it to this one statement.
        with self.engine.begin() as connection:
            connection.execute(
                update(outbox).where(outbox.c.id == row_id).values(status="sent", sent_at=self.clock(), last_error=None)
            )
        stats.sent += 1
        log.info("reply sent (outbox=%s ticket=%s to=%s)", row_id, row.ticket, ",".join(recipients))
        return smtp

    def _failed(self, row, stats: SendStats, error: str, *, permanent: bool) -> None:  # type: ignore[no-untyped-def]
        attempts = row.attempts
        if permanent or attempts >= MAX_ATTEMPTS:
            values: dict[str, object] = {"status": "failed", "last_error": error}
            stats.failed += 1
            log.error(
                "reply failed permanently (outbox=%s ticket=%s attempt=%d): %s",
                row.id, row.ticket, attempts, error,
            )
        else:
            delay = min(FIRST_RETRY * 2 ** (attempts - 1), MAX_RETRY)
            values = {"status": "queued", "last_error": error, "next_attempt_at": self.clock() + delay}
            stats.retried += 1
            log.warning(
                "reply not sent, retrying in %s (outbox=%s ticket=%s attempt=%d): %s",
                delay, row.id, row.ticket, attempts, error,
            )
        with self.engine.begin() as connection:
            connection.execute(update(outbox).where(outbox.c.id == row.id).values(**values))

    def copy_to_sent(self, stats: SendStats, should_stop: Callable[[], bool]) -> None:
        """Append sent replies to the Sent folder so agents see them in their mail client."""
        mailbox = self.config.require_mailbox()
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(outbox.c.id, outbox.c.raw, outbox.c.sent_at, outbox.c.message_id, outbox.c.sent_copy).where(
                    outbox.c.status == "sent", outbox.c.sent_copy.in_(("pending", "copying"))
                )
            ).all()
        if not rows or not self.imap_gate.ready():
            return
        try:
            client = self.connect_imap(mailbox)
        except ConnectionSetupError as exc:
            self.imap_gate.failed(f"{exc} ({len(rows)} copies wait)")
            return
        self.imap_gate.succeeded()
        try:
            if not client.folder_exists(mailbox.sent_folder):
                client.create_folder(mailbox.sent_folder)
                log.warning(
                    "folder %s did not exist and was created for copies of sent replies; if your "
                    "mail client's Sent folder has another name, set [mailbox] sent_folder to it",
                    mailbox.sent_folder,
                )
            for row in rows:
                if should_stop():
                    break
                self._append(client, mailbox.sent_folder, row, stats)
        except (IMAPClient.Error, OSError) as exc:
            # The copies not yet made stay pending for the next run.
            self.imap_gate.failed(f"copying sent replies to {mailbox.sent_folder}: {exc}")
        finally:
            _logout(client)

    def _append(self, client: IMAPClient, folder: str, row, stats: SendStats) -> None:  # type: ignore[no-untyped-def]
        if row.sent_copy == "copying" and self._already_copied(client, folder, row.message_id):
            # A process died between APPEND and recording it; the copy is there.
            self._set_copy_status(row.id, "done")
            return
        self._set_copy_status(row.id, "copying")
        try:
            client.append(folder, row.raw, flags=[b"\\Seen"], msg_time=row.sent_at)
            copy_status = "done"
            stats.copied += 1
        except IMAPClient.AbortError:
            raise
        except IMAPClient.Error as exc:
            copy_status = "failed"
            log.error("copy of outbox=%s to %s failed, not retried: %s", row.id, folder, exc)
        self._set_copy_status(row.id, copy_status)

    def _set_copy_status(self, row_id: int, status: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(update(outbox).where(outbox.c.id == row_id).values(sent_copy=status))

    @staticmethod
    def _already_copied(client: IMAPClient, folder: str, message_id: str) -> bool:
        client.select_folder(folder, readonly=True)
        return bool(client.search(["HEADER", "Message-ID", f"<{message_id}>"]))


def _quit(smtp: smtplib.SMTP | None) -> None:
    if smtp is None:
        return
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()


def _logout(client: IMAPClient) -> None:
    try:
        client.logout()
    except (IMAPClient.Error, OSError) as exc:
        log.debug("IMAP logout failed: %s", exc)
