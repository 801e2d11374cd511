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
    # Who holds the lease: "host/pid-namespace:pid:boot-id" of a worker process (app.storage.executions).
    lease_owner: Mapped[str | None] = mapped_column(String(255))
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
    # What a warm execution writes with instead of asking QuickBooks: a customer's currency and display name, an
    # item's taxability, an account's type; None for a match remembered before facts were.
    facts: Mapped[dict | None]
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


class QuickBooksDocument(Base):
    """A QuickBooks document an execution created, and its state as last read from QuickBooks.

    What HubSpot's record properties and the app card show; webhooks and reconciliation keep it current.
    One row per QuickBooks document (a second enrollment answering with the same document adds none).
    """

    __tablename__ = "quickbooks_documents"
    __table_args__ = (UniqueConstraint("realm_id", "entity", "quickbooks_id", name="uq_document_realm_entity_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    portal_id: Mapped[int] = mapped_column(BigInteger, index=True)
    realm_id: Mapped[str] = mapped_column(String(64))
    entity: Mapped[str] = mapped_column(String(32))  # Invoice, Estimate, SalesReceipt, Purchase, RefundReceipt
    kind: Mapped[str] = mapped_column(String(32))  # invoice, estimate, sales_receipt, expense, refund_receipt
    quickbooks_id: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str] = mapped_column(String(64))  # the HubSpot record: DEAL, QUOTE, COMMERCE_PAYMENT
    object_id: Mapped[str] = mapped_column(String(64), index=True)
    execution_id: Mapped[int | None] = mapped_column(Integer)
    number: Mapped[str | None] = mapped_column(String(64))
    url: Mapped[str | None] = mapped_column(String(512))
    payment_id: Mapped[str | None] = mapped_column(String(64))  # a paid invoice's Payment
    status: Mapped[str | None] = mapped_column(String(32))  # decisions.md §6 values
    amount: Mapped[str | None] = mapped_column(String(32))  # TotalAmt, as QuickBooks states it
    balance: Mapped[str | None] = mapped_column(String(32))
    currency: Mapped[str | None] = mapped_column(String(8))
    txn_date: Mapped[str | None] = mapped_column(String(10))
    quickbooks_updated_at: Mapped[str | None] = mapped_column(String(40))  # MetaData.LastUpdatedTime: newest wins
    written_back_at: Mapped[datetime | None]  # when the HubSpot record last got these values
    write_back_error: Mapped[str | None] = mapped_column(Text)
    write_back_attempts: Mapped[int] = mapped_column(Integer, default=0)  # transient failures since the last success
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class QuickBooksEvent(Base):
    """One change Intuit notified by webhook (one entity of one company), kept until it has been followed.

    event_key makes a replayed delivery store nothing new: the CloudEvents `id`, or for the legacy format a
    hash of realm, entity, id, operation and lastUpdated.
    """

    __tablename__ = "quickbooks_events"
    __table_args__ = (UniqueConstraint("event_key", name="uq_quickbooks_event_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_key: Mapped[str] = mapped_column(String(128))
    realm_id: Mapped[str] = mapped_column(String(64), index=True)
    entity: Mapped[str] = mapped_column(String(64))  # QuickBooks' name: Invoice, Payment, Customer...
    entity_id: Mapped[str] = mapped_column(String(64), index=True)
    operation: Mapped[str] = mapped_column(String(32))  # Create, Update, Delete, Void, Merge, Emailed
    occurred_at: Mapped[str | None] = mapped_column(String(40))  # `time` / `lastUpdated`, as Intuit wrote it
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(index=True)
    outcome: Mapped[str | None] = mapped_column(String(16))  # applied, unchanged, ignored, failed, reconciled
    note: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # transient QuickBooks failures so far


class QuickBooksReconciliation(Base):
    """Where ChangeDataCapture left off for one QuickBooks company (realm), shared by its connections."""

    __tablename__ = "quickbooks_reconciliations"
    __table_args__ = (UniqueConstraint("realm_id", name="uq_reconciliation_realm"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    realm_id: Mapped[str] = mapped_column(String(64))
    changed_since: Mapped[str | None] = mapped_column(String(40))  # the high-water mark sent as changedSince
    attempted_at: Mapped[datetime | None]  # the last pass started (due again RECONCILE_INTERVAL_SECONDS later)
    succeeded_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)


class RateLimitCounter(Base):
    """Requests admitted in one slice of a rate limit's window (app/limits.py), when the limits of all the
    processes are shared through the database (no REDIS_URL). Old slices are deleted as the limiter goes."""

    __tablename__ = "rate_limit_counters"

    bucket: Mapped[str] = mapped_column(String(200), primary_key=True)  # "{policy}:{realm or portal}"
    slice: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)  # wall clock / slice
    count: Mapped[int] = mapped_column(Integer)


class RateLimitSlot(Base):
    """One of a key's in-flight slots (app/limits.py): held by one request until its response, or expiry."""

    __tablename__ = "rate_limit_slots"

    bucket: Mapped[str] = mapped_column(String(200), primary_key=True)
    slot: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    holder: Mapped[str | None] = mapped_column(String(64))  # the request's random token; NULL: free
    expires_at: Mapped[datetime | None]  # a holder that died frees the slot then
