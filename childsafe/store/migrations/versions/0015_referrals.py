"""referrals: reports of matches to NCMEC's CyberTipline or packaged for the NCA

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "referrals",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("destination", sa.String(20), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("step", sa.String(20), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.Column("remote_report_id", sa.String(100), nullable=True),
        sa.Column("remote_files", sa.JSON(), nullable=False),
        sa.Column("submit_sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_referrals_sha256", "referrals", ["sha256"])
    op.create_index("ix_referrals_state", "referrals", ["state"])


def downgrade() -> None:
    op.drop_index("ix_referrals_state", table_name="referrals")
    op.drop_index("ix_referrals_sha256", table_name="referrals")
    op.drop_table("referrals")
