"""Reconciliation: ChangeDataCapture catches what webhooks missed (lost, refused, or never set up).

Every RECONCILE_INTERVAL_SECONDS per connected QuickBooks company (realm), one GET /cdc for the document
entities and Payment since the company's high-water mark; the changes are applied to our documents like
webhook events (newest state wins), and the mark moves on only once they are committed. The first pass
starts at the oldest document of the company (never more than 30 days back: QuickBooks' limit). A
company whose connections all need reconnecting is skipped; QuickBooks down means: log, try next time.
"""

import logging
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError

from actions.errors import QuickBooksAuthExpired, QuickBooksFault, TransientError
from app.extensions import db
from app.quickbooks.status import is_voided
from app.quickbooks.webhooks import (
    DOCUMENT_ENTITIES,
    Follower,
    connection_for_realm,
    describe,
    invoices_a_payment_may_move,
    linked_invoice_ids,
    parse_time,
    settle_quietly,
)
from app.storage.models import (
    QuickBooksConnection,
    QuickBooksDocument,
    QuickBooksEvent,
    QuickBooksReconciliation,
    utcnow,
)

log = logging.getLogger(__name__)

CDC_ENTITIES = ("Invoice", "Payment", "Estimate", "SalesReceipt", "RefundReceipt", "Purchase")
MAX_LOOKBACK = timedelta(days=30) - timedelta(minutes=5)  # QuickBooks' 30 days, with room for clock skew
MAX_OBJECTS = 1000  # what one CDC answer holds at most: more changes than that come in later passes
# The next pass starts a little before this one's answer: a change committed as QuickBooks answered is seen
# twice rather than never (applying a state twice changes nothing).
OVERLAP = timedelta(minutes=1)


def reconcile_due_connections() -> int:
    """Reconcile every connected company whose last pass is older than the interval; how many ran."""
    interval = timedelta(seconds=float(current_app.config["RECONCILE_INTERVAL_SECONDS"]))
    with db.new_session() as session:
        query = select(QuickBooksConnection.realm_id).where(QuickBooksConnection.state == QuickBooksConnection.ACTIVE)
        realms = sorted(set(session.scalars(query)))
    ran = 0
    for realm_id in realms:
        if claim(realm_id, interval):
            reconcile_realm(realm_id, interval)
            ran += 1
    return ran


def claim(realm_id: str, interval: timedelta) -> bool:
    """Take the company's next pass if it is due (one worker wins when several look at once)."""
    now = utcnow()
    with db.new_session() as session:
        if session.scalars(select(QuickBooksReconciliation.id).filter_by(realm_id=realm_id)).first() is None:
            session.add(QuickBooksReconciliation(realm_id=realm_id))
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
        attempted = QuickBooksReconciliation.attempted_at
        taken = session.execute(
            update(QuickBooksReconciliation)
            .where(QuickBooksReconciliation.realm_id == realm_id)
            .where(or_(attempted.is_(None), attempted <= now - interval))
            .values(attempted_at=now)
        )
        session.commit()
        return taken.rowcount == 1


def reconcile_realm(realm_id: str, interval: timedelta) -> None:
    with db.new_session() as session:
        state = session.scalars(select(QuickBooksReconciliation).filter_by(realm_id=realm_id)).one()
        connection = connection_for_realm(session, realm_id)
        if connection is None or connection.state != QuickBooksConnection.ACTIVE:
            return
        now = utcnow()
        oldest = session.scalar(select(func.min(QuickBooksDocument.created_at)).filter_by(realm_id=realm_id))
        if oldest is None:  # no document of ours in this company yet: nothing to ask for
            remember(session, state, mark(now))
            return
        since = starting_point(state.changed_since, oldest, now, interval, realm_id)
        follower = Follower(session, connection, current_app.config)
        try:
            changes, answered_at = follower.books.changes_since(list(CDC_ENTITIES), since)
            apply_changes(follower, realm_id, changes)
            settle_covered_events(session, realm_id, before=now)
        except (TransientError, QuickBooksFault, QuickBooksAuthExpired) as exc:
            session.rollback()
            state.last_error = describe(exc)
            session.commit()
            log.warning("reconciling QuickBooks company %s: %s; trying again next time", realm_id, describe(exc))
            return
        remember(session, state, next_mark(changes, answered_at, since))
        if follower.changed:
            log.info("reconciling QuickBooks company %s: %d document(s) changed", realm_id, len(follower.changed))
    follower.write_back()


