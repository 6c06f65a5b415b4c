"""match counts: how many matches the service answered, per day, bank and category (for the dashboard)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "match_counts",
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("bank", sa.String(100), primary_key=True),
        sa.Column("category", sa.String(100), primary_key=True),
        sa.Column("count", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("match_counts")
