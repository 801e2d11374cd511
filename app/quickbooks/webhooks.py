"""Intuit's webhooks: check the signature, read either payload format, keep each event once, follow it.

Intuit signs the raw body: `intuit-signature` is base64(HMAC-SHA256(body, the app's verifier token)). The
developer portal decides which of two formats arrives. CloudEvents: a JSON array of {"specversion", "id",
"source", "type": "qbo.invoice.updated.v1", "time", "intuitaccountid" (the realm), "intuitentityid",
"data"}. Legacy: {"eventNotifications": [{"realmId", "dataChangeEvent": {"entities": [{"name", "id",
"operation", "lastUpdated"}]}}]}. A notification only names what changed: the document is read back from
QuickBooks and `apply_state` keeps the newest state, so late, repeated and out-of-order events change
nothing twice; a replayed delivery is not even stored twice (event_key).

Payments: a Payment event re-reads the invoices it is applied to (Line[].LinkedTxn, TxnType Invoice) that
executions created, plus the paid invoice whose payment_id it is. A deleted or voided payment no longer
says which invoices it paid, so every invoice of ours in that company that shows paid or partially_paid is
re-read (a payment can only have moved those). An edit that unlinks an invoice from a payment is left to
reconciliation (app/quickbooks/reconcile.py), which sees the invoice's new LastUpdatedTime.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flask import current_app
from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError

from actions.errors import QuickBooksAuthExpired, QuickBooksFault, TransientError
from app import queue
from app.backoff import execution_backoff
from app.extensions import db
from app.hubspot.signature import InvalidSignature
from app.quickbooks.client import books_client
from app.quickbooks.status import is_voided
from app.storage.documents import apply_state, get_document
from app.storage.models import QuickBooksConnection, QuickBooksDocument, QuickBooksEvent, utcnow

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "intuit-signature"
DOCUMENT_ENTITIES = ("Invoice", "Estimate", "SalesReceipt", "RefundReceipt", "Purchase")
TRACKED_ENTITIES = (*DOCUMENT_ENTITIES, "Payment")
ENTITY_NAMES = {name.lower(): name for name in TRACKED_ENTITIES}  # CloudEvents write them in lower case
# CloudEvents operations → the legacy names we store. UNCONFIRMED: "voided"/"void" and "merged"/"merge".
OPERATIONS = {
    "created": "Create",
    "updated": "Update",
    "deleted": "Delete",
    "voided": "Void",
    "void": "Void",
    "merged": "Merge",
    "merge": "Merge",
    "emailed": "Emailed",
}
CLOUD_EVENT_TYPE = re.compile(r"qbo\.(?P<entity>\w+)\.(?P<operation>\w+)\.v\d+", re.IGNORECASE)
PAID_STATUSES = ("paid", "partially_paid")
MAX_KEY = 128
QUERY_CHUNK = 100  # ids per `Id IN (...)` query: QuickBooks' default page size


# -- receiving -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Notified:
    """One entity change a notification announced."""

    key: str
    realm_id: str
    entity: str
    entity_id: str
    operation: str
    occurred_at: str


def sign(body: bytes, verifier_token: str) -> str:
    return base64.b64encode(hmac.new(verifier_token.encode("utf-8"), body, hashlib.sha256).digest()).decode("ascii")


def verify_signature(body: bytes, signature: str | None, verifier_tokens: str) -> None:
    """Raises InvalidSignature (→ 401) unless Intuit signed these bytes; several tokens (comma-separated)
    let a new verifier token overlap with the old one."""
    tokens = [token.strip() for token in (verifier_tokens or "").split(",") if token.strip()]
    if not tokens:
        raise InvalidSignature(
            "this server has no QBO_WEBHOOK_VERIFIER_TOKEN configured, so it cannot verify Intuit's webhooks"
        )
    if not signature:
        raise InvalidSignature(f"missing {SIGNATURE_HEADER} header")
    received = signature.strip().encode("utf-8", "replace")
    # No short-circuit: every token is compared, each in constant time.
    if sum(hmac.compare_digest(received, sign(body, token).encode("ascii")) for token in tokens) == 0:
        raise InvalidSignature(f"{SIGNATURE_HEADER} does not match the body")


def read_notification(body: bytes) -> tuple[list[Notified], list[str]]:
    """The entity changes a notification names, and what could not be read (one sentence each)."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return [], ["The body is not JSON."]
    if isinstance(payload, list):
        return read_cloud_events(payload)
    if isinstance(payload, dict) and "eventNotifications" in payload:
        return read_legacy(payload)
    if isinstance(payload, dict) and "specversion" in payload:  # one event sent on its own
        return read_cloud_events([payload])
    return [], ["Expected a JSON array of CloudEvents or an object with eventNotifications."]


