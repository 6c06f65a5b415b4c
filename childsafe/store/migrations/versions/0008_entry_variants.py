"""bank-side variants: which PDQ values of an entry are derived from it

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "entry_variants",
        sa.Column("bank_id", sa.Integer(), sa.ForeignKey("banks.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("entry_id", sa.Integer(), sa.ForeignKey("bank_entries.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("value", sa.String(64), primary_key=True),
        sa.Column("variant", sa.String(40), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("entry_variants")
