"""GET /hubspot/cards/documents: what the app card on a deal, quote or payment shows.

The card calls it with `hubspot.fetch`, which HubSpot signs with v3 (method, URI, body, timestamp) and to
which it adds the account's `portalId` as a query parameter. The signature covers that URI, so the portal
is the signed one; the server answers with that portal's documents for the record and, when the record's
newest outcome is a failure, that failure with its fix. The card never sends a portalId of its own: a
request with none, or with two, is refused rather than guessed at.
"""

from flask import Blueprint, abort, current_app, jsonify, request, url_for
from sqlalchemy import func, select

from app.blueprints.actions import verify_hubspot_signature
from app.console.executions import explanation_of
from app.console.service import FAIL_CONTINUE, SUCCESS
from app.extensions import db
from app.hubspot.signature import V3_HEADER, InvalidSignature
from app.storage.documents import documents_for_record
from app.storage.models import Execution, QuickBooksDocument

bp = Blueprint("hubspot_cards", __name__, url_prefix="/hubspot/cards")

# The records qbo-actions writes documents for, and every spelling HubSpot uses for them: the card sends
# the object type id of its context (0-3), executions store what the action request said (DEAL).
OBJECT_TYPES = {
    "DEAL": ("0-3", "DEAL", "DEALS"),
    "QUOTE": ("0-14", "QUOTE", "QUOTES"),
    "COMMERCE_PAYMENT": ("0-101", "COMMERCE_PAYMENT", "COMMERCE_PAYMENTS", "PAYMENT", "PAYMENTS"),
}
ALIASES = {alias: name for name, aliases in OBJECT_TYPES.items() for alias in aliases}
ACCEPTED = "an object type id (0-3, 0-14, 0-101) or name (DEAL, QUOTE, COMMERCE_PAYMENT)"
KIND_WORDS = {
    "invoice": "Invoice",
    "estimate": "Estimate",
    "sales_receipt": "Sales receipt",
    "expense": "Expense",
    "refund_receipt": "Refund receipt",
}


@bp.get("/documents")
def documents():
    verify_card_signature()
    portal_id = signed_portal_id()
    object_type = record_type(request.args.get("objectType", ""))
    object_id = record_id(request.args.get("objectId", ""))
    aliases = OBJECT_TYPES[object_type]

    found = [
        document
        for alias in aliases
        for document in documents_for_record(db.session, portal_id=portal_id, object_type=alias, object_id=object_id)
    ]
    failure = last_failure(portal_id=portal_id, object_types=aliases, object_id=object_id)
    response = jsonify(
        {
            "documents": [document_of(d) for d in sorted(found, key=lambda d: d.id, reverse=True)],
            "lastFailure": failure_of(failure) if failure else None,
            "consoleUrl": public_url(url_for("console.history", q=object_id)),
        }
    )
    response.headers["Cache-Control"] = "no-store"  # one account's records, for one signed request
    return response


def verify_card_signature() -> None:
    """Only v3: hubspot.fetch signs with it, and its timestamp keeps a captured request from being replayed."""
    if not request.headers.get(V3_HEADER):
        raise InvalidSignature(f"missing {V3_HEADER} header (the card's requests are signed with v3)")
    verify_hubspot_signature()


def signed_portal_id() -> int:
    """The portalId HubSpot adds to the signed URI; two of them means someone added one of their own."""
    given = request.args.getlist("portalId")
    if len(given) != 1:
        abort(400, description="portalId must appear exactly once (HubSpot adds it to the card's signed requests).")
    if not (given[0].isascii() and given[0].isdigit() and len(given[0]) <= 18):
        abort(400, description="portalId must be a HubSpot account id (at most 18 digits).")
    return int(given[0])


def record_type(value: str) -> str:
    value = value.strip()
    if not value:
        abort(400, description=f"objectType is required: {ACCEPTED}.")
    name = ALIASES.get(value.upper())
    if name is None:
        abort(
            400,
            description=f"objectType {value[:64]!r} is not a record qbo-actions writes documents for: use {ACCEPTED}.",
        )
    return name


def record_id(value: str) -> str:
    value = value.strip()
    if not value.isdigit():
        abort(400, description="objectId is required: the HubSpot record id (digits).")
    return value


def last_failure(*, portal_id: int, object_types, object_id: str) -> Execution | None:
    """The record's newest failure (not dismissed in the console), unless an action succeeded since."""
    moment = func.coalesce(Execution.finished_at, Execution.created_at)
    of_record = select(Execution).where(
        Execution.portal_id == portal_id,
        Execution.object_type.in_(object_types),
        Execution.object_id == object_id,
    )

    def newest(query):
        return db.session.scalars(query.order_by(moment.desc(), Execution.id.desc()).limit(1)).first()

    failure = newest(of_record.where(Execution.outcome == FAIL_CONTINUE, Execution.dismissed_at.is_(None)))
    if failure is None:
        return None
    success = newest(of_record.where(Execution.outcome == SUCCESS))
    if success is not None and (when(success), success.id) > (when(failure), failure.id):
        return None
    return failure


def when(execution: Execution):
    return execution.finished_at or execution.created_at


def document_of(document: QuickBooksDocument) -> dict:
    word = KIND_WORDS.get(document.kind, document.kind.replace("_", " ").capitalize())
    return {
        "kind": document.kind,
        "label": f"{word} {document.number}" if document.number else f"{word} (QuickBooks id {document.quickbooks_id})",
        "number": document.number or None,
        "amount": document.amount,
        "currency": document.currency,
        "status": document.status,
        "date": document.txn_date or document.created_at.date().isoformat(),
        "url": document.url,
    }


def failure_of(execution: Execution) -> dict:
    explained = explanation_of(execution)
    return {
        "error_code": explained["code"],
        "explanation": explained["message"],
        "fix": explained["fix"],
        "when": when(execution).isoformat(),
        "consoleUrl": public_url(url_for("console.execution", execution_id=execution.id)),
    }


def public_url(path: str) -> str:
    """A console page as the admin's browser reaches it: PUBLIC_URL (which may carry a path prefix) + path."""
    return current_app.config["PUBLIC_URL"].rstrip("/") + path.removeprefix(request.script_root)
