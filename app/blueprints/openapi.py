"""GET /openapi.json: an OpenAPI 3.1 description of the machine endpoints, built from the marshmallow schemas.

The request bodies are the schemas the endpoints load with (app/schemas.py, and the options request in
app/blueprints/options.py); the answers are the answer schemas in app/schemas.py. tests/app/test_openapi.py
runs schemathesis against this description, in-process, so it stays true: no 5xx, every answer as described.

Described: HubSpot's workflow actions and their dropdowns, the app card's endpoint, Intuit's webhooks, the
health and readiness checks, the Prometheus metrics and this document. Not described: the console's HTML pages
(/, /sign-in, /sync-errors, /history, /executions/..., /settings, /connections/...) and the OAuth redirects
(/oauth/...), which are for a person's browser (session cookie, CSRF-protected forms, redirects to HubSpot and Intuit).
"""

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, current_app, jsonify

from actions import ACTION_NAMES
from app import schemas
from app.blueprints.cards import ALIASES
from app.blueprints.health import ReadinessSchema
from app.blueprints.options import OptionsRequestSchema
from app.hubspot.signature import TIMESTAMP_HEADER, V2_HEADER, V3_HEADER, VERSION_HEADER
from app.quickbooks.options import FIELDS as OPTION_FIELDS
from app.quickbooks.webhooks import SIGNATURE_HEADER

bp = Blueprint("openapi", __name__)

OPENAPI_VERSION = "3.1.0"
JSON = "application/json"
EXTENSION_KEY = "openapi_document"

HUBSPOT_SIGNED = [{"hubspotSignatureV3": [], "hubspotRequestTimestamp": []}, {"hubspotSignatureV2": []}]
HUBSPOT_SIGNED_V3 = [{"hubspotSignatureV3": [], "hubspotRequestTimestamp": []}]
INTUIT_SIGNED = [{"intuitSignature": []}]


@bp.get("/openapi.json")
def openapi_json():
    document = current_app.extensions.get(EXTENSION_KEY)
    if document is None:  # built once per app: it depends on the configuration only
        document = current_app.extensions[EXTENSION_KEY] = build_document(current_app)
    return jsonify(document)


def build_document(app) -> dict:
    spec = APISpec(
        title="qbo-actions",
        version=app_version(),
        openapi_version=OPENAPI_VERSION,
        plugins=[MarshmallowPlugin()],
        info={"description": __doc__.split("\n\n", 1)[1].strip()},
        servers=[{"url": app.config["PUBLIC_URL"], "description": "PUBLIC_URL: what HubSpot and Intuit sign"}],
    )
    add_security_schemes(spec)
    add_responses(spec, app.config["MAX_CONTENT_LENGTH"])
    definition = app.extensions["hubspot_app_definition"]
    dropdowns = {
        name: [
            item["typeDefinition"]["name"] for item in action["inputFields"] if item["typeDefinition"].get("optionsUrl")
        ]
        for name, action in definition.actions.items()
    }
    add_action_paths(spec, dropdowns)
    add_card_path(spec)
    add_webhook_path(spec)
    add_plain_paths(spec)
    # Every output field is a string, the ones OutputFieldsSchema names and any other an action adds.
    spec.components.schemas["OutputFields"]["additionalProperties"] = {"type": "string"}
    return spec.to_dict()


def app_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("qbo-actions")
    except PackageNotFoundError:
        return "0.0.0"


def add_security_schemes(spec: APISpec) -> None:
    def header(name: str, text: str) -> dict:
        return {"type": "apiKey", "in": "header", "name": name, "description": text}

    spec.components.security_scheme(
        "hubspotSignatureV3",
        header(
            V3_HEADER,
            "base64(HMAC-SHA256(client secret, method + PUBLIC_URL + path and query + raw body + timestamp)); "
            f"needs {TIMESTAMP_HEADER}. Decides whenever it is present.",
        ),
    )
    spec.components.security_scheme(
        "hubspotRequestTimestamp",
        header(TIMESTAMP_HEADER, f"Milliseconds since the epoch; with {V3_HEADER}, at most 300 s off."),
    )
    spec.components.security_scheme(
        "hubspotSignatureV2",
        header(
            V2_HEADER,
            "hex(SHA-256(client secret + method + PUBLIC_URL + path and query + raw body)); "
            f"{VERSION_HEADER} v2 (or absent). v1 is refused.",
        ),
    )
    spec.components.security_scheme(
        "intuitSignature",
        header(SIGNATURE_HEADER, "base64(HMAC-SHA256(QBO_WEBHOOK_VERIFIER_TOKEN, raw body))."),
    )


