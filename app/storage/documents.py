"""QuickBooks documents of executions: recorded when created, updated from what QuickBooks says later."""

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError

from actions import DOCUMENT_KINDS
from app.quickbooks.status import document_state
from app.storage.models import Execution, QuickBooksDocument


def record_document(session, execution: Execution) -> QuickBooksDocument | None:
    """The document a successful execution created (or the existing row when another enrollment did)."""
    outputs = execution.outputs or {}
    document_id = str(outputs.get("quickbooks_document_id") or "")
    if execution.action not in DOCUMENT_KINDS or not document_id or not execution.realm_id:
        return None
    entity, kind = DOCUMENT_KINDS[execution.action]
    existing = get_document(session, realm_id=execution.realm_id, entity=entity, quickbooks_id=document_id)
    if existing is not None:
        return existing
    document = QuickBooksDocument(
        portal_id=execution.portal_id,
        realm_id=execution.realm_id,
        entity=entity,
        kind=kind,
        quickbooks_id=document_id,
        object_type=execution.object_type,
        object_id=str(execution.object_id),
        execution_id=execution.id,
        number=outputs.get("quickbooks_document_number") or None,
        url=outputs.get("quickbooks_document_url") or None,
        payment_id=outputs.get("quickbooks_payment_id") or None,
    )
    session.add(document)
    try:
        session.commit()
    except IntegrityError:  # recorded a moment ago by a concurrent enrollment of the same document
        session.rollback()
        return get_document(session, realm_id=execution.realm_id, entity=entity, quickbooks_id=document_id)
    return document


def awaiting_write_back(session, limit: int = 5000) -> list[int]:
    """Documents never written onto their HubSpot record, unless refused for good (a missing scope...)."""
    error = QuickBooksDocument.write_back_error
    waiting = or_(error.is_(None), error.startswith("Waiting"))
    query = select(QuickBooksDocument.id).where(QuickBooksDocument.written_back_at.is_(None), waiting).limit(limit)
    return list(session.scalars(query))


def get_document(session, *, realm_id: str, entity: str, quickbooks_id: str) -> QuickBooksDocument | None:
    query = select(QuickBooksDocument).filter_by(realm_id=realm_id, entity=entity, quickbooks_id=str(quickbooks_id))
    return session.scalars(query).first()


def documents_for_record(session, *, portal_id: int, object_type: str, object_id: str) -> list[QuickBooksDocument]:
    query = select(QuickBooksDocument).filter_by(portal_id=portal_id, object_type=object_type, object_id=str(object_id))
    return list(session.scalars(query.order_by(QuickBooksDocument.id)))


def apply_state(document: QuickBooksDocument, record: dict | None, today=None) -> bool:
    """Take QuickBooks' state of the document unless ours is newer (events come late and out of order).

    True when anything HubSpot shows changed. A deletion always wins: nothing newer can follow it.
    """
    state = document_state(document.entity, record, today)
    updated = state.get("updated", "")
    if updated and document.quickbooks_updated_at and updated < document.quickbooks_updated_at:
        return False
    before = (document.status, document.amount, document.balance, document.number)
    document.status = state["status"]
    document.balance = state.get("balance", document.balance)
    for field in ("amount", "number", "txn_date", "currency"):
        if state.get(field):
            setattr(document, field, state[field])
    if updated:
        document.quickbooks_updated_at = updated
    return (document.status, document.amount, document.balance, document.number) != before
