"""The worker half of an execution: run the action, store the outcome, complete HubSpot's callback.

`run_execution` is the only place that catches every exception: unknown errors become INTERNAL_ERROR,
never SUCCESS; transient ones are tried again later with the same QuickBooks request ids.
"""

import logging
import re
import threading
import time
from collections import Counter
from contextlib import ExitStack, contextmanager
from datetime import timedelta

import sentry_sdk
from flask import current_app
from sqlalchemy import select

from actions import ACTIONS, run_action
from actions.context import ActionContext
from actions.errors import ActionError, QuickBooksAuthExpired, QuickBooksFault, TransientError, explain_fault
from actions.steps.source import OBJECT_TYPES
from app import metrics, queue
from app.backoff import callback_backoff, execution_backoff
from app.extensions import db
from app.hubspot.client import HubSpotError, HubSpotNotFound, hubspot_client
from app.hubspot.oauth import HubSpotAuthError
from app.observability import execution_log_context
from app.quickbooks.client import books_client
from app.settings import effective_settings
from app.storage import documents
from app.storage import executions as execution_service
from app.storage.claims import DocumentClaims
from app.storage.connections import MappingStore, get_portal, list_connections, portal_installed
from app.storage.journal import ExecutionJournal
from app.storage.models import Execution, QuickBooksEvent, utcnow

log = logging.getLogger(__name__)

SUCCESS, FAIL_CONTINUE, BLOCK = "SUCCESS", "FAIL_CONTINUE", "BLOCK"


# -- answers to HubSpot ----------------------------------------------------------------------------------


def execution_expiry() -> timedelta:
    return parse_duration(current_app.config["EXECUTION_EXPIRY"])