def read_cloud_events(items: list) -> tuple[list[Notified], list[str]]:
    events, problems = [], []
    for n, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            problems.append(f"Event {n} is not an object.")
            continue
        missing = [name for name in ("id", "type", "intuitaccountid", "intuitentityid") if not text(item.get(name))]
        if missing:
            problems.append(f"Event {n} has no {', '.join(missing)}.")
            continue
        match = CLOUD_EVENT_TYPE.fullmatch(text(item["type"]))
        if match is None:
            problems.append(f"Event {n} has type {text(item['type'])[:80]!r}, not qbo.<entity>.<operation>.v<n>.")
            continue
        operation = match["operation"].lower()
        events.append(
            Notified(
                key=event_key("ce:" + text(item["id"])),
                realm_id=text(item["intuitaccountid"]),
                entity=ENTITY_NAMES.get(match["entity"].lower(), match["entity"]),
                entity_id=text(item["intuitentityid"]),
                operation=OPERATIONS.get(operation, operation.capitalize()),
                occurred_at=text(item.get("time"))[:40],
            )
        )
    return events, problems


def read_legacy(payload: dict) -> tuple[list[Notified], list[str]]:
    notifications = payload.get("eventNotifications")
    if not isinstance(notifications, list):
        return [], ["eventNotifications is not a list."]
    events, problems = [], []
    for n, notification in enumerate(notifications, start=1):
        realm_id = text(notification.get("realmId")) if isinstance(notification, dict) else ""
        change = notification.get("dataChangeEvent") if isinstance(notification, dict) else None
        entities = change.get("entities") if isinstance(change, dict) else None
        if not realm_id or not isinstance(entities, list):
            problems.append(f"Notification {n} has no realmId or no dataChangeEvent.entities list.")
            continue
        for m, entity in enumerate(entities, start=1):
            entity = entity if isinstance(entity, dict) else {}
            fields = {name: text(entity.get(name)) for name in ("name", "id", "operation", "lastUpdated")}
            missing = [name for name in ("name", "id", "operation") if not fields.get(name)]
            if missing:
                problems.append(f"Notification {n}, entity {m} has no {', '.join(missing)}.")
                continue
            identity = "|".join((realm_id, fields["name"], fields["id"], fields["operation"], fields["lastUpdated"]))
            events.append(
                Notified(
                    key="legacy:" + hashlib.sha256(identity.encode("utf-8")).hexdigest(),
                    realm_id=realm_id,
                    entity=ENTITY_NAMES.get(fields["name"].lower(), fields["name"]),
                    entity_id=fields["id"],
                    operation=fields["operation"],
                    occurred_at=fields["lastUpdated"][:40],
                )
            )
    return events, problems


def text(value) -> str:
    """A field as text; "" (unreadable) for what no database stores: a NUL or a lone surrogate."""
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        return ""
    value = str(value).strip()
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return ""
    return "" if "\x00" in value else value


def event_key(key: str) -> str:
    return key if len(key) <= MAX_KEY else "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


