"""Export everything stored about one address (``customers export``), for a data access request.

The archive is a ZIP file, or a folder when the output path does not end
in ``.zip``. It contains:

- ``export.json``: the tickets, messages, replies and notes, with the field
  names of ``tickets show --json`` and ``outbox list --json``;
- ``messages/<n>.eml``: each of the person's messages as stored, and
  ``messages/<n>/<i>-<name>`` its attachments;
- ``outbox/<id>.eml``: each reply that maildesk queued or sent to them.

Messages that other customers took part in (see :mod:`maildesk.privacy`)
appear only as a stub with the date, the direction, the shop's addresses
and the person's own address, and ``"withheld"`` gives the reason. Their
text, subject, files and other customers' addresses stay out. So do the
requester and subject of other customers' tickets, and the text of notes
on them that name the person. Mail that maildesk sent to agents, such as
digests that name the person, is not exported.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Connection, select

from maildesk import views
from maildesk.config import Config
from maildesk.db import attachments
from maildesk.errors import MaildeskError
from maildesk.privacy import PersonData, Row, find_person_data, is_customer, read_raw
from maildesk.storage import FileStore, make_private_dirs

log = logging.getLogger(__name__)

WITHHELD_SHARED = "shared with other customers"
WITHHELD_TICKET = "requested by another customer"
WITHHELD_NOTE = "note on another customer's ticket"
# Fields of a ticket from another customer that are safe to show: no names, no text.
_SHARED_TICKET_FIELDS = (
    "number", "status", "priority", "tags", "owner", "message_count", "created_at", "updated_at",
)


class ExportError(MaildeskError):
    """The export could not be written, such as when the output path exists."""


@dataclass
class ExportSummary:
    path: Path
    tickets: int = 0
    messages: int = 0
    withheld_messages: int = 0
    attachments: int = 0
    outbox: int = 0
    notes: int = 0
    # Stored files that were already removed, such as by retention.
    missing_files: int = 0


class _Writer(Protocol):
    def write(self, name: str, content: bytes) -> None: ...

    def close(self) -> None: ...

    def discard(self) -> None: ...


def export_address(
    connection: Connection,
    config: Config,
    files: FileStore,
    address: str,
    destination: Path,
    *,
    now: datetime,
) -> ExportSummary:
    """Write the archive of ``address`` to ``destination`` and return what it contains."""
    data = find_person_data(connection, config, files, address)
    writer = _open_writer(destination)
    summary = ExportSummary(destination)
    try:
        document = _Exporter(connection, config, files, data, writer, summary).build(now)
        writer.write("export.json", json.dumps(document, ensure_ascii=False, indent=2).encode("utf-8"))
    except BaseException:
        writer.discard()
        raise
    writer.close()
    log.info(
        "exported a customer's data to %s: %d tickets, %d messages, %d attachments",
        destination, summary.tickets, summary.messages, summary.attachments,
    )
    return summary


class _Exporter:
    """Builds ``export.json`` and writes the files it names."""

    def __init__(
        self,
        connection: Connection,
        config: Config,
        files: FileStore,
        data: PersonData,
        writer: _Writer,
        summary: ExportSummary,
    ) -> None:
        self.connection = connection
        self.config = config
        self.files = files
        self.data = data
        self.writer = writer
        self.summary = summary
        self.owned = {row.id for row in data.owned_messages}
        self._message_count = 0

    def build(self, now: datetime) -> dict[str, Any]:
        ticket_views = {view["number"]: view for view in views.list_tickets(self.connection)}
        exported_tickets = [
            self._ticket(ticket_views[row.number], row.number, shared=False)
            for row in self.data.requested_tickets
        ] + [
            self._ticket(ticket_views[row.number], row.number, shared=True)
            for row in self.data.shared_tickets
        ]
        exported_tickets.sort(key=lambda ticket: ticket["number"])
        self.summary.tickets = len(exported_tickets)
        ticketless = [
            self._message(row)
            for row in self.data.owned_messages + self.data.involved_messages
            if row.ticket is None
        ]
        return {
            "address": self.data.address,
            "names": list(self.data.names),
            "exported_at": now.isoformat(),
            "tickets": exported_tickets,
            "ticketless_messages": ticketless,
            "outbox": self._outbox(),
            "notes_on_other_tickets": self._notes_elsewhere(
                {ticket["number"] for ticket in exported_tickets}
            ),
            "bounces": [
                {"bounced_at": row.bounced_at.isoformat(), "message_id": row.message_id}
                for row in self.data.bounces
            ],
        }

    def _ticket(self, view: dict[str, Any], number: int, *, shared: bool) -> dict[str, Any]:
        if shared:
            ticket = {name: view[name] for name in _SHARED_TICKET_FIELDS}
            ticket.update(requester="", requester_name="", subject="", withheld=WITHHELD_TICKET)
        else:
            ticket = dict(view)
        rows = sorted(
            (row for row in self.data.owned_messages + self.data.involved_messages if row.ticket == number),
            key=lambda row: row.id,
        )
        ticket["messages"] = [self._message(row) for row in rows]
        ticket["notes"] = self._notes(number, shared=shared)
        return ticket

    def _message(self, row: Row) -> dict[str, Any]:
        view = views.message_view(self.connection, row)
        if row.id not in self.owned:
            self.summary.withheld_messages += 1
            return self._withheld(view)
        self._message_count += 1
        self.summary.messages += 1
        base = f"messages/{self._message_count:04d}"
        raw = read_raw(self.files, row.raw_sha256)
        view["raw_file"] = self._write(f"{base}.eml", raw)
        stored = _attachment_rows(self.connection, row.id)
        for index, (entry, attachment) in enumerate(zip(view["attachments"], stored), start=1):
            content = self._attachment(attachment.sha256)
            entry["file"] = self._write(f"{base}/{index}-{_safe_name(entry['filename'])}", content)
            self.summary.attachments += entry["file"] is not None
        return view

    def _withheld(self, view: dict[str, Any]) -> dict[str, Any]:
        def visible(address: str) -> bool:
            return address == self.data.address or not is_customer(self.config, address)

        shop_sender = not is_customer(self.config, view["from"])
        return {
            "direction": view["direction"],
            "kind": view["kind"],
            "from": view["from"] if shop_sender else "",
            "from_name": view["from_name"] if shop_sender else "",
            "to": [address for address in view["to"] if visible(address)],
            "cc": [address for address in view["cc"] if visible(address)],
            "subject": "",
            "date": view["date"],
            "message_id": None,
            "thread_rule": view["thread_rule"],
            "autoreply_suppressed": None,
            "text": "",
            "attachments": [],
            "raw_file": None,
            "withheld": WITHHELD_SHARED,
        }

    def _attachment(self, digest: str) -> bytes | None:
        try:
            return self.files.get("attachments", digest)
        except FileNotFoundError:
            return None

    def _write(self, name: str, content: bytes | None) -> str | None:
        if content is None:
            self.summary.missing_files += 1
            return None
        self.writer.write(name, content)
        return name

    def _outbox(self) -> list[dict[str, Any]]:
        owned = {row.id: row for row in self.data.owned_outbox}
        exported = []
        for view in views.list_outbox(self.connection):
            row = owned.get(view["id"])
            if row is None:
                continue
            view["raw_file"] = self._write(f"outbox/{row.id}.eml", row.raw or None)
            exported.append(view)
        self.summary.outbox = len(exported)
        return exported

    def _notes(self, number: int, *, shared: bool) -> list[dict[str, Any]]:
        """Return the notes of one exported ticket as ``tickets show --json`` has them."""
        rows = self.data.mentioning_notes if shared else self.data.owned_notes
        notes = [self._note(row, withheld=shared) for row in rows if row.ticket == number]
        self.summary.notes += len(notes)
        return notes

    def _notes_elsewhere(self, exported: set[int]) -> list[dict[str, Any]]:
        """Return stubs of notes that name the person on tickets that are not exported."""
        notes = [
            dict(self._note(row, withheld=True), ticket=row.ticket)
            for row in self.data.mentioning_notes
            if row.ticket not in exported
        ]
        self.summary.notes += len(notes)
        return notes

    @staticmethod
    def _note(row: Row, *, withheld: bool) -> dict[str, Any]:
        note: dict[str, Any] = {
            "author": row.author,
            "text": "" if withheld else row.text,
            "created_at": row.created_at.isoformat(),
        }
        if withheld:
            note["withheld"] = WITHHELD_NOTE
        return note


def _attachment_rows(connection: Connection, message_id: int) -> list[Row]:
    """Return the attachment rows of a message in the order ``tickets show`` lists them."""
    return connection.execute(
        select(attachments).where(attachments.c.message == message_id).order_by(attachments.c.id)
    ).all()


def _safe_name(filename: str) -> str:
    cleaned = re.sub(r"[^\w.-]+", "_", filename).strip("._") or "attachment"
    return cleaned[:100]


def _open_writer(destination: Path) -> _Writer:
    if destination.suffix.lower() == ".zip":
        return _ZipWriter(destination)
    return _FolderWriter(destination)


class _ZipWriter:
    """A new ZIP file that only its owner can read."""

    def __init__(self, path: Path) -> None:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise ExportError(f"{path} already exists; choose another --out path") from None
        except OSError as exc:
            raise ExportError(f"cannot create {path}: {exc.strerror}") from None
        self.path = path
        self._file = os.fdopen(fd, "wb")
        self._zip = zipfile.ZipFile(self._file, "w", compression=zipfile.ZIP_DEFLATED)

    def write(self, name: str, content: bytes) -> None:
        self._zip.writestr(name, content)

    def close(self) -> None:
        self._zip.close()
        self._file.close()

    def discard(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)


class _FolderWriter:
    """A new folder (mode 0700) with files (mode 0600)."""

    def __init__(self, path: Path) -> None:
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise ExportError(f"{path} already exists and is not an empty folder; choose another --out path")
        try:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise ExportError(f"cannot create {path}: {exc.strerror}") from None
        self.root = path

    def write(self, name: str, content: bytes) -> None:
        target = self.root / name
        make_private_dirs(self.root, target.parent)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)

    def close(self) -> None:
        pass

    def discard(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
