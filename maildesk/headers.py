"""Decoding of header values, charsets, addresses, Message-IDs, dates and filenames.

Header values reach these helpers as the stdlib parser stores them under
``policy=compat32``: ASCII text in which every raw 8-bit byte is a lone
surrogate (U+DC80..U+DCFF, the ``surrogateescape`` convention). The helpers
turn such text back into bytes before they decode, so raw UTF-8 or
windows-1252 header bytes survive. ``decode_header_value`` and the parsed
addresses, IDs and filenames contain no NUL, control characters or lone
surrogates.

Helpers that work around broken input append a short description to the
``defects`` list they are given instead of raising.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import functools
import itertools
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from email.message import Message
from email.utils import decode_params, parsedate_to_datetime, unquote

from maildesk.message import Address

# Codec names that Python resolves but that are no character set a mail may
# declare, because they evaluate escape sequences or raise on every byte.
_REJECTED_CODECS = frozenset(
    {"unicode-escape", "raw-unicode-escape", "idna", "punycode", "undefined", "unicode-internal"}
)

# Labels the codec registry does not know, mapped to the codec senders mean.
_LABEL_ALIASES = {
    "x-mac-roman": "mac_roman",
    "windows-874": "cp874",
    "x-sjis": "cp932",
    "windows-31j": "cp932",
    "x-gbk": "gb18030",
    "ucs-2": "utf-16",
    "unicode": "utf-16",
    "x-euc-jp": "euc_jp",
    "utf8mb4": "utf-8",
}

# Declared charsets that senders use for a superset, keyed by Python codec
# name. The WHATWG Encoding Standard maps web pages the same way (it has no
# entry for ISO-2022-JP, whose common extensions are tried in turn here).
_SUPERSETS: dict[str, tuple[str, ...]] = {
    "iso8859-1": ("cp1252",),
    "euc_kr": ("cp949",),
    "gb2312": ("gb18030",),
    "gbk": ("gb18030",),
    "shift_jis": ("cp932",),
    "big5": ("cp950",),
    "tis-620": ("cp874",),
    "iso8859-11": ("cp874",),
    "iso2022_jp": ("iso2022_jp", "iso2022_jp_ext", "iso2022_jp_2"),
}

# Decoders tried, in this order, when the declared charset is missing,
# unknown or does not fit the bytes.
_FALLBACK_CODECS = ("utf-8", "cp1252")
_ISO_2022_ESCAPE = b"\x1b$"

_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_NUL_OR_SURROGATE = re.compile(r"[\x00\ud800-\udfff]")

_ENCODED_WORD = re.compile(r"=\?([^?\s]*)\?([bBqQ])\?(.*?)\?=")
_QP_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")
_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/=]")
# A run of base64 characters with its padding; some senders concatenate padded runs.
_BASE64_RUN = re.compile(rb"[A-Za-z0-9+/]+=*")

# One token of an address list: quoted string, comment, angle address,
# separator, a run of other text, or any single stray character.
_ADDRESS_TOKEN = re.compile(
    r"""
    "(?:[^"\\]|\\.)*"
    | \((?:[^()\\]|\\.)*\)
    | <[^<>]*>
    | [,;:]
    | [^",;:<(]+
    | .
    """,
    re.VERBOSE | re.DOTALL,
)
_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)
_DOMAIN_AFTER_QUOTE = re.compile(r"@[^\s<>()\[\]\",;:@]+")
_SPACE_AROUND_DELIMITER = re.compile(r"\s*([@.])\s*")
_BARE_ADDRESS = re.compile(r"[^\s<>()\[\]\",;:@]+@[^\s<>()\[\]\",;:@]+")
_VALID_ADDRESS = re.compile(
    r'(?:[^@\s<>(),;:"]+|"(?:[^"\\\r\n]|\\.)*")'
    r'@(?:[^@\s<>(),;:"\[\].]+(?:\.[^@\s<>(),;:"\[\].]+)*|\[[^\[\]\s]+\])'
)

_ANGLE_ID = re.compile(r"<([^<>]*)>")
_COMMENT = re.compile(r"\([^()]*\)")
_ID_SEPARATORS = re.compile(r"[\s,]+")

_LANGUAGE_TAG = re.compile(r"[a-z]{1,8}(?:-[a-z0-9]{1,8})*")

# Characters that reorder or hide text; in a filename they disguise the
# extension ("invoice\u202etxt.exe" shows as "invoiceexe.txt").
_FILENAME_INVISIBLES = re.compile(r"[\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
_WINDOWS_DEVICE_NAMES = frozenset(
    {"CON", "PRN", "AUX", "NUL"}
    | {f"COM{n}" for n in range(1, 10)}
    | {f"LPT{n}" for n in range(1, 10)}
)
# Bytes allowed in a filename, the usual limit of file systems (ext4, NTFS).
MAX_FILENAME_BYTES = 255


# --- charsets ---------------------------------------------------------------


@functools.lru_cache(maxsize=512)
def resolve_charset(label: str | None) -> tuple[str, ...]:
    """Return the Python codecs to try for a declared charset label, best first.

    An empty tuple means the label is missing or names no usable text codec.
    """
    if not label:
        return ()
    cleaned = label.strip().strip("\"';").strip().lower()
    for candidate in _label_variants(cleaned):
        name = _lookup_text_codec(candidate)
        if name is not None:
            return _SUPERSETS.get(name, (name,))

    return ()


def _label_variants(label: str) -> Iterable[str]:
    yield _LABEL_ALIASES.get(label, label)
    if label.startswith("x-"):
        yield label[2:]
    if label.endswith(("-i", "-e")):
        yield label[:-2]
    if label.startswith("windows-"):
        yield "cp" + label[len("windows-") :]
    yield label.replace("-", "")


def _lookup_text_codec(label: str) -> str | None:
    try:
        info = codecs.lookup(label)
    except (LookupError, ValueError):
        return None
    if not info._is_text_encoding or info.name in _REJECTED_CODECS:
        return None

    return info.name


def decode_bytes(data: bytes, charset: str | None, defects: list[str]) -> str:
    """Decode ``data`` declared as ``charset``, falling back to UTF-8 and windows-1252.

    Never raises: when no codec fits strictly, the declared codec (else
    windows-1252) decodes with U+FFFD for the bytes it cannot map. The result
    may still contain NUL; pass it through ``clean_text`` before storing.
    """
    declared = resolve_charset(charset)
    if charset and not declared:
        defects.append(f"unknown charset {_printable(charset)!r}")
    if _ISO_2022_ESCAPE in data and declared[:1] in ((), ("ascii",)):
        # ISO-2022-JP is 7-bit, so mail that omits its charset label still
        # passes as ASCII; its escape sequences give it away.
        declared = _SUPERSETS["iso2022_jp"]

    for codec in declared + _FALLBACK_CODECS:
        try:
            return data.decode(codec)
        except UnicodeDecodeError:
            continue

    if charset:
        defects.append(f"text does not match charset {_printable(charset)!r}")

    return data.decode(declared[0] if declared else "cp1252", errors="replace")


def header_bytes(value: str) -> bytes:
    """Return the raw bytes behind a compat32 header string (surrogates back to bytes)."""
    return value.encode("utf-8", "surrogateescape")


def decode_raw_text(value: str, defects: list[str]) -> str:
    """Decode text that may carry raw 8-bit bytes as surrogates: UTF-8, else windows-1252."""
    if value.isascii() and "\x1b" not in value:
        return value
    try:
        data = header_bytes(value)
    except UnicodeEncodeError:
        # Surrogates outside the surrogateescape range cannot come from bytes.
        return _NUL_OR_SURROGATE.sub("", value)

    return decode_bytes(data, None, defects)


def clean_text(text: str) -> str:
    """Remove NUL and lone surrogates, which SQLite text columns reject."""
    if text.isascii():
        return text.replace("\x00", "") if "\x00" in text else text

    return _NUL_OR_SURROGATE.sub("", text)


def sanitize_header_text(text: str) -> str:
    """Make ``text`` one line: controls and line breaks become spaces, runs collapse."""
    if not text.isascii() or _CONTROL_CHARS.search(text):
        text = _CONTROL_CHARS.sub(" ", text)

    return " ".join(text.split())


def _printable(text: str) -> str:
    return sanitize_header_text(text)[:60]


# --- encoded words (RFC 2047) -------------------------------------------------


def decode_header_value(value: str, defects: list[str]) -> str:
    """Decode a header value to one clean line of text.

    Encoded-words (RFC 2047) are decoded. Adjacent encoded-words in the same
    charset are joined as bytes first, because some senders split one
    multibyte character across two words. Raw 8-bit bytes outside
    encoded-words are read as UTF-8, else windows-1252.
    """
    if not isinstance(value, str):
        value = str(value)
    if value.isascii() and "=?" not in value and "\x1b" not in value:
        return sanitize_header_text(value)

    return sanitize_header_text(decode_words(value, defects))


def decode_words(value: str, defects: list[str]) -> str:
    """Decode encoded-words and raw 8-bit bytes, leaving control characters in place."""
    if value.isascii() and "=?" not in value and "\x1b" not in value:
        return value

    return "".join(_decode_segments(value, defects))


def _decode_segments(value: str, defects: list[str]) -> Iterable[str]:
    # Each item is either raw text (str) or an encoded-word (charset, bytes).
    items: list[str | tuple[str, bytes]] = []
    position = 0
    for match in _ENCODED_WORD.finditer(value):
        gap = value[position : match.start()]
        position = match.end()
        # RFC 2047 6.2: white space between two encoded-words is not shown.
        if gap and not (gap.isspace() and items and isinstance(items[-1], tuple)):
            items.append(gap)
        charset = match.group(1).partition("*")[0].lower()
        payload = _decode_word_payload(match.group(2), match.group(3), defects)
        previous = items[-1] if items else None
        if isinstance(previous, tuple) and previous[0] == charset:
            items[-1] = (charset, previous[1] + payload)
        else:
            items.append((charset, payload))
    items.append(value[position:])

    for item in items:
        if isinstance(item, tuple):
            yield decode_bytes(item[1], item[0], defects)
        else:
            yield decode_raw_text(item, defects)


def _decode_word_payload(encoding: str, text: str, defects: list[str]) -> bytes:
    data = header_bytes(text)
    if encoding in "qQ":
        return _QP_ESCAPE.sub(lambda m: bytes((int(m.group(1), 16),)), data.replace(b"_", b" "))

    return decode_base64_lenient(data, defects)


def decode_base64_lenient(data: bytes, defects: list[str]) -> bytes:
    """Decode base64 that may lack padding, contain stray characters or be several padded runs.

    A dangling sixth-bit character that cannot form a byte is dropped with a defect.
    """
    decoded: list[bytes] = []
    for run in _BASE64_RUN.findall(_NOT_BASE64.sub(b"", data)):
        run = run.rstrip(b"=")
        if len(run) % 4 == 1:
            defects.append("base64 text has a dangling character")
            run = run[:-1]
        decoded.append(base64.b64decode(run + b"=" * (-len(run) % 4)))

    return b"".join(decoded)


# --- addresses ----------------------------------------------------------------


def parse_addresses(value: str, defects: list[str]) -> tuple[Address, ...]:
    """Parse an address-list header into addresses with a domain.

    Tolerates what real senders write: an unquoted comma in the display name
    ("Korhonen, Matti <m@example.com>" is one address), group syntax,
    ``user@host (Name)`` comments, missing angle brackets and unbalanced
    quotes. Entries without a usable address are dropped with a defect.
    """
    addresses: list[Address] = []
    pending_names: list[str] = []

    for chunk in _split_address_list(value):
        name, addr, bracketed = _parse_mailbox(chunk)
        if addr is None:
            if name:
                pending_names.append(name)
            continue
        if pending_names and bracketed:
            # The earlier pieces were the display name, split at an unquoted comma.
            name = ", ".join(pending_names + ([name] if name else []))
        elif pending_names:
            defects.append(
                f"address without domain dropped: {_printable(', '.join(pending_names))!r}"
            )
        pending_names = []
        address = _make_address(name, addr, defects)
        if address is not None:
            addresses.append(address)

    if pending_names:
        defects.append(f"address without domain dropped: {_printable(', '.join(pending_names))!r}")

    return tuple(addresses)


def _split_address_list(value: str) -> list[list[str]]:
    """Split an address list into mailboxes, each a list of tokens."""
    chunks: list[list[str]] = []
    current: list[str] = []
    for token in _ADDRESS_TOKEN.findall(value):
        if token in (",", ";"):
            chunks.append(current)
            current = []
        elif token == ":" and not any("@" in part for part in current):
            # A group name ("Team: a@x, b@y;") or a "mailto:" prefix.
            current = []
        else:
            current.append(token)
    chunks.append(current)

    return [chunk for chunk in chunks if "".join(chunk).strip()]


def _parse_mailbox(tokens: list[str]) -> tuple[str, str | None, bool]:
    """Return (display name, address or None, whether the address was in <>)."""
    angles = [token[1:-1] for token in tokens if token.startswith("<") and token.endswith(">")]
    comments = [
        token[1:-1]
        for token in tokens
        if token.startswith("(") and token.endswith(")") and len(token) > 1
    ]
    words = [
        _unquote(token) for token in tokens if not token.startswith(("<", "(")) or len(token) == 1
    ]
    words = [word for word in words if word not in ('"', "<", "(")]

    bracketed = [angle for angle in angles if "@" in angle]
    if bracketed:
        name = "".join(words).strip() or " ".join(comments)
        return name, bracketed[-1], True

    quoted_local = _quoted_local_part(tokens)
    if quoted_local is not None:
        return " ".join(comments), quoted_local, False

    text = "".join(words)
    match = _BARE_ADDRESS.search(text)
    if match is None:
        return (text.strip() or " ".join(comments)), None, False
    rest = (text[: match.start()] + text[match.end() :]).strip()

    return (" ".join(comments) or rest), match.group(0), False


def _quoted_local_part(tokens: list[str]) -> str | None:
    """Return ``"any text"@domain`` when a quoted string is directly followed by "@domain"."""
    for token, following in itertools.pairwise(tokens):
        if len(token) >= 2 and token.startswith('"') and token.endswith('"'):
            match = _DOMAIN_AFTER_QUOTE.match(following)
            if match:
                return token + match.group(0)

    return None


def _unquote(token: str) -> str:
    if len(token) >= 2 and token.startswith('"') and token.endswith('"'):
        return _QUOTED_PAIR.sub(r"\1", token[1:-1])

    return token


def _make_address(name: str, addr: str, defects: list[str]) -> Address | None:
    cleaned = decode_words(addr, defects).strip()
    if not cleaned.startswith('"'):
        # RFC 5322 4.4 allows white space around "@" and "." only; "x @ y . com"
        # is x@y.com, but "power quadrant system@y.com" stays invalid.
        cleaned = _SPACE_AROUND_DELIMITER.sub(r"\1", cleaned)
        # Drop a source route ("@relay:user@host") and a "mailto:" prefix.
        cleaned = cleaned.rpartition(":")[2]
    cleaned = cleaned.strip("<>").rstrip(".").lower()
    if not _VALID_ADDRESS.fullmatch(cleaned) or _CONTROL_CHARS.search(cleaned):
        defects.append(f"invalid address dropped: {_printable(addr)!r}")
        return None

    return Address(addr=cleaned, name=decode_header_value(name, defects))


def parse_return_path(value: str | None, defects: list[str]) -> str | None:
    """Return the Return-Path address lower-case, "" for the null path ``<>``, None if absent."""
    if value is None:
        return None
    if not value.strip() or re.fullmatch(r"\s*<\s*>\s*", value):
        return ""
    addresses = parse_addresses(value, defects)
    if not addresses:
        return None

    return addresses[0].addr


# --- Message-IDs, dates, other structured values ----------------------------


def extract_message_ids(value: str | None) -> tuple[str, ...]:
    """Return the Message-IDs in a Message-ID, In-Reply-To or References value.

    IDs are returned without angle brackets and whitespace, first occurrence
    first. Text outside angle brackets is ignored when any brackets exist;
    otherwise the value is split at whitespace and commas.
    """
    if not value:
        return ()
    found = _ANGLE_ID.findall(value)
    if not found:
        found = _ID_SEPARATORS.split(_COMMENT.sub(" ", value))

    ids: dict[str, None] = {}
    for item in found:
        # An id never contains angle brackets; a stray one inside ("0<0") is dropped
        # so the id can be written back into In-Reply-To and References safely.
        cleaned = "".join(_CONTROL_CHARS.sub("", decode_raw_text(item, [])).split())
        cleaned = cleaned.replace("<", "").replace(">", "")
        if cleaned:
            ids[cleaned] = None

    return tuple(ids)


def parse_date(value: str | None, defects: list[str]) -> datetime | None:
    """Parse an RFC 5322 date into an aware UTC datetime; a naive one is taken as UTC."""
    if value is None:
        return None
    text = sanitize_header_text(decode_raw_text(value, defects))
    try:
        parsed = parsedate_to_datetime(text)
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (ValueError, TypeError, OverflowError, IndexError):
        defects.append(f"unparseable Date header: {_printable(text)!r}")
        return None


def parse_content_language(value: str | None) -> str | None:
    """Return the first language tag of a Content-Language value, lower-case."""
    if not value:
        return None
    first = value.replace(",", " ").split()
    if not first:
        return None
    tag = first[0].lower()

    return tag if _LANGUAGE_TAG.fullmatch(tag) else None


def decode_thread_index(value: str | None, defects: list[str]) -> bytes | None:
    """Decode Outlook's base64 Thread-Index, or return None when it is absent or invalid."""
    if value is None:
        return None
    compact = "".join(value.split())
    try:
        decoded = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        defects.append("invalid Thread-Index")
        return None

    return decoded or None


# --- raw access to parsed parts -------------------------------------------------

# A parameter is a run of text and quoted strings up to the next ";". A
# quoted string left open runs to the end of the value.
_PARAMETER = re.compile(r'(?:[^;"]+|"(?:[^"\\]|\\.)*(?:"|$))+')

ParamValue = str | tuple[str | None, str | None, str]


def raw_header(message: Message, name: str) -> str | None:
    """Return the first value of header ``name`` as stored, raw bytes as surrogates.

    ``Message.get`` under compat32 wraps a value with 8-bit bytes in a Header
    whose ``str()`` turns those bytes into U+FFFD; this reads around it.
    """
    field_name = name.lower()
    for key, value in message.raw_items():
        if key.lower() == field_name:
            return str(value)

    return None


def header_params(message: Message, name: str) -> list[tuple[str, ParamValue]]:
    """Return the parameters of a structured header such as Content-Type, RFC 2231 decoded.

    Names are lower-case. An RFC 2231 value is a (charset, language, text)
    tuple whose text has one character per octet. Unlike
    ``Message.get_params`` this keeps raw 8-bit bytes and never raises.
    """
    value = raw_header(message, name)
    if value is None:
        return []
    params: list[tuple[str, str]] = []
    for item in _PARAMETER.findall(value)[1:]:
        key, _, param_value = item.partition("=")
        params.append((key.strip().lower(), param_value.strip()))
    try:
        decoded = decode_params([("", ""), *params])[1:]
    except (ValueError, TypeError):
        # Python 3.11's decode_params fails on "name*=" mixed with "name*0="
        # (TypeError) and on continuation numbers over 4300 digits (ValueError).
        decoded = [(key, param_value) for key, param_value in params if "*" not in key]

    return [(key, _unquote_param(param_value)) for key, param_value in decoded]


def _unquote_param(value: ParamValue) -> ParamValue:
    if isinstance(value, tuple):
        return value[0], value[1], unquote(value[2])

    return unquote(value)


# --- attachment filenames -----------------------------------------------------


def decode_filename_param(value: ParamValue, defects: list[str]) -> str:
    """Decode a filename parameter: an RFC 2231 tuple or a plain (maybe RFC 2047) string.

    Control characters are left for ``sanitize_filename``, which drops them
    instead of turning them into spaces.
    """
    if isinstance(value, tuple):
        charset, _language, text = value
        try:
            data = text.encode("latin-1", "surrogateescape")
        except UnicodeEncodeError:
            data = header_bytes(text)
        return decode_words(decode_bytes(data, charset, defects), defects)

    return decode_words(value, defects)


def sanitize_filename(name: str | None, extension: str, index: int) -> str:
    """Return a filename that is safe to show and never empty.

    Keeps only the last path component (after both '/' and '\\'), removes
    control and bidirectional formatting characters, strips trailing dots
    and spaces, prefixes reserved Windows device names with '_' and caps the
    length. A name with nothing left becomes ``attachment-<index><extension>``.
    """
    cleaned = ""
    if name:
        last = re.split(r"[/\\]", name)[-1]
        last = _FILENAME_INVISIBLES.sub("", _CONTROL_CHARS.sub("", last))
        cleaned = " ".join(last.split()).rstrip(". ").lstrip()
    if not cleaned:
        return f"attachment-{index}{extension}"
    if cleaned.split(".", 1)[0].strip().upper() in _WINDOWS_DEVICE_NAMES:
        cleaned = "_" + cleaned

    return _truncate_filename(cleaned)


def _truncate_filename(name: str) -> str:
    if len(name.encode("utf-8")) <= MAX_FILENAME_BYTES:
        return name
    stem, dot, suffix = name.rpartition(".")
    if not dot or not stem or len(suffix) > 16:
        stem, suffix = name, ""
    budget = MAX_FILENAME_BYTES - len(suffix.encode("utf-8")) - (1 if suffix else 0)
    short = stem.encode("utf-8")[:budget].decode("utf-8", "ignore").rstrip(". ")

    return f"{short}.{suffix}" if suffix else short