def record_events(session, notified: list[Notified]) -> list[QuickBooksEvent]:
    """Store the events not stored before (a replayed delivery adds nothing); the new rows."""
    unique = list({event.key: event for event in reversed(notified)}.values())[::-1]  # first of each key
    keys = [event.key for event in unique]
    known = set()
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        known |= set(session.scalars(select(QuickBooksEvent.event_key).where(QuickBooksEvent.event_key.in_(chunk))))
    rows = [new_event(event) for event in unique if event.key not in known]
    session.add_all(rows)
    try:
        session.commit()
    except IntegrityError:  # the same delivery arrived twice at once: keep what the other one did not
        session.rollback()
        rows = [row for row in (insert_one(session, new_event(event)) for event in unique) if row is not None]
    return rows


def new_event(event: Notified) -> QuickBooksEvent:
    return QuickBooksEvent(
        event_key=event.key,
        realm_id=event.realm_id[:64],
        entity=event.entity[:64],
        entity_id=event.entity_id[:64],
        operation=event.operation[:32],
        occurred_at=event.occurred_at or None,
    )


def insert_one(session, row: QuickBooksEvent) -> QuickBooksEvent | None:
    session.add(row)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        return None
    return row


# -- following an event ----------------------------------------------------------------------------------


def process_event(event_id: int) -> None:
    """Follow one stored event: read the document (or the payment's invoices) back and apply it."""
    with db.new_session() as session:
        event = session.get(QuickBooksEvent, event_id)
        if event is None or event.processed_at is not None:
            return  # followed already, with another event of the same document
        if event.entity not in TRACKED_ENTITIES:
            settle(session, [event], "ignored", f"{event.entity} is not a document qbo-actions follows")
            return
        connection = connection_for_realm(session, event.realm_id)
        if connection is None:
            settle(session, [event], "ignored", f"QuickBooks company {event.realm_id} is not connected here")
            return
        if connection.state != QuickBooksConnection.ACTIVE:
            settle(session, [event], "failed", "the QuickBooks connection needs reconnecting")
            return
        follower = Follower(session, connection, current_app.config)
        try:
            if event.entity == "Payment":
                follow_payment(follower, event)
            else:
                follow_document(follower, event)
            session.commit()
        except TransientError as exc:
            session.rollback()
            postpone(session, event, exc)
            return
        except (QuickBooksFault, QuickBooksAuthExpired) as exc:
            session.rollback()
            settle(session, [event], "failed", describe(exc))
            log.warning("QuickBooks event %s (%s %s): %s", event.id, event.entity, event.entity_id, describe(exc))
            return
    follower.write_back()


def follow_document(follower: Follower, event: QuickBooksEvent) -> None:
    session = follower.session
    pending = pending_events(session, event)
    document = get_document(session, realm_id=event.realm_id, entity=event.entity, quickbooks_id=event.entity_id)
    if document is None:
        settle(session, pending, "ignored", "not a document an execution created")
        return
    if not any(e.operation == "Delete" for e in pending) and all(already_seen(document, e) for e in pending):
        settle(session, pending, "unchanged", "the document's state is already newer than this change")
        return
    follower.follow(document, deleted=any(e.operation == "Delete" for e in pending), pending=pending)


def follow_payment(follower: Follower, event: QuickBooksEvent) -> None:
    session, realm_id = follower.session, event.realm_id
    pending = pending_events(session, event)
    if not session.scalars(select(QuickBooksDocument.id).filter_by(realm_id=realm_id, entity="Invoice")).first():
        settle(session, pending, "ignored", "no invoice of ours in this QuickBooks company")
        return
    gone = any(e.operation == "Delete" for e in pending)
    payment = None if gone else follower.books.read("Payment", event.entity_id)
    unlinked = payment is None or is_voided(payment) or any(e.operation == "Void" for e in pending)
    invoices = invoices_a_payment_may_move(
        session, realm_id, event.entity_id, linked_invoice_ids(payment), widen=unlinked
    )
    changed = follower.follow_many(invoices)
    if not invoices:
        settle(session, pending, "ignored", "the payment is not applied to an invoice of ours")
    else:
        settle(session, pending, "applied" if changed else "unchanged", f"{len(invoices)} invoice(s) read back")


