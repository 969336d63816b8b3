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

A pass walks the messages from the most recently stored one down (descending
messages.id), because agents look at recent mail, and stops after
``[keywords] max_updates_per_pass`` messages changed on the server, so a first
pass over a large mailbox does not hold the daemon's only worker for long. The
next pass starts again from the newest message and skips the ones whose record
already matches their ticket, so it continues where the previous one stopped.
"""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from imapclient import IMAPClient
from sqlalchemy import Connection, Engine, Row, Select, bindparam, or_, select, update

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
# Message rows read, sent to the server and recorded per step of a pass. Only one
# chunk is in memory at a time, so a pass's memory does not grow with the mailbox.
CHUNK_ROWS = 500
# Upper bound for the first chunk's ids: SQLite's largest INTEGER, which no message id reaches.
_ABOVE_EVERY_ID = 2**63 - 1
# Maximum length of the UID list in one command. Dovecot 2.3 rejects command lines
# longer than imap_max_line_length, 64 KB by default, so this leaves room for the
# keyword names and for servers with a lower limit.
MAX_UID_LIST_CHARS = 16_000
_ATOM_UNSAFE = re.compile(r"[^A-Za-z0-9_.+:/-]")
# Folders that lack custom keywords or UIDPLUS, each logged once per process.
_warned: set[tuple[str, str]] = set()

# executemany statements: one UPDATE per chunk and folder, with a parameter set per message.
_SET_KEYWORDS = (
    update(messages)
    .where(messages.c.id == bindparam("row_id"))
    .values(imap_keywords=bindparam("value"))
)
_SET_PLACE = (
    update(messages)
    .where(messages.c.id == bindparam("row_id"))
    .values(folder=bindparam("new_folder"), uid=bindparam("new_uid"), moved_from=bindparam("home"))
)


@dataclass
class MarkStats:
    marked: int = 0
    moved: int = 0
    failed: int = 0
    # Messages changed on the server (stored, moved or both), which max_updates_per_pass limits.
    updated: int = 0


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
class _Budget:
    """Messages one pass may still change on the server."""

    limit: int
    used: int = 0
    # Set when a message that needs a change is left for the next pass.
    reached: bool = False

    @property
    def left(self) -> int:
        return max(self.limit - self.used, 0)


@dataclass
class _FolderPlan:
    folder: str
    uidvalidity: int | None
    items: list[_Planned] = field(default_factory=list)


@dataclass
class _Changes:
    """Names to add and remove per UID, and the records to write, for one chunk of one folder."""

    # (UID, names to add, names to remove), each list sorted.
    stores: list[tuple[int, list[str], list[str]]] = field(default_factory=list)
    # Parameter sets for _SET_KEYWORDS: the new imap_keywords value of each row.
    records: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class _Store:
    """One UID STORE: add or remove ``names`` as flags, or as Gmail labels, on ``uids``."""

    adding: bool
    label: bool
    names: tuple[str, ...]
    uids: tuple[int, ...]


@dataclass
class _Session:
    """The pass's IMAP connection and what it learned about the selected folder."""

    client: IMAPClient
    gmail: bool
    selected: str | None = None
    select_info: dict[bytes, Any] = field(default_factory=dict)
    # Folders left alone for the rest of the pass, because a command failed there
    # or because their UIDVALIDITY changed.
    failed: set[str] = field(default_factory=set)
    waiting: set[str] = field(default_factory=set)

    def select(self, folder: str) -> dict[bytes, Any]:
        """SELECT ``folder`` read-write unless it is selected already, and return the SELECT response."""
        if self.selected != folder:
            self.selected = None
            self.select_info = self.client.select_folder(folder)
            self.selected = folder
        return self.select_info


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
    """One pass that brings keywords, flags and the closed-ticket folder in line with the tickets.

    The pass reads the messages in chunks of ``chunk_rows`` rows, newest id
    first. For each chunk and folder it sends one UID FETCH FLAGS, then UID
    STOREs grouped either per set of names or per name, whichever takes fewer
    commands, and then records the result in one transaction. A crash between
    the STOREs and the record only makes the next pass send the same STOREs
    again, which changes nothing. The pass ends before the first message that
    would exceed ``[keywords] max_updates_per_pass`` messages changed on the server.
    """

    def __init__(
        self,
        config: Config,
        engine: Engine,
        *,
        connect: Callable[..., IMAPClient] = connect_imap,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        chunk_rows: int = CHUNK_ROWS,
    ) -> None:
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
        self.config = config
        self.engine = engine
        self.connect = connect
        self.clock = clock
        self.chunk_rows = chunk_rows

    def run_once(self, should_stop: Callable[[], bool] = lambda: False) -> MarkStats:
        """Update the messages whose keywords or folder differ from their ticket's state.

        Goes from the newest message down. Stops when ``should_stop`` returns True,
        and before the first message beyond ``[keywords] max_updates_per_pass``
        updated ones.
        """
        stats = MarkStats()
        settings = self.config.keywords
        if self.config.mailbox is None or not (settings.enabled or settings.closed_folder):
            return stats
        budget = _Budget(settings.max_updates_per_pass)
        session: _Session | None = None
        try:
            for plans in self._plan_chunks():
                if session is None:
                    session = self._open_session(plans)
                    if session is None:
                        return stats
                if not self._update_chunk(session, plans, stats, budget, should_stop):
                    break
        finally:
            if session is not None:
                _logout(session.client)
        if stats.marked or stats.moved or stats.failed:
            log.info(
                "mailbox marked: %d messages updated, %d moved, %d failed",
                stats.marked, stats.moved, stats.failed,
            )
        if budget.reached:
            log.info(
                "keyword pass stopped after %d updates (keywords.max_updates_per_pass); "
                "the next pass continues with older messages",
                budget.used,
            )
        return stats

    def _open_session(self, plans: list[_FolderPlan]) -> _Session | None:
        assert self.config.mailbox is not None
        try:
            client = self.connect(self.config.mailbox)
        except ConnectionSetupError as exc:
            log.warning(
                "connecting to IMAP for keywords failed, so %d messages in %d folders wait for the next pass: %s",
                sum(len(plan.items) for plan in plans), len(plans), exc,
            )
            return None
        return _Session(client, gmail=b"X-GM-EXT-1" in client.capabilities())

    def _update_chunk(
        self,
        session: _Session,
        plans: list[_FolderPlan],
        stats: MarkStats,
        budget: _Budget,
        should_stop: Callable[[], bool],
    ) -> bool:
        """Update one chunk's folders, and return False when ``should_stop`` or the budget ends it."""
        for plan in plans:
            if should_stop():
                return False
            if plan.folder in session.waiting:
                continue
            if plan.folder in session.failed:
                stats.failed += len(plan.items)
                continue
            if not self._update_within_budget(session, plan, stats, budget):
                return False
        return True

    def _update_within_budget(
        self, session: _Session, plan: _FolderPlan, stats: MarkStats, budget: _Budget
    ) -> bool:
        """Update ``plan``'s messages within the budget, and return False if some wait for the next pass.

        The messages go in slices of as many as the budget has left. Messages that
        turn out to need no command (already set on the server, or gone) cost
        nothing, so the next slice takes the rest of the budget.
        """
        pending = plan.items
        part: list[_Planned] = []
        try:
            while pending and plan.folder not in session.waiting:
                if budget.left == 0:
                    budget.reached = True
                    return False
                part, pending = pending[: budget.left], pending[budget.left :]
                updated = self._update_folder(session, replace(plan, items=part), stats)
                budget.used += updated
                stats.updated += updated
        except IMAPClient.Error as exc:
            stats.failed += len(part) + len(pending)
            session.failed.add(plan.folder)
            session.selected = None
            log.error("updating keywords in folder %s failed: %s", plan.folder, exc)
        return True

    # --- planning -------------------------------------------------------------------

    def _plan_chunks(self) -> Iterator[list[_FolderPlan]]:
        """Yield, per chunk of message rows from the newest down, the folders whose messages change.

        Keyset pagination on messages.id, so each chunk is one index range read,
        and no database connection stays open while the caller talks to the server.
        """
        statement = _chunk_query(self.chunk_rows)
        validity: dict[str, int | None] = {}
        before_id = _ABOVE_EVERY_ID
        while True:
            with self.engine.connect() as connection:
                rows = connection.execute(statement, {"before_id": before_id}).all()
                if not rows:
                    return
                tags = _tags_of(connection, {row.number for row in rows})
                for folder in {row.folder for row in rows} - validity.keys():
                    state = repo.folder_state(connection, folder)
                    validity[folder] = state[0] if state else None
            before_id = rows[-1].id
            plans = self._plan_rows(rows, tags, validity)
            if plans:
                yield plans

    def _plan_rows(
        self, rows: Iterable[Row[Any]], tags: dict[int, list[str]], validity: dict[str, int | None]
    ) -> list[_FolderPlan]:
        settings = self.config.keywords
        plans: dict[str, _FolderPlan] = {}
        # Per ticket: the names its messages carry, and the imap_keywords text of a
        # message that has all of them set. Most rows of a settled mailbox equal that
        # text, and a string comparison skips them without decoding JSON.
        expected_by_ticket: dict[int, tuple[set[str], str]] = {}
        for row in rows:
            if row.number not in expected_by_ticket:
                names: set[str] = set()
                if settings.enabled:
                    row_tags = tags.get(row.number, ())
                    names = desired_names(
                        settings.prefix, row.number, row.status, row.priority, row_tags
                    )
                expected_by_ticket[row.number] = (names, json.dumps(sorted(names)))
            desired, settled = expected_by_ticket[row.number]
            closed = row.status == "closed"
            must_move = self._must_move(row.folder, row.moved_from, closed)
            if row.imap_keywords == settled and not must_move:
                continue
            written = set(json.loads(row.imap_keywords)) if row.imap_keywords else set()
            handled = {name.removeprefix(SKIPPED) for name in written}
            if desired == handled and not must_move:
                continue
            plan = plans.setdefault(row.folder, _FolderPlan(row.folder, validity[row.folder]))
            plan.items.append(
                _Planned(row.id, row.uid, row.number, written, desired, closed, row.moved_from, row.message_id)
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

    # --- one chunk of one folder ------------------------------------------------------

    def _update_folder(self, session: _Session, plan: _FolderPlan, stats: MarkStats) -> int:
        """Store and move ``plan``'s messages, and return how many of them changed on the server."""
        client = session.client
        info = session.select(plan.folder)
        uidvalidity = int(info[b"UIDVALIDITY"])
        if plan.uidvalidity is not None and uidvalidity != plan.uidvalidity:
            log.warning(
                "UIDVALIDITY of %s changed; keywords wait until the sync has read the folder again",
                plan.folder,
            )
            session.waiting.add(plan.folder)
            return 0
        allowed = _allowed(info, plan.folder)
        current: dict[int, dict[bytes, Any]] = {}
        for uids in _uid_batches([item.uid for item in plan.items]):
            current.update(client.fetch(uids, ["FLAGS"]))
        changes = _Changes()
        for item in plan.items:
            if item.uid not in current:
                changes.records.append({"row_id": item.row_id, "value": GONE})
                continue
            _mark(item, current[item.uid].get(b"FLAGS", ()), allowed, changes)
        _send_stores(client, changes, session.gmail)
        stats.marked += len(changes.stores)
        self._write(_SET_KEYWORDS, changes.records)
        moved = self._move(session, plan, stats)
        return len({uid for uid, _add, _remove in changes.stores} | moved)

    def _move(self, session: _Session, plan: _FolderPlan, stats: MarkStats) -> set[int]:
        """Move messages into or out of the closed folder by their ticket's status; return the old UIDs."""
        closed_folder = self.config.keywords.closed_folder
        if not closed_folder:
            return set()
        outgoing = [i for i in plan.items if self._must_move(plan.folder, i.moved_from, i.closed)]
        if not outgoing:
            return set()
        client = session.client
        if not client.has_capability("UIDPLUS"):
            _warn_once(plan.folder, "uidplus", "the server lacks UIDPLUS, so messages of closed "
                       "tickets are not moved out of %s", plan.folder)
            return set()
        by_target: dict[str, list[_Planned]] = defaultdict(list)
        for item in outgoing:
            # _must_move only moves a message out of the closed folder when moved_from is set.
            target = item.moved_from if plan.folder == closed_folder else closed_folder
            assert target is not None
            by_target[target].append(item)
        home = None if plan.folder == closed_folder else plan.folder
        for target, items in by_target.items():
            session.select(plan.folder)
            moved = _copy_and_expunge(client, {i.uid: i.message_id for i in items}, target)
            # _copy_and_expunge ends with ``target`` selected.
            session.selected = None
            places = [
                {"row_id": i.row_id, "new_folder": target, "new_uid": moved.get(i.uid), "home": home}
                for i in items
            ]
            self._write(_SET_PLACE, places)
            stats.moved += len(items)
            log.info("moved %d messages from %s to %s", len(items), plan.folder, target)
        return {item.uid for item in outgoing}

    def _write(self, statement: Any, parameters: list[dict[str, Any]]) -> None:
        """Run ``statement`` once per parameter set, all in one transaction."""
        if not parameters:
            return
        with self.engine.begin() as connection:
            connection.execute(statement, parameters)


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


def _chunk_query(chunk_rows: int) -> Select[Any]:
    """Return up to ``chunk_rows`` rows below ``:before_id``, newest first, with a ticket and a place."""
    return (
        select(
            messages.c.id, messages.c.folder, messages.c.uid, messages.c.imap_keywords,
            messages.c.moved_from, messages.c.message_id,
            tickets.c.number, tickets.c.status, tickets.c.priority,
        )
        .join_from(messages, tickets, messages.c.ticket == tickets.c.number)
        .where(
            messages.c.id < bindparam("before_id"),
            messages.c.uid.is_not(None),
            messages.c.folder.is_not(None),
            or_(messages.c.imap_keywords.is_(None), messages.c.imap_keywords != GONE),
        )
        .order_by(messages.c.id.desc())
        .limit(chunk_rows)
    )


def _tags_of(connection: Connection, numbers: set[int]) -> dict[int, list[str]]:
    """Return the tags of the tickets ``numbers``, by ticket number."""
    tags: dict[int, list[str]] = defaultdict(list)
    rows = connection.execute(
        select(ticket_tags.c.ticket, ticket_tags.c.tag).where(ticket_tags.c.ticket.in_(numbers))
    )
    for number, tag in rows:
        tags[number].append(tag)
    return tags


def _mark(item: _Planned, flags: Iterable[bytes], allowed: Callable[[str], bool], changes: _Changes) -> None:
    """Add to ``changes`` the names ``item`` gains and loses, and its new record."""
    effective = {name for name in item.desired if allowed(name)}
    present = {flag.decode("ascii", "replace").lower() for flag in flags}
    set_before = _set_names(item.written)
    if FLAGGED in effective and FLAGGED not in set_before and FLAGGED.lower() in present:
        # An agent flagged it already: \Flagged stays theirs, so it is never removed here.
        effective.discard(FLAGGED)
    add = effective - set_before
    remove = set_before - effective
    if add or remove:
        # Sorted, so the commands go out in the same order on every run.
        changes.stores.append((item.uid, sorted(add), sorted(remove)))
    # Names left out (not allowed, or the agent's own \Flagged) are kept as "!name",
    # so the next pass treats them as handled and never removes them.
    record = effective | {SKIPPED + name for name in item.desired - effective}
    if record != item.written:
        changes.records.append({"row_id": item.row_id, "value": json.dumps(sorted(record))})


def _send_stores(client: IMAPClient, changes: _Changes, gmail: bool) -> None:
    """Send the UID STOREs of ``changes``, removals first, in as few commands as the two groupings allow.

    A message never has a name in both directions, so the order of the
    commands within a direction does not matter.
    """
    by_set = _group_by_name_set(changes.stores, gmail)
    by_name = _group_by_name(changes.stores, gmail)
    chosen = by_set if len(by_set) <= len(by_name) else by_name
    for store in sorted(chosen, key=lambda store: store.adding):
        _store(client, store)


def _group_by_name_set(stores: list[tuple[int, list[str], list[str]]], gmail: bool) -> list[_Store]:
    """Return one command per distinct set of names: few when most messages of a ticket change alike."""
    grouped: dict[tuple[bool, bool, tuple[str, ...]], list[int]] = defaultdict(list)
    for uid, add, remove in stores:
        for adding, names in ((True, add), (False, remove)):
            for label in (False, True):
                chosen = tuple(name for name in names if _is_label(name, gmail) == label)
                if chosen:
                    grouped[(adding, label, chosen)].append(uid)
    return [_Store(adding, label, names, tuple(uids)) for (adding, label, names), uids in grouped.items()]


def _group_by_name(stores: list[tuple[int, list[str], list[str]]], gmail: bool) -> list[_Store]:
    """Return one command per name, names with equal UID lists merged: few when a name spans tickets."""
    uids_of: dict[tuple[bool, str], list[int]] = defaultdict(list)
    for uid, add, remove in stores:
        for adding, names in ((True, add), (False, remove)):
            for name in names:
                uids_of[(adding, name)].append(uid)
    grouped: dict[tuple[bool, bool, tuple[int, ...]], list[str]] = defaultdict(list)
    for (adding, name), uids in uids_of.items():
        grouped[(adding, _is_label(name, gmail), tuple(uids))].append(name)
    return [
        _Store(adding, label, tuple(sorted(names)), uids) for (adding, label, uids), names in grouped.items()
    ]


def _is_label(name: str, gmail: bool) -> bool:
    """Return whether ``name`` goes to X-GM-LABELS: every name but \\Flagged on Gmail."""
    return gmail and name != FLAGGED


def _store(client: IMAPClient, store: _Store) -> None:
    if store.label:
        method = client.add_gmail_labels if store.adding else client.remove_gmail_labels
    else:
        method = client.add_flags if store.adding else client.remove_flags
    for batch in _uid_batches(list(store.uids)):
        method(batch, list(store.names), silent=True)
        _drop_flag_lists(client)


def _drop_flag_lists(client: IMAPClient) -> None:
    """Drop the untagged FLAGS and PERMANENTFLAGS responses that imaplib keeps until read.

    Dovecot 2.3 sends both lists after every command that creates a keyword,
    each naming every keyword of the folder, and imapclient reads neither after
    a STORE. Kept, they would grow with the square of the keywords a pass creates.

    NOTE: the lists still cross the wire. A first pass that creates K ticket
    keywords receives about 14 * K**2 bytes: 946 MB for 8,000 tickets (20,000
    generated mails on Dovecot 2.3.19), which dominates that pass's time.
    max_updates_per_pass bounds messages, not these bytes: a pass that creates k
    keywords in a folder that has K receives about 28 * K * k bytes, an estimated
    0.9 GB (about a minute) for 2,000 messages of 800 tickets when K = 40,000, so
    the default of 500 messages keeps a late pass of a large import to about 15 s.
    """
    untagged = client._imap.untagged_responses
    untagged.pop("FLAGS", None)
    untagged.pop("PERMANENTFLAGS", None)


def _uid_batches(uids: list[int]) -> Iterator[list[int]]:
    """Split ``uids`` into lists whose comma-separated text fits MAX_UID_LIST_CHARS."""
    batch: list[int] = []
    length = 0
    for uid in uids:
        size = len(str(uid)) + 1
        if batch and length + size > MAX_UID_LIST_CHARS:
            yield batch
            batch, length = [], 0
        batch.append(uid)
        length += size
    if batch:
        yield batch


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
    batches = list(_uid_batches(list(message_ids)))
    for uids in batches:
        client.copy(uids, target)
    for uids in batches:
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
