"""Sample support mail for ``maildesk demo``.

The messages imitate an hour of mail to a small Finnish web shop. Customers
ask in Finnish and English, one of them in a follow-up thread. Among the
mails are an urgent request, an invoice question in ISO-8859-15, an
HTML-only mail, an attachment and a contact-form mail that the shop itself
relays. Two are automatic, an out-of-office reply and a bounce, and must not
get an auto-reply. All people, orders, codes and addresses are made up.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from email import policy
from email.header import Header
from email.message import EmailMessage, Message, MIMEPart
from email.utils import format_datetime, formataddr, make_msgid

DEMO_SUPPORT_ADDRESS = "tuki@demo.example"
DEMO_SHOP_NAME = "Demo Verkkokauppa"
DEMO_AGENTS = ("aino@demo.example", "janne@demo.example")
# The web shop's own sender, used by its contact form and order notifications.
DEMO_OWN_ADDRESSES = ("noreply@demo.example",)

_SUPPORT = formataddr((f"{DEMO_SHOP_NAME} asiakaspalvelu", DEMO_SUPPORT_ADDRESS))
# Wire format as IMAP APPEND expects it: CRLF line ends, 8-bit bodies allowed.
_POLICY = policy.SMTP
_COMPAT_POLICY = policy.compat32.clone(linesep="\r\n")

# Minutes before ``now`` at which each sample was sent. The oldest stays
# below 60 so that the demo's auto-reply age limit of one hour admits all.
_MINUTES_AGO = {
    "order_question": 52,
    "urgent_size": 47,
    "return_request": 44,
    "order_followup": 40,
    "invoice_question": 38,
    "delivery_question": 33,
    "gift_card_html": 29,
    "warranty_receipt": 25,
    "order_second_followup": 21,
    "out_of_office": 18,
    "bounce": 12,
    "contact_form": 7,
}


def sample_messages(now: datetime) -> list[bytes]:
    """Build the demo's twelve sample messages, oldest first, as raw RFC 5322 bytes.

    Every message is addressed to DEMO_SUPPORT_ADDRESS, dated between 52 and
    7 minutes before ``now`` and has a new Message-ID on each call. The
    out-of-office reply and the bounce are the two that must not get an auto-reply.
    ``now`` must be timezone-aware, because Date headers carry a UTC offset.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now must be timezone-aware, got {now!r}")
    sent = {key: now - timedelta(minutes=minutes) for key, minutes in _MINUTES_AGO.items()}

    thread = _order_thread(sent["order_question"], sent["order_followup"], sent["order_second_followup"])
    dated = [
        (sent["order_question"], thread[0]),
        (sent["urgent_size"], _urgent_size(sent["urgent_size"])),
        (sent["return_request"], _return_request(sent["return_request"])),
        (sent["order_followup"], thread[1]),
        (sent["invoice_question"], _invoice_question(sent["invoice_question"])),
        (sent["delivery_question"], _delivery_question(sent["delivery_question"])),
        (sent["gift_card_html"], _gift_card_html(sent["gift_card_html"])),
        (sent["warranty_receipt"], _warranty_receipt(sent["warranty_receipt"])),
        (sent["order_second_followup"], thread[2]),
        (sent["out_of_office"], _out_of_office(sent["out_of_office"])),
        (sent["bounce"], _bounce(sent["bounce"])),
        (sent["contact_form"], _contact_form(sent["contact_form"])),
    ]
    dated.sort(key=lambda item: item[0])
    return [message for _, message in dated]


# --- helpers ---------------------------------------------------------------


def _new_message(name: str, address: str, subject: str, sent_at: datetime) -> EmailMessage:
    """Start a message to the support address with a Message-ID on the sender's domain."""
    message = EmailMessage(policy=_POLICY)
    message["From"] = formataddr((name, address))
    message["To"] = _SUPPORT
    message["Subject"] = subject
    message["Date"] = format_datetime(sent_at)
    message["Message-ID"] = make_msgid(domain=address.rpartition("@")[2])
    return message


def _quote(text: str) -> str:
    """Prefix every line with "> " the way mail clients quote the text they reply to."""
    return "\n".join(f"> {line}" if line else ">" for line in text.splitlines())


