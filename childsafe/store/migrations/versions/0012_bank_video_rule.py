"""a bank's vPDQ match rule: the shares of the query's and the known video's frames that must match

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("banks") as batch:
        batch.add_column(sa.Column("vpdq_query_percent", sa.Float(), nullable=True))
        batch.add_column(sa.Column("vpdq_compared_percent", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("banks") as batch:
        batch.drop_column("vpdq_compared_percent")
        batch.drop_column("vpdq_query_percent")
