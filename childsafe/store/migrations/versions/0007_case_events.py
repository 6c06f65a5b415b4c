"""measurement: case events for enforcement figures

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "case_events",
        sa.Column("case_id", sa.String(100), primary_key=True),
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("event", sa.String(20), primary_key=True),
        sa.Column("area", sa.String(100), primary_key=True),
    )
    op.create_index("ix_case_events_day", "case_events", ["day"])


def downgrade() -> None:
    op.drop_index("ix_case_events_day", "case_events")
    op.drop_table("case_events")