def starting_point(stored: str | None, oldest: datetime, now: datetime, interval: timedelta, realm_id: str) -> str:
    """changedSince: the stored mark, or at first the oldest document (or one interval back if earlier);
    never beyond QuickBooks' 30 days (changes older than that are lost to reconciliation)."""
    since = parse_time(stored) or min(oldest, now - interval)
    if since < now - MAX_LOOKBACK:
        if stored:
            log.warning("QuickBooks company %s was last reconciled at %s: looking back 30 days only", realm_id, stored)
        since = now - MAX_LOOKBACK
    return mark(since)


def mark(moment: datetime) -> str:
    """A time as changedSince takes it: whole seconds with an offset (rounding down only overlaps)."""
    return moment.isoformat(timespec="seconds")


def next_mark(changes: dict[str, list[dict]], answered_at: str, since: str) -> str:
    """QuickBooks' own time of the answer (less OVERLAP); when the answer was full (1000 objects), the
    earliest of each entity's newest change, so the next pass picks up what did not fit."""
    total = sum(len(records) for records in changes.values())
    answered = parse_time(answered_at)
    if total < MAX_OBJECTS and answered:
        return mark(answered - OVERLAP)
    newest = [
        max(stamps)
        for stamps in (
            [parse_time(last_updated(record)) for record in records if parse_time(last_updated(record))]
            for records in changes.values()
        )
        if stamps
    ]
    if newest:
        log.warning("ChangeDataCapture answered %d objects: the next pass goes on from %s", total, min(newest))
        return mark(min(newest))
    return since


def last_updated(record: dict) -> str:
    return str((record.get("MetaData") or {}).get("LastUpdatedTime") or "")


def apply_changes(follower: Follower, realm_id: str, changes: dict[str, list[dict]]) -> None:
    """Apply the changed documents of ours; re-read our invoices a changed payment may have moved."""
    session = follower.session
    for entity in DOCUMENT_ENTITIES:
        records = {str(record.get("Id")): record for record in changes.get(entity) or []}
        for document in documents_among(session, realm_id, entity, list(records)):
            follower.read.add((entity, document.quickbooks_id))  # its state is in hand: no read needed
            follower.apply(document, records[document.quickbooks_id])
    for payment in changes.get("Payment") or []:
        gone = str(payment.get("status", "")).lower() == "deleted"
        invoices = invoices_a_payment_may_move(
            session,
            realm_id,
            str(payment.get("Id")),
            [] if gone else linked_invoice_ids(payment),
            widen=gone or is_voided(payment),
        )
        follower.follow_many(invoices)
    session.commit()


def documents_among(session, realm_id: str, entity: str, ids: list[str]) -> list[QuickBooksDocument]:
    found = []
    for start in range(0, len(ids), 500):
        query = select(QuickBooksDocument).filter_by(realm_id=realm_id, entity=entity)
        found += session.scalars(query.where(QuickBooksDocument.quickbooks_id.in_(ids[start : start + 500])))
    return found


def settle_covered_events(session, realm_id: str, *, before: datetime) -> None:
    """Webhook events received before this pass began are answered by it (their jobs find them done)."""
    query = select(QuickBooksEvent).filter_by(realm_id=realm_id).where(QuickBooksEvent.processed_at.is_(None))
    settle_quietly(list(session.scalars(query.where(QuickBooksEvent.received_at <= before))), "reconciled")


def remember(session, state: QuickBooksReconciliation, changed_since: str) -> None:
    state.changed_since, state.succeeded_at, state.last_error = changed_since, utcnow(), None
    session.commit()
