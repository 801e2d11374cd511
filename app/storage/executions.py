"""Execution services: idempotent record, atomic claims and leases, outcomes. One read or write each.

A claim is a lease held by one worker process (`lease_owner`, see `worker_identity`) until `lease_until`.
Leases are short (LEASE_SECONDS, 45 s by default) and the worker renews the ones it holds while it works
(`renew_leases`, from app.worker.LeaseKeeper), so a worker that died loses its work within one lease; a
worker starting on the same host takes back at once what a dead process of that host held
(`orphaned_executions`, `release_orphan`).
"""

import os
import secrets
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import and_, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import make_transient_to_detached

from app.storage.models import Execution, utcnow

DEFAULT_LEASE = timedelta(seconds=45)  # LEASE_SECONDS; renewed every third of it while the work goes on
RUN_LEASE = DEFAULT_LEASE
CALLBACK_LEASE = DEFAULT_LEASE
HELD = (Execution.RUNNING, Execution.FINISHED)  # the states a lease is held in: a run, a callback completion


# -- who holds a lease -----------------------------------------------------------------------------------

_identities: dict[int, str] = {}  # pid → identity: a forked child is another process with its own boot id


def host_key() -> str:
    """The host as far as process ids go: its name and its pid namespace (containers sharing a host name,
    with --network=host say, each have their own pids; one must never judge the other's by its own)."""
    try:
        namespace = f"/{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        namespace = ""
    return f"{socket.gethostname()[:200]}{namespace}"


def worker_identity() -> str:
    """This process as a lease owner: "host/pid-namespace:pid:boot-id", the boot id random per process start,
    so a restarted worker that got its predecessor's pid (pid 1 in a container) still knows it is another."""
    pid = os.getpid()
    identity = _identities.get(pid)
    if identity is None:
        identity = _identities.setdefault(pid, f"{host_key()}:{pid}:{secrets.token_hex(6)}")
    return identity


worker_identity()  # the boot id is chosen when the process starts


def parse_owner(owner: str | None) -> tuple[str, int, str] | None:
    """(host key, pid, boot id) of a lease owner, or None for anything else."""
    parts = (owner or "").rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    return parts[0], int(parts[1]), parts[2]


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists here (a zombie, killed but not yet reaped, counts as dead)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: alive, another user's
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def is_orphaned(owner: str | None, me: str | None = None) -> bool:
    """Whether the owner is a worker process of this host that is gone: its pid is dead, or it is this
    process's pid under another boot id (an earlier life of a restarted worker). Owners on other hosts
    are never judged here: their leases run out instead."""
    me = me or worker_identity()
    theirs, mine = parse_owner(owner), parse_owner(me)
    if theirs is None or mine is None or owner == me or theirs[0] != mine[0]:
        return False
    if theirs[1] == mine[1]:
        return True
    return not pid_alive(theirs[1])


def get_execution(session, execution_id: int) -> Execution | None:
    return session.get(Execution, execution_id, populate_existing=True)


def get_executions(session, execution_ids: list[int]) -> list[Execution]:
    if not execution_ids:
        return []
    return list(session.scalars(select(Execution).where(Execution.id.in_(execution_ids)).order_by(Execution.id)))


def get_by_callback(session, *, portal_id: int, callback_id: str) -> Execution | None:
    query = select(Execution).where(Execution.portal_id == portal_id, Execution.callback_id == callback_id)
    return session.scalars(query).first()


def get_or_create_execution(session, *, portal_id: int, callback_id: str, expires_in: timedelta, **fields):
    """Insert the execution unless (portal, callbackId) is known: (the execution, whether it was inserted).

    One statement, INSERT ... ON CONFLICT DO NOTHING RETURNING: a new delivery's row comes back with it.
    Concurrent deliveries race safely on the unique key: the database lets one insert and the others insert
    nothing; only those read the existing row.
    """
    session.rollback()  # end a read the caller left open, so the insert starts its own transaction (SQLite: waits)
    values = {"portal_id": portal_id, "callback_id": callback_id, "expires_at": utcnow() + expires_in, **fields}
    inserted = session.execute(INSERT_UNLESS_KNOWN[session.get_bind().dialect.name], values).mappings().first()
    if inserted is None:
        execution = get_by_callback(session, portal_id=portal_id, callback_id=callback_id)
    else:
        execution = loaded_execution(session, inserted)
    session.commit()  # also when nothing was inserted: SQLite holds its write lock until the transaction ends
    return execution, inserted is not None


