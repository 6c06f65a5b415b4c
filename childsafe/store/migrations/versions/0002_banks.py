"""banks: hash lists, their entries and signals, import provenance, change log

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "banks",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("scheme", sa.String(20), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("pdq_threshold", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "bank_imports",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("bank_id", sa.Integer(), sa.ForeignKey("banks.id", ondelete="CASCADE"), nullable=False),
        sa.Column("file_name", sa.String(500), nullable=False),
        sa.Column("file_sha256", sa.String(64), nullable=False),
        sa.Column("format", sa.String(20), nullable=False),
        sa.Column("importer", sa.String(200), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("added", sa.Integer(), nullable=False),
        sa.Column("updated", sa.Integer(), nullable=False),
        sa.Column("removed", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Integer(), nullable=False),
    )
    op.create_index("ix_bank_imports_bank_id", "bank_imports", ["bank_id"])
    op.create_table(
        "bank_entries",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("bank_id", sa.Integer(), sa.ForeignKey("banks.id", ondelete="CASCADE"), nullable=False),
        sa.Column("entry_key", sa.String(40), nullable=False),
        sa.Column("category", sa.String(20), nullable=True),
        sa.Column("source_id", sa.String(200), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("import_id", sa.Integer(), sa.ForeignKey("bank_imports.id", ondelete="SET NULL"), nullable=True),
        sa.UniqueConstraint("bank_id", "entry_key", name="uq_bank_entries_key"),
    )
    op.create_index("ix_bank_entries_bank_id", "bank_entries", ["bank_id"])
    op.create_table(
        "entry_signals",
        sa.Column("bank_id", sa.Integer(), sa.ForeignKey("banks.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("entry_id", sa.Integer(), sa.ForeignKey("bank_entries.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("signal", sa.String(20), primary_key=True),
        sa.Column("value", sa.String(64), primary_key=True),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "bank_changes",
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("bank_id", sa.Integer(), nullable=False),
        sa.Column("op", sa.String(10), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_bank_changes_bank_id", "bank_changes", ["bank_id"])


def downgrade() -> None:
    op.drop_table("bank_changes")
    op.drop_table("entry_signals")
    op.drop_table("bank_entries")
    op.drop_table("bank_imports")
    op.drop_table("banks")
