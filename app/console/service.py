"""What the console reads: executions and connections of one portal. One query each, portal always given."""

import json

from sqlalchemy import Text, cast, func, or_, select

from app.storage.models import Execution, QuickBooksConnection, QuickBooksDocument, utcnow

SUCCESS, FAIL_CONTINUE = "SUCCESS", "FAIL_CONTINUE"
PAGE_SIZE = 25
MAX_QUERY = 200  # a search longer than this is not a record id, number or name

# Errors a console setting fixes: error code → the setting (the settings page anchors each as #setting-<key>).
SETTING_FOR_ERROR = {
    "CONTACT_NOT_ELIGIBLE": "contact_sync_filters",
    "DUPLICATE_DISPLAY_NAME": "display_name_conflicts",
    "CURRENCY_MISMATCH": "display_name_conflicts",
    "SERVICE_DATE_REQUIRED": "service_dates",
    "DUPLICATE_DOCUMENT_NUMBER": "document_numbers",
    "PAYMENT_FROM_INVOICE": "allow_invoice_payments",
    "TAX_CODE_MISSING": "tax_codes",
    "PRODUCT_NOT_FOUND": "income_account",
}


def setting_for(error_code: str | None) -> str | None:
    """The setting that can fix this error, if one can."""
    return SETTING_FOR_ERROR.get(error_code or "")


def _of_portal(portal_id: int):
    return select(Execution).where(Execution.portal_id == portal_id)


def _unresolved(query, *, action: str = "", error_code: str = ""):
    query = query.where(Execution.outcome == FAIL_CONTINUE, Execution.dismissed_at.is_(None))
    if action:
        query = query.where(Execution.action == action)
    if error_code:
        query = query.where(Execution.error_code == error_code)
    return query


def get_execution(session, *, portal_id: int, execution_id: int) -> Execution | None:
    """The execution if it belongs to this portal; None for another portal's (the console answers 404)."""
    return session.scalars(_of_portal(portal_id).where(Execution.id == execution_id)).first()


def unresolved_failures(session, *, portal_id: int, action: str = "", error_code: str = "") -> list[Execution]:
    """Failed executions not dismissed, newest first."""
    query = _unresolved(_of_portal(portal_id), action=action, error_code=error_code)
    return list(session.scalars(query.order_by(Execution.created_at.desc(), Execution.id.desc()).limit(500)))


def failure_counts(session, *, portal_id: int, action: str = "") -> dict[str, int]:
    """Unresolved failures per error code (of one action, when given)."""
    query = _unresolved(
        select(Execution.error_code, func.count()).where(Execution.portal_id == portal_id), action=action
    ).group_by(Execution.error_code)
    return {code or "": count for code, count in session.execute(query)}


def _contains(column, text: str):
    """A case-insensitive substring match on a text column, the user's % and _ taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return column.ilike(f"%{escaped}%", escape="\\")


def search_history(session, *, portal_id: int, q: str = "", page: int = 1) -> tuple[list[Execution], bool]:
    """Executions newest first, optionally matching `q`; (page, has_more).

    `q` is a HubSpot record id, a QuickBooks document number or id, a QuickBooks customer id or a callbackId,
    matched exactly; or words (a customer's name, an email), matched in what the execution stored about the
    customer: its notes (customers chosen, display names taken) and its error message (the contact that could
    not be billed). Only stored data is searched; QuickBooks is not asked.
    """
    query = _of_portal(portal_id)
    q = (q or "").strip()[:MAX_QUERY]
    if q:
        outputs = Execution.outputs
        # JSON columns are stored as text with non-ASCII and quotes escaped: look for that spelling too.
        in_json = json.dumps(q)[1:-1]
        notes = cast(Execution.notes, Text)
        writes = cast(Execution.quickbooks_writes, Text)
        matches = [
            Execution.object_id == q,
            Execution.callback_id == q,
            outputs["quickbooks_document_number"].as_string() == q,
            outputs["quickbooks_document_id"].as_string() == q,
            outputs["quickbooks_customer_id"].as_string() == q,
            # A document written before the execution failed (a paid invoice whose payment failed).
            _contains(writes, f'"number": {json.dumps(q)}'),
            _contains(writes, f'"number":{json.dumps(q)}'),
        ]
        if any(character.isalpha() for character in q):  # words (a name): numbers match exactly, above
            matches += [_contains(Execution.error_message, q), _contains(notes, q), _contains(notes, in_json)]
        query = query.where(or_(*matches))
    page = max(page, 1)
    rows = list(
        session.scalars(
            query.order_by(Execution.created_at.desc(), Execution.id.desc())
            .offset((page - 1) * PAGE_SIZE)
            .limit(PAGE_SIZE + 1)
        )
    )
    return rows[:PAGE_SIZE], len(rows) > PAGE_SIZE


def connection_health(session, *, portal_id: int) -> list[dict]:
    """Each connection with its last success and last failure, from the executions that used it."""
    connections = session.scalars(
        select(QuickBooksConnection)
        .where(QuickBooksConnection.portal_id == portal_id)
        .order_by(QuickBooksConnection.id)
    )
    health = []
    for connection in connections:
        of_realm = _of_portal(portal_id).where(Execution.realm_id == connection.realm_id)
        last_success = session.scalars(
            of_realm.where(Execution.outcome == SUCCESS).order_by(Execution.finished_at.desc()).limit(1)
        ).first()
        last_failure = session.scalars(
            of_realm.where(Execution.outcome == FAIL_CONTINUE).order_by(Execution.finished_at.desc()).limit(1)
        ).first()
        health.append({"connection": connection, "last_success": last_success, "last_failure": last_failure})
    return health


def dismiss(session, execution: Execution) -> bool:
    """Hide a failure from the sync errors (history keeps it); False when it is not a failure shown there."""
    if execution.outcome != FAIL_CONTINUE or execution.dismissed_at is not None:
        return False
    execution.dismissed_at = utcnow()
    session.commit()
    return True


def write_back_problems(session, *, portal_id: int) -> list[str]:
    """Why documents could not be shown on their HubSpot records (missing scopes, refusals), newest first."""
    query = (
        select(QuickBooksDocument.write_back_error)
        .where(
            QuickBooksDocument.portal_id == portal_id,
            QuickBooksDocument.write_back_error.is_not(None),
            QuickBooksDocument.write_back_error.not_like("Waiting to retry%"),
        )
        .order_by(QuickBooksDocument.updated_at.desc())
        .limit(50)
    )
    return list(dict.fromkeys(session.scalars(query)))  # each reason once
