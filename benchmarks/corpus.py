"""A seeded generator of realistic support mail that records the thread of every mail.

The corpus imitates a Finnish web shop's support mailbox: Finnish and English
mail, plain text, multipart/alternative and HTML-only bodies, UTF-8,
ISO-8859-15 and windows-1252 text in 8bit, quoted-printable or base64,
attachments from 8 KB to 400 KB, and the header blocks real clients and
relays write (Received, DKIM-Signature, Authentication-Results).

About 60 % of the mails are customer replies. They link to their thread the
way the customer's client does it:

* Thunderbird and Gmail: In-Reply-To the parent and References to the chain;
* Outlook: In-Reply-To and References of the parent only, plus Thread-Index
  and Thread-Topic;
* webmail: References only;
* a new mail with the ticket tag ``[#N]`` copied into the subject, no ids.

The parent of a reply is either the customer's own previous mail or the
agent's answer to it. Agents answer from their own client, so their answers
are in the Sent folder, never in the synced INBOX: a helpdesk that follows
only In-Reply-To cannot thread those replies.

Every thread starts with a new customer mail, and a thread's ticket number
is ``ticket_offset`` plus its rank among the threads by start time, which is
the number a desk gives it when it imports the mail in time order.
"""

from __future__ import annotations

import base64
import hashlib
import os
import quopri
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from html import escape
from pathlib import Path
from zoneinfo import ZoneInfo

HELSINKI = ZoneInfo("Europe/Helsinki")
SUPPORT_ADDRESS = "tuki@example.fi"
SUPPORT_NAME = "Esimerkkikauppa asiakaspalvelu"
AGENTS = ("aino@example.fi", "janne@example.fi")

_CLIENTS = ("thunderbird", "gmail", "outlook", "webmail", "tag-only")
# Share of each client among threads; "tag-only" is a customer who writes a
# new mail with the ticket number in the subject.
_CLIENT_WEIGHTS = (25, 30, 25, 12, 8)
_CHARSETS = ("utf-8", "iso-8859-15", "windows-1252")
_CHARSET_WEIGHTS = (65, 20, 15)

_FIRST_NAMES_FI = ("Matti", "Maija", "Jaana", "Päivi", "Jukka", "Sanna", "Tiina", "Mikko",
                   "Anna-Liisa", "Eero", "Kristiina", "Väinö", "Aino", "Otso", "Hannele", "Pekka")
_LAST_NAMES_FI = ("Virtanen", "Mäkinen", "Järvinen", "Häkkinen", "Korhonen", "Nieminen",
                  "Lehtonen", "Kärkkäinen", "Heikkilä", "Koskinen", "Pöllänen", "Räsänen")
_FIRST_NAMES_EN = ("John", "Emily", "Oliver", "Sophie", "Liam", "Grace", "Lucas", "Chloé", "Zoë")
_LAST_NAMES_EN = ("Smith", "Brown", "Taylor", "Wilson", "O'Neill", "Müller", "Johansson")
_DOMAINS = ("example.com", "example.net", "example.org", "posti.example", "koti.example",
            "yritys.example", "mail.example")

