"""exchanges: hash-list sources fetched into banks, and which fetch brought each import

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "exchanges",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("bank_id", sa.Integer(), sa.ForeignKey("banks.id", ondelete="CASCADE"), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("every_seconds", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("checkpoint", sa.JSON(), nullable=True),
        sa.Column("run_import_id", sa.Integer(), nullable=True),
        sa.Column("next_fetch_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_fetch_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_outcome", sa.String(20), nullable=True),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.Column("last_counts", sa.JSON(), nullable=True),
        sa.Column("lease_owner", sa.String(200), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_exchanges_bank_id", "exchanges", ["bank_id"])
    # A plain column (no foreign key), added in place: SQLite's batch mode
    # would copy and drop bank_imports, and the drop would set every entry's
    # import_id to NULL (ON DELETE SET NULL).
    op.add_column("bank_imports", sa.Column("exchange_id", sa.Integer(), nullable=True))
    op.create_index("ix_bank_imports_exchange_id", "bank_imports", ["exchange_id"])


def downgrade() -> None:
    op.drop_index("ix_bank_imports_exchange_id", table_name="bank_imports")
    with op.batch_alter_table("bank_imports") as batch:
        batch.drop_column("exchange_id")
    op.drop_table("exchanges")