def _finnish_attribution(name: str, address: str, sent_at: datetime) -> str:
    """Return the line that a Finnish mail client puts above a quoted message."""
    when = f"{sent_at.day}.{sent_at.month}.{sent_at.year} klo {sent_at.hour}.{sent_at.minute:02d}"
    return f"{name} <{address}> kirjoitti {when}:"


# --- customer questions ----------------------------------------------------


_LIISA = ("Liisa Virtanen", "liisa.virtanen@example.com")
_ORDER_SUBJECT = "Tilaus 10482: voiko toimitusosoitetta vielä muuttaa?"
_ORDER_TEXT = """\
Hei,

tilasin eilen kaksi pellavaista pöytäliinaa (tilausnumero 10482). Muutimme
juuri, joten voisiko toimitusosoitteen vielä vaihtaa, jos paketti ei ole
lähtenyt?

Uusi osoite: Koivukuja 3 B 12, 33100 Tampere

Ystävällisin terveisin
Liisa Virtanen
"""
_FOLLOWUP_TEXT = """\
Hei vielä,

huomasin vasta nyt, että uuden osoitteen postinumero on 33101 eikä 33100.
Pahoittelut sekaannuksesta!

Liisa
"""
_SECOND_FOLLOWUP_TEXT = """\
Hei,

onko viestini mennyt perille? Paketti näkyy seurannassa yhä
lähtövalmiina, joten osoitteen ehtisi ehkä vielä korjata.

Liisa
"""


def _order_thread(first_at: datetime, second_at: datetime, third_at: datetime) -> list[bytes]:
    """Build a Finnish order question and two follow-ups from the same customer.

    The first follow-up answers the question itself and the second answers
    the first follow-up, so References grows by one Message-ID per step.
    """
    first = _new_message(*_LIISA, _ORDER_SUBJECT, first_at)
    first.set_content(_ORDER_TEXT)

    second = _new_message(*_LIISA, f"Re: {_ORDER_SUBJECT}", second_at)
    second["In-Reply-To"] = first["Message-ID"]
    second["References"] = first["Message-ID"]
    second_text = (
        f"{_FOLLOWUP_TEXT}\n{_finnish_attribution(*_LIISA, first_at)}\n{_quote(_ORDER_TEXT)}\n"
    )
    second.set_content(second_text)

    third = _new_message(*_LIISA, f"Re: {_ORDER_SUBJECT}", third_at)
    third["In-Reply-To"] = second["Message-ID"]
    third["References"] = f"{first['Message-ID']} {second['Message-ID']}"
    third_text = (
        f"{_SECOND_FOLLOWUP_TEXT}\n{_finnish_attribution(*_LIISA, second_at)}\n"
        f"{_quote(second_text)}\n"
    )
    third.set_content(third_text)

    return [first.as_bytes(), second.as_bytes(), third.as_bytes()]


def _urgent_size(sent_at: datetime) -> bytes:
    message = _new_message(
        "Tuomas Nieminen",
        "tuomas.nieminen@example.net",
        "Kiireellinen: väärä koko tilauksessa 10490",
        sent_at,
    )
    message.set_content(
        """\
Hei!

Tilasin äsken merinovillapaidan koossa M, mutta tarvitsen koon L. Ehtiikö
tilausta vielä muuttaa ennen kuin se lähtee? Paita on lahja lauantaiksi,
joten asialla on kiire.

Tuomas Nieminen
"""
    )
    return message.as_bytes()


def _return_request(sent_at: datetime) -> bytes:
    message = _new_message(
        "Sanna Laaksonen", "sanna.laaksonen@example.com", "Palautus, tilaus 10311", sent_at
    )
    message.set_content(
        """\
Hei,

haluaisin palauttaa tilauksen 10311 kengät (koko 39), koska ne ovat liian
pienet. Kengät ovat käyttämättömät ja alkuperäisessä laatikossaan.

Saanko rahat takaisin samalle kortille, vai pitääkö minun täyttää jokin
palautuslomake?

Terveisin
Sanna Laaksonen
"""
    )
    return message.as_bytes()


