"""Sync errors, history and one execution's details; retry and dismiss a failure.

Everything shown is what the executions stored (no HubSpot or QuickBooks calls while rendering). A retry
runs the same execution again, with the same callbackId, so the same QuickBooks request ids and journal:
it resumes where the failure stopped and never writes a second document.
"""

from urllib.parse import urlsplit

from flask import current_app, flash, redirect, render_template, request, url_for

from actions.errors import CATALOGUE
from app import queue
from app.console import bp, service
from app.console.auth import current_portal, owned_or_404, portal_required
from app.extensions import db
from app.storage import executions as execution_service
from app.storage.models import Execution

# HubSpot's object type ids, for links to a record's page.
OBJECT_TYPE_IDS = {"DEAL": "0-3", "QUOTE": "0-14", "COMMERCE_PAYMENT": "0-101"}
OBJECT_LABELS = {"DEAL": "Deal", "QUOTE": "Quote", "COMMERCE_PAYMENT": "Payment"}
DOCUMENT_WORDS = {
    "create_invoice": "invoice",
    "create_estimate": "estimate",
    "create_sales_receipt": "sales receipt",
    "create_paid_invoice": "invoice",
    "create_expense": "expense",
    "create_refund_receipt": "refund receipt",
}
HUBSPOT_RECORD_URL = "https://app.hubspot.com/contacts/{portal}/record/{type_id}/{object_id}"


# -- what a page shows of an execution ----------------------------------------------------------------


def action_labels() -> dict[str, str]:
    """Action name → its label in hubspot-app.json ("Create a QuickBooks invoice")."""
    definition = current_app.extensions["hubspot_app_definition"]
    return {
        name: (action.get("labels", {}).get("en", {}).get("actionName") or name)
        for name, action in definition.actions.items()
    }


def moment(value) -> dict | None:
    if value is None:
        return None
    return {"text": value.strftime("%Y-%m-%d %H:%M UTC"), "iso": value.isoformat()}


def record_of(execution: Execution) -> dict:
    object_type = (execution.object_type or "").upper()
    type_id = OBJECT_TYPE_IDS.get(object_type)
    url = (
        HUBSPOT_RECORD_URL.format(portal=execution.portal_id, type_id=type_id, object_id=execution.object_id)
        if type_id
        else None
    )
    label = OBJECT_LABELS.get(object_type, object_type.replace("_", " ").capitalize())
    return {"label": f"{label} {execution.object_id}", "url": url}


def workflow_of(execution: Execution) -> str:
    """The workflow that ran the action, when HubSpot said; else the action definition it used."""
    origin = execution.origin or {}
    context, source = origin.get("context") or {}, origin.get("origin") or {}
    if context.get("workflowId"):
        return f"Workflow {context['workflowId']}"
    if source.get("actionDefinitionId"):
        return f"Action definition {source['actionDefinitionId']} (workflow not given by HubSpot)"
    return "Not given by HubSpot"


def state_of(execution: Execution) -> dict:
    """What happened (pending, running, succeeded, failed) and where HubSpot's callback stands."""
    if execution.status == Execution.PENDING:
        state = ("waiting to run again", "") if execution.next_run_at else ("pending", "")
    elif execution.status == Execution.RUNNING:
        state = ("running", "")
    elif execution.outcome == service.SUCCESS:
        state = ("succeeded", "good")
    else:
        state = ("failed", "bad")
    callback = {
        Execution.FINISHED: "being reported to HubSpot",
        Execution.COMPLETED: "completed: HubSpot has settled this callback",
        Execution.EXPIRED: "expired: HubSpot stopped waiting before it got this outcome",
    }.get(execution.status, "")
    return {
        "label": state[0],
        "badge": state[1],
        "expired": execution.status == Execution.EXPIRED,
        "callback": callback,
    }