_SUBJECTS_FI = (
    "Tilaus {n} ei ole saapunut",
    "Palautus: tilaus {n}",
    "Kysymys laskusta {n}",
    "Väärä koko tilauksessa {n}",
    "Rikkinäinen tuote, tilaus {n}",
    "Voinko muuttaa toimitusosoitetta? (tilaus {n})",
    "Hyvitys puuttuu – tilaus {n}",
    "Lahjakortin {n} saldo",
)
_SUBJECTS_EN = (
    "Order {n} has not arrived",
    "Return request for order {n}",
    "Question about invoice {n}",
    "Wrong size in order {n}",
    "Damaged item – order {n}",
    "Refund for order {n} still missing",
)
_OPENINGS_FI = ("Hei,", "Moi!", "Hyvä asiakaspalvelu,", "Hei tuki,", "Terve,")
_OPENINGS_EN = ("Hello,", "Hi there,", "Dear customer service,", "Hi,")
_SENTENCES_FI = (
    "Tilasin {d} tuotteen, mutta paketti ei ole vieläkään tullut perille.",
    "Seurantakoodi näyttää, että lähetys on ollut jakelussa jo viikon.",
    "Kenkien koko oli liian pieni, joten haluaisin vaihtaa ne kokoon 43.",
    "Maksoin laskun eräpäivänä, mutta sain silti maksumuistutuksen (5,00 €).",
    "Voitteko lähettää uuden tuotteen tai palauttaa rahat tililleni?",
    "Liitteenä on kuva vaurioituneesta pakkauksesta.",
    "Olen ollut tyytyväinen asiakas jo vuosia, joten tämä harmittaa.",
    "Tarvitsisin tuotteen viimeistään perjantaina syntymäpäivälahjaksi.",
    "Löytyykö teiltä samaa takkia värissä tummansininen?",
    "Kiitos nopeasta vastauksesta, mutta ongelma ei ratkennut.",
    "Yritin palauttaa tuotteen, mutta palautuslomake antaa virheen.",
    "Hinta oli verkkokaupassa 49,90 €, mutta minulta veloitettiin 59,90 €.",
)
_SENTENCES_EN = (
    "I ordered {d} and the parcel still has not arrived.",
    "The tracking page says it has been out for delivery for a week.",
    "The shoes were too small, so I would like to exchange them for size 43.",
    "I paid the invoice on time but still got a reminder fee of €5.00.",
    "Could you send a replacement or refund the amount to my card?",
    "A photo of the damaged box is attached.",
    "I need the item by Friday at the latest, it is a birthday present.",
    "Thanks for the quick answer, but the problem is not solved yet.",
    "The return form on your site gives me an error.",
    "The price in the shop was €49.90 but I was charged €59.90.",
)
_CLOSINGS_FI = ("Ystävällisin terveisin,", "Terveisin,", "Kiitos jo etukäteen!", "t.")
_CLOSINGS_EN = ("Kind regards,", "Best,", "Thanks in advance,", "Cheers,")
_WROTE_FI = "{date} {name} <{addr}> kirjoitti:"
_WROTE_EN = "On {date}, {name} <{addr}> wrote:"
_PRODUCTS_FI = ("kahdet villasukat", "talvitakin", "kahvinkeittimen", "lasten kumisaappaat")
_PRODUCTS_EN = ("two pairs of wool socks", "a winter coat", "a coffee maker", "rain boots")

_ATTACHMENTS = (
    ("application/pdf", "lasku_{n}.pdf"),
    ("image/jpeg", "IMG_{n}.jpg"),
    ("image/png", "Näyttökuva {n}.png"),
    ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", "reklamaatio_{n}.docx"),
)
# Outlook's HTML carries a large style block and Word paragraph classes.
_OUTLOOK_STYLE = (
    "<style><!--\n/* Font Definitions */\n@font-face\n\t{font-family:\"Cambria Math\";\n"
    "\tpanose-1:2 4 5 3 5 4 6 3 2 4;}\n@font-face\n\t{font-family:Calibri;\n"
    "\tpanose-1:2 15 5 2 2 2 4 3 2 4;}\n/* Style Definitions */\n"
    "p.MsoNormal, li.MsoNormal, div.MsoNormal\n\t{margin:0cm;\n\tfont-size:11.0pt;\n"
    "\tfont-family:\"Calibri\",sans-serif;\n\tmso-fareast-language:EN-US;}\n"
    "a:link, span.MsoHyperlink\n\t{mso-style-priority:99;\n\tcolor:#0563C1;\n"
    "\ttext-decoration:underline;}\nspan.EmailStyle17\n\t{mso-style-type:personal-compose;\n"
    "\tfont-family:\"Calibri\",sans-serif;\n\tcolor:windowtext;}\n.MsoChpDefault\n"
    "\t{mso-style-type:export-only;\n\tfont-family:\"Calibri\",sans-serif;}\n"
    "@page WordSection1\n\t{size:612.0pt 792.0pt;\n\tmargin:72.0pt 72.0pt 72.0pt 72.0pt;}\n"
    "div.WordSection1\n\t{page:WordSection1;}\n--></style>"
)


