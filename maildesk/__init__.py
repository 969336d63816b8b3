"""maildesk: a helpdesk that lives inside an ordinary support mailbox."""

__version__ = "0.1.0"
