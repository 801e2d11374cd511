"""POST /hubspot/actions/<action>: the request half of an execution, top to bottom."""

import logging

from flask import Blueprint, abort, current_app, jsonify, request
from sqlalchemy.exc import DBAPIError

from actions import ACTION_NAMES
from app import queue
from app.extensions import db
from app.hubspot.signature import InvalidSignature, SignedRequest, public_uri, verify_request
from app.schemas import ExecutionRequestSchema
from app.storage import executions as execution_service
from app.storage.models import Execution
from app.worker import execution_expiry, reply_for, settle_without_running

log = logging.getLogger(__name__)

bp = Blueprint("hubspot_actions", __name__, url_prefix="/hubspot/actions")

# One instance for every request: building a schema costs more than loading with it, and loading keeps no state.
execution_request = ExecutionRequestSchema()


def verify_hubspot_signature() -> None:
    """Raises InvalidSignature (→ 401) unless HubSpot signed these exact bytes for our public URL."""
    signed = SignedRequest(
        method=request.method,
        body=request.get_data(cache=True),
        headers=request.headers,
        uri=public_uri(current_app.config["PUBLIC_URL"], request.path, request.query_string.decode("latin-1")),
    )
    if not current_app.config["HUBSPOT_CLIENT_SECRETS"]:
        raise InvalidSignature("this server has no HUBSPOT_CLIENT_SECRET configured, so it cannot verify HubSpot")
    verify_request(signed, secrets=current_app.config["HUBSPOT_CLIENT_SECRETS"])


def load_json_body() -> dict:
    try:
        payload = request.get_json(silent=True)
    except RecursionError:  # nested deeper than the parser goes: not a body HubSpot sends
        payload = None
    if not isinstance(payload, dict):
        abort(400, description="The body must be a JSON object.")
    return payload


@bp.post("/<action>")
def execute(action):
    if action not in ACTION_NAMES:
        abort(404, description=f"Unknown action '{action}'.")
    verify_hubspot_signature()
    payload = execution_request.load(load_json_body())
    execution, run_needed = record_delivery(action, payload)
    if run_needed:
        queue.enqueue_execution(execution.id)
    return jsonify(reply_for(execution))


def record_delivery(action: str, payload: dict) -> tuple[Execution, bool]:
    """The delivery's execution, recorded unless known, and whether a run must be queued for it.

    Tried once more when the database connection turned out dead (PostgreSQL restarted since it was last
    used; SQLAlchemy has then invalidated the whole pool, so the second try connects anew). Recording is
    idempotent: a delivery whose insert committed before the connection died is found, not recorded twice.
    """
    try:
        return record_once(action, payload)
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
        log.warning("recording a delivery met a dropped database connection (%s); trying once more", exc.orig)
        return record_once(action, payload)


def record_once(action: str, payload: dict) -> tuple[Execution, bool]:
    # Autocommit: the insert is the whole write, and BEGIN and COMMIT would be two more round trips.
    with db.autocommit_session() as session:
        execution, created = execution_service.get_or_create_execution(
            session, action=action, expires_in=execution_expiry(), **payload
        )
        if created:
            return execution, not settle_without_running(session, execution)
    # A known execution: its job may have been lost between commit and enqueue.
    return execution, execution.status == Execution.PENDING and execution_service.is_due(execution)