def _invoice_question(sent_at: datetime) -> bytes:
    """Build an invoice question in ISO-8859-15, as some older Windows clients still send.

    The euro sign exists in ISO-8859-15 but not in ISO-8859-1, so a parser
    that guesses Latin-1 shows a wrong character. The compat32 policy keeps
    the ISO-8859-15 encoded-words in the headers, where the default policy
    would re-encode them as UTF-8.
    """
    name, address = "Pekka Mäkinen", "pekka.makinen@example.net"
    message = Message(policy=_COMPAT_POLICY)
    message["From"] = formataddr((name, address), charset="iso-8859-15")
    message["To"] = _SUPPORT
    message["Subject"] = Header("Lasku 2025-0417: eräpäivän siirto?", "iso-8859-15")
    message["Date"] = format_datetime(sent_at)
    message["Message-ID"] = make_msgid(domain="example.net")
    message["X-Mailer"] = "Demo Mail Client 7.2"
    message.set_payload(
        """\
Hei,

sain laskun tilauksesta 10402, ja sen eräpäivä on ensi perjantaina.
Voisiko eräpäivää siirtää kahdella viikolla? Palkka tulee vasta kuun
lopussa.

Lisäksi laskulla on toimitusmaksu 6,90 €, vaikka tilaus ylitti 50 €:n
ilmaisen toimituksen rajan.

Ystävällisesti
Pekka Mäkinen
""",
        charset="iso-8859-15",
    )
    return message.as_bytes(policy=_COMPAT_POLICY)


def _delivery_question(sent_at: datetime) -> bytes:
    message = _new_message(
        "Emily Carter", "emily.carter@example.com", "Order 10455 has not arrived", sent_at
    )
    message.set_content(
        """\
Hello,

I ordered two ceramic mugs last Monday (order 10455) for delivery to
Tallinn. The tracking code DEMO0012345FI has shown "in transit" for five
days now. Could you check with the carrier whether the parcel is lost?

Thanks,
Emily Carter
"""
    )
    return message.as_bytes()


def _gift_card_html(sent_at: datetime) -> bytes:
    """Build a mail with only a text/html body, as some webmail clients send."""
    message = _new_message(
        "Kaisa Lehtonen", "kaisa.lehtonen@example.net", "Lahjakortin voimassaolo", sent_at
    )
    message.set_content(
        """\
<!DOCTYPE html>
<html>
<head><meta charset="utf-8"></head>
<body>
<p>Hei,</p>
<p>sain lahjaksi teidän lahjakorttinne (koodi <b>DEMO-4417</b>). Kuinka kauan
se on voimassa, ja voiko sillä maksaa vain osan tilauksesta?</p>
<p>Kiitos!<br>Kaisa Lehtonen</p>
</body>
</html>
""",
        subtype="html",
        cte="quoted-printable",
    )
    return message.as_bytes()


# Starts like a PDF file but is not a valid document.
_RECEIPT_BYTES = b"%PDF-1.4\n% maildesk demo receipt, not a real document\n%%EOF\n"


def _warranty_receipt(sent_at: datetime) -> bytes:
    message = _new_message(
        "Ville Korhonen",
        "ville.korhonen@example.com",
        "Takuu: vedenkeitin ei enää lämpene",
        sent_at,
    )
    message.set_content(
        """\
Hei,

ostamani vedenkeitin (tilaus 10218) lakkasi lämpenemästä kolmen kuukauden
käytön jälkeen. Kuitti on liitteenä. Miten takuuasiassa toimitaan?

Ville Korhonen
"""
    )
    message.add_attachment(
        _RECEIPT_BYTES, maintype="application", subtype="pdf", filename="kuitti.pdf"
    )
    return message.as_bytes()


# --- mail relayed or generated by machines ---------------------------------


def _contact_form(sent_at: datetime) -> bytes:
    """Build a web shop contact-form mail: the shop sends it, the customer is in Reply-To."""
    message = _new_message(
        f"{DEMO_SHOP_NAME} (yhteydenottolomake)",
        DEMO_OWN_ADDRESSES[0],
        "Yhteydenottolomake: Tuotekysymys",
        sent_at,
    )
    message["Reply-To"] = formataddr(("Anna Lindholm", "anna.lindholm@example.net"))
    message.set_content(
        """\
Uusi viesti verkkokaupan yhteydenottolomakkeelta.

Nimi: Anna Lindholm
Sähköposti: anna.lindholm@example.net
Aihe: Tuotekysymys

Viesti:
Onko Kaamos-villasukkia tulossa lisää kokoon 40-42? Verkkokaupassa ne
näkyvät olevan loppu.
"""
    )
    return message.as_bytes()


