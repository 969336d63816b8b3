"""What of a parsed message goes on the ticket: size limits and signature parts.

The ``[limits]`` settings bound what one message can cost: a message over
``max_message_size`` is fetched only up to that size (see
:class:`PartialMessage`), an attachment over ``max_attachment_size`` is not
stored, and To and Cc are cut to ``max_recipients`` addresses. Whatever is
left out is listed at the end of the message text, where the agent reading
the ticket sees it, and in the message's ``defects``.

Signature parts (S/MIME ``smime.p7s``, OpenPGP signatures) stay in the raw
message but are not listed as the customer's files.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

from maildesk.config import LimitSettings
from maildesk.message import Attachment, IncomingMessage, ParsedMessage

log = logging.getLogger(__name__)

SIGNATURE_CONTENT_TYPES = frozenset(
    {"application/pkcs7-signature", "application/x-pkcs7-signature", "application/pgp-signature"}
)
NOTE_HEADING = "[maildesk] Left out of this message:"


@dataclass(frozen=True, slots=True)
class PartialMessage(IncomingMessage):
    """A message fetched only up to ``max_message_size`` bytes; ``raw`` is its beginning."""

    full_size: int = 0


def trim_for_ticket(
    parsed: ParsedMessage, item: IncomingMessage, limits: LimitSettings
) -> ParsedMessage:
    """Apply the limits and drop signature parts; return ``parsed`` unchanged when nothing applies."""
    left_out: list[str] = []
    defects: list[str] = []
    attachments = list(parsed.attachments)

    if isinstance(item, PartialMessage):
        left_out.append(
            f"the message is {_size(item.full_size)}, over max_message_size "
            f"({_size(limits.max_message_size)}), so only its first {_size(len(item.raw))} were "
            "fetched; the rest is still in the mailbox"
        )
        if attachments:
            # The fetch cut the last part in the middle, so its content is incomplete.
            cut = attachments.pop()
            left_out.append(f"attachment {cut.filename}, cut off by that limit")

    kept: list[Attachment] = []
    for attachment in attachments:
        if is_signature(attachment):
            defects.append(f"signature part {attachment.filename} kept only in the raw message")
        elif attachment.size > limits.max_attachment_size:
            left_out.append(
                f"attachment {attachment.filename} ({_size(attachment.size)}), over "
                f"max_attachment_size ({_size(limits.max_attachment_size)})"
            )
        else:
            kept.append(attachment)

    to, cc = parsed.to, parsed.cc
    recipients = len(to) + len(cc)
    if recipients > limits.max_recipients:
        to = to[: limits.max_recipients]
        cc = cc[: max(0, limits.max_recipients - len(to))]
        left_out.append(
            f"{recipients - len(to) - len(cc)} of {recipients} To and Cc addresses, over "
            f"max_recipients ({limits.max_recipients})"
        )

    if not left_out and not defects:
        return parsed
    if left_out:
        log.warning(
            "message %s: left out %s", parsed.message_id or "(no Message-ID)", "; ".join(left_out)
        )
    return dataclasses.replace(
        parsed,
        to=to,
        cc=cc,
        attachments=tuple(kept),
        text=_with_note(parsed.text, left_out),
        defects=parsed.defects + tuple(defects) + tuple(f"left out: {item}" for item in left_out),
    )


def is_signature(attachment: Attachment) -> bool:
    """Return whether ``attachment`` is a detached S/MIME or OpenPGP signature."""
    return (
        attachment.content_type.lower() in SIGNATURE_CONTENT_TYPES
        or attachment.filename.lower().endswith(".p7s")
    )


def _with_note(text: str, left_out: list[str]) -> str:
    if not left_out:
        return text
    lines = [NOTE_HEADING, *(f"- {item}" for item in left_out)]
    return (text.rstrip() + "\n\n" if text.strip() else "") + "\n".join(lines) + "\n"


def _size(size: int) -> str:
    if size < 1024 * 1024:
        return f"{size} bytes"
    return f"{size / (1024 * 1024):.1f} MiB"
