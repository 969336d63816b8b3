"""Show ticket state in the agents' mail client: IMAP keywords, \\Flagged and Gmail labels.

Every stored message of a ticket gets keywords for the ticket number, the
status, the priority and each tag (``md:ticket-42``, ``md:status-open``,
``md:priority-high``, ``md:tag-returns`` with the default prefix), and
\\Flagged while the ticket is urgent. On a server that offers X-GM-EXT-1
(Gmail) the same names are set as labels (X-GM-LABELS), which Gmail shows;
keywords it would hide. Optionally, messages of closed tickets move to a
folder of their own and back when the ticket reopens.

The sync reads folders read-only, so this runs as its own step with its own
connection and a read-write SELECT. It stores per message what it set
(``messages.imap_keywords``) and only ever adds or removes those names, so
keywords and flags that agents set themselves stay. It never touches
\\Seen: no command here fetches a body or stores \\Seen.
"""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from imapclient import IMAPClient
from sqlalchemy import Engine, select, update

from maildesk import repository as repo
from maildesk.config import Config
from maildesk.connections import connect_imap
from maildesk.db import messages, ticket_tags, tickets
from maildesk.errors import ConnectionSetupError

if TYPE_CHECKING:
    from maildesk.service import Desk

log = logging.getLogger(__name__)

FLAGGED = "\\Flagged"
# Marks a message whose UID no longer exists in its folder (deleted or moved by an agent).
GONE = "gone"
# Prefix of a recorded name that maildesk chose not to set.
SKIPPED = "!"
_ATOM_UNSAFE = re.compile(r"[^A-Za-z0-9_.+:/-]")
# Folders that lack custom keywords or UIDPLUS, each logged once per process.
_warned: set[tuple[str, str]] = set()


@dataclass
class MarkStats:
    marked: int = 0
    moved: int = 0
    failed: int = 0


@dataclass
class _Planned:
    row_id: int
    uid: int
    ticket: int
    written: set[str]
    desired: set[str]
    closed: bool
    moved_from: str | None
    message_id: str | None


@dataclass
class _FolderPlan:
    folder: str
    uidvalidity: int | None
    items: list[_Planned] = field(default_factory=list)