@dataclass(frozen=True)
class CorpusSpec:
    """Size, seed and time span of a generated corpus."""

    messages: int
    seed: int = 1
    reply_share: float = 0.6
    attachment_share: float = 0.08
    # Time of the first thread's first mail; later mail spreads over ``span``.
    start: datetime = datetime(2024, 1, 8, 8, 0, tzinfo=UTC)
    span: timedelta = timedelta(days=365)
    # Tickets already in the desk, so subject tags name the numbers it will give.
    ticket_offset: int = 0
    # Prefix of the Message-IDs, so two corpora for one desk never share an id.
    id_prefix: str = "c"
    # Size of the customer pool; 0 means 30 % of ``messages`` but at least 50,
    # which gives about 1.4 threads per customer.
    customers: int = 0


@dataclass
class CorpusStats:
    """Counts of a generated corpus."""

    messages: int = 0
    threads: int = 0
    bytes: int = 0


@dataclass(frozen=True, slots=True)
class GeneratedMail:
    """One mail of the corpus, with its thread (0-based, in start order) and time."""

    raw: bytes
    thread: int
    index: int
    sent_at: datetime


@dataclass(frozen=True, slots=True)
class _Thread:
    number: int
    customer_name: str
    customer_addr: str
    finnish: bool
    client: str
    charset: str
    subject: str
    started: datetime


def plan(spec: CorpusSpec) -> list[tuple[datetime, int, int]]:
    """Return (time, thread, index in thread) of every mail, in time order.

    Thread numbers follow the start times, so they are the order in which a
    desk opens the tickets.
    """
    rng = random.Random(f"plan:{spec.seed}")
    threads = max(1, round(spec.messages * (1 - spec.reply_share)))
    threads = min(threads, spec.messages)
    span_seconds = spec.span.total_seconds()
    starts = sorted(rng.uniform(0, span_seconds) for _ in range(threads))
    sizes = [1] * threads
    for _ in range(spec.messages - threads):
        sizes[rng.randrange(threads)] += 1

    events: list[tuple[float, int, int]] = []
    for thread, (start, size) in enumerate(zip(starts, sizes, strict=True)):
        moment = start
        events.append((moment, thread, 0))
        for index in range(1, size):
            # Customers reply within hours to a few days.
            moment += rng.expovariate(1 / 36000) + 600
            events.append((moment, thread, index))
    events.sort()
    # A reply can land after a later thread's start; ties keep thread order.
    return [(spec.start + timedelta(seconds=moment), thread, index) for moment, thread, index in events]


def generate(spec: CorpusSpec) -> Iterator[GeneratedMail]:
    """Yield the corpus's mails in time order, one at a time."""
    threads: dict[int, _Thread] = {}
    for sent_at, thread_number, index in plan(spec):
        thread = threads.get(thread_number)
        if thread is None:
            thread = _make_thread(spec, thread_number, sent_at)
            threads[thread_number] = thread
        rng = random.Random(f"mail:{spec.seed}:{thread_number}:{index}")
        yield GeneratedMail(_render(spec, thread, index, sent_at, rng), thread_number, index, sent_at)


def write_maildir(maildir: Path, spec: CorpusSpec, *, uid: int = -1, gid: int = -1) -> CorpusStats:
    """Write the corpus into ``maildir``/cur in time order and return what it holds.

    File names start with increasing seconds, so Dovecot assigns UIDs in
    time order. Each file's mtime is the mail's time, which Dovecot reports
    as INTERNALDATE. ``uid`` and ``gid`` set the owner when they are not -1.
    """
    target = maildir / "cur"
    target.mkdir(parents=True, exist_ok=True)
    stats = CorpusStats()
    base = 1_600_000_000
    seen_threads: set[int] = set()
    for number, mail in enumerate(generate(spec)):
        name = f"{base + number}.M{number}P{os.getpid()}.bench,S={len(mail.raw)}:2,S"
        path = target / name
        path.write_bytes(mail.raw)
        stamp = mail.sent_at.timestamp()
        os.utime(path, (stamp, stamp))
        if uid != -1 or gid != -1:
            os.chown(path, uid, gid)
        stats.messages += 1
        stats.bytes += len(mail.raw)
        seen_threads.add(mail.thread)
    stats.threads = len(seen_threads)
    if uid != -1 or gid != -1:
        os.chown(target, uid, gid)
    return stats


