"""Choose the language of a customer's replies from their own mail.

The order is the ``Content-Language`` header, then a detector over the text the
customer wrote, then the language of the customer's earlier tickets, then the desk's
default. The detector is Lingua (the ``lingua-language-detector`` package), restricted
to the desk's languages. Its models ship inside the wheel, so nothing is downloaded at
run time. With a minimum relative distance it returns no language for text that is too
short or too mixed to tell, such as "Order 1234", instead of guessing.

Lingua runs in its low-accuracy mode (trigram models only): about 20 MB of memory and
30 ms to load for three languages, where the full models take about 130 MB and 0.5 s
(measured with lingua-language-detector 2.1.1 on x86_64, Python 3.11). The full models
only matter for text too short to tell anyway, which goes to the fallbacks instead.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from lingua import IsoCode639_1, Language, LanguageDetector, LanguageDetectorBuilder

logger = logging.getLogger(__name__)

# Lingua's confidence gap between the best and the second language below which it returns
# no language. 0.25 was chosen on short Finnish, Swedish and English support mails: it
# abstains on "Tack!" and "Order 1234" and decides "Tack för snabbt svar".
MINIMUM_RELATIVE_DISTANCE = 0.25
# Text with fewer letters or fewer distinct words than this is not given to the detector
# at all: a single word such as "Order" (English and Swedish) cannot tell the language.
MIN_LETTERS = 6
MIN_DISTINCT_WORDS = 2
# Only the start of a long mail is read; the language does not change further down.
MAX_DETECTED_CHARACTERS = 2000


@dataclass(frozen=True)
class LanguageChoice:
    """The chosen language and what decided it."""

    language: str
    # "content-language", "detector", "earlier-ticket" or "default".
    source: str


def choose_language(
    *,
    content_language: str | None,
    text: str,
    supported: Iterable[str],
    earlier: Callable[[], str | None],
    default: str,
) -> LanguageChoice:
    """Return the reply language for a mail.

    ``content_language`` is the mail's header value, ``text`` what the customer wrote
    (quotes already removed), ``supported`` the desk's language codes, ``earlier`` a
    function that returns the language of the customer's previous ticket or None, and
    ``default`` the desk's language.
    """
    languages = tuple(supported)
    from_header = language_from_header(content_language, languages)
    if from_header is not None:
        return LanguageChoice(from_header, "content-language")

    detected = detect_language(text, languages)
    if detected is not None:
        return LanguageChoice(detected, "detector")

    previous = earlier()
    if previous in languages:
        return LanguageChoice(previous, "earlier-ticket")

    return LanguageChoice(default, "default")


def language_from_header(value: str | None, supported: Iterable[str]) -> str | None:
    """Return the first supported language of a ``Content-Language`` value, else None.

    The header is a comma-separated list of language tags (RFC 3282), such as
    ``"sv-FI, en"``; only the primary subtag is compared.
    """
    if not value:
        return None
    languages = set(supported)
    for tag in value.split(","):
        primary = re.split(r"[-_]", tag.strip().lower(), maxsplit=1)[0]
        if primary in languages:
            return primary

    return None


def detect_language(text: str, supported: Iterable[str]) -> str | None:
    """Return the language of ``text`` among ``supported`` codes, or None when unsure."""
    sample = text[:MAX_DETECTED_CHARACTERS]
    if sum(character.isalpha() for character in sample) < MIN_LETTERS:
        return None
    words = {word.casefold() for word in re.findall(r"[^\W\d_]+", sample)}
    if len(words) < MIN_DISTINCT_WORDS:
        return None

    codes = tuple(sorted(set(supported)))
    detector = _detector(codes)
    if detector is None:
        return None
    found = detector.detect_language_of(sample)
    if found is None:
        return None

    return found.iso_code_639_1.name.lower()


@functools.lru_cache(maxsize=4)
def _detector(codes: tuple[str, ...]) -> LanguageDetector | None:
    languages = []
    for code in codes:
        try:
            languages.append(Language.from_iso_code_639_1(getattr(IsoCode639_1, code.upper())))
        except (AttributeError, ValueError):
            logger.warning("language %s is not known to the detector; it is never detected", code)
    if len(languages) < 2:
        # With one language there is nothing to decide, and Lingua requires two.
        return None

    return (
        LanguageDetectorBuilder.from_languages(*languages)
        .with_low_accuracy_mode()
        .with_minimum_relative_distance(MINIMUM_RELATIVE_DISTANCE)
        .build()
    )
