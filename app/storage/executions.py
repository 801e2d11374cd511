"""Execution services: idempotent record, atomic claims, outcomes. One read or write each."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError

from app.storage.models import Execution, utcnow

RUN_LEASE = timedelta(minutes=10)
CALLBACK_LEASE = timedelta(minutes=2)


def get_execution(session, execution_id: int) -> Execution | None:
    return session.get(Execution, execution_id, populate_existing=True)


def get_by_callback(session, *, portal_id: int, callback_id: str) -> Execution | None:
    query = select(Execution).where(Execution.portal_id == portal_id, Execution.callback_id == callback_id)
    return session.scalars(query).first()


def get_or_create_execution(session, *, portal_id: int, callback_id: str, expires_in: timedelta, **fields):
    """Insert the execution unless (portal, callbackId) is known.

    Concurrent deliveries race safely on the unique key.
    """
    existing = get_by_callback(session, portal_id=portal_id, callback_id=callback_id)
    if existing:
        return existing, False
    session.rollback()  # end the read so the insert starts its own transaction (SQLite: waits for the lock)
    execution = Execution(portal_id=portal_id, callback_id=callback_id, expires_at=utcnow() + expires_in, **fields)
    session.add(execution)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        return get_by_callback(session, portal_id=portal_id, callback_id=callback_id), False
    return execution, True


def claim_for_run(session, execution_id: int) -> bool:
    """Take the execution for one run: pending, or running under a lease that ran out (a crashed worker)."""
    now = utcnow()
    claimable = or_(
        Execution.status == Execution.PENDING, and_(Execution.status == Execution.RUNNING, Execution.lease_until < now)
    )
    result = session.execute(
        update(Execution)
        .where(Execution.id == execution_id, claimable)
        .values(status=Execution.RUNNING, lease_until=now + RUN_LEASE, attempts=Execution.attempts + 1, updated_at=now)
    )
    session.commit()
    return result.rowcount == 1


def claim_for_callback(session, execution_id: int) -> bool:
    """Take a finished execution for one completion attempt, so two workers never complete it twice at once."""
    now = utcnow()
    free = or_(Execution.lease_until.is_(None), Execution.lease_until < now)
    result = session.execute(
        update(Execution)
        .where(Execution.id == execution_id, Execution.status == Execution.FINISHED, free)
        .values(lease_until=now + CALLBACK_LEASE, callback_attempts=Execution.callback_attempts + 1, updated_at=now)
    )
    session.commit()
    return result.rowcount == 1


def finish(execution: Execution, *, outcome: str, outputs: dict, error_code: str = "", error_message: str = ""):
    execution.status = Execution.FINISHED
    execution.outcome = outcome
    execution.outputs = outputs
    execution.error_code = error_code or None
    execution.error_message = error_message or None
    execution.finished_at = utcnow()
    execution.lease_until = None
    execution.next_run_at = None


def postpone(execution: Execution, *, delay: float, status: str, error: str = "") -> None:
    """Hand the execution back for a later try (after a transient failure)."""
    execution.status = status
    execution.lease_until = None
    execution.next_run_at = utcnow() + timedelta(seconds=delay)
    if status == Execution.FINISHED:
        execution.last_callback_error = error[:2000]


def is_due(execution: Execution, now: datetime | None = None) -> bool:
    now = now or datetime.now(UTC)
    return execution.next_run_at is None or execution.next_run_at <= now


def stale_executions(session, *, older_than: timedelta, limit: int = 500) -> list[Execution]:
    """Executions whose job was lost: pending or finished with nothing scheduled, or running with a dead lease."""
    now = utcnow()
    cutoff = now - older_than
    due = or_(Execution.next_run_at.is_(None), Execution.next_run_at < cutoff)
    lost = or_(
        and_(Execution.status.in_([Execution.PENDING, Execution.FINISHED]), Execution.updated_at < cutoff, due),
        and_(Execution.status == Execution.RUNNING, Execution.lease_until < now),
    )
    return list(session.scalars(select(Execution).where(lost).order_by(Execution.id).limit(limit)))


# -- console retry ---------------------------------------------------------------------------------------

RETRY_NOTE = "Retried from the console"
RETRYABLE = (Execution.FINISHED, Execution.COMPLETED, Execution.EXPIRED)


def reset_for_retry(session, execution: Execution) -> bool:
    """Take a failed execution back to pending so the worker runs it again; False when it cannot be retried.

    The same execution and callbackId: the retry reuses its QuickBooks request ids and its journal
    (`quickbooks_writes` are kept), so it resumes and never writes a second document. Its outcome, outputs,
    error, run attempts, lease, schedule and dismissal are cleared; a note records the retry. `completed_at`
    is kept: set, it tells the worker that HubSpot already took an earlier outcome for this callback.

    One conditional UPDATE, so a double click, or a worker completing the callback at this moment, never
    resets it twice or under a running job: only a finished failure whose lease is free, unchanged since
    it was read (`updated_at`), is taken.
    """
    now = utcnow()
    earlier = " ".join(part for part in (execution.outcome, execution.error_code) if part)
    note = f"{RETRY_NOTE} on {now:%Y-%m-%d %H:%M} UTC after {earlier}."
    result = session.execute(
        update(Execution)
        .where(
            Execution.id == execution.id,
            Execution.portal_id == execution.portal_id,
            Execution.outcome == "FAIL_CONTINUE",
            Execution.status.in_(RETRYABLE),
            or_(Execution.lease_until.is_(None), Execution.lease_until < now),
            Execution.updated_at == execution.updated_at,
        )
        .values(
            status=Execution.PENDING,
            outcome=None,
            outputs={},
            error_code=None,
            error_message=None,
            attempts=0,
            lease_until=None,
            next_run_at=None,
            finished_at=None,
            dismissed_at=None,
            notes=[*(execution.notes or []), note],
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    session.commit()
    session.refresh(execution)
    return result.rowcount == 1


def was_retried(execution: Execution) -> bool:
    return any(str(note).startswith(RETRY_NOTE) for note in execution.notes or [])
