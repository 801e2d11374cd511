"""What the console reads: executions and connections of one portal. One query each, portal always given."""

from sqlalchemy import func, or_, select

from app.storage.models import Execution, QuickBooksConnection, utcnow

SUCCESS, FAIL_CONTINUE = "SUCCESS", "FAIL_CONTINUE"
PAGE_SIZE = 25


def _of_portal(portal_id: int):
    return select(Execution).where(Execution.portal_id == portal_id)


def get_execution(session, *, portal_id: int, execution_id: int) -> Execution | None:
    """The execution if it belongs to this portal; None for another portal's (the console answers 404)."""
    return session.scalars(_of_portal(portal_id).where(Execution.id == execution_id)).first()


def unresolved_failures(session, *, portal_id: int, action: str = "", error_code: str = "") -> list[Execution]:
    """Failed executions not dismissed, newest first."""
    query = _of_portal(portal_id).where(Execution.outcome == FAIL_CONTINUE, Execution.dismissed_at.is_(None))
    if action:
        query = query.where(Execution.action == action)
    if error_code:
        query = query.where(Execution.error_code == error_code)
    return list(session.scalars(query.order_by(Execution.created_at.desc(), Execution.id.desc()).limit(500)))


def failure_counts(session, *, portal_id: int) -> dict[str, int]:
    """Unresolved failures per error code."""
    query = (
        select(Execution.error_code, func.count())
        .where(Execution.portal_id == portal_id, Execution.outcome == FAIL_CONTINUE, Execution.dismissed_at.is_(None))
        .group_by(Execution.error_code)
    )
    return {code or "": count for code, count in session.execute(query)}


def search_history(session, *, portal_id: int, q: str = "", page: int = 1) -> tuple[list[Execution], bool]:
    """Executions newest first, matching a record id, document number or customer id; (page, has_more)."""
    query = _of_portal(portal_id)
    if q:
        like = f"%{q}%"
        query = query.where(
            or_(
                Execution.object_id == q,
                Execution.outputs["quickbooks_document_number"].as_string() == q,
                Execution.outputs["quickbooks_customer_id"].as_string() == q,
                Execution.outputs["quickbooks_document_id"].as_string() == q,
                Execution.error_message.ilike(like),
                Execution.callback_id == q,
            )
        )
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


def dismiss(session, execution: Execution) -> None:
    execution.dismissed_at = utcnow()
    session.commit()
