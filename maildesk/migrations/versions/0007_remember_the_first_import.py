"""remember where the first-start import of a folder ends

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05

The mail already in a folder at the first start is imported without
auto-replies. When that import was interrupted, the next run took the rest
of it for new mail and answered it; ``folders.import_until`` keeps the
highest UID of the import, so the next run finishes it without replies.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("folders") as batch:
        batch.add_column(sa.Column("import_until", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("folders") as batch:
        batch.drop_column("import_until")
