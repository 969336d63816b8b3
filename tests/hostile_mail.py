"""A corpus of hostile and broken mail, built in code, for the bad-input tests.

Each builder returns the raw bytes of one message. Every message carries its
corpus name in ``X-Corpus`` where the message still has a readable header,
so a test can tell which stored row came from which input.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from email.message import EmailMessage

ATTACHMENT_NAMES = (
    "../../etc/passwd",
    "/etc/shadow",
    "C:\\Windows\\System32\\evil.exe",
    "CON",
    "nul.txt",
    "COM1.pdf",
    "lpt9",
    "bell\x07escape\x1b.txt",
    "..",
)


def _header(name: str, subject: str, extra: bytes = b"") -> bytes:
    return (
        b"From: Hostile Sender <hostile@example.net>\r\n"
        b"To: tuki@example.fi\r\n"
        b"Subject: " + subject.encode() + b"\r\n"
        b"Message-ID: <" + name.encode() + b"@corpus.example.net>\r\n"
        b"Date: Fri, 04 Dec 2026 10:00:00 +0200\r\n"
        b"X-Corpus: " + name.encode() + b"\r\n" + extra
    )


def huge_attachment(size: int = 50 * 1024 * 1024) -> bytes:
    """A text part and a ``size``-byte attachment (base64, so about 4/3 of that on the wire)."""
    message = EmailMessage()
    message["From"] = "Big Sender <big@example.net>"
    message["To"] = "tuki@example.fi"
    message["Subject"] = "Kuvat tilauksesta"
    message["Message-ID"] = "<huge-attachment@corpus.example.net>"
    message["X-Corpus"] = "huge-attachment"
    message.set_content("Liitteenä kuvat vahingoittuneesta paketista.")
    message.add_attachment(os.urandom(size), maintype="image", subtype="jpeg", filename="paketti.jpg")
    return message.as_bytes()


def big_header() -> bytes:
    """A 1 MiB header field on one line."""
    return _header("big-header", "Iso otsake", b"X-Filler: " + b"A" * (1024 * 1024) + b"\r\n") + b"\r\nHei.\r\n"


def many_recipients() -> bytes:
    """10,000 addresses in To."""
    to = b", ".join(b"r%d@example.org" % number for number in range(10000))
    return _header("many-recipients", "Kaikille", b"Cc: " + to + b"\r\n") + b"\r\nHei kaikki.\r\n"


def nul_bytes() -> bytes:
    return _header("nul-bytes", "Nul\x00tavu") + b"\r\nTeksti\x00jossa NUL.\r\n"


def bare_lf() -> bytes:
    return _header("bare-lf", "Pelkka LF").replace(b"\r\n", b"\n") + b"\nRivi 1\nRivi 2\n"


def bare_cr() -> bytes:
    return _header("bare-cr", "Pelkka CR").replace(b"\r\n", b"\r") + b"\rRivi 1\rRivi 2\r"


def eight_bit_headers() -> bytes:
    raw = (
        b"From: J\xe4rvinen \xc3\xa4 <jarvinen@example.net>\r\n"
        b"To: tuki@example.fi\r\n"
        b"Subject: Tilaus \xe4\xf6\xe5 \xc3\xa4\xc3\xb6\r\n"
        b"Message-ID: <eight-bit-headers@corpus.example.net>\r\n"
        b"X-Corpus: eight-bit-headers\r\n"
    )
    return raw + b"\r\nRaaka 8-bittinen otsake.\r\n"


def unknown_charset() -> bytes:
    extra = b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=x-no-such-charset-42\r\n"
    return _header("unknown-charset", "=?x-unknown?q?Outo?=", extra) + b"\r\nTeksti \xe4\xf6.\r\n"


def deep_nesting(depth: int = 3000) -> bytes:
    """Multiparts nested ``depth`` levels deep, each properly closed."""
    opening = b"".join(
        b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (level, level)
        for level in range(depth)
    )
    closing = b"".join(b"\r\n--b%d--\r\n" % level for level in reversed(range(depth)))
    body = opening + b"Content-Type: text/plain\r\n\r\nSyvalla.\r\n" + closing
    return _header("deep-nesting", "Syva", b"MIME-Version: 1.0\r\n") + body


def unclosed_multipart() -> bytes:
    extra = b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="open"\r\n'
    body = (
        b"\r\n--open\r\nContent-Type: text/plain\r\n\r\nEi loppurajaa.\r\n"
        b"--open\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; "
        b'filename="lasku.pdf"\r\n\r\n%PDF-1.4 katkennut'
    )
    return _header("unclosed-multipart", "Avoin", extra) + body


def hostile_names() -> bytes:
    message = EmailMessage()
    message["From"] = "names@example.net"
    message["To"] = "tuki@example.fi"
    message["Subject"] = "Liitteet"
    message["Message-ID"] = "<hostile-names@corpus.example.net>"
    message["X-Corpus"] = "hostile-names"
    message.set_content("Liitteitä.")
    for name in ATTACHMENT_NAMES:
        message.add_attachment(b"x", maintype="application", subtype="octet-stream", filename=name)
    return message.as_bytes()


def encoded_newlines() -> bytes:
    """Encoded words whose decoded text contains CR LF followed by a fake header."""
    subject = "=?utf-8?q?Hei=0D=0ABcc:_uhri@example.org?="
    extra = b"Reply-To: =?utf-8?q?Nimi=0D=0AX-Evil:_1?= <reply@example.net>\r\n"
    return _header("encoded-newlines", subject, extra) + b"\r\nTeksti.\r\n"


def broken_tnef() -> bytes:
    """An Outlook winmail.dat whose TNEF data is cut off, so it cannot be unpacked."""
    message = EmailMessage()
    message["From"] = "outlook@example.net"
    message["To"] = "tuki@example.fi"
    message["Subject"] = "Winmail"
    message["Message-ID"] = "<broken-tnef@corpus.example.net>"
    message["X-Corpus"] = "broken-tnef"
    message.set_content("Katso liite.")
    # The TNEF signature 0x223E9F78, then nothing sensible.
    message.add_attachment(
        b"\x78\x9f\x3e\x22\x01\x00\x01\x06\x90\x08\x00", maintype="application",
        subtype="ms-tnef", filename="winmail.dat",
    )
    return message.as_bytes()


def smime_signed() -> bytes:
    signature = base64.encodebytes(b"\x30\x82\x01\x00 not a real PKCS#7 signature")
    extra = (
        b"MIME-Version: 1.0\r\nContent-Type: multipart/signed; "
        b'protocol="application/pkcs7-signature"; micalg=sha-256; boundary="sig"\r\n'
    )
    body = (
        b"\r\n--sig\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nAllekirjoitettu viesti.\r\n"
        b"--sig\r\nContent-Type: application/pkcs7-signature; name=smime.p7s\r\n"
        b"Content-Transfer-Encoding: base64\r\n"
        b'Content-Disposition: attachment; filename="smime.p7s"\r\n\r\n' + signature + b"--sig--\r\n"
    )
    return _header("smime-signed", "Allekirjoitettu", extra) + body


def pgp_signed() -> bytes:
    extra = (
        b"MIME-Version: 1.0\r\nContent-Type: multipart/signed; "
        b'protocol="application/pgp-signature"; micalg=pgp-sha256; boundary="pgp"\r\n'
    )
    body = (
        b"\r\n--pgp\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nPGP-viesti.\r\n"
        b"--pgp\r\nContent-Type: application/pgp-signature; name=signature.asc\r\n"
        b'Content-Disposition: attachment; filename="signature.asc"\r\n\r\n'
        b"-----BEGIN PGP SIGNATURE-----\r\n\r\niQEz\r\n-----END PGP SIGNATURE-----\r\n--pgp--\r\n"
    )
    return _header("pgp-signed", "PGP", extra) + body


CORPUS: dict[str, Callable[[], bytes]] = {
    "big-header": big_header,
    "many-recipients": many_recipients,
    "nul-bytes": nul_bytes,
    "bare-lf": bare_lf,
    "bare-cr": bare_cr,
    "eight-bit-headers": eight_bit_headers,
    "unknown-charset": unknown_charset,
    "deep-nesting": deep_nesting,
    "unclosed-multipart": unclosed_multipart,
    "hostile-names": hostile_names,
    "encoded-newlines": encoded_newlines,
    "broken-tnef": broken_tnef,
    "smime-signed": smime_signed,
    "pgp-signed": pgp_signed,
}
