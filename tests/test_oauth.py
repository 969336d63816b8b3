"""XOAUTH2 against a local token endpoint, Dovecot's oauth2 passdb and an SMTP sink; no secret in any log."""

from __future__ import annotations

import logging
import secrets
import stat
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from faultkit import ConfigurableDovecot
from maildesk.config import OAuthSettings, load_config, parse_config
from maildesk.connections import connect_imap, connect_smtp
from maildesk.errors import ConfigError, ConnectionSetupError
from maildesk.oauth import TokenSource
from maildesk.service import sync_once
from oauthkit import OAuthSmtpSink, TokenEndpoint, dovecot_oauth_config
from servers import make_dovecot_root
from tests.mailkit import make_mail

KEY = secrets.token_bytes(32)


@pytest.fixture
def endpoint() -> Iterator[TokenEndpoint]:
    server = TokenEndpoint(KEY)
    yield server
    server.close()


@pytest.fixture(scope="module")
def oauth_dovecot(dovecot_binary: str) -> Iterator[ConfigurableDovecot]:
    """A private Dovecot that also logs users in with XOAUTH2 tokens signed by KEY."""
    root = make_dovecot_root()
    server = ConfigurableDovecot(dovecot_binary, dovecot_oauth_config(root / "oauth", KEY), root)
    server.start()
    yield server
    server.remove()


def oauth_settings(endpoint: TokenEndpoint, tmp_path: Path | None = None, **values: Any) -> OAuthSettings:
    fields: dict[str, Any] = {
        "token_url": endpoint.url,
        "client_id": endpoint.client_id,
        "client_secret": endpoint.client_secret,
        "refresh_token": endpoint.refresh_token,
        "cache_file": tmp_path / "oauth-mailbox.json" if tmp_path else None,
    }
    fields.update(values)
    return OAuthSettings(**fields)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_token_cached_until_near_expiry(endpoint: TokenEndpoint) -> None:
    """A 600 s token is reused until 120 s (a fifth) before it expires, then renewed."""
    endpoint.lifetime = 600
    clock = Clock()
    source = TokenSource("mailbox", oauth_settings(endpoint), clock=clock)

    first = source.access_token()
    clock.now += 479
    cached = source.access_token()
    clock.now += 2
    renewed = source.access_token()

    assert first == cached
    assert 2 == source.refreshes
    assert renewed == endpoint.issued[-1]


def test_token_request_fields(endpoint: TokenEndpoint) -> None:
    """The request is the refresh-token grant with client id, secret and scope."""
    source = TokenSource("smtp", oauth_settings(endpoint, scope="https://mail.google.com/"))

    source.access_token()

    assert {
        "grant_type": "refresh_token",
        "refresh_token": endpoint.refresh_token,
        "client_id": endpoint.client_id,
        "client_secret": endpoint.client_secret,
        "scope": "https://mail.google.com/",
    } == endpoint.requests[0]


def test_rotated_refresh_token_kept(endpoint: TokenEndpoint, tmp_path: Path) -> None:
    """A refresh token the provider replaces is stored privately and used by the next process."""
    endpoint.rotate = True
    configured = endpoint.refresh_token
    settings = oauth_settings(endpoint, tmp_path)
    TokenSource("mailbox", settings).access_token()

    TokenSource("mailbox", settings).access_token()

    assert configured != endpoint.requests[1]["refresh_token"]
    assert 0o600 == stat.S_IMODE((tmp_path / "oauth-mailbox.json").stat().st_mode)
    assert configured not in (tmp_path / "oauth-mailbox.json").read_text()


def test_new_configured_token_beats_cache(endpoint: TokenEndpoint, tmp_path: Path) -> None:
    """A stored replacement is ignored once the config names a different refresh token."""
    endpoint.rotate = True
    TokenSource("mailbox", oauth_settings(endpoint, tmp_path)).access_token()
    endpoint.rotate = False
    fresh = endpoint.refresh_token

    TokenSource("mailbox", oauth_settings(endpoint, tmp_path, refresh_token=fresh)).access_token()

    assert fresh == endpoint.requests[-1]["refresh_token"]


def test_revoked_token_error_hides_secrets(endpoint: TokenEndpoint) -> None:
    """A refused grant names the provider's error and contains neither token nor client secret."""
    settings = oauth_settings(endpoint, refresh_token="revoked-" + secrets.token_urlsafe(8))

    with pytest.raises(ConnectionSetupError) as raised:
        TokenSource("mailbox", settings).access_token()

    message = str(raised.value)
    assert "HTTP 400: invalid_grant: Token has been expired or revoked." in message
    assert settings.refresh_token not in message
    assert endpoint.client_secret not in message


def test_unreachable_endpoint_error(endpoint: TokenEndpoint) -> None:
    """A token endpoint that does not accept connections gives an error naming the URL."""
    url = endpoint.url
    endpoint.close()

    with pytest.raises(ConnectionSetupError, match=f"from {url} failed: .*refused"):
        TokenSource("mailbox", oauth_settings(endpoint)).access_token()


