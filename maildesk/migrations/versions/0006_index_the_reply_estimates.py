"""index what the reply estimate and the rate limits read

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04

Without these, the measured first-response estimate and the per-domain and
global reply limits scan the whole tickets and outbox tables for every new
ticket, so ingest slowed down as the desk grew.
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_tickets_priority_created", "tickets", ["priority", "created_at"])
    op.create_index("ix_outbox_created", "outbox", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_outbox_created", table_name="outbox")
    op.drop_index("ix_tickets_priority_created", table_name="tickets")
