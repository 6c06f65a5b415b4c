"""video entries: the vPDQ frame hashes of an entry whose signal is vpdq

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "entry_videos",
        sa.Column("bank_id", sa.Integer(), sa.ForeignKey("banks.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("entry_id", sa.Integer(), sa.ForeignKey("bank_entries.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("frame_count", sa.Integer(), nullable=False),
        sa.Column("hashes", sa.LargeBinary(), nullable=False),
        sa.Column("qualities", sa.LargeBinary(), nullable=False),
        sa.Column("frame_numbers", sa.LargeBinary(), nullable=False),
        sa.Column("timestamps", sa.LargeBinary(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("entry_videos")