@pytest.mark.parametrize("url", ["http://auth.example.com/token", "ftp://127.0.0.1/token"])
def test_config_requires_https_token_url(url: str) -> None:
    """A token URL in plain HTTP to another host, or not HTTP at all, is a config error."""
    data = {
        "desk": {"support_address": "tuki@example.fi"},
        "mailbox": {
            "host": "imap.example.com", "username": "u", "auth": "xoauth2", "oauth_token_url": url,
            "oauth_client_id": "c", "oauth_refresh_token": "r",
        },
    }

    with pytest.raises(ConfigError, match="mailbox.oauth_token_url"):
        parse_config(data)


def test_config_password_with_xoauth2_hidden() -> None:
    """A password next to auth = "xoauth2" is an error that does not print the password."""
    data = {
        "desk": {"support_address": "tuki@example.fi"},
        "smtp": {
            "host": "smtp.example.com", "username": "u", "from_address": "tuki@example.fi",
            "auth": "xoauth2", "password": "hunter2-secret", "oauth_token_url": "https://e.example/t",
            "oauth_client_id": "c", "oauth_refresh_token": "r",
        },
    }

    with pytest.raises(ConfigError) as raised:
        parse_config(data)

    assert "smtp.password" in str(raised.value)
    assert "hunter2-secret" not in str(raised.value)


@pytest.mark.dovecot
def test_dovecot_accepts_xoauth2(oauth_dovecot: ConfigurableDovecot, endpoint: TokenEndpoint) -> None:
    """connect_imap logs in to Dovecot with a token from the endpoint, which Dovecot checks itself."""
    account = oauth_dovecot.create_account()
    endpoint.subject = account.username
    settings = account.settings(password="", auth="xoauth2", oauth=oauth_settings(endpoint))

    client = connect_imap(settings)
    folders = [name for _, _, name in client.list_folders()]
    client.logout()

    assert "INBOX" in folders


@pytest.mark.dovecot
def test_dovecot_refuses_expired_token(oauth_dovecot: ConfigurableDovecot, endpoint: TokenEndpoint) -> None:
    """A token that has already expired is refused by Dovecot, and the error quotes its reply."""
    account = oauth_dovecot.create_account()
    endpoint.subject = account.username
    endpoint.lifetime = -60
    settings = account.settings(password="", auth="xoauth2", oauth=oauth_settings(endpoint))

    with pytest.raises(ConnectionSetupError, match="AUTHENTICATIONFAILED"):
        connect_imap(settings)


def test_smtp_xoauth2_login(endpoint: TokenEndpoint) -> None:
    """connect_smtp logs in with AUTH XOAUTH2 when the section sets auth = "xoauth2"."""
    with OAuthSmtpSink(endpoint) as sink:
        smtp = connect_smtp(sink.settings(password="", auth="xoauth2", oauth=oauth_settings(endpoint)))
        smtp.quit()

    assert [sink.username] == sink.xoauth2_users


def test_smtp_xoauth2_refused_token(endpoint: TokenEndpoint) -> None:
    """A token the SMTP server refuses ends in ConnectionSetupError with the server's 535."""
    with OAuthSmtpSink(endpoint) as sink:
        endpoint.issued.append("placeholder")
        settings = sink.settings(password="", auth="xoauth2", oauth=oauth_settings(endpoint))
        sink.endpoint = TokenEndpoint(KEY)
        try:
            with pytest.raises(ConnectionSetupError, match="535"):
                connect_smtp(settings)
        finally:
            sink.endpoint.close()


@pytest.mark.dovecot
def test_secrets_never_logged(
    tmp_path: Path,
    oauth_dovecot: ConfigurableDovecot,
    endpoint: TokenEndpoint,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A whole sync with XOAUTH2 and a failed password login log no password, token or client secret."""
    caplog.set_level(logging.DEBUG)
    account = oauth_dovecot.create_account()
    endpoint.subject = account.username
    with OAuthSmtpSink(endpoint) as sink:
        path = tmp_path / "config.toml"
        path.write_text(
            textwrap.dedent(
                f"""
                [desk]
                support_address = "tuki@example.fi"
                state_dir = "{tmp_path / 'state'}"

                [mailbox]
                host = "127.0.0.1"
                port = {account.port}
                security = "none"
                username = "{account.username}"
                append_to_sent = false
                """
            )
            + endpoint.config_lines()
            + textwrap.dedent(
                f"""
                [smtp]
                host = "127.0.0.1"
                port = {sink.port}
                security = "none"
                username = "{sink.username}"
                from_address = "tuki@example.fi"
                """
            )
            + endpoint.config_lines(),
            encoding="utf-8",
        )
        config = load_config(path)
        sync_once(config)
        account.append(make_mail())
        stats, sent = sync_once(config)
        wrong = account.settings(password="wrong-" + secrets.token_urlsafe(12))
        with pytest.raises(ConnectionSetupError) as raised:
            connect_imap(wrong)

    leaks = [endpoint.refresh_token, endpoint.client_secret, wrong.password, *endpoint.issued]
    assert (1, 1) == (stats.new_tickets, sent.sent)
    for secret in leaks:
        assert secret not in caplog.text
        assert secret not in str(raised.value)
