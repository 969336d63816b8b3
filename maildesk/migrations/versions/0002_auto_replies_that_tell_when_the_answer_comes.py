"""auto-replies that tell when the answer comes

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("visible_text", sa.Text(), nullable=False, server_default="")
        )

    op.create_table(
        "bounced_recipients",
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("bounced_at", sa.String(length=32), nullable=False),
        sa.Column("message_id", sa.String(length=998), nullable=True),
        sa.PrimaryKeyConstraint("address"),
    )


def downgrade() -> None:
    op.drop_table("bounced_recipients")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("visible_text")