def message_id(spec: CorpusSpec, thread: int, index: int, domain: str) -> str:
    """Return the Message-ID (without brackets) of a customer's mail."""
    digest = hashlib.blake2b(f"{spec.seed}:{thread}:{index}".encode(), digest_size=10).hexdigest()
    return f"{spec.id_prefix}{digest}.{thread}.{index}@{domain}"


def agent_reply_id(spec: CorpusSpec, thread: int, index: int) -> str:
    """Return the Message-ID of the agent's answer to customer mail ``index``; never in INBOX."""
    digest = hashlib.blake2b(f"agent:{spec.seed}:{thread}:{index}".encode(), digest_size=8).hexdigest()
    return f"{spec.id_prefix}{digest}.{thread}.{index}@mail.example.fi"


# --- threads ------------------------------------------------------------------------


def _make_thread(spec: CorpusSpec, number: int, started: datetime) -> _Thread:
    rng = random.Random(f"thread:{spec.seed}:{number}")
    finnish = rng.random() < 0.65
    first = rng.choice(_FIRST_NAMES_FI if finnish else _FIRST_NAMES_EN)
    last = rng.choice(_LAST_NAMES_FI if finnish else _LAST_NAMES_EN)
    customer = rng.randrange(spec.customers or max(50, int(spec.messages * 0.3)))
    local = _ascii_local(f"{first}.{last}")
    addr = f"{local}{customer}@{_DOMAINS[customer % len(_DOMAINS)]}"
    # The order number makes every subject unique, so no two threads of one
    # customer share a subject that a subject-based fallback could join.
    order = 100_000 + spec.seed * 7919 % 1000 * 1000 + number
    template = rng.choice(_SUBJECTS_FI if finnish else _SUBJECTS_EN)
    return _Thread(
        number=number,
        customer_name=f"{first} {last}",
        customer_addr=addr,
        finnish=finnish,
        client=rng.choices(_CLIENTS, _CLIENT_WEIGHTS)[0],
        charset=rng.choices(_CHARSETS, _CHARSET_WEIGHTS)[0],
        subject=template.format(n=f"{spec.id_prefix.upper()}{order}"),
        started=started,
    )


def _ascii_local(name: str) -> str:
    table = str.maketrans({"ä": "a", "ö": "o", "å": "a", "é": "e", "ü": "u", "ë": "e", "'": ""})
    return name.lower().translate(table).replace(" ", "").replace("-", "")


# --- rendering ------------------------------------------------------------------------


def _render(
    spec: CorpusSpec, thread: _Thread, index: int, sent_at: datetime, rng: random.Random
) -> bytes:
    domain = thread.customer_addr.rpartition("@")[2]
    own_id = message_id(spec, thread.number, index, domain)
    subject = thread.subject
    linking: list[tuple[str, str]] = []
    if index:
        subject, linking = _reply_headers(spec, thread, index, rng)
    text = _body_text(thread, index, sent_at, rng)
    headers = _transport_headers(thread, sent_at, own_id, rng)
    headers += [
        ("From", _address_header(thread.customer_name, thread.customer_addr, thread.charset)),
        ("To", f"{SUPPORT_NAME} <{SUPPORT_ADDRESS}>"),
        ("Subject", _encode_header(subject, thread.charset, rng)),
        ("Date", format_datetime(sent_at.astimezone(HELSINKI))),
        ("Message-ID", f"<{own_id}>"),
    ]
    headers += linking
    headers += _client_headers(thread, rng)
    body_headers, body = _mime_body(thread, text, index, rng)
    lines = [f"{name}: {value}" for name, value in headers + body_headers]
    return ("\n".join(lines) + "\n\n").encode("ascii") + body