def keyword_atom(text: str) -> str:
    """Return ``text`` as a lower-case IMAP keyword: ASCII letters without accents, others as "_"."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    ascii_text = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _ATOM_UNSAFE.sub("_", ascii_text)


def desired_names(prefix: str, number: int, status: str, priority: str, tags: Iterable[str]) -> set[str]:
    """Return the keywords, and \\Flagged for urgent, that a message of this ticket carries."""
    names = {
        f"{prefix}ticket-{number}",
        f"{prefix}status-{status}",
        f"{prefix}priority-{priority}",
    }
    names.update(f"{prefix}tag-{keyword_atom(tag)}" for tag in tags)
    if priority == "urgent":
        names.add(FLAGGED)
    return names


class MailboxMarker:
    """One pass that brings keywords, flags and the closed-ticket folder in line with the tickets."""

    def __init__(
        self,
        config: Config,
        engine: Engine,
        *,
        connect: Callable[..., IMAPClient] = connect_imap,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.config = config
        self.engine = engine
        self.connect = connect
        self.clock = clock

    def run_once(self, should_stop: Callable[[], bool] = lambda: False) -> MarkStats:
        """Update every message whose keywords or folder differ from its ticket's state."""
        stats = MarkStats()
        settings = self.config.keywords
        if self.config.mailbox is None or not (settings.enabled or settings.closed_folder):
            return stats
        plans = self._plan()
        if not plans:
            return stats
        try:
            client = self.connect(self.config.mailbox)
        except ConnectionSetupError as exc:
            log.warning("keywords of %d folders wait for IMAP: %s", len(plans), exc)
            return stats
        try:
            for plan in plans:
                if should_stop():
                    break
                try:
                    self._update_folder(client, plan, stats)
                except IMAPClient.Error as exc:
                    stats.failed += len(plan.items)
                    log.error("updating keywords in folder %s failed: %s", plan.folder, exc)
        finally:
            _logout(client)
        if stats.marked or stats.moved or stats.failed:
            log.info(
                "mailbox marked: %d messages updated, %d moved, %d failed",
                stats.marked, stats.moved, stats.failed,
            )
        return stats

    def _plan(self) -> list[_FolderPlan]:
        """Return, per folder, the messages whose keywords or place must change."""
        settings = self.config.keywords
        plans: dict[str, _FolderPlan] = {}
        # Only the columns needed, and message rows streamed rather than listed, because
        # a first import plans every stored message: with whole rows in lists, this pass
        # added about 150 MB to the peak memory of a 100,000-message first sync.
        with self.engine.connect() as connection:
            ticket_rows = {
                row.number: row
                for row in connection.execute(
                    select(tickets.c.number, tickets.c.status, tickets.c.priority)
                )
            }
            tags: dict[int, list[str]] = defaultdict(list)
            for number, tag in connection.execute(select(ticket_tags.c.ticket, ticket_tags.c.tag)):
                tags[number].append(tag)
            validity: dict[str, tuple[int, int] | None] = {}
            rows = connection.execute(
                select(
                    messages.c.id, messages.c.ticket, messages.c.folder, messages.c.uid,
                    messages.c.imap_keywords, messages.c.moved_from, messages.c.message_id,
                ).where(
                    messages.c.ticket.is_not(None),
                    messages.c.uid.is_not(None),
                    messages.c.folder.is_not(None),
                )
            )
            for row in rows:
                if row.imap_keywords == GONE:
                    continue
                ticket = ticket_rows[row.ticket]
                desired = (
                    desired_names(settings.prefix, ticket.number, ticket.status, ticket.priority, tags[ticket.number])
                    if settings.enabled else set()
                )
                written = set(json.loads(row.imap_keywords)) if row.imap_keywords else set()
                closed = ticket.status == "closed"
                handled = {name.removeprefix(SKIPPED) for name in written}
                if desired == handled and not self._must_move(row.folder, row.moved_from, closed):
                    continue
                if row.folder not in validity:
                    validity[row.folder] = repo.folder_state(connection, row.folder)
                state = validity[row.folder]
                plan = plans.setdefault(row.folder, _FolderPlan(row.folder, state[0] if state else None))
                plan.items.append(
                    _Planned(row.id, row.uid, ticket.number, written, desired, closed, row.moved_from, row.message_id)
                )
        return list(plans.values())

    def _must_move(self, folder: str, moved_from: str | None, closed: bool) -> bool:
        closed_folder = self.config.keywords.closed_folder
        if not closed_folder:
            return False
        if closed:
            return folder != closed_folder and folder in self._movable_folders()
        return moved_from is not None and folder == closed_folder

    def _movable_folders(self) -> set[str]:
        # Agents' replies stay in Sent; only the folders customers' mail arrives in move.
        mailbox = self.config.mailbox
        assert mailbox is not None
        return {f for f in mailbox.folders if f != mailbox.sent_folder}

    def _update_folder(self, client: IMAPClient, plan: _FolderPlan, stats: MarkStats) -> None:
        info = client.select_folder(plan.folder)
        uidvalidity = int(info[b"UIDVALIDITY"])
        if plan.uidvalidity is not None and uidvalidity != plan.uidvalidity:
            log.warning(
                "UIDVALIDITY of %s changed; keywords wait until the sync has read the folder again",
                plan.folder,
            )
            return
        allowed = _allowed(info, plan.folder)
        gmail = b"X-GM-EXT-1" in client.capabilities()
        current = client.fetch([item.uid for item in plan.items], ["FLAGS"])
        for item in plan.items:
            if item.uid not in current:
                self._store_written(item.row_id, GONE)
                continue
            self._mark(client, item, current[item.uid].get(b"FLAGS", ()), allowed, gmail, stats)
        self._move(client, plan, stats)

    def _mark(
        self,
        client: IMAPClient,
        item: _Planned,
        flags: Iterable[bytes],
        allowed: Callable[[str], bool],
        gmail: bool,
        stats: MarkStats,
    ) -> None:
        effective = {name for name in item.desired if allowed(name)}
        present = {flag.decode("ascii", "replace").lower() for flag in flags}
        set_before = _set_names(item.written)
        if FLAGGED in effective and FLAGGED not in set_before and FLAGGED.lower() in present:
            # An agent flagged it already: \Flagged stays theirs, so it is never removed here.
            effective.discard(FLAGGED)
        add = effective - set_before
        remove = set_before - effective
        if add or remove:
            _store(client, item.uid, add, remove, gmail)
            stats.marked += 1
        # Names left out (not allowed, or the agent's own \Flagged) are kept as "!name",
        # so the next pass sees them handled and never removes them.
        record = effective | {SKIPPED + name for name in item.desired - effective}
        if record != item.written:
            self._store_written(item.row_id, json.dumps(sorted(record)))

    def _move(self, client: IMAPClient, plan: _FolderPlan, stats: MarkStats) -> None:
        closed_folder = self.config.keywords.closed_folder
        if not closed_folder:
            return
        outgoing = [i for i in plan.items if self._must_move(plan.folder, i.moved_from, i.closed)]
        if not outgoing:
            return
        if not client.has_capability("UIDPLUS"):
            _warn_once(plan.folder, "uidplus", "the server lacks UIDPLUS, so messages of closed "
                       "tickets are not moved out of %s", plan.folder)
            return
        by_target: dict[str, list[_Planned]] = defaultdict(list)
        for item in outgoing:
            by_target[item.moved_from if plan.folder == closed_folder else closed_folder].append(item)
        for target, items in by_target.items():
            moved = _copy_and_expunge(client, {i.uid: i.message_id for i in items}, target)
            for item in items:
                new_uid = moved.get(item.uid)
                home = None if plan.folder == closed_folder else plan.folder
                self._store_place(item.row_id, target, new_uid, home)
                stats.moved += 1
            log.info("moved %d messages from %s to %s", len(items), plan.folder, target)

    def _store_written(self, row_id: int, value: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(update(messages).where(messages.c.id == row_id).values(imap_keywords=value))

    def _store_place(self, row_id: int, folder: str, uid: int | None, moved_from: str | None) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                update(messages)
                .where(messages.c.id == row_id)
                .values(folder=folder, uid=uid, moved_from=moved_from)
            )