def linked_invoice_ids(payment: dict | None) -> list[str]:
    ids = []
    for line in (payment or {}).get("Line") or []:
        for link in line.get("LinkedTxn") or []:
            if link.get("TxnType") == "Invoice" and str(link.get("TxnId") or "") not in ids:
                ids.append(str(link["TxnId"]))
    return ids


def invoices_a_payment_may_move(
    session, realm_id: str, payment_id: str, linked: list[str], *, widen: bool
) -> list[QuickBooksDocument]:
    """Our invoices a payment applies to (or paid, when it was a paid invoice's); with widen, every one of
    ours in the company that shows a payment (the payment is gone or voided: its links cannot be read)."""
    matches = [QuickBooksDocument.payment_id == str(payment_id)]
    if linked:
        matches.append(QuickBooksDocument.quickbooks_id.in_(linked))
    if widen:
        matches.append(QuickBooksDocument.status.in_(PAID_STATUSES))
    query = select(QuickBooksDocument).filter_by(realm_id=realm_id, entity="Invoice").where(or_(*matches))
    return list(session.scalars(query.order_by(QuickBooksDocument.id)))


def already_seen(document: QuickBooksDocument, event: QuickBooksEvent) -> bool:
    """True when the document's state is known to be newer than the change the event announces.

    A creation we recorded ourselves is known (our write's answer); otherwise the event must be at least a
    second older than the state we hold, since one side may carry no fraction of a second.
    """
    if event.operation == "Create" and document.quickbooks_updated_at:
        return True
    occurred, known = parse_time(event.occurred_at), parse_time(document.quickbooks_updated_at)
    return bool(occurred and known and occurred + timedelta(seconds=1) <= known)


def parse_time(value: str | None) -> datetime | None:
    """An ISO-8601 time (2015-10-05T14:42:19-0700, …Z, …-08:00) or epoch milliseconds, as a UTC datetime."""
    value = (value or "").strip()
    if not value:
        return None
    if value.isdigit():
        return datetime.fromtimestamp(int(value) / 1000, UTC)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def connection_for_realm(session, realm_id: str) -> QuickBooksConnection | None:
    """A connection to the company, an active one first (several portals may connect the same company)."""
    query = select(QuickBooksConnection).where(QuickBooksConnection.realm_id == str(realm_id))
    connections = list(session.scalars(query.order_by(QuickBooksConnection.id)))
    active = [c for c in connections if c.state == QuickBooksConnection.ACTIVE]
    return (active or connections or [None])[0]


def pending_events(session, event: QuickBooksEvent) -> list[QuickBooksEvent]:
    """The event and every other event of the same record not followed yet: one read answers them all."""
    query = select(QuickBooksEvent).filter_by(realm_id=event.realm_id, entity=event.entity, entity_id=event.entity_id)
    found = list(session.scalars(query.where(QuickBooksEvent.processed_at.is_(None)).order_by(QuickBooksEvent.id)))
    return found if any(e.id == event.id for e in found) else [event, *found]


def pending_for(session, document: QuickBooksDocument) -> list[QuickBooksEvent]:
    query = select(QuickBooksEvent).filter_by(
        realm_id=document.realm_id, entity=document.entity, entity_id=document.quickbooks_id
    )
    return list(session.scalars(query.where(QuickBooksEvent.processed_at.is_(None))))


def settle(session, events: list[QuickBooksEvent], outcome: str, note: str = "") -> None:
    now = utcnow()
    for event in events:
        event.processed_at, event.outcome, event.note = now, outcome, note or None
    session.commit()
    if outcome in ("ignored", "failed") and events:
        first = events[0]
        log.info("QuickBooks %s %s %s (%s): %s", first.entity, first.entity_id, first.operation, outcome, note)


