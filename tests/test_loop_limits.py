"""Tests for the loop guard's DMARC check, rate limits, robot headers and Authentication-Results."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import pytest

from maildesk.authresults import parse_authentication_results, trusted_results
from maildesk.config import AgentSettings, AutoreplySettings, Config
from maildesk.loopguard import (
    REASONS,
    ReplyHistory,
    automatic_reason,
    dmarc_failed,
    is_robot_address,
    limit_reason,
    suppression_reason,
)
from maildesk.message import Address, ParsedMessage

CUSTOMER = "liisa@example.com"
TRUSTED = "mx.example.fi"


def make_message(*headers: tuple[str, str]) -> ParsedMessage:
    return ParsedMessage(
        message_id="m1@example.com",
        subject="Tilaus 5521",
        from_=Address(CUSTOMER, "Liisa"),
        to=(Address("tuki@example.fi"),),
        return_path=CUSTOMER,
        text="Missä tilaukseni on?",
        headers=(("From", f"Liisa <{CUSTOMER}>"), ("Subject", "Tilaus 5521"), *headers),
    )


def make_config(trusted: str = TRUSTED, **autoreply: Any) -> Config:
    return Config(
        path=None,
        name="Kauppa",
        support_address="tuki@example.fi",
        agent_settings=AgentSettings(trusted_authserv_id=trusted),
        autoreply=AutoreplySettings(**autoreply),
    )


def suppress(message: ParsedMessage, config: Config | None = None, **overrides: Any) -> str | None:
    arguments: dict[str, Any] = {
        "age": timedelta(minutes=1),
        "check_age": True,
        "rule_autoreply": True,
        "replied_recently": False,
    }
    arguments.update(overrides)
    return suppression_reason(message, CUSTOMER, config or make_config(), **arguments)


# Authentication-Results


def test_parse_results() -> None:
    """authserv-id, version and method=result pairs are read; comments are ignored."""
    parsed = parse_authentication_results(
        "MX.example.fi 1; spf=pass smtp.mailfrom=example.com;"
        " dkim=fail (bad signature; really) header.d=example.com;"
        " dmarc=fail (p=reject dis=none) header.from=example.com"
    )

    assert parsed is not None
    assert "mx.example.fi" == parsed.authserv_id
    assert (("spf", "pass"), ("dkim", "fail"), ("dmarc", "fail")) == parsed.results


def test_parse_none_result() -> None:
    """A field that reports no checks has no results."""
    parsed = parse_authentication_results("mx.example.fi; none")

    assert parsed is not None
    assert () == parsed.results


def test_parse_empty() -> None:
    """A value without an authserv-id gives None."""
    assert parse_authentication_results("  ") is None


def test_trusted_only() -> None:
    """Fields of other servers are ignored."""
    values = ["evil.example.net; dmarc=fail", "mx.example.fi; dmarc=pass"]

    assert [("dmarc", "pass")] == trusted_results(values, "MX.EXAMPLE.FI")


def test_trusted_empty_id() -> None:
    """Without a configured authserv-id nothing is trusted."""
    assert [] == trusted_results(["mx.example.fi; dmarc=fail"], "")


# DMARC


@pytest.mark.parametrize(
    ("header", "trusted", "expected"),
    [
        pytest.param("mx.example.fi; dmarc=fail header.from=example.com", TRUSTED, "dmarc-fail", id="fail"),
        pytest.param("mx.example.fi; dmarc=pass header.from=example.com", TRUSTED, None, id="pass"),
        pytest.param("other.example.net; dmarc=fail", TRUSTED, None, id="untrusted-server"),
        pytest.param("mx.example.fi; dmarc=fail", "", None, id="nothing-trusted"),
        pytest.param("mx.example.fi; dkim=fail; dmarc=none", TRUSTED, None, id="no-policy"),
    ],
)
def test_dmarc_suppression(header: str, trusted: str, expected: str | None) -> None:
    """Only a DMARC failure reported by the trusted server stops the reply."""
    message = make_message(("Authentication-Results", header))

    assert expected == suppress(message, make_config(trusted))


def test_dmarc_any_trusted_field() -> None:
    """A failure in any of several fields of the trusted server counts."""
    message = make_message(
        ("Authentication-Results", "mx.example.fi; spf=pass"),
        ("Authentication-Results", "mx.example.fi; dmarc=fail"),
    )

    assert dmarc_failed(message, TRUSTED)


# Robot kinds besides those of the core loop guard


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param(("X-Autoresponder", "yes"), "autoreply-header", id="x-autoresponder"),
        pytest.param(("X-POST-MessageClass", "9; Autoresponder"), "autoreply-header", id="messageclass"),
        pytest.param(("Delivered-To", "Autoresponder"), "autoreply-header", id="delivered-to"),
        pytest.param(("X-Precedence", "auto_reply"), "precedence", id="x-precedence"),
        pytest.param(("Precedence", "auto_reply"), "precedence", id="precedence-auto-reply"),
        pytest.param(("List-Help", "<mailto:help@lists.example.org>"), "list", id="list-help"),
        pytest.param(("List-Owner", "<mailto:owner@lists.example.org>"), "list", id="list-owner"),
        pytest.param(("List-Archive", "<https://lists.example.org/>"), "list", id="list-archive"),
        pytest.param(("List-Subscribe", "<mailto:sub@lists.example.org>"), "list", id="list-subscribe"),
    ],
)
def test_more_robot_headers(header: tuple[str, str], expected: str) -> None:
    """Vendor auto-reply headers and every RFC 2369 list field mark robots."""
    assert expected == automatic_reason(make_message(header))


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("owner-asiakkaat@lists.example.org", True),
        ("asiakkaat-request@lists.example.org", True),
        ("owner@example.com", False),
        ("request.anna@example.com", False),
    ],
)
def test_list_robot_addresses(address: str, expected: bool) -> None:
    """owner-* and *-request list robots are recognized, people named so are not."""
    assert expected == is_robot_address(address)


# Rate limits, the ticket cap and the bounce block


@pytest.mark.parametrize(
    ("history", "expected"),
    [
        pytest.param(ReplyHistory(), None, id="nothing"),
        pytest.param(ReplyHistory(bounced=True), "hard-bounce", id="bounced"),
        pytest.param(ReplyHistory(on_ticket=3), "ticket-limit", id="ticket-full"),
        pytest.param(ReplyHistory(on_ticket=2), None, id="ticket-below"),
        pytest.param(ReplyHistory(to_domain=50), "domain-limit", id="domain-full"),
        pytest.param(ReplyHistory(to_domain=49), None, id="domain-below"),
        pytest.param(ReplyHistory(total=200), "global-limit", id="global-full"),
        pytest.param(ReplyHistory(total=199), None, id="global-below"),
    ],
)
def test_limit_reason_defaults(history: ReplyHistory, expected: str | None) -> None:
    """Each limit stops the reply that would exceed its default maximum."""
    assert expected == limit_reason(history, AutoreplySettings())


def test_limit_zero_is_off() -> None:
    """A limit of 0 never stops a reply."""
    settings = AutoreplySettings(per_domain_limit=0, global_limit=0, per_ticket_limit=0)

    assert limit_reason(ReplyHistory(to_domain=10**6, total=10**6, on_ticket=10**6), settings) is None


def test_limits_after_sender_window() -> None:
    """The per-sender window is reported before the other limits."""
    reason = suppress(make_message(), replied_recently=True, history=ReplyHistory(total=10**6))

    assert "sender-window" == reason


def test_history_reaches_suppression() -> None:
    """suppression_reason applies the history it is given."""
    assert "domain-limit" == suppress(make_message(), history=ReplyHistory(to_domain=50))


def test_new_reasons_listed() -> None:
    """Every new reason code is in REASONS and fits the 32-character column."""
    new = {"dmarc-fail", "hard-bounce", "ticket-limit", "domain-limit", "global-limit"}

    assert new <= set(REASONS)
    assert all(len(reason) <= 32 for reason in REASONS)


def test_dmarc_before_recipient_checks() -> None:
    """A forged sender is reported as such even when other rules would also stop the reply."""
    message = make_message(("Authentication-Results", "mx.example.fi; dmarc=fail"))
    config = dataclasses.replace(make_config(), agents=(CUSTOMER,))

    assert "dmarc-fail" == suppress(message, config)