def _reply_headers(
    spec: CorpusSpec, thread: _Thread, index: int, rng: random.Random
) -> tuple[str, list[tuple[str, str]]]:
    """Return the reply's subject and the headers that link it, as its client writes them."""
    domain = thread.customer_addr.rpartition("@")[2]
    own_previous = message_id(spec, thread.number, index - 1, domain)
    # Half of the replies answer the agent's answer, which only the Sent folder holds.
    parent = own_previous if rng.random() < 0.5 else agent_reply_id(spec, thread.number, index - 1)
    chain = [message_id(spec, thread.number, 0, domain)]
    for earlier in range(1, index):
        chain.append(agent_reply_id(spec, thread.number, earlier - 1))
        chain.append(message_id(spec, thread.number, earlier, domain))
    if parent not in chain:
        chain.append(parent)
    if len(chain) > 10:
        # Clients trim long References but keep the first id (RFC 5322 3.6.4).
        chain = chain[:1] + chain[-9:]
    references = "\n ".join(f"<{item}>" for item in chain)

    prefix = "Re: "
    if thread.client == "outlook":
        prefix = "VS: " if thread.finnish else "RE: "
        return prefix + thread.subject, [
            ("In-Reply-To", f"<{parent}>"),
            ("References", f"<{parent}>"),
        ]
    if thread.client == "webmail":
        return prefix + thread.subject, [("References", references)]
    if thread.client == "tag-only":
        ticket = spec.ticket_offset + thread.number + 1
        return f"{prefix}{thread.subject} [#{ticket}]", []
    return prefix + thread.subject, [("In-Reply-To", f"<{parent}>"), ("References", references)]


def _transport_headers(
    thread: _Thread, sent_at: datetime, own_id: str, rng: random.Random
) -> list[tuple[str, str]]:
    local = sent_at.astimezone(HELSINKI)
    hop = format_datetime(local)
    queue_id = hashlib.md5(own_id.encode()).hexdigest()[:12].upper()
    relay = f"relay{rng.randrange(1, 40)}.{thread.customer_addr.rpartition('@')[2]}"
    address = f"198.51.100.{rng.randrange(1, 254)}"
    dkim = base64.b64encode(hashlib.sha512(own_id.encode()).digest() * 4).decode()
    return [
        ("Return-Path", f"<{thread.customer_addr}>"),
        ("Delivered-To", SUPPORT_ADDRESS),
        ("Received", f"from mx.example.fi (localhost [127.0.0.1])\n\tby imap.example.fi "
                     f"(Dovecot) with LMTP id {queue_id.lower()}\n\tfor <{SUPPORT_ADDRESS}>; {hop}"),
        ("Received", f"from {relay} ({relay} [{address}])\n\tby mx.example.fi (Postfix) "
                     f"with ESMTPS id {queue_id}\n\tfor <{SUPPORT_ADDRESS}>; {hop}"),
        ("Received", f"by {relay} with SMTP id {queue_id.lower()}x;\n\t{hop}"),
        ("Authentication-Results", f"mx.example.fi;\n\tdkim=pass header.d="
                                   f"{thread.customer_addr.rpartition('@')[2]};\n\tspf=pass "
                                   f"smtp.mailfrom={thread.customer_addr}"),
        ("DKIM-Signature", "v=1; a=rsa-sha256; c=relaxed/relaxed; d="
                           f"{thread.customer_addr.rpartition('@')[2]}; s=20230601;\n\t"
                           "h=to:subject:message-id:date:from:mime-version:from:to:cc:subject;\n\t"
                           f"bh={dkim[:44]};\n\tb=" + "\n\t ".join(
                               dkim[i:i + 72] for i in range(44, 388, 72))),
        ("X-Spam-Status", f"No, score=-{rng.randrange(1, 30) / 10} required=5.0"),
    ]