def postpone(session, event: QuickBooksEvent, exc: TransientError) -> None:
    """QuickBooks is down: try this event again later; once the retries are used up, reconciliation
    (ChangeDataCapture) catches the change instead."""
    event = session.get(QuickBooksEvent, event.id)
    event.attempts = (event.attempts or 0) + 1
    delay = execution_backoff().delay(event.attempts, exc.retry_after)
    if delay is None:
        settle(session, [event], "failed", f"{exc.reason}; left to reconciliation")
        return
    event.note = exc.reason
    session.commit()
    log.warning("QuickBooks event %s: %s; trying again in %.0fs", event.id, exc.reason, delay)
    queue.enqueue_webhook(event.id, delay=delay)


def describe(exc: Exception) -> str:
    if isinstance(exc, QuickBooksAuthExpired):
        return "QuickBooks refused our tokens: the connection needs reconnecting"
    if isinstance(exc, QuickBooksFault):
        return f"QuickBooks fault {exc.code}: {exc.message[:200]}"
    return getattr(exc, "reason", "") or str(exc)


class Follower:
    """Reads documents of one QuickBooks company back and applies what it says; remembers what changed,
    so HubSpot's records follow once the transaction is committed."""

    def __init__(self, session, connection: QuickBooksConnection, config):
        self.session = session
        self.connection = connection
        self.config = config
        self._books = None
        self.changed: list[int] = []  # document ids whose HubSpot record must follow
        self.read: set[tuple[str, str]] = set()  # (entity, id) read in this pass: read each once

    @property
    def books(self):
        if self._books is None:
            self._books = books_client(self.connection, self.config)
        return self._books

    def apply(self, document: QuickBooksDocument, record: dict | None) -> bool:
        changed = apply_state(document, record)
        if changed and document.id not in self.changed:
            self.changed.append(document.id)
        return changed

    def follow(self, document: QuickBooksDocument, *, deleted: bool = False, pending=None) -> bool:
        """Read the document (unless deleted) and apply it; the events waiting on it are answered too."""
        pending = pending_for(self.session, document) if pending is None else pending
        self.read.add((document.entity, document.quickbooks_id))
        record = None if deleted else self.books.read(document.entity, document.quickbooks_id)
        changed = self.apply(document, record)
        settle_quietly(pending, "applied" if changed else "unchanged")
        return changed

    def follow_many(self, documents: list[QuickBooksDocument]) -> bool:
        """follow() for several documents of one entity: one query per hundred instead of a read each."""
        documents = [d for d in documents if (d.entity, d.quickbooks_id) not in self.read]
        if len(documents) <= 2:
            return any([self.follow(document) for document in documents])
        changed = False
        entity = documents[0].entity
        for start in range(0, len(documents), QUERY_CHUNK):
            chunk = documents[start : start + QUERY_CHUNK]
            pending = {d.id: pending_for(self.session, d) for d in chunk}
            ids = ", ".join("'{}'".format(d.quickbooks_id.replace("'", "\\'")) for d in chunk)
            found = {str(r["Id"]): r for r in self.books.query(f"select * from {entity} where Id in ({ids})")}
            for document in chunk:
                if document.quickbooks_id not in found:  # 610 when deleted: read it alone to be sure
                    changed |= self.follow(document, pending=pending[document.id])
                    continue
                self.read.add((document.entity, document.quickbooks_id))
                applied = self.apply(document, found[document.quickbooks_id])
                settle_quietly(pending[document.id], "applied" if applied else "unchanged")
                changed |= applied
        return changed

    def write_back(self) -> None:
        for document_id in self.changed:
            queue.enqueue_write_back(document_id)


def settle_quietly(events: list[QuickBooksEvent], outcome: str) -> None:
    """Mark events answered within the caller's transaction."""
    now = utcnow()
    for event in events:
        event.processed_at, event.outcome = now, outcome
