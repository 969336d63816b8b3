"""agents working from their mail client

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("linked_ticket", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("merged_into", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("closed_at", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("status_changed_at", sa.String(length=32), nullable=True))

    # Tickets closed before this revision: their last update is the best known closing time.
    op.execute("UPDATE tickets SET closed_at = updated_at WHERE status = 'closed'")
    op.execute("UPDATE tickets SET status_changed_at = updated_at")

    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("imap_keywords", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("moved_from", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("commands", sa.Text(), nullable=False, server_default="[]")
        )

    op.create_table(
        "ticket_notes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("ticket", sa.Integer(), nullable=False),
        sa.Column("author", sa.String(length=320), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.String(length=32), nullable=False),
        sa.Column("message", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["message"], ["messages.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["ticket"], ["tickets.number"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("ticket_notes", schema=None) as batch_op:
        batch_op.create_index("ix_ticket_notes_ticket", ["ticket"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("ticket_notes", schema=None) as batch_op:
        batch_op.drop_index("ix_ticket_notes_ticket")
    op.drop_table("ticket_notes")

    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("commands")
        batch_op.drop_column("moved_from")
        batch_op.drop_column("imap_keywords")

    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_column("status_changed_at")
        batch_op.drop_column("closed_at")
        batch_op.drop_column("merged_into")
        batch_op.drop_column("linked_ticket")