def _client_headers(thread: _Thread, rng: random.Random) -> list[tuple[str, str]]:
    if thread.client == "outlook":
        # Thread-Index: 22 bytes that name the conversation, 5 more per reply.
        guid = hashlib.md5(f"{thread.number}:{thread.subject}".encode()).digest()
        index = base64.b64encode(b"\x01\xda" + guid[:4] + guid + rng.randbytes(5)).decode()
        return [
            ("Thread-Topic", _encode_header(thread.subject, thread.charset, rng)),
            ("Thread-Index", index),
            ("X-Mailer", "Microsoft Outlook 16.0"),
            ("Content-Language", "fi-FI" if thread.finnish else "en-US"),
        ]
    if thread.client == "thunderbird":
        return [("User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 "
                               "Thunderbird/115.6.0")]
    return []


def _body_text(thread: _Thread, index: int, sent_at: datetime, rng: random.Random) -> str:
    finnish = thread.finnish
    sentences = _SENTENCES_FI if finnish else _SENTENCES_EN
    product = rng.choice(_PRODUCTS_FI if finnish else _PRODUCTS_EN)
    picked = [rng.choice(sentences).format(d=product) for _ in range(rng.randrange(2, 7))]
    paragraphs = [rng.choice(_OPENINGS_FI if finnish else _OPENINGS_EN), " ".join(picked[:3])]
    if len(picked) > 3:
        paragraphs.append(" ".join(picked[3:]))
    closing = rng.choice(_CLOSINGS_FI if finnish else _CLOSINGS_EN)
    paragraphs.append(f"{closing}\n{thread.customer_name}")
    text = "\n\n".join(paragraphs)
    if index:
        earlier = format_datetime((sent_at - timedelta(hours=5)).astimezone(HELSINKI))
        wrote = (_WROTE_FI if finnish else _WROTE_EN).format(
            date=earlier, name=SUPPORT_NAME, addr=SUPPORT_ADDRESS
        )
        quoted = "\n".join(f"> {line}" if line else ">" for line in _agent_answer(finnish, rng))
        text += f"\n\n{wrote}\n{quoted}\n"
    return text + "\n"


def _agent_answer(finnish: bool, rng: random.Random) -> list[str]:
    if finnish:
        lines = ["Hei,", "", "kiitos viestistäsi. Tarkistimme tilauksesi tiedot ja lähetämme",
                 "korvaavan tuotteen vielä tänään.", "", "Ystävällisin terveisin,", "Aino",
                 SUPPORT_NAME]
    else:
        lines = ["Hello,", "", "thank you for your message. We checked your order and will",
                 "send a replacement today.", "", "Kind regards,", "Aino", SUPPORT_NAME]
    return lines[: rng.randrange(4, len(lines) + 1)]


# --- MIME ---------------------------------------------------------------------------


def _mime_body(
    thread: _Thread, text: str, index: int, rng: random.Random
) -> tuple[list[tuple[str, str]], bytes]:
    """Return the MIME headers and the body bytes of a mail."""
    html_style = thread.client in ("gmail", "outlook") or (thread.client == "webmail" and rng.random() < 0.5)
    html_only = html_style and rng.random() < 0.15
    with_attachment = rng.random() < 0.08 * (1.5 if index == 0 else 0.7)
    if html_only:
        part = _text_part(_html(thread, text), "html", thread.charset, rng)
    elif html_style:
        part = _multipart("alternative", [
            _text_part(text, "plain", thread.charset, rng),
            _text_part(_html(thread, text), "html", thread.charset, rng),
        ], rng)
    else:
        part = _text_part(text, "plain", thread.charset, rng)
    if with_attachment:
        part = _multipart("mixed", [part, _attachment(thread, rng)], rng)
    headers, body = part
    return [("MIME-Version", "1.0"), *headers], body