def _out_of_office(sent_at: datetime) -> bytes:
    """Build an out-of-office reply to a shipping notice whose Reply-To was the support address."""
    message = _new_message(
        "Jari Salminen",
        "jari.salminen@example.com",
        "Automaattinen vastaus: Tilauksesi 10466 on lähetetty",
        sent_at,
    )
    message["In-Reply-To"] = make_msgid(domain="demo.example")
    # RFC 3834 marks automatic replies; Outlook adds X-Auto-Response-Suppress too.
    message["Auto-Submitted"] = "auto-replied"
    message["X-Auto-Response-Suppress"] = "All"
    message.set_content(
        """\
Olen lomalla ja palaan töihin maanantaina. Sähköpostiani ei lueta
poissaoloni aikana.

Jari Salminen
"""
    )
    return message.as_bytes()


_BOUNCED_ADDRESS = "t.hamalainen@example.net"


def _bounce(sent_at: datetime) -> bytes:
    """Build an RFC 3464 delivery status notification for a reply the shop sent earlier.

    It has no Auto-Submitted header, so only the null Return-Path, the
    MAILER-DAEMON sender or the report type can tell that it is automatic.
    """
    message = EmailMessage(policy=_POLICY)
    message["Return-Path"] = "<>"
    message["From"] = formataddr(("Mail Delivery System", "MAILER-DAEMON@mx.example.net"))
    message["To"] = DEMO_SUPPORT_ADDRESS
    message["Subject"] = "Undelivered Mail Returned to Sender"
    message["Date"] = format_datetime(sent_at)
    message["Message-ID"] = make_msgid(domain="mx.example.net")
    message.set_content(
        f"""\
Your message to <{_BOUNCED_ADDRESS}> could not be delivered.
The receiving server reported that the mailbox does not exist.
The headers of your message are attached.
"""
    )
    message.make_mixed()
    message.set_type("multipart/report")
    message.set_param("report-type", "delivery-status")
    message.attach(_delivery_status_part(sent_at))
    message.attach(_returned_headers_part(sent_at))
    return message.as_bytes()


def _delivery_status_part(sent_at: datetime) -> MIMEPart:
    """Build the message/delivery-status part: one per-message and one per-recipient block."""
    per_message = Message(policy=_POLICY)
    per_message["Reporting-MTA"] = "dns; mx.example.net"
    per_message["Arrival-Date"] = format_datetime(sent_at - timedelta(seconds=40))

    per_recipient = Message(policy=_POLICY)
    per_recipient["Final-Recipient"] = f"rfc822; {_BOUNCED_ADDRESS}"
    per_recipient["Original-Recipient"] = f"rfc822; {_BOUNCED_ADDRESS}"
    per_recipient["Action"] = "failed"
    per_recipient["Status"] = "5.1.1"
    per_recipient["Remote-MTA"] = "dns; mail.example.net"
    per_recipient["Diagnostic-Code"] = "smtp; 550 5.1.1 no such mailbox here"

    part = MIMEPart(policy=_POLICY)
    part["Content-Type"] = "message/delivery-status"
    # The generator writes a list payload as blank-line separated header blocks.
    part.set_payload([per_message, per_recipient])
    return part


def _returned_headers_part(sent_at: datetime) -> MIMEPart:
    """Build the text/rfc822-headers part with the headers of the undelivered reply."""
    headers = "\n".join(
        [
            f"From: {_SUPPORT}",
            f"To: {_BOUNCED_ADDRESS}",
            "Subject: Re: Tilaus 10433",
            f"Date: {format_datetime(sent_at - timedelta(seconds=45))}",
            f"Message-ID: {make_msgid(domain='demo.example')}",
            "",
        ]
    )
    part = MIMEPart(policy=_POLICY)
    part.set_content(headers, subtype="rfc822-headers", charset="us-ascii")
    return part