def job(desk: Desk, now: datetime) -> None:
    """Periodic job: bring keywords, flags and the closed-ticket folder in line with the tickets."""
    MailboxMarker(desk.config, desk.engine).run_once()


def _set_names(written: set[str]) -> set[str]:
    return {name for name in written if not name.startswith(SKIPPED)}


def _allowed(info: dict[bytes, Any], folder: str) -> Callable[[str], bool]:
    """Return which names the folder keeps; log once when custom keywords are not allowed."""
    permanent = info.get(b"PERMANENTFLAGS")
    if permanent is None:
        # RFC 3501 section 7.1: without PERMANENTFLAGS every flag may be changed permanently.
        return lambda name: True
    permanent_set = {flag.lower() for flag in permanent}
    keywords = b"\\*" in permanent_set
    flagged = FLAGGED.lower().encode() in permanent_set
    if not keywords:
        _warn_once(folder, "keywords", "folder %s does not allow custom keywords "
                   "(PERMANENTFLAGS has no \\*); only \\Flagged is set there", folder)
    return lambda name: flagged if name == FLAGGED else keywords


def _store(client: IMAPClient, uid: int, add: set[str], remove: set[str], gmail: bool) -> None:
    add_flags = [n for n in add if n == FLAGGED]
    remove_flags = [n for n in remove if n == FLAGGED]
    add_names = sorted(n for n in add if n != FLAGGED)
    remove_names = sorted(n for n in remove if n != FLAGGED)
    if remove_flags:
        client.remove_flags([uid], remove_flags, silent=True)
    if add_flags:
        client.add_flags([uid], add_flags, silent=True)
    if gmail:
        if remove_names:
            client.remove_gmail_labels([uid], remove_names, silent=True)
        if add_names:
            client.add_gmail_labels([uid], add_names, silent=True)
        return
    if remove_names:
        client.remove_flags([uid], remove_names, silent=True)
    if add_names:
        client.add_flags([uid], add_names, silent=True)


def _copy_and_expunge(client: IMAPClient, message_ids: dict[int, str | None], target: str) -> dict[int, int]:
    """Move the messages (UID to Message-ID) to ``target``; return old UID to new UID.

    COPY, then \\Deleted and UID EXPUNGE (RFC 4315) on exactly these UIDs, so
    other messages an agent marked \\Deleted stay. imapclient 4.1 does not
    return COPY's COPYUID answer, so the new UIDs are found by Message-ID in
    ``target``; a message without one is no longer followed. The target folder
    stays selected.
    """
    if not client.folder_exists(target):
        client.create_folder(target)
        log.info("created folder %s for messages of closed tickets", target)
    uids = list(message_ids)
    client.copy(uids, target)
    client.delete_messages(uids, silent=True)
    client.uid_expunge(uids)
    client.select_folder(target)
    mapping: dict[int, int] = {}
    for uid, message_id in message_ids.items():
        if not message_id:
            continue
        found = client.search(["HEADER", "Message-ID", message_id])
        if found:
            mapping[uid] = max(found)
    return mapping


def _warn_once(folder: str, kind: str, message: str, *args: object) -> None:
    if (folder, kind) in _warned:
        return
    _warned.add((folder, kind))
    log.warning(message, *args)


def _logout(client: IMAPClient) -> None:
    try:
        client.logout()
    except (IMAPClient.Error, OSError) as exc:
        log.debug("IMAP logout failed: %s", exc)