def _text_part(
    text: str, subtype: str, charset: str, rng: random.Random
) -> tuple[list[tuple[str, str]], bytes]:
    # A client writing ISO-8859-15 turns what the charset lacks (the en dash) into "?".
    data = text.encode(charset, "replace")
    if data.isascii():
        encoding = "7bit"
    elif charset == "utf-8":
        encoding = rng.choices(("8bit", "quoted-printable", "base64"), (40, 40, 20))[0]
    else:
        encoding = rng.choices(("8bit", "quoted-printable"), (40, 60))[0]
    if encoding == "quoted-printable":
        body = quopri.encodestring(data)
    elif encoding == "base64":
        body = base64.encodebytes(data)
    else:
        body = data
    headers = [
        ("Content-Type", f"text/{subtype}; charset=\"{charset}\""),
        ("Content-Transfer-Encoding", encoding),
    ]
    return headers, body


def _multipart(
    subtype: str, parts: list[tuple[list[tuple[str, str]], bytes]], rng: random.Random
) -> tuple[list[tuple[str, str]], bytes]:
    boundary = f"----=_Part_{rng.getrandbits(64):016x}"
    chunks = [b"This is a multi-part message in MIME format.\n"]
    for headers, body in parts:
        head = "\n".join(f"{name}: {value}" for name, value in headers)
        chunks.append(f"--{boundary}\n{head}\n\n".encode("ascii") + body.rstrip(b"\n") + b"\n")
    chunks.append(f"--{boundary}--\n".encode("ascii"))
    return [("Content-Type", f"multipart/{subtype}; boundary=\"{boundary}\"")], b"".join(chunks)


def _html(thread: _Thread, text: str) -> str:
    paragraphs = "".join(
        "<p class=\"MsoNormal\">" + escape(paragraph).replace("\n", "<br>\n") + "<o:p></o:p></p>\n"
        for paragraph in text.split("\n\n")
    )
    head = _OUTLOOK_STYLE if thread.client == "outlook" else "<meta name=\"viewport\" content=\"width=device-width\">"
    return (
        "<html><head>\n<meta http-equiv=\"Content-Type\" content=\"text/html; charset="
        f"{thread.charset}\">\n{head}\n</head>\n<body lang=\"FI\" link=\"#0563C1\">\n"
        f"<div class=\"WordSection1\">\n{paragraphs}</div>\n</body></html>\n"
    )


def _attachment(thread: _Thread, rng: random.Random) -> tuple[list[tuple[str, str]], bytes]:
    content_type, pattern = rng.choice(_ATTACHMENTS)
    name = pattern.format(n=rng.randrange(1000, 9999))
    # Log-uniform between 8 KB and 400 KB, as photos and PDFs spread.
    size = int(8192 * (50 ** rng.random()))
    content = rng.randbytes(size)
    if name.isascii():
        disposition = f"attachment; filename=\"{name}\""
    else:
        quoted = "".join(c if c.isalnum() and c.isascii() else "%" + "%".join(
            f"{b:02X}" for b in c.encode()) for c in name)
        disposition = f"attachment; filename*=utf-8''{quoted}"
    headers = [
        ("Content-Type", f"{content_type}; name=\"{_encode_header(name, 'utf-8', rng)}\""),
        ("Content-Disposition", disposition),
        ("Content-Transfer-Encoding", "base64"),
    ]
    return headers, base64.encodebytes(content)


# --- headers --------------------------------------------------------------------------


def _encode_header(text: str, charset: str, rng: random.Random) -> str:
    """Return ``text`` as a header value, RFC 2047 encoded-words where it is not ASCII."""
    if text.isascii():
        return text
    data = text.encode(charset, "replace")
    if rng.random() < 0.5:
        encoded = base64.b64encode(data).decode()
        return f"=?{charset}?B?{encoded}?="
    encoded = "".join(
        chr(byte) if chr(byte).isalnum() and byte < 128 else ("_" if byte == 32 else f"={byte:02X}")
        for byte in data
    )
    return f"=?{charset}?Q?{encoded}?="


def _address_header(name: str, addr: str, charset: str) -> str:
    if name.isascii():
        return f"\"{name}\" <{addr}>" if "'" in name else f"{name} <{addr}>"
    encoded = "".join(
        chr(byte) if chr(byte).isalnum() and byte < 128 else ("_" if byte == 32 else f"={byte:02X}")
        for byte in name.encode(charset, "replace")
    )
    return f"=?{charset}?Q?{encoded}?= <{addr}>"
