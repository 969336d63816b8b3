"""A local OAuth 2.0 token endpoint, HS256 JWTs, Dovecot's oauth2 passdb and an XOAUTH2 SMTP sink."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult

from servers import SmtpSink


def _b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def make_jwt(claims: dict[str, Any], key: bytes) -> str:
    """Return an HS256-signed JWT with ``claims``."""
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = _b64url(json.dumps(claims).encode())
    signature = _b64url(hmac.new(key, header + b"." + payload, hashlib.sha256).digest())
    return (header + b"." + payload + b"." + signature).decode()


def dovecot_oauth_config(root: Path, key: bytes) -> str:
    """Return dovecot.conf lines that accept XOAUTH2 with JWTs signed by ``key``, checked locally.

    Dovecot 2.3 reads the HS256 key, base64-encoded, from ``<dict prefix>/default/HS256/default``.
    """
    key_file = root / "keys" / "default" / "HS256" / "default"
    key_file.parent.mkdir(parents=True)
    key_file.write_text(base64.b64encode(key).decode(), encoding="ascii")
    for folder in (root, root / "keys", root / "keys" / "default", key_file.parent):
        folder.chmod(0o755)
    key_file.chmod(0o644)
    args = root / "dovecot-oauth2.conf.ext"
    args.write_text(
        "introspection_mode = local\n"
        f"local_validation_key_dict = fs:posix:prefix={root / 'keys'}/\n"
        "username_attribute = sub\n",
        encoding="utf-8",
    )
    args.chmod(0o644)
    return (
        "auth_mechanisms = plain login xoauth2 oauthbearer\n"
        "passdb {\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n"
        f"  args = {args}\n}}\n"
    )


@dataclass
class TokenEndpoint:
    """A token endpoint on 127.0.0.1 that grants JWT access tokens for one refresh token."""

    key: bytes
    client_id: str = "maildesk-test"
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    refresh_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    lifetime: int = 3600
    # The "sub" claim of the tokens: the IMAP user Dovecot logs in.
    subject: str = ""
    # When set, each grant returns a new refresh token and accepts only that one next.
    rotate: bool = False
    requests: list[dict[str, str]] = field(default_factory=list)
    issued: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server hook name
                length = int(self.headers.get("Content-Length", "0"))
                form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
                status, answer = endpoint.grant(form)
                body = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/token"

    def grant(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        self.requests.append(form)
        if form.get("grant_type") != "refresh_token" or form.get("client_id") != self.client_id:
            return 400, {"error": "invalid_request"}
        if form.get("client_secret") != self.client_secret:
            return 401, {"error": "invalid_client"}
        if form.get("refresh_token") != self.refresh_token:
            return 400, {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}
        now = int(time.time())
        claims = {"sub": self.subject, "iat": now, "nbf": now, "exp": now + self.lifetime}
        token = make_jwt(claims, self.key)
        self.issued.append(token)
        answer: dict[str, Any] = {"access_token": token, "token_type": "Bearer", "expires_in": self.lifetime}
        if self.rotate:
            self.refresh_token = secrets.token_urlsafe(24)
            answer["refresh_token"] = self.refresh_token
        return 200, answer

    def config_lines(self, refresh_token: str | None = None) -> str:
        """Return the XOAUTH2 keys of a [mailbox] or [smtp] section for this endpoint."""
        return (
            'auth = "xoauth2"\n'
            f'oauth_token_url = "{self.url}"\n'
            f'oauth_client_id = "{self.client_id}"\n'
            f'oauth_client_secret = "{self.client_secret}"\n'
            f'oauth_refresh_token = "{refresh_token or self.refresh_token}"\n'
        )

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class OAuthSmtpSink(SmtpSink):
    """An SMTP sink that also offers AUTH XOAUTH2 and accepts the tokens ``endpoint`` issued."""

    def __init__(self, endpoint: TokenEndpoint) -> None:
        self.endpoint = endpoint
        self.xoauth2_users: list[str] = []
        super().__init__()

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:  # noqa: N802
        if len(args) < 2:
            return AuthResult(success=False, handled=False)
        fields = base64.b64decode(args[1]).decode().split("\x01")
        values = dict(item.split("=", 1) for item in fields if "=" in item)
        token = values.get("auth", "").removeprefix("Bearer ")
        if token in self.endpoint.issued:
            self.xoauth2_users.append(values.get("user", ""))
            return AuthResult(success=True, auth_data=values.get("user"))
        # Google and Microsoft send a JSON error as a challenge, then 535 after the client's empty line.
        await server.challenge_auth(json.dumps({"status": "401", "schemes": "bearer"}))
        return AuthResult(success=False, handled=False)