def insert_unless_known(dialect_insert):
    """INSERT ... ON CONFLICT (portal_id, callback_id) DO NOTHING RETURNING every column, the values as parameters."""
    return (
        dialect_insert(Execution.__table__)
        .on_conflict_do_nothing(index_elements=["portal_id", "callback_id"])
        .returning(*Execution.__table__.c)
    )


# Built once per dialect: a Core statement given its values as parameters takes a third less CPU than an
# ORM-enabled insert built with .values() for each delivery.
INSERT_UNLESS_KNOWN = {
    "postgresql": insert_unless_known(postgresql.insert),
    "sqlite": insert_unless_known(sqlite.insert),
}


def loaded_execution(session, row) -> Execution:
    """The execution of a row just written and read back (RETURNING), as if the session had loaded it."""
    execution = Execution(**row)
    make_transient_to_detached(execution)  # its attributes count as loaded from the database, not as changes
    session.add(execution)
    return execution


def claim_for_run(
    session, execution_id: int, *, owner: str | None = None, lease: timedelta = RUN_LEASE, reclaim: bool = False
) -> bool:
    """Take the execution for one run: pending, or running under a lease that ran out (a crashed worker), or
    (`reclaim`) running under this worker's own lease from a run the database cut short.

    One conditional UPDATE: of two workers claiming at once, exactly one gets it.
    """
    now = utcnow()
    owner = owner or worker_identity()
    running_free = Execution.lease_until < now
    if reclaim:
        running_free = or_(running_free, Execution.lease_owner == owner)
    claimable = or_(Execution.status == Execution.PENDING, and_(Execution.status == Execution.RUNNING, running_free))
    result = session.execute(
        update(Execution)
        .where(Execution.id == execution_id, claimable)
        .values(
            status=Execution.RUNNING,
            lease_until=now + lease,
            lease_owner=owner,
            attempts=Execution.attempts + 1,
            updated_at=now,
        )
    )
    session.commit()
    return result.rowcount == 1


def claim_for_callback(
    session, execution_id: int, *, owner: str | None = None, lease: timedelta = CALLBACK_LEASE
) -> bool:
    """Take a finished execution for one completion attempt, so two workers never complete it twice at once."""
    now = utcnow()
    free = or_(Execution.lease_until.is_(None), Execution.lease_until < now)
    result = session.execute(
        update(Execution)
        .where(Execution.id == execution_id, Execution.status == Execution.FINISHED, free)
        .values(
            lease_until=now + lease,
            lease_owner=owner or worker_identity(),
            callback_attempts=Execution.callback_attempts + 1,
            updated_at=now,
        )
    )
    session.commit()
    return result.rowcount == 1


def claim_waiting_callbacks(
    session, *, portal_id: int, besides: int, limit: int, owner: str | None = None, lease: timedelta = CALLBACK_LEASE
) -> list[int]:
    """Other finished executions of the portal whose callback completion is due, taken for the same attempt: at
    month-end one request completes up to a hundred callbacks, and their own jobs then find them taken or done."""
    now = utcnow()
    free = or_(Execution.lease_until.is_(None), Execution.lease_until < now)
    waiting = (
        select(Execution.id)
        .where(
            Execution.portal_id == portal_id,
            Execution.id != besides,
            Execution.status == Execution.FINISHED,
            Execution.completed_at.is_(None),
            Execution.expires_at > now,
            or_(Execution.next_run_at.is_(None), Execution.next_run_at <= now),
            free,
        )
        .order_by(Execution.id)
        .limit(limit)
    )
    ids = list(session.scalars(waiting))
    if not ids:
        session.commit()
        return []
    claimed = session.scalars(
        update(Execution)
        .where(Execution.id.in_(ids), Execution.status == Execution.FINISHED, free)  # not taken meanwhile
        .values(
            lease_until=now + lease,
            lease_owner=owner or worker_identity(),
            callback_attempts=Execution.callback_attempts + 1,
            updated_at=now,
        )
        .returning(Execution.id)
        .execution_options(synchronize_session=False)
    ).all()
    session.commit()
    return sorted(claimed)


def renew_leases(session, execution_ids, *, owner: str | None = None, lease: timedelta = DEFAULT_LEASE) -> set[int]:
    """Extend the leases `owner` (this process) still holds on these executions; the ids still held.

    Only one's own lease: an execution another worker took over (after this one's lease ran out) or that
    was finished, postponed or released meanwhile is left as it is.
    """
    ids = sorted(set(execution_ids))
    if not ids:
        return set()
    owner = owner or worker_identity()
    held = and_(
        Execution.id.in_(ids),
        Execution.lease_owner == owner,
        Execution.status.in_(HELD),
        Execution.lease_until.is_not(None),
    )
    session.execute(
        update(Execution).where(held).values(lease_until=utcnow() + lease).execution_options(synchronize_session=False)
    )
    still_held = set(session.scalars(select(Execution.id).where(held)))
    session.commit()
    return still_held


