"""prevention: operator term and URL lists, and counters without personal data

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deter_entries",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("list_name", sa.String(100), nullable=False),
        sa.Column("lang", sa.String(10), nullable=False),
        sa.Column("value", sa.String(2000), nullable=False),
        sa.UniqueConstraint("kind", "list_name", "lang", "value", name="uq_deter_entries"),
    )
    op.create_table(
        "deter_counts",
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("region", sa.String(10), primary_key=True),
        sa.Column("list_name", sa.String(100), primary_key=True),
        sa.Column("outcome", sa.String(20), primary_key=True),
        sa.Column("count", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("deter_counts")
    op.drop_table("deter_entries")