def add_responses(spec: APISpec, max_bytes: int) -> None:
    def error(text: str, schema=schemas.ErrorSchema) -> dict:
        return {"description": text, "content": {JSON: {"schema": schema}}}

    spec.components.schema("Error", schema=schemas.ErrorSchema)
    spec.components.schema("InvalidRequest", schema=schemas.InvalidRequestSchema)
    spec.components.response(
        "BadRequest",
        error(
            "The body is not a JSON object (error/reason), or not the one the endpoint takes "
            "(invalid_request, one reason per problem).",
            {"oneOf": [schemas.ErrorSchema, schemas.InvalidRequestSchema]},
        ),
    )
    spec.components.response(
        "InvalidSignature", error("invalid_signature: missing, wrong or stale signature. Nothing is recorded.")
    )
    spec.components.response("NotFound", error("not_found: no such action."))
    spec.components.response(
        "TooLarge",
        error(
            f"request_entity_too_large: the body is over MAX_CONTENT_LENGTH ({max_bytes} bytes); refused before "
            "it is read or its signature checked. Nothing is recorded."
        ),
    )


def json_body(schema, text: str) -> dict:
    return {"required": True, "description": text, "content": {JSON: {"schema": schema}}}


def answer(schema, text: str) -> dict:
    return {"description": text, "content": {JSON: {"schema": schema}}}


REFUSALS = {
    "400": "BadRequest",
    "401": "InvalidSignature",
    "413": "TooLarge",
}


def action_parameter(names, text: str) -> dict:
    return {
        "name": "action",
        "in": "path",
        "required": True,
        "description": text,
        "schema": {"type": "string", "enum": list(names)},
    }


def add_action_paths(spec: APISpec, dropdowns: dict[str, list[str]]) -> None:
    spec.path(
        path="/hubspot/actions/{action}",
        operations={
            "post": {
                "operationId": "executeAction",
                "tags": ["HubSpot workflow actions"],
                "summary": "Run a workflow action on a record (HubSpot calls it)",
                "description": (
                    "Recorded once per (portal, callbackId); answers BLOCK at once and completes HubSpot's callback "
                    "when the document is written. A repeat delivery answers the execution's current state."
                ),
                "security": HUBSPOT_SIGNED,
                "parameters": [action_parameter(ACTION_NAMES, "The action (hubspot-app.json).")],
                "requestBody": json_body(
                    schemas.ExecutionRequestSchema,
                    "HubSpot's execution request. Inputs come from inputFields, else fields, else typedInputs.",
                ),
                "responses": {
                    "200": answer(schemas.ActionReplySchema, "The execution's state: BLOCK, or its outcome."),
                    **REFUSALS,
                    "404": "NotFound",
                },
            }
        },
    )
    options_request = OptionsRequestSchema()
    spec.components.schema("OptionsRequest", schema=options_request)
    # What OptionsRequestSchema checks in code, as the description can say it (app/blueprints/options.py).
    request_properties = spec.components.schemas["OptionsRequest"]["properties"]
    fields_with_options = sorted({name for names in dropdowns.values() for name in names} & set(OPTION_FIELDS))
    request_properties["inputFieldName"].update(
        enum=fields_with_options, description="A dropdown of the action in the path (else 400, naming them)."
    )
    request_properties["inputFields"]["additionalProperties"] = {
        "description": "A value, or a typed input such as {'type': 'STATIC_VALUE', 'value': ...}",
        "anyOf": [
            {"type": ["string", "number", "boolean", "null"]},
            {"type": "object", "required": ["type"], "properties": {"type": {"type": "string"}}},
        ],
    }
    # The cursor is a page start this server handed out (app/quickbooks/options.py, start_of).
    spec.components.schemas["FetchOptions"]["properties"]["after"]["pattern"] = "^(0*[1-9][0-9]{0,17})?$"
    spec.path(
        path="/hubspot/actions/{action}/options",
        operations={
            "post": {
                "operationId": "listOptions",
                "tags": ["HubSpot workflow actions"],
                "summary": "Fill a dropdown of the workflow editor (HubSpot calls it)",
                "description": (
                    "Connected QuickBooks companies, Terms, Items (searchable, paged), Accounts and Vendors. "
                    "A field that is not one of the action's dropdowns is a 400."
                ),
                "security": HUBSPOT_SIGNED,
                "parameters": [action_parameter(sorted(dropdowns), "An action with dropdowns.")],
                "requestBody": json_body(options_request, "HubSpot's options request."),
                "responses": {
                    "200": answer(schemas.OptionsPageSchema, "The options, with a cursor when more follow."),
                    **REFUSALS,
                    "404": "NotFound",
                },
            }
        },
    )


