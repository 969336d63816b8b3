"""Exception hierarchy, sorted by what the operator has to do about each error."""

from maildesk.i18n import _


class MaildeskError(Exception):
    """Base class of every error maildesk raises on purpose."""


class ConfigError(MaildeskError):
    """The configuration file is missing, unreadable or has an invalid value."""


class LockHeldError(MaildeskError):
    """Another maildesk process holds the state directory lock."""


class ConnectionSetupError(MaildeskError):
    """Connecting or logging in to the IMAP or SMTP server failed."""


class MessageParseError(MaildeskError):
    """A message could not be parsed at all; it is quarantined with its raw bytes."""


class TicketNotFoundError(MaildeskError, LookupError):
    """No ticket has the requested number."""

    def __init__(self, number: int) -> None:
        super().__init__(_("ticket {number} not found").format(number=number))
        self.number = number
