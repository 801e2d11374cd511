"""The tables: HubSpot portals, their QuickBooks connections, executions, and remembered mappings."""

from datetime import UTC, datetime

from sqlalchemy import JSON, BigInteger, DateTime, ForeignKey, Integer, String, Text, TypeDecorator, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from app.storage.crypto import EncryptedText


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on both back ends (SQLite drops the zone; we put UTC back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC)
            if dialect.name == "sqlite":
                value = value.replace(tzinfo=None)  # stored as text: keep one comparable format
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict: JSON, list: JSON}


class Portal(Base):
    """A HubSpot account (hub) that installed the app."""

    __tablename__ = "portals"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)  # HubSpot hub id
    hub_domain: Mapped[str | None] = mapped_column(String(255))
    access_token: Mapped[str | None] = mapped_column(EncryptedText)
    refresh_token: Mapped[str | None] = mapped_column(EncryptedText)
    access_expires_at: Mapped[datetime | None]
    scopes: Mapped[list] = mapped_column(default=list)
    settings: Mapped[dict] = mapped_column(default=dict)
    lock_version: Mapped[int] = mapped_column(Integer, default=0)
    installed_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    connections: Mapped[list["QuickBooksConnection"]] = relationship(
        back_populates="portal", order_by="QuickBooksConnection.id"
    )


class QuickBooksConnection(Base):
    """One QuickBooks Online company (realm) connected to a portal; a portal may connect several."""

    __tablename__ = "quickbooks_connections"
    __table_args__ = (UniqueConstraint("portal_id", "realm_id", name="uq_connection_portal_realm"),)

    ACTIVE = "active"
    RECONNECT_NEEDED = "reconnect_needed"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    portal_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("portals.id", ondelete="CASCADE"), index=True)
    realm_id: Mapped[str] = mapped_column(String(64))
    company_name: Mapped[str | None] = mapped_column(String(255))
    country: Mapped[str | None] = mapped_column(String(8))
    state: Mapped[str] = mapped_column(String(32), default=ACTIVE)
    access_token: Mapped[str | None] = mapped_column(EncryptedText)
    refresh_token: Mapped[str | None] = mapped_column(EncryptedText)
    access_expires_at: Mapped[datetime | None]
    refresh_expires_at: Mapped[datetime | None]
    settings: Mapped[dict] = mapped_column(default=dict)
    lock_version: Mapped[int] = mapped_column(Integer, default=0)
    connected_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    portal: Mapped[Portal] = relationship(back_populates="connections")


class Execution(Base):
    """One HubSpot action execution, unique on (portal, callbackId): the idempotency key of the whole flow."""

    __tablename__ = "executions"
    __table_args__ = (UniqueConstraint("portal_id", "callback_id", name="uq_execution_portal_callback"),)

    # status: pending → running → finished (outputs stored) → completed (HubSpot accepted the callback);
    # expired when HubSpot stopped waiting before it accepted our completion.
    PENDING, RUNNING, FINISHED, COMPLETED, EXPIRED = "pending", "running", "finished", "completed", "expired"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    portal_id: Mapped[int] = mapped_column(BigInteger, index=True)
    callback_id: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str] = mapped_column(String(64))
    object_id: Mapped[str] = mapped_column(String(64))
    inputs: Mapped[dict] = mapped_column(default=dict)
    origin: Mapped[dict] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default=PENDING, index=True)
    outcome: Mapped[str | None] = mapped_column(String(16))  # SUCCESS or FAIL_CONTINUE
    outputs: Mapped[dict] = mapped_column(default=dict)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    realm_id: Mapped[str | None] = mapped_column(String(64))
    quickbooks_writes: Mapped[dict] = mapped_column(default=dict)  # step → {"entity", "id", "number"}
    notes: Mapped[list] = mapped_column(default=list)  # decisions worth showing an operator
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    callback_attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_callback_error: Mapped[str | None] = mapped_column(Text)
    lease_until: Mapped[datetime | None]
    next_run_at: Mapped[datetime | None] = mapped_column(index=True)
    expires_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    dismissed_at: Mapped[datetime | None]  # a failure the operator chose to hide from the sync errors


class Mapping(Base):
    """A remembered HubSpot → QuickBooks match (contact/company → Customer, product → Item), per connection."""

    __tablename__ = "mappings"
    __table_args__ = (UniqueConstraint("connection_id", "kind", "hubspot_id", name="uq_mapping_connection_kind_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    connection_id: Mapped[int] = mapped_column(Integer, ForeignKey("quickbooks_connections.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    hubspot_id: Mapped[str] = mapped_column(String(64))
    quickbooks_id: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class DocumentClaim(Base):
    """Which execution owns the one QuickBooks document of a (payment, action, company).

    HubSpot may enroll a payment again (a new callbackId); the claim makes the second enrollment answer
    with the first one's document instead of writing another.
    """

    __tablename__ = "document_claims"
    __table_args__ = (
        UniqueConstraint("portal_id", "realm_id", "action", "object_type", "object_id", name="uq_document_claim"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    portal_id: Mapped[int] = mapped_column(BigInteger)
    realm_id: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str] = mapped_column(String(64))
    object_id: Mapped[str] = mapped_column(String(64))
    execution_id: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