def parse_duration(text: str) -> timedelta:
    """The ISO-8601 durations HubSpot takes (P6D, PT12H, P1DT2H30M)."""
    match = re.fullmatch(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?", text)
    if not match or not any(match.groups()):
        raise ValueError(f"EXECUTION_EXPIRY must be an ISO-8601 duration like P6D, not {text!r}")
    days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def reply_for(execution: Execution) -> dict:
    """BLOCK while the work is under way; the stored outcome once there is one (HubSpot retried)."""
    if execution.outcome:
        return {"outputFields": output_fields(execution)}
    return {
        "outputFields": {"hs_execution_state": BLOCK, "hs_expiration_duration": current_app.config["EXECUTION_EXPIRY"]}
    }


def output_fields(execution: Execution) -> dict[str, str]:
    return {**{k: str(v) for k, v in (execution.outputs or {}).items()}, "hs_execution_state": execution.outcome}


def failure_outputs(error: ActionError) -> dict[str, str]:
    return {"error_code": error.code, "error_message": error.message}


def settle_without_running(session, execution: Execution) -> bool:
    """Answer at once what needs no worker: an action not built yet, or a portal we have no tokens for."""
    error = None
    if execution.action not in ACTIONS:
        error = ActionError("ACTION_NOT_AVAILABLE", action=execution.action)
    elif not portal_installed(session, execution.portal_id):
        error = ActionError(
            "QUICKBOOKS_NOT_CONNECTED",
            reason=f"HubSpot account {execution.portal_id} has not "
            "installed qbo-actions on this server (or its installation was removed).",
        )
    if error is None:
        return False
    execution_service.finish(
        execution,
        outcome=FAIL_CONTINUE,
        outputs=failure_outputs(error),
        error_code=error.code,
        error_message=error.message,
    )
    execution.status = Execution.COMPLETED  # answered directly: there is no callback to complete
    execution.completed_at = utcnow()
    session.commit()
    return True


# -- running the action ----------------------------------------------------------------------------------


# Runs of this process the database cut short: a retry here may take back its own lease at once.
interrupted_runs: set[int] = set()


def run_execution(execution_id: int) -> None:
    with execution_log_context(execution_id):
        try:
            run_claimed(execution_id)
        except queue.INFRASTRUCTURE_ERRORS:
            interrupted_runs.add(execution_id)
            raise  # the job is tried again; the run resumes from its journal with the same request ids


def run_claimed(execution_id: int) -> None:
    with db.new_session() as session:
        reclaim = execution_id in interrupted_runs and execution_id not in lease_keeper().held
        if not execution_service.claim_for_run(session, execution_id, lease=lease_duration(), reclaim=reclaim):
            return  # already done, or another worker holds it
        interrupted_runs.discard(execution_id)
        with lease_keeper().holding(execution_id):  # renewed while the action runs; a dead worker's runs out
            execution = execution_service.get_execution(session, execution_id)
            session.commit()  # end the read; every later write starts its own transaction
            with execution_log_context(execution_id, execution.portal_id, execution.action):
                outcome = attempt(session, execution)
            if outcome is None:
                return
            if not execution_service.holds_lease(session, execution_id):
                # This process stalled past its lease and another worker took the execution over: that one
                # resumes from the same journal and request ids and stores the outcome; this one must not.
                log.warning("execution %s: lease lost to another worker; its outcome is left to that one", execution_id)
                return
            outputs, error, document = outcome
            execution_service.finish(
                execution,
                outcome=FAIL_CONTINUE if error else SUCCESS,
                outputs=outputs,
                error_code=error.code if error else "",
                error_message=error.message if error else "",
            )
            session.commit()
        metrics.execution_finished(execution.action, FAIL_CONTINUE if error else SUCCESS, error.code if error else "")
        log.info(
            "execution %s (%s %s) finished: %s",
            execution.id,
            execution.action,
            execution.callback_id,
            error.code if error else SUCCESS,
        )
    complete_callback(execution_id)  # first: HubSpot's record properties must never hold the workflow up
    if not error:
        try:
            with db.new_session() as session:
                remember_document(session, execution_service.get_execution(session, execution_id), document)
        except Exception:  # the document exists and HubSpot has the outcome; only the record's properties wait
            log.exception("execution %s: could not keep its document for the HubSpot record", execution_id)


def attempt(session, execution: Execution):
    """(outputs, error or None, the QuickBooks document written or None), or None when the execution was
    postponed after a transient failure. A refusal by HubSpot or QuickBooks is explained to the admin;
    anything else is a bug of ours: INTERNAL_ERROR, reported to Sentry tagged with portal, action, error
    code and execution id."""
    with sentry_sdk.isolation_scope() as scope:
        scope.clear_breadcrumbs()  # this execution's own trail, not the previous job's on this thread
        scope.set_tag("portal", str(execution.portal_id))
        scope.set_tag("action", execution.action)
        scope.set_tag("execution_id", str(execution.id))
        try:
            ctx = build_context(session, execution)
            result = run_action(ctx)
            return result.output_fields(ctx), None, getattr(result, "document", None)
        except ActionError as action_error:
            error = action_error
        except QuickBooksFault as fault:
            error = explain_fault(fault)
        except QuickBooksAuthExpired as expired:
            error = ActionError("QUICKBOOKS_AUTH_EXPIRED", company=expired.company)
        except TransientError as exc:
            if postpone_run(session, execution, exc):
                return None
            # The code says QuickBooks (a contract); the message says which service it really was.
            error = ActionError("QUICKBOOKS_UNAVAILABLE", service=exc.service, reason=exc.reason)
        except HubSpotAuthError as exc:  # the refresh token itself was refused: only a reinstall helps
            log.warning("execution %s: HubSpot refused the portal's refresh token: %s", execution.id, exc)
            error = ActionError(
                "HUBSPOT_REFUSED",
                what="qbo-actions' access to this HubSpot account",
                hubspot_says=f'"{str(exc)[:300]}" (when renewing its access token)',
                advice=" The app may have been uninstalled, or its access revoked.",
            )
        except HubSpotNotFound as exc:
            error = ActionError(
                "INVALID_INPUT",
                reason=f"HubSpot could not find a record this action reads "
                f"({exc.message or 'not found'}); it may have been deleted.",
            )
        except HubSpotError as exc:  # 4xx other than 404 (429 and 5xx are TransientError): not a bug of ours
            log.warning("execution %s: HubSpot refused a request: %s", execution.id, exc)
            error = hubspot_refusal(exc, execution)
        except queue.INFRASTRUCTURE_ERRORS:
            raise  # the database or the queue is away: nothing to tell the admin, the job is tried again
        except Exception as exc:  # the one broad catch: report it, never call it a success
            error = ActionError("INTERNAL_ERROR", reason=type(exc).__name__)
            scope.set_tag("error_code", error.code)
            sentry_sdk.capture_exception(exc)  # first: Sentry drops the logging integration's copy of it
            log.exception("execution %s failed unexpectedly", execution.id)
        return failure_outputs(error), error, None


# What HubSpot's refusals usually mean, in the admin's words.
HUBSPOT_REFUSAL_ADVICE = {
    400: " HubSpot answers 400 when a request names a property, record or association it does not accept in this "
    "account.",
    401: " HubSpot refused the app's access token even after renewing it.",
    403: " HubSpot answers 403 when the installation lacks a permission (scope) this action needs to read the "
    "record or the contacts, companies or line items associated with it.",
}


def hubspot_refusal(exc: HubSpotError, execution: Execution) -> ActionError:
    record = f"{OBJECT_TYPES.get(execution.object_type, ('', 'record'))[1]} {execution.object_id}"
    return ActionError(
        "HUBSPOT_REFUSED",
        what=f"a request qbo-actions needs to read {record}",
        hubspot_says=f'"{(exc.message or "no reason given").rstrip(".")[:300]}" '
        f"(HTTP {exc.status}{', ' + exc.category if exc.category else ''})",
        advice=HUBSPOT_REFUSAL_ADVICE.get(exc.status, ""),
    )


def postpone_run(session, execution: Execution, exc: TransientError) -> bool:
    """Schedule another try unless the retries are used up; True when postponed."""
    delay = execution_backoff().delay(execution.attempts, exc.retry_after)
    if delay is None:
        return False
    execution_service.postpone(execution, delay=delay, status=Execution.PENDING)
    session.commit()
    metrics.retry_scheduled("execution")
    log.warning("execution %s: %s; trying again in %.0fs", execution.id, exc.reason, delay)
    queue.enqueue_execution(execution.id, delay=delay)
    return True


def build_context(session, execution: Execution) -> ActionContext:
    config = current_app.config
    portal = get_portal(session, execution.portal_id)
    connection = choose_connection(list_connections(session, portal.id), execution.inputs.get("quickbooks_account", ""))
    execution.realm_id = connection.realm_id
    session.commit()
    return ActionContext(
        portal_id=execution.portal_id,
        callback_id=execution.callback_id,
        action=execution.action,
        object_type=execution.object_type,
        object_id=execution.object_id,
        inputs=inputs_with_defaults(execution),
        crm=hubspot_client(portal, config),
        books=books_client(connection, config),
        journal=ExecutionJournal(db, execution.id),
        mappings=MappingStore(db, connection.id),
        claims=DocumentClaims(
            db, execution_id=execution.id, portal_id=execution.portal_id, realm_id=connection.realm_id
        ),
        settings=effective_settings(portal, connection),
        quickbooks_app_url=config["QBO_APP_URL"],
    )


def inputs_with_defaults(execution: Execution) -> dict[str, str]:
    """The inputs HubSpot sent, with hubspot-app.json's defaults for the ones left empty."""
    definition = current_app.extensions["hubspot_app_definition"].actions.get(execution.action, {})
    given = {name: value for name, value in (execution.inputs or {}).items() if str(value).strip()}
    return {**definition.get("inputDefaults", {}), **given}


def choose_connection(connections, requested: str):
    active = list(connections)
    if not active:
        raise ActionError(
            "QUICKBOOKS_NOT_CONNECTED", reason="This HubSpot account has no QuickBooks company connected."
        )
    if requested:
        for connection in active:
            if connection.realm_id == requested:
                return connection
        raise ActionError(
            "QUICKBOOKS_NOT_CONNECTED",
            reason=f"The QuickBooks company {requested} chosen in the "
            f"action is not connected to this HubSpot account (connected: {names(active)}).",
        )
    if len(active) > 1:
        raise ActionError(
            "QUICKBOOKS_NOT_CONNECTED",
            reason="Several QuickBooks companies are connected "
            f"({names(active)}) and the action does not say which to use.",
        )
    return active[0]


def names(connections) -> str:
    return ", ".join(f"{c.company_name or 'unnamed'} ({c.realm_id})" for c in connections)


# -- completing HubSpot's callback -----------------------------------------------------------------------


# HubSpot completes at most this many callbacks in one request.
CALLBACKS_PER_REQUEST = 100
COMPLETION_ERRORS = (TransientError, HubSpotError, HubSpotAuthError, OSError)


def complete_callback(execution_id: int) -> None:
    """Complete this execution's callback, and with it those of the portal's other finished executions that wait
    for theirs (month-end: one request for up to a hundred)."""
    with execution_log_context(execution_id), db.new_session() as session:
        if not execution_service.claim_for_callback(session, execution_id, lease=lease_duration()):
            return
        execution = execution_service.get_execution(session, execution_id)
        companions = execution_service.claim_waiting_callbacks(
            session,
            portal_id=execution.portal_id,
            besides=execution_id,
            limit=CALLBACKS_PER_REQUEST - 1,
            lease=lease_duration(),
        )
        with ExitStack() as holding:
            for each in (execution_id, *companions):
                holding.enter_context(lease_keeper().holding(each))  # renewed while HubSpot answers
            executions = [execution, *execution_service.get_executions(session, companions)]
            session.commit()
            complete_claimed(session, executions)


def complete_claimed(session, executions: list[Execution]) -> None:
    waiting = [execution for execution in executions if not settled_without_hubspot(session, execution)]
    if not waiting:
        return
    try:
        crm = hubspot_client(get_portal(session, waiting[0].portal_id), current_app.config)
        refusals = crm.complete_callbacks([(e.callback_id, output_fields(e)) for e in waiting])
    except COMPLETION_ERRORS as exc:
        refusals = [exc] * len(waiting)
    for execution, refusal in zip(waiting, refusals, strict=True):
        settle_completion(session, execution, refusal)


def settled_without_hubspot(session, execution: Execution) -> bool:
    """Whether the completion is settled here: HubSpot took an earlier outcome, or it stopped waiting."""
    if execution.completed_at is not None:
        keep_earlier_completion(session, execution)  # retried from the console after HubSpot settled it
        return True
    if utcnow() >= execution.expires_at:
        expire(session, execution)
        return True
    return False


def settle_completion(session, execution: Execution, refusal: Exception | None) -> None:
    if refusal is None:
        mark_completed(session, execution)
    elif already_completed(refusal):
        mark_completed(session, execution, note=already_completed_note(execution))
    else:
        if not isinstance(refusal, COMPLETION_ERRORS):  # a bug of ours: loud, and the completion is tried again
            log.error("execution %s: completing callback failed unexpectedly", execution.id, exc_info=refusal)
        postpone_callback(session, execution, refusal)


def already_completed(exc: Exception) -> bool:
    return isinstance(exc, HubSpotError) and exc.status == 400 and "not in a pending state" in exc.message


def already_completed_note(execution: Execution) -> str:
    if execution_service.was_retried(execution):
        return (
            "HubSpot had already settled this callback, possibly with the outcome sent before the console retry: "
            f"the workflow may have gone on with that one rather than this {execution.outcome}."
        )
    return "HubSpot had already recorded this outcome."


def keep_earlier_completion(session, execution: Execution) -> None:
    """A console retry of an execution HubSpot already took an outcome for: a callback takes one completion,
    so HubSpot is not asked again (even once the callback expired); the new outcome stays with us."""
    execution.status = Execution.COMPLETED  # completed_at stays: when HubSpot took the earlier outcome
    execution.lease_until = execution.lease_owner = None
    when = execution.completed_at.strftime("%Y-%m-%d %H:%M")
    execution.notes = [
        *(execution.notes or []),
        f"HubSpot took this execution's earlier outcome on {when} UTC and accepts one per callback, so the "
        f"workflow went on with that one; this {execution.outcome} is kept here only (HubSpot was not asked again).",
    ]
    session.commit()
    log.warning(
        "execution %s (%s): retried outcome %s kept; HubSpot callback %s had already been completed",
        execution.id,
        execution.action,
        execution.outcome,
        execution.callback_id,
    )


def mark_completed(session, execution: Execution, note: str = "") -> None:
    execution.status = Execution.COMPLETED
    execution.completed_at = utcnow()
    execution.lease_until = execution.lease_owner = None
    if note:
        execution.notes = [*(execution.notes or []), note]
    session.commit()


def expire(session, execution: Execution) -> None:
    """HubSpot stopped waiting: keep the document and say so loudly, never drop it silently."""
    execution.status = Execution.EXPIRED
    execution.lease_until = execution.lease_owner = None
    session.commit()
    log.error(
        "execution %s (%s): HubSpot callback %s expired before it could be completed; outcome %s %s kept",
        execution.id,
        execution.action,
        execution.callback_id,
        execution.outcome,
        execution.outputs.get("quickbooks_document_id", ""),
    )


def postpone_callback(session, execution: Execution, exc: Exception) -> None:
    # Tried again until the execution expires (complete_claimed checks), however often that takes.
    delay = callback_backoff().delay(execution.callback_attempts, getattr(exc, "retry_after", None))
    execution_service.postpone(execution, delay=delay, status=Execution.FINISHED, error=str(exc))
    session.commit()
    metrics.retry_scheduled("callback")
    log.warning("execution %s: completing callback failed (%s); trying again in %.0fs", execution.id, exc, delay)
    queue.enqueue_completion(execution.id, delay=delay)


# -- leases and lost work --------------------------------------------------------------------------------


def lease_duration() -> timedelta:
    return timedelta(seconds=float(current_app.config["LEASE_SECONDS"]))


def lease_keeper() -> "LeaseKeeper":
    """This process's keeper of the leases it holds, one per app."""
    keeper = current_app.extensions.get("lease_keeper")
    if keeper is None:
        keeper = current_app.extensions.setdefault("lease_keeper", LeaseKeeper(lease_duration()))
    return keeper


class LeaseKeeper:
    """Renews, every third of a lease, the leases this process holds on the executions it is working on, in
    one UPDATE (`WHERE lease_owner = this process`). A background thread runs while something is held and
    stops when nothing is; a worker that dies stops renewing, so its leases run out within one lease."""

    def __init__(self, lease: timedelta):
        self.lease = lease
        self.interval = max(lease.total_seconds() / 3, 0.05)
        self.held: Counter[int] = Counter()
        self.changed = threading.Condition()
        self.thread: threading.Thread | None = None

    @contextmanager
    def holding(self, execution_id: int):
        with self.changed:
            self.held[execution_id] += 1
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self.keep, name="lease-keeper", daemon=True)
                self.thread.start()
        try:
            yield
        finally:
            with self.changed:
                self.held[execution_id] -= 1
                if self.held[execution_id] <= 0:
                    del self.held[execution_id]
                self.changed.notify_all()

    def keep(self) -> None:
        due = time.monotonic() + self.interval
        while True:
            with self.changed:
                while self.held and time.monotonic() < due:
                    self.changed.wait(due - time.monotonic())
                if not self.held:
                    self.thread = None
                    return
                ids = sorted(self.held)
            self.renew(ids)
            due = time.monotonic() + self.interval

    def renew(self, ids: list[int]) -> set[int]:
        try:
            with db.new_session() as session:
                held = execution_service.renew_leases(session, ids, lease=self.lease)
        except Exception:  # the database may be away for a moment: try again at the next beat
            log.warning("could not renew the leases of executions %s", ids, exc_info=True)
            return set()
        if len(held) < len(ids):  # finished meanwhile, or (after a stall) taken over by another worker
            log.debug("leases no longer held by this worker: %s", sorted(set(ids) - held))
        return held


