"""POST /hubspot/actions/<action>: the request half of an execution, top to bottom."""

from flask import Blueprint, abort, current_app, jsonify, request

from actions import ACTION_NAMES
from app import queue
from app.extensions import db
from app.hubspot.signature import InvalidSignature, SignedRequest, public_uri, verify_request
from app.schemas import ExecutionRequestSchema
from app.storage import executions as execution_service
from app.storage.models import Execution
from app.worker import execution_expiry, reply_for, settle_without_running

bp = Blueprint("hubspot_actions", __name__, url_prefix="/hubspot/actions")


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
    payload = ExecutionRequestSchema().load(load_json_body())
    execution, created = execution_service.get_or_create_execution(
        db.session, action=action, expires_in=execution_expiry(), **payload
    )
    if created:
        if not settle_without_running(db.session, execution):
            queue.enqueue_execution(execution.id)
    elif execution.status == Execution.PENDING and execution_service.is_due(execution):
        queue.enqueue_execution(execution.id)  # its job may have been lost between commit and enqueue
    return jsonify(reply_for(execution))