def holds_lease(session, execution_id: int, owner: str | None = None) -> bool:
    """Whether `owner` (this process) still holds the execution's lease: no other worker took it over."""
    current = session.scalar(select(Execution.lease_owner).where(Execution.id == execution_id))
    return current == (owner or worker_identity())


def orphaned_executions(session, *, me: str | None = None, limit: int = 500) -> list[Execution]:
    """Executions held (running, or a callback completion under way) by a worker process of this host that
    is gone, however long their lease still runs: a restarted worker takes them back at once."""
    me = me or worker_identity()
    query = (
        select(Execution)
        .where(
            Execution.status.in_(HELD),
            Execution.lease_until.is_not(None),
            Execution.lease_owner.startswith(parse_owner(me)[0] + ":", autoescape=True),
            Execution.lease_owner != me,
        )
        .order_by(Execution.id)
        .limit(limit)
    )
    return [execution for execution in session.scalars(query) if is_orphaned(execution.lease_owner, me)]


def release_orphan(session, execution: Execution) -> bool:
    """Free the lease a dead worker held, so the execution can be claimed at once: a run goes back to
    pending, a completion stays finished. Conditional on the same owner and state, so a lease someone
    claimed meanwhile is never touched; False then."""
    now = utcnow()
    values = {"lease_until": None, "lease_owner": None, "next_run_at": None, "updated_at": now}
    if execution.status == Execution.RUNNING:
        values["status"] = Execution.PENDING
    result = session.execute(
        update(Execution)
        .where(
            Execution.id == execution.id,
            Execution.status == execution.status,
            Execution.lease_owner == execution.lease_owner,
        )
        .values(**values)
        .execution_options(synchronize_session=False)
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
    execution.lease_owner = None
    execution.next_run_at = None


def postpone(execution: Execution, *, delay: float, status: str, error: str = "") -> None:
    """Hand the execution back for a later try (after a transient failure)."""
    execution.status = status
    execution.lease_until = None
    execution.lease_owner = None
    execution.next_run_at = utcnow() + timedelta(seconds=delay)
    if status == Execution.FINISHED:
        execution.last_callback_error = error[:2000]


def is_due(execution: Execution, now: datetime | None = None) -> bool:
    now = now or datetime.now(UTC)
    return execution.next_run_at is None or execution.next_run_at <= now


def stale_executions(session, *, older_than: timedelta, limit: int = 500) -> list[Execution]:
    """Executions whose job was lost: pending or finished with nothing scheduled, or running or completing
    under a lease that ran out (its worker died: leases are renewed while the work goes on)."""
    now = utcnow()
    cutoff = now - older_than
    due = or_(Execution.next_run_at.is_(None), Execution.next_run_at < cutoff)
    lost = or_(
        and_(Execution.status.in_([Execution.PENDING, Execution.FINISHED]), Execution.updated_at < cutoff, due),
        and_(Execution.status.in_(HELD), Execution.lease_until < now),
    )
    return list(session.scalars(select(Execution).where(lost).order_by(Execution.id).limit(limit)))


def mark_requeued(session, execution_ids: list[int]) -> None:
    """Their jobs were queued again just now: the sweep leaves them for another STALE_AFTER_SECONDS."""
    if execution_ids:
        session.execute(
            update(Execution)
            .where(Execution.id.in_(execution_ids), Execution.status.in_([Execution.PENDING, Execution.FINISHED]))
            .values(updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        session.commit()


def waiting_executions(session, *, after_id: int = 0, limit: int = 500) -> list[Execution]:
    """Executions waiting for a job, scheduled or not, whose lease (if any) ran out: what a queue that lost
    its jobs (Redis restarted without persistence) must be given again. By id, from `after_id`."""
    now = utcnow()
    free = or_(Execution.lease_until.is_(None), Execution.lease_until < now)
    waiting = or_(
        and_(Execution.status.in_([Execution.PENDING, Execution.FINISHED]), free),
        and_(Execution.status.in_(HELD), Execution.lease_until < now),
    )
    query = select(Execution).where(waiting, Execution.id > after_id).order_by(Execution.id).limit(limit)
    return list(session.scalars(query))


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
            lease_owner=None,
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
