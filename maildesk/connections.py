"""Open logged-in IMAP and SMTP connections from the ``[mailbox]`` and ``[smtp]`` settings.

``security`` selects how the connection is protected. "tls" speaks TLS from the first
byte. "starttls" upgrades a plain connection and fails if the server does not offer
STARTTLS. "none" stays in plain text, which the config allows for loopback hosts only.
Certificates are checked against the system CAs, or against ``ca_file`` when it is set.

With ``auth = "xoauth2"`` the login is SASL XOAUTH2 with an access token from
:mod:`maildesk.oauth` instead of a password.

Every failure to connect, to set up TLS or to log in raises ConnectionSetupError. The
message names the section, host and port and quotes the server's reply. Passwords and
tokens are not logged, and an error message that would contain one gets it masked.
"""

from __future__ import annotations

import imaplib
import logging
import smtplib
import ssl
from collections.abc import Iterator
from contextlib import contextmanager

from imapclient import IMAPClient

from maildesk.config import MailboxSettings, ServerSettings, SmtpSettings, is_loopback
from maildesk.errors import ConnectionSetupError, MaildeskError
from maildesk.oauth import token_source, xoauth2_string

logger = logging.getLogger(__name__)


class ConnectionLostError(MaildeskError):
    """An open IMAP or SMTP connection broke: the server restarted, the network failed or timed out."""

_CONNECT_HINT = "Check host, port and security, and that the server is running."
_LOGIN_HINT = "Check username and password."
_CA_HINT = "Set ca_file to the CA certificate that signed the server's certificate."
_OAUTH_HINT = (
    "Check username and that the OAuth client may use IMAP and SMTP for it "
    "(the scope of the refresh token)."
)


def connect_imap(settings: MailboxSettings) -> IMAPClient:
    """Connect to the IMAP server, set up TLS as configured and log in.

    Raises ConnectionSetupError on any failure, after closing the connection.
    """
    logger.info(
        "Connecting to IMAP server %s as %s (security=%s)",
        _endpoint(settings),
        settings.username,
        settings.security,
    )
    context = _tls_context(settings)
    with _setup_step(settings, f"connecting to {_endpoint(settings)}", _CONNECT_HINT):
        client = IMAPClient(
            settings.host,
            port=settings.port,
            ssl=settings.security == "tls",
            ssl_context=context,
            timeout=settings.timeout,
        )
    _disable_imaplib_debug(client)

    try:
        if settings.security == "starttls":
            _start_imap_tls(client, settings, context)
        if settings.oauth is None:
            with _setup_step(settings, _login_action(settings), _LOGIN_HINT):
                client.login(settings.username, settings.password)
        else:
            token = token_source(settings).access_token()
            with _setup_step(settings, _login_action(settings), _OAUTH_HINT):
                client.oauth2_login(settings.username, token)
    except ConnectionSetupError:
        _close_imap(client)
        raise
    logger.info("Logged in to IMAP server %s as %s", _endpoint(settings), settings.username)
    return client


def connect_smtp(settings: SmtpSettings) -> smtplib.SMTP:
    """Connect to the SMTP server, set up TLS as configured and log in if it offers AUTH.

    A loopback server without AUTH is used without logging in. Any other server without
    AUTH, and every other failure, raises ConnectionSetupError after closing the connection.
    """
    logger.info(
        "Connecting to SMTP server %s as %s (security=%s)",
        _endpoint(settings),
        settings.username,
        settings.security,
    )
    context = _tls_context(settings)
    with _setup_step(settings, f"connecting to {_endpoint(settings)}", _CONNECT_HINT):
        if settings.security == "tls":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                settings.host, settings.port, timeout=settings.timeout, context=context
            )
        else:
            smtp = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)

    try:
        if settings.security == "starttls":
            _start_smtp_tls(smtp, settings, context)
        _smtp_login(smtp, settings)
    except ConnectionSetupError:
        smtp.close()
        raise
    return smtp


def _start_imap_tls(
    client: IMAPClient, settings: ServerSettings, context: ssl.SSLContext | None
) -> None:
    with _setup_step(settings, f"STARTTLS with {_endpoint(settings)}", _CONNECT_HINT):
        if not client.has_capability("STARTTLS"):
            raise ConnectionSetupError(_no_starttls_message(settings, 993))
        client.starttls(context)


def _start_smtp_tls(
    smtp: smtplib.SMTP, settings: ServerSettings, context: ssl.SSLContext | None
) -> None:
    with _setup_step(settings, f"STARTTLS with {_endpoint(settings)}", _CONNECT_HINT):
        smtp.ehlo_or_helo_if_needed()
        if not smtp.has_extn("starttls"):
            raise ConnectionSetupError(_no_starttls_message(settings, 465))
        smtp.starttls(context=context)


