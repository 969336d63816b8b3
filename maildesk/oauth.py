"""OAuth 2.0 access tokens for XOAUTH2 logins (Gmail, Microsoft 365).

A :class:`TokenSource` trades the configured refresh token for an access
token at the provider's token endpoint (the refresh-token grant of RFC 6749,
section 6) and keeps it until shortly before it expires. A token is renewed
once less than a fifth of its lifetime, or less than five minutes, remains,
so no login is tried with a token about to expire.

A provider may respond with a new refresh token (Microsoft's identity platform
does). The newest one is kept in ``oauth-<section>.json`` in the state
directory, mode 0600, and used instead of the configured one for as long as
the configured one stays the same.

Tokens and secrets are never logged and never put into an error message.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

from maildesk.config import OAuthSettings, ServerSettings
from maildesk.errors import ConnectionSetupError

log = logging.getLogger(__name__)

REFRESH_MARGIN_SECONDS = 300.0
REFRESH_MARGIN_SHARE = 0.2
# Used when the token endpoint does not say how long a token lives.
DEFAULT_LIFETIME_SECONDS = 3600


class TokenSource:
    """Access tokens of one ``[mailbox]`` or ``[smtp]`` section; safe to share between threads."""

    def __init__(
        self,
        section: str,
        settings: OAuthSettings,
        *,
        ca_file: Path | None = None,
        timeout: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.section = section
        self.settings = settings
        self.ca_file = ca_file
        self.timeout = timeout
        self.clock = clock
        self.refreshes = 0
        self._lock = threading.Lock()
        self._token: str | None = None
        self._renew_at = 0.0
        self._refresh_token = _cached_refresh_token(settings) or settings.refresh_token

    @property
    def secrets(self) -> tuple[str, ...]:
        """Return the strings that must never appear in a log line or message."""
        values = (self._token, self._refresh_token, self.settings.refresh_token, self.settings.client_secret)
        return tuple(value for value in values if value)

    def access_token(self) -> str:
        """Return a valid access token, asking the token endpoint for a new one when needed.

        Raises ConnectionSetupError when the endpoint cannot be reached or refuses.
        """
        with self._lock:
            if self._token is None or self.clock() >= self._renew_at:
                self._refresh()
            assert self._token is not None
            return self._token

    def _refresh(self) -> None:
        answer = self._post()
        token = answer.get("access_token")
        if not isinstance(token, str) or not token:
            raise self._error("the response has no access_token")
        lifetime = answer.get("expires_in", DEFAULT_LIFETIME_SECONDS)
        try:
            lifetime = float(lifetime)
        except (TypeError, ValueError):
            lifetime = DEFAULT_LIFETIME_SECONDS
        margin = min(REFRESH_MARGIN_SECONDS, lifetime * REFRESH_MARGIN_SHARE)
        self._token = token
        self._renew_at = self.clock() + lifetime - margin
        self.refreshes += 1
        log.info(
            "[%s] new OAuth access token from %s, valid for %.0f s",
            self.section, self.settings.token_url, lifetime,
        )
        rotated = answer.get("refresh_token")
        if isinstance(rotated, str) and rotated and rotated != self._refresh_token:
            self._refresh_token = rotated
            _store_refresh_token(self.settings, rotated)
            log.info("[%s] the token endpoint replaced the refresh token; the new one is kept", self.section)

    def _post(self) -> dict[str, object]:
        fields = {
            "grant_type": "refresh_token",
            "refresh_token": self._refresh_token,
            "client_id": self.settings.client_id,
        }
        if self.settings.client_secret:
            fields["client_secret"] = self.settings.client_secret
        if self.settings.scope:
            fields["scope"] = self.settings.scope
        request = urllib.request.Request(
            self.settings.token_url,
            data=urllib.parse.urlencode(fields).encode("ascii"),
            headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
            method="POST",
        )
        context = None
        if self.settings.token_url.startswith("https://"):
            context = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=context) as response:
                return _json_object(response.read())
        except urllib.error.HTTPError as exc:
            raise self._error(f"HTTP {exc.code}: {_provider_error(exc.read())}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise self._error(str(reason)) from None
        except ValueError:
            raise self._error("the response is not a JSON object") from None

    def _error(self, reason: str) -> ConnectionSetupError:
        for secret in self.secrets:
            reason = reason.replace(secret, "********")
        return ConnectionSetupError(
            f"[{self.section}] getting an OAuth access token from {self.settings.token_url} failed: "
            f"{reason}. Check oauth_client_id, the client secret and the refresh token, which "
            "the provider may have revoked."
        )


_sources: dict[tuple[str, str, str, str], TokenSource] = {}
_sources_lock = threading.Lock()


def token_source(settings: ServerSettings) -> TokenSource:
    """Return the shared TokenSource of ``settings`` (which must have ``oauth`` set)."""
    oauth = settings.oauth
    if oauth is None:
        raise ValueError(f"[{settings.section}] has no OAuth settings")
    key = (settings.section, oauth.token_url, oauth.client_id, _fingerprint(oauth.refresh_token))
    with _sources_lock:
        source = _sources.get(key)
        if source is None:
            source = TokenSource(settings.section, oauth, ca_file=settings.ca_file, timeout=settings.timeout)
            _sources[key] = source
        return source


def xoauth2_string(username: str, access_token: str) -> str:
    """Return the SASL XOAUTH2 initial response (before base64), as Google and Microsoft define it."""
    return f"user={username}\x01auth=Bearer {access_token}\x01\x01"


def _fingerprint(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _cached_refresh_token(settings: OAuthSettings) -> str | None:
    """Return the stored replacement of the configured refresh token, if it replaces this one."""
    if settings.cache_file is None or not settings.cache_file.is_file():
        return None
    try:
        cached = json.loads(settings.cache_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.warning("reading %s failed, using the configured refresh token: %s", settings.cache_file, exc)
        return None
    if not isinstance(cached, dict) or cached.get("replaces") != _fingerprint(settings.refresh_token):
        return None
    token = cached.get("refresh_token")
    return token if isinstance(token, str) and token else None


def _store_refresh_token(settings: OAuthSettings, token: str) -> None:
    if settings.cache_file is None:
        return
    content = json.dumps({"replaces": _fingerprint(settings.refresh_token), "refresh_token": token})
    partial = settings.cache_file.with_name(f".{settings.cache_file.name}.partial")
    try:
        settings.cache_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
        partial.replace(settings.cache_file)
    except OSError as exc:
        # The new token still works for this process; a restart falls back to the configured one.
        log.error("keeping the replaced refresh token in %s failed: %s", settings.cache_file, exc)


def _json_object(body: bytes) -> dict[str, object]:
    value = json.loads(body.decode("utf-8"))
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def _provider_error(body: bytes) -> str:
    """Return the OAuth error and its description from an error response (RFC 6749, section 5.2)."""
    try:
        value = _json_object(body)
    except ValueError:
        return body[:200].decode("utf-8", "replace") or "(empty answer)"
    parts = [str(value.get(key)) for key in ("error", "error_description") if value.get(key)]
    return ": ".join(parts) or "(no error given)"
