"""Delete one person's mail from every folder of the IMAP mailbox (``customers erase --mailbox``).

The server's SEARCH matches addresses as substrings, so each hit's From, To,
Cc, Bcc and Reply-To are fetched and compared exactly. A message is deleted
when it is the person's own by the rules of :mod:`maildesk.privacy`: they
wrote it, or it went to them and to no other customer. Mail that other
customers took part in (another customer's mail with them on Cc, a reply
to several customers) stays in the mailbox and is counted as shared.

Deleting is ``UID STORE +FLAGS.SILENT (\\Deleted)`` and then ``UID EXPUNGE``
(RFC 4315) when the server offers UIDPLUS. Without UIDPLUS only a plain
EXPUNGE exists, which also removes every other message of the folder that
was already marked ``\\Deleted``; those are counted separately.
"""

from __future__ import annotations

import email
import email.policy
import logging
from dataclasses import dataclass, field
from email.utils import getaddresses

from imapclient import IMAPClient

from maildesk.config import Config
from maildesk.privacy import owns, parties

log = logging.getLogger(__name__)

_HEADER_FIELDS = "BODY.PEEK[HEADER.FIELDS (FROM TO CC BCC REPLY-TO)]"
_FETCH_CHUNK = 500


@dataclass
class FolderMatches:
    """The person's mail found in one folder."""

    folder: str
    uidvalidity: int
    uids: list[int] = field(default_factory=list)
    # Messages with the address that other customers took part in; they stay.
    shared: int = 0


@dataclass
class MailboxResult:
    deleted: int = 0
    # Other messages already marked \Deleted that a plain EXPUNGE removed as well.
    expunged_others: int = 0
    # Folders skipped because their UIDVALIDITY changed since the search.
    skipped_folders: list[str] = field(default_factory=list)


def find_mailbox_mail(client: IMAPClient, config: Config, address: str) -> list[FolderMatches]:
    """Search every selectable folder read-only and return the person's mail per folder."""
    found = []
    for flags, _delimiter, folder in client.list_folders():
        if any(flag.lower() in (b"\\noselect", b"\\nonexistent") for flag in flags):
            continue
        info = client.select_folder(folder, readonly=True)
        matches = FolderMatches(folder, int(info[b"UIDVALIDITY"]))
        uids = client.search(_criteria(address), charset=None if address.isascii() else "UTF-8")
        for start in range(0, len(uids), _FETCH_CHUNK):
            chunk = uids[start:start + _FETCH_CHUNK]
            for uid, data in client.fetch(chunk, [_HEADER_FIELDS]).items():
                _classify(config, address, uid, _header_bytes(data), matches)
        if matches.uids or matches.shared:
            found.append(matches)
    return found


def delete_mailbox_mail(client: IMAPClient, matches: list[FolderMatches]) -> MailboxResult:
    """Delete the found messages; a folder whose UIDVALIDITY changed is skipped."""
    result = MailboxResult()
    uidplus = client.has_capability("UIDPLUS")
    for folder in matches:
        if not folder.uids:
            continue
        info = client.select_folder(folder.folder)
        if int(info[b"UIDVALIDITY"]) != folder.uidvalidity:
            log.error(
                "UIDVALIDITY of %s changed since the search; its messages were not deleted",
                folder.folder,
            )
            result.skipped_folders.append(folder.folder)
            continue
        already_deleted = set() if uidplus else set(client.search(["DELETED"])) - set(folder.uids)
        client.add_flags(folder.uids, [b"\\Deleted"], silent=True)
        if uidplus:
            client.uid_expunge(folder.uids)
        else:
            client.expunge()
        result.deleted += len(folder.uids)
        result.expunged_others += len(already_deleted)
        log.info("deleted %d messages from folder %s", len(folder.uids), folder.folder)
    return result


def _criteria(address: str) -> list[str]:
    return [
        "OR", "FROM", address, "OR", "TO", address, "OR", "CC", address,
        "OR", "BCC", address, "HEADER", "REPLY-TO", address,
    ]


def _header_bytes(data: dict[bytes, object]) -> bytes:
    for key, value in data.items():
        if isinstance(key, bytes) and key.upper().startswith(b"BODY[HEADER") and isinstance(value, bytes):
            return value
    return b""


def _classify(config: Config, address: str, uid: int, header: bytes, matches: FolderMatches) -> None:
    message = email.message_from_bytes(header, policy=email.policy.compat32)

    def addresses(name: str) -> list[str]:
        return [addr.lower() for _name, addr in getaddresses(message.get_all(name, [])) if addr]

    senders = addresses("From")
    recipients = addresses("To") + addresses("Cc") + addresses("Bcc")
    reply_to = addresses("Reply-To")
    if address not in senders + recipients + reply_to:
        # A substring hit such as anna.maija@example.com for maija@example.com.
        return
    sender = senders[0] if senders else ""
    agent_mail = config.is_agent(sender) or sender == config.support_address
    found = parties(
        config,
        direction="agent" if agent_mail else "inbound",
        kind=None,
        sender=sender,
        reply_to=reply_to,
        recipients=recipients,
    )
    if owns(found, address, on_requested_ticket=False):
        matches.uids.append(uid)
    else:
        matches.shared += 1
