"""Apply the ``[[rules]]`` of the configuration to a parsed message.

A rule applies when every pattern it gives matches (AND across keys). Rules run in
file order. A later rule's priority and autoreply setting override an earlier one's,
tags accumulate, and ``stop = true`` ends the list after that rule applied.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from maildesk.config import Rule
from maildesk.message import Address, ParsedMessage

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RuleOutcome:
    """Combined effect of the rules that matched one message."""

    priority: str = "normal"
    # Tags of all matched rules in rule order, each once.
    tags: tuple[str, ...] = ()
    autoreply: bool = True
    # Names of the matched rules in rule order.
    matched: tuple[str, ...] = ()


def apply_rules(rules: Sequence[Rule], message: ParsedMessage) -> RuleOutcome:
    """Match ``rules`` in order against ``message`` and combine the matching rules' actions.

    Raises ValueError for a pattern key outside ``config.RULE_MATCH_KEYS``, which
    ``parse_config`` already rejects for rules read from a file.
    """
    priority = "normal"
    tags: list[str] = []
    autoreply = True
    matched: list[str] = []

    for rule in rules:
        if not rule_matches(rule, message):
            continue
        logger.debug("rule %r matched message %s", rule.name, message.message_id)

        matched.append(rule.name)
        if rule.priority is not None:
            priority = rule.priority
        if rule.autoreply is not None:
            autoreply = rule.autoreply
        tags.extend(tag for tag in rule.tags if tag not in tags)
        if rule.stop:
            break

    return RuleOutcome(
        priority=priority, tags=tuple(tags), autoreply=autoreply, matched=tuple(matched)
    )


def rule_matches(rule: Rule, message: ParsedMessage) -> bool:
    """Return whether every pattern of ``rule`` finds a match in its part of ``message``."""
    for key, pattern in rule.patterns.items():
        targets = _TARGETS.get(key)
        if targets is None:
            raise ValueError(
                f"rule {rule.name!r}: unknown pattern key {key!r}; "
                f"valid keys are {', '.join(_TARGETS)}"
            )
        if not any(pattern.search(text) for text in targets(message)):
            return False

    return True


def _address_forms(address: Address) -> Iterator[str]:
    """Yield ``Name <addr>`` (when the address has a name) and the plain address."""
    if address.name:
        yield f"{address.name} <{address.addr}>"
    yield address.addr


def _from_texts(message: ParsedMessage) -> Iterator[str]:
    if message.from_ is not None:
        yield from _address_forms(message.from_)


def _to_texts(message: ParsedMessage) -> Iterator[str]:
    for address in (*message.to, *message.cc):
        yield from _address_forms(address)


def _subject_texts(message: ParsedMessage) -> Iterator[str]:
    yield message.subject


def _body_texts(message: ParsedMessage) -> Iterator[str]:
    yield message.text


def _header_texts(message: ParsedMessage) -> Iterator[str]:
    for name, value in message.headers:
        yield f"{name}: {value}"


_TARGETS: dict[str, Callable[[ParsedMessage], Iterator[str]]] = {
    "from": _from_texts,
    "to": _to_texts,
    "subject": _subject_texts,
    "body": _body_texts,
    "header": _header_texts,
}
