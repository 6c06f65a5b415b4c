"""Storage: SQLAlchemy models and Alembic migrations (SQLite by default,
PostgreSQL for shared deployments)."""

from childsafe.store.database import (
    audit_events,
    head_revision,
    open_database,
    record_audit,
    schema_revision,
)
from childsafe.store.models import AuditEvent, Base

__all__ = ["AuditEvent", "Base", "audit_events", "head_revision", "open_database", "record_audit", "schema_revision"]