def enqueue_next_job(execution_id: int, status: str, delay: float | None = None) -> None:
    """The job a waiting execution needs: a finished one its callback completion, any other its run."""
    if status == Execution.FINISHED:
        queue.enqueue_completion(execution_id, delay=delay)
    else:
        queue.enqueue_execution(execution_id, delay=delay)


def resume_orphans() -> list[int]:
    """Take back at once what a worker process of this host held when it died (its pid is gone, or it is this
    process's pid under another boot id): a run goes back to pending, a completion is freed; both are
    enqueued. Runs at worker start-up and with every sweep; a lease owned elsewhere is left to run out."""
    resumed = []
    with db.new_session() as session:
        for execution in execution_service.orphaned_executions(session):
            status, owner = execution.status, execution.lease_owner
            if execution_service.release_orphan(session, execution):
                resumed.append((execution.id, status, owner))
    for execution_id, status, owner in resumed:
        enqueue_next_job(execution_id, status)
        log.warning("execution %s: its worker %s is gone; resumed at once", execution_id, owner)
    return [execution_id for execution_id, _, _ in resumed]


def requeue_stale(at_start: bool = False) -> int:
    """Re-enqueue executions whose job was lost (crash between commit and enqueue, worker killed): at once
    what a dead worker of this host held, then leases that ran out and jobs lost for STALE_AFTER_SECONDS.

    At worker start-up (`at_start`) every pending or finished execution with nothing scheduled counts as
    lost, however recent: a job enqueued twice is harmless (claims are atomic), a lost one would wait.
    """
    resumed = resume_orphans()
    if queue.store_was_emptied():
        return len(resumed) + requeue_waiting()
    with db.new_session() as session:
        older_than = timedelta(seconds=0 if at_start else current_app.config["STALE_AFTER_SECONDS"])
        stale = [
            execution
            for execution in execution_service.stale_executions(session, older_than=older_than)
            if execution.id not in resumed
        ]
        for execution in stale:
            enqueue_next_job(execution.id, execution.status)
        # Counted as queued now: behind a month-end backlog a job may wait longer than STALE_AFTER_SECONDS for
        # its turn, and must not be queued again every minute while it does.
        execution_service.mark_requeued(session, [execution.id for execution in stale])
    if stale:
        log.warning("re-enqueued %d executions whose jobs were lost", len(stale))
    return len(resumed) + len(stale)


