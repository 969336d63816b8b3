"""Short answers added to an auto-reply when the customer's mail matches ``[[autoreply.faq]]``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from maildesk.config import FaqEntry

# More suggestions than this would bury the acknowledgement itself.
MAX_ANSWERS = 3


@dataclass(frozen=True)
class FaqAnswer:
    """One suggestion as the templates show it."""

    name: str
    text: str
    # An https://, http:// or mailto: link, or "" for none.
    url: str

    def as_context(self) -> dict[str, str]:
        return {"name": self.name, "text": self.text, "url": self.url}


def faq_answers(
    entries: Sequence[FaqEntry], subject: str, text: str, language: str
) -> list[FaqAnswer]:
    """Return the answers in ``language`` of the entries whose pattern occurs in the mail.

    The pattern is searched in the subject and in the text the customer wrote. Entries
    keep their configured order, entries without text in ``language`` are skipped, and
    at most :data:`MAX_ANSWERS` are returned.
    """
    haystack = f"{subject}\n{text}"
    answers = []
    for entry in entries:
        answer = entry.texts.get(language)
        if answer is None or not entry.pattern.search(haystack):
            continue
        answers.append(FaqAnswer(entry.name, answer, entry.urls.get(language, "")))
        if len(answers) == MAX_ANSWERS:
            break

    return answers