def _smtp_login(smtp: smtplib.SMTP, settings: SmtpSettings) -> None:
    with _setup_step(settings, _login_action(settings), _LOGIN_HINT):
        # After STARTTLS smtplib has dropped the first EHLO reply, so this sends EHLO again.
        smtp.ehlo_or_helo_if_needed()
        if not smtp.has_extn("auth"):
            if not is_loopback(settings.host):
                raise ConnectionSetupError(
                    f"[{settings.section}] {_endpoint(settings)} does not offer AUTH, so "
                    f"maildesk cannot log in as {settings.username}. Check port and security, "
                    "because many servers offer AUTH only on port 587 or 465, "
                    "or only after STARTTLS."
                )
            logger.debug(
                "SMTP server %s offers no AUTH, so mail goes out without logging in",
                _endpoint(settings),
            )
            return
        if settings.oauth is None:
            smtp.login(settings.username, settings.password)
        else:
            _smtp_xoauth2(smtp, settings)
    logger.info("Logged in to SMTP server %s as %s", _endpoint(settings), settings.username)


def _smtp_xoauth2(smtp: smtplib.SMTP, settings: SmtpSettings) -> None:
    offered = smtp.esmtp_features.get("auth", "").upper().split()
    if "XOAUTH2" not in offered:
        raise ConnectionSetupError(
            f"[{settings.section}] {_endpoint(settings)} does not offer AUTH XOAUTH2 (it offers "
            f"{' '.join(offered) or 'none'}); set auth = \"password\" or use the provider's "
            "SMTP server"
        )
    initial = xoauth2_string(settings.username, token_source(settings).access_token())

    def respond(challenge: bytes | None = None) -> str:
        # After a failure the server sends an error challenge, and the client responds with an empty line.
        return initial if challenge is None else ""

    smtp.auth("XOAUTH2", respond, initial_response_ok=True)


def _tls_context(settings: ServerSettings) -> ssl.SSLContext | None:
    if settings.security == "none":
        return None
    cafile = str(settings.ca_file) if settings.ca_file else None
    try:
        return ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as error:
        raise ConnectionSetupError(
            f"[{settings.section}] loading ca_file {cafile} failed: {error}. "
            "Set ca_file to a readable PEM file."
        ) from error


def _disable_imaplib_debug(client: IMAPClient) -> None:
    # imapclient 4.1 sets debug = 5 on its imaplib.IMAP4 object (client._imap). At that
    # level imaplib formats the repr of every untagged response, message bodies
    # included, for a debug logger, which makes large FETCHes several times slower.
    imap = getattr(client, "_imap", None)
    if isinstance(imap, imaplib.IMAP4):
        imap.debug = 0


def _close_imap(client: IMAPClient) -> None:
    try:
        client.shutdown()
    except OSError as error:
        logger.debug("Closing the failed IMAP connection raised %s", error)


@contextmanager
def _setup_step(settings: ServerSettings, action: str, hint: str) -> Iterator[None]:
    """Turn socket, TLS, IMAP and SMTP errors raised inside into ConnectionSetupError."""
    try:
        yield
    except (OSError, imaplib.IMAP4.error) as error:
        # smtplib.SMTPException and ssl.SSLError are subclasses of OSError.
        if isinstance(error, ssl.SSLCertVerificationError):
            hint = _CA_HINT
        reason = _mask(_reason(error, settings), settings).rstrip(". ")
        raise ConnectionSetupError(
            f"[{settings.section}] {action} failed: {reason}. {hint}"
        ) from error


def _reason(error: BaseException, settings: ServerSettings) -> str:
    """Return the server's reply or the operating system's reason, without Python reprs."""
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"TLS certificate verification failed: {error.verify_message}"
    if isinstance(error, ssl.SSLError):
        return f"TLS error: {error.reason or error}"
    if isinstance(error, TimeoutError):
        return f"timed out after {settings.timeout:g} s"
    if isinstance(error, smtplib.SMTPResponseException):
        return f"{error.smtp_code} {_text(error.smtp_error)}"
    if isinstance(error, imaplib.IMAP4.error):
        # imapclient's LoginError carries str() of imaplib's error, whose argument is
        # the server's reply as bytes, so the bytes are taken from the original.
        for candidate in (error, error.__context__):
            if candidate is not None and candidate.args and isinstance(candidate.args[0], bytes):
                return _text(candidate.args[0])
        return str(error)
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _mask(text: str, settings: ServerSettings) -> str:
    """Return ``text``, or a placeholder when it contains a secret.

    Servers do not echo passwords, so this is a safeguard. Replacing only the
    secret inside the text would show which letters a short password has
    ("Authentic********tion"), so the whole reply is withheld instead.
    """
    secrets = [settings.password]
    if settings.oauth is not None:
        secrets.extend(token_source(settings).secrets)
    if any(secret and secret in text for secret in secrets):
        return "(the server's reply is withheld because it contains the password or a token)"
    return text


def _login_action(settings: ServerSettings) -> str:
    return f"logging in to {_endpoint(settings)} as {settings.username}"


def _no_starttls_message(settings: ServerSettings, tls_port: int) -> str:
    return (
        f"[{settings.section}] {_endpoint(settings)} does not offer STARTTLS, so maildesk "
        "closed the connection before sending the password. Set security = \"tls\" if the "
        f"server expects TLS from the start (usually on port {tls_port})."
    )


def _endpoint(settings: ServerSettings) -> str:
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    return f"{host}:{settings.port}"