def requeue_waiting() -> int:
    """Give an emptied queue back every job it held: each waiting execution, at its scheduled time."""
    count, after_id = 0, 0
    while True:
        with db.new_session() as session:
            batch = execution_service.waiting_executions(session, after_id=after_id)
        for execution in batch:
            delay = max(0.0, (execution.next_run_at - utcnow()).total_seconds()) if execution.next_run_at else None
            enqueue_next_job(execution.id, execution.status, delay)
        count += len(batch)
        if len(batch) < 500:
            break
        after_id = batch[-1].id
    log.warning("the queue lost its jobs (its store restarted empty): %d executions queued again", count)
    requeue_waiting_side_jobs()
    return count


def requeue_waiting_side_jobs() -> None:
    """After the queue lost its jobs: the documents still to be written onto their HubSpot records, and the
    Intuit webhooks not processed yet (reconciliation would catch their changes too, only later)."""
    with db.new_session() as session:
        document_ids = documents.awaiting_write_back(session)
        event_ids = session.scalars(select(QuickBooksEvent.id).where(QuickBooksEvent.processed_at.is_(None))).all()
    for document_id in document_ids:
        queue.enqueue_write_back(document_id)
    for event_id in event_ids:
        queue.enqueue_webhook(event_id)
    if document_ids or event_ids:
        log.warning("queued again: %d write-backs, %d webhooks", len(document_ids), len(event_ids))


# -- the documents in HubSpot ----------------------------------------------------------------------------


def remember_document(session, execution: Execution, written: dict | None) -> None:
    """Keep the document the execution created, with its state as written, and have HubSpot's record show it."""
    document = documents.record_document(session, execution)
    if document is None:
        return
    if written and document.status is None:
        documents.apply_state(document, written)
        if document.payment_id:  # a paid invoice: its payment covers it in full
            document.status, document.balance = "paid", "0.00"
        session.commit()
    queue.enqueue_write_back(document.id)


def write_back(document_id: int) -> None:
    from app.hubspot.write_back import write_back_document

    write_back_document(document_id)


def process_webhook(event_id: int) -> None:
    from app.quickbooks.webhooks import process_event

    process_event(event_id)


def reconcile_due() -> None:
    from app.quickbooks.reconcile import reconcile_due_connections

    reconcile_due_connections()