def explanation_of(execution: Execution) -> dict | None:
    """A failure's code, the plain explanation and the fix apart, and the setting that can fix it."""
    if execution.outcome != service.FAIL_CONTINUE:
        return None
    code = execution.error_code or ""
    entry = CATALOGUE.get(code)
    message = (execution.error_message or "").strip()
    fix = entry.fix if entry else ""
    if fix and message.endswith(fix):  # the stored message ends with the fix (what HubSpot shows)
        message = message[: -len(fix)].strip()
    setting = service.setting_for(code)
    return {
        "code": code or "UNKNOWN",
        "message": message,
        "fix": fix,
        "setting": setting,
        "setting_url": url_for("console.settings", _anchor=f"setting-{setting}") if setting else None,
    }


def document_of(execution: Execution) -> dict | None:
    outputs = execution.outputs or {}
    document_id = outputs.get("quickbooks_document_id")
    if not document_id:
        return None
    return {
        "word": DOCUMENT_WORDS.get(execution.action, "document"),
        "number": outputs.get("quickbooks_document_number") or "",
        "id": document_id,
        "label": outputs.get("quickbooks_document_number") or f"id {document_id}",
        "url": outputs.get("quickbooks_document_url") or None,
    }


def describe(execution: Execution, labels: dict[str, str]) -> dict:
    return {
        "id": execution.id,
        "action": execution.action,
        "action_label": labels.get(execution.action, execution.action),
        "created": moment(execution.created_at),
        "finished": moment(execution.finished_at),
        "record": record_of(execution),
        "workflow": workflow_of(execution),
        "state": state_of(execution),
        "error": explanation_of(execution),
        "document": document_of(execution),
        "dismissed": moment(execution.dismissed_at),
        "retryable": execution.outcome == service.FAIL_CONTINUE and execution.status in execution_service.RETRYABLE,
    }


CUSTOMER_WORDS = ("customer", "contact", "signer", "display name")
PRODUCT_WORDS = ("product",)


def steps_of(execution: Execution) -> dict:
    """The execution's decisions and writes, by step: customer, products, documents, other notes."""
    notes = [str(note) for note in execution.notes or []]
    # The console's retries and HubSpot's answers to them describe the callback, not a step.
    callback_notes = [n for n in notes if n.startswith((execution_service.RETRY_NOTE, "HubSpot "))]
    step_notes = [n for n in notes if n not in callback_notes]
    customer_notes = [n for n in step_notes if any(word in n.lower() for word in CUSTOMER_WORDS)]
    product_notes = [n for n in step_notes if n not in customer_notes and any(w in n.lower() for w in PRODUCT_WORDS)]
    writes = [
        {"step": step, "entity": entry.get("entity", ""), "id": entry.get("id", ""), "number": entry.get("number", "")}
        for step, entry in (execution.quickbooks_writes or {}).items()
        if entry.get("id")  # not a write still travelling in a batch
    ]
    customer_id = (execution.outputs or {}).get("quickbooks_customer_id") or next(
        (w["id"] for w in writes if w["entity"] == "Customer"), ""
    )
    return {
        "customer_id": customer_id,
        "customer_created": any(w["entity"] == "Customer" for w in writes),
        "customer_notes": customer_notes,
        "products_created": [w for w in writes if w["entity"] == "Item"],
        "product_notes": product_notes,
        "writes": writes,
        "other_notes": [n for n in step_notes if n not in customer_notes and n not in product_notes],
        "callback_notes": callback_notes,
    }


# -- pages -------------------------------------------------------------------------------------------------


@bp.get("/sync-errors")
@portal_required
def sync_errors():
    portal = current_portal()
    labels = action_labels()
    action = request.args.get("action", "").strip()
    action = action if action in labels else ""
    error_code = request.args.get("error_code", "").strip()[:64]
    failures = service.unresolved_failures(db.session, portal_id=portal.id, action=action, error_code=error_code)
    counts = service.failure_counts(db.session, portal_id=portal.id, action=action)
    codes = sorted(set(counts) | ({error_code} if error_code else set()))
    return render_template(
        "console/sync_errors.html",
        cards=[describe(execution, labels) for execution in failures],
        counts=sorted(counts.items(), key=lambda item: (-item[1], item[0])),
        actions=sorted(labels.items(), key=lambda item: item[1]),
        codes=codes,
        action=action,
        error_code=error_code,
    )