def add_card_path(spec: APISpec) -> None:
    def query(name: str, text: str, **schema) -> dict:
        return {
            "name": name,
            "in": "query",
            "required": True,
            "description": text,
            "schema": {"type": "string", **schema},
        }

    spec.path(
        path="/hubspot/cards/documents",
        operations={
            "get": {
                "operationId": "cardDocuments",
                "tags": ["HubSpot app card"],
                "summary": "The record's QuickBooks documents and its last failure (the app card's hubspot.fetch)",
                "security": HUBSPOT_SIGNED_V3,
                "parameters": [
                    query(
                        "objectType",
                        "An object type id (0-3, 0-14, 0-101) or name, in any case (the card sends the id).",
                        enum=sorted(ALIASES),
                    ),
                    query("objectId", "The HubSpot record id.", pattern="^[0-9]+$", maxLength=64),
                    query(
                        "portalId",
                        "Added by HubSpot to the signed URI; exactly once (the answer is that account's).",
                        pattern="^[0-9]{1,18}$",
                    ),
                ],
                "responses": {
                    "200": answer(schemas.CardAnswerSchema, "Newest document first."),
                    "400": {
                        "description": "A parameter is missing or wrong.",
                        "content": {JSON: {"schema": schemas.ErrorSchema}},
                    },
                    "401": "InvalidSignature",
                    "413": "TooLarge",
                },
            }
        },
    )


def add_webhook_path(spec: APISpec) -> None:
    spec.components.schema("CloudEvent", schema=schemas.CloudEventSchema)
    spec.components.schema("LegacyWebhook", schema=schemas.LegacyWebhookSchema)
    notification = {
        "anyOf": [
            {"type": "array", "items": schemas.CloudEventSchema, "description": "CloudEvents"},
            schemas.LegacyWebhookSchema,
            schemas.CloudEventSchema,
        ]
    }
    spec.path(
        path="/quickbooks/webhooks",
        operations={
            "post": {
                "operationId": "quickbooksWebhook",
                "tags": ["QuickBooks"],
                "summary": "Intuit's webhook notifications (CloudEvents, or the older eventNotifications)",
                "description": (
                    "Each event is stored once and followed from the queue. Events that can be read are kept even "
                    "when others cannot (listed in skipped); only a notification with none readable is a 400."
                ),
                "security": INTUIT_SIGNED,
                "requestBody": json_body(
                    notification, "The notification, signed over its raw bytes (any Content-Type)."
                ),
                "responses": {
                    "200": answer(schemas.WebhookAnswerSchema, "What was read and stored."),
                    "400": answer(schemas.InvalidRequestSchema, "Not JSON, or no event could be read."),
                    "401": "InvalidSignature",
                    "413": "TooLarge",
                },
            }
        },
    )


def add_plain_paths(spec: APISpec) -> None:
    spec.path(
        path="/healthz",
        operations={
            "get": {
                "operationId": "health",
                "tags": ["Operations"],
                "summary": "The process is alive (liveness; touches neither the database nor the queue)",
                "security": [],
                "responses": {"200": answer(schemas.HealthSchema, "Alive.")},
            }
        },
    )
    spec.components.schema("Readiness", schema=ReadinessSchema)
    spec.path(
        path="/readyz",
        operations={
            "get": {
                "operationId": "readiness",
                "tags": ["Operations"],
                "summary": "The database and the queue answer (readiness; within about 2 s)",
                "description": (
                    "SELECT 1 on the database; Redis PING when REDIS_URL is set, else Huey's SQLite file is opened."
                ),
                "security": [],
                "responses": {
                    "200": answer(ReadinessSchema, "Ready: database and queue ok."),
                    "503": answer(ReadinessSchema, "Not ready: the failed parts, and why, in reasons."),
                },
            }
        },
    )
    spec.path(
        path="/metrics",
        operations={
            "get": {
                "operationId": "metrics",
                "tags": ["Operations"],
                "summary": "Prometheus metrics (text exposition format)",
                "description": (
                    "Executions, HTTP calls to HubSpot and QuickBooks, retries, rate-limiter waits, and the queue "
                    "per QuickBooks company. With METRICS_TOKEN set, needs Authorization: Bearer <METRICS_TOKEN>."
                ),
                "security": [],
                "responses": {
                    "200": {"description": "The metrics.", "content": {"text/plain": {"schema": {"type": "string"}}}},
                    "401": answer(schemas.ErrorSchema, "METRICS_TOKEN is set; the bearer token is missing or wrong."),
                },
            }
        },
    )
    spec.path(
        path="/openapi.json",
        operations={
            "get": {
                "operationId": "openapi",
                "tags": ["Operations"],
                "summary": "This document",
                "security": [],
                "responses": {"200": answer({"type": "object"}, "OpenAPI 3.1.")},
            }
        },
    )
