"""Storage: SQLAlchemy models and Alembic migrations (SQLite by default,
PostgreSQL for shared deployments), and the hash-chained audit log."""

from childsafe.store.audit import (
    AuditAnchor,
    ChainReport,
    anchor_from_manifest,
    append_audit,
    audit_events,
    audit_head,
    os_user,
    record_audit,
    verify_audit_chain,
)
from childsafe.store.database import head_revision, open_database, schema_revision, upsert
from childsafe.store.models import AuditEvent, Base

__all__ = [
    "AuditAnchor",
    "AuditEvent",
    "Base",
    "ChainReport",
    "anchor_from_manifest",
    "append_audit",
    "audit_events",
    "audit_head",
    "head_revision",
    "open_database",
    "os_user",
    "record_audit",
    "schema_revision",
    "upsert",
    "verify_audit_chain",
]