@bp.get("/history")
@portal_required
def history():
    portal = current_portal()
    q = request.args.get("q", "").strip()[: service.MAX_QUERY]
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    executions, has_more = service.search_history(db.session, portal_id=portal.id, q=q, page=page)
    labels = action_labels()
    return render_template(
        "console/history.html",
        rows=[describe(execution, labels) for execution in executions],
        q=q,
        page=page,
        newer=url_for("console.history", q=q or None, page=page - 1 if page > 2 else None) if page > 1 else None,
        older=url_for("console.history", q=q or None, page=page + 1) if has_more else None,
    )


@bp.get("/executions/<int:execution_id>")
@portal_required
def execution(execution_id):
    found = owned_execution(execution_id)
    return render_template(
        "console/execution.html",
        e=describe(found, action_labels()),
        execution=found,
        steps=steps_of(found),
    )


def owned_execution(execution_id: int) -> Execution:
    portal = current_portal()
    return owned_or_404(service.get_execution(db.session, portal_id=portal.id, execution_id=execution_id))


# -- retry and dismiss -------------------------------------------------------------------------------------


def back():
    """Where the form came from (a console path, never another site), else the sync errors."""
    target = request.form.get("next", "")
    parts = urlsplit(target)
    if target.startswith("/") and not target.startswith("//") and not parts.scheme and not parts.netloc:
        if "\\" not in target:
            return redirect(target)
    return redirect(url_for("console.sync_errors"))


@bp.post("/executions/<int:execution_id>/retry")
@portal_required
def retry(execution_id):
    found = owned_execution(execution_id)
    portal_id = found.portal_id
    if found.outcome != service.FAIL_CONTINUE:
        flash(f"Execution {execution_id} has not failed: there is nothing to retry.", "error")
        return back()
    settled_before = found.completed_at is not None
    if not execution_service.reset_for_retry(db.session, found):
        flash(f"Execution {execution_id} is being worked on right now: retry it again in a minute.", "error")
        return back()
    queue.enqueue_execution(execution_id)  # runs at once when the queue is immediate, else in the worker
    after = service.get_execution(db.session, portal_id=portal_id, execution_id=execution_id)
    message, category = retry_result(after, settled_before)
    flash(message, category)
    return back()


def retry_result(execution: Execution, settled_before: bool) -> tuple[str, str]:
    if execution is None or execution.outcome is None:
        return "Retry queued: the worker runs it shortly; its outcome will show here.", "message"
    if execution.outcome == service.SUCCESS:
        document = document_of(execution)
        what = f" — QuickBooks {document['word']} {document['label']}" if document else ""
        message, category = f"Retried: it succeeded{what}.", "success"
    else:
        message, category = f"Retried: it failed again: {execution.error_code}.", "error"
    if execution.outcome != service.SUCCESS:
        return message, category
    if settled_before:
        message += (
            " HubSpot had already recorded the earlier failure for this enrollment, so the workflow went on with"
            " that; this success is kept in the console only."
        )
    elif execution.status == Execution.EXPIRED:
        message += " HubSpot had stopped waiting for this enrollment, so the workflow will not see this success."
    return message, category


@bp.post("/executions/<int:execution_id>/dismiss")
@portal_required
def dismiss(execution_id):
    found = owned_execution(execution_id)
    if service.dismiss(db.session, found):
        flash(f"Dismissed the {found.error_code} error of execution {execution_id}; History still lists it.", "success")
    else:
        flash(f"Execution {execution_id} is not a sync error to dismiss.", "error")
    return back()
