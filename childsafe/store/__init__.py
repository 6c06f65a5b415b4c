"""Storage: SQLAlchemy models and Alembic migrations (SQLite by default,
PostgreSQL for shared deployments), and the hash-chained audit log."""

from childsafe.store.audit import ChainReport, audit_events, record_audit, verify_audit_chain
from childsafe.store.database import head_revision, open_database, schema_revision, upsert
from childsafe.store.models import AuditEvent, Base

__all__ = [
    "AuditEvent",
    "Base",
    "ChainReport",
    "audit_events",
    "head_revision",
    "open_database",
    "record_audit",
    "schema_revision",
    "upsert",
    "verify_audit_chain",
]
