"""marshmallow schemas: what HubSpot sends (the documented body and the one observed live), and what every
endpoint answers. GET /openapi.json (app/blueprints/openapi.py) is built from these classes, so the description
and the validation cannot drift apart; the answer schemas describe the bodies the blueprints build."""

from marshmallow import INCLUDE, Schema, ValidationError, fields, post_load, pre_load, validate, validates_schema

# Postgres keeps no NUL in text and the executions' columns have lengths: refuse what they cannot store (400),
# rather than fail on the insert (500).
NO_NUL = validate.Regexp(r"^[^\x00]*$", error="must not contain NUL characters")
MAX_PORTAL_ID = 2**63 - 1  # a BigInteger column
MAX_RECORD_ID = 64  # executions.object_id and object_type are String(64)


class WholeNumber(fields.Integer):
    """An integer (or, unless strict, a string of digits); never a fraction, which int() would quietly cut."""

    def _validated(self, value):
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise self.make_error("invalid", input=value)
        return super()._validated(value)


class OriginSchema(Schema):
    class Meta:
        unknown = INCLUDE

    portalId = WholeNumber(
        required=True,
        strict=False,
        validate=validate.Range(min=1, max=MAX_PORTAL_ID),
        metadata={"description": "The HubSpot account (hub) id; a string of digits is read as the number."},
    )
    actionDefinitionId = WholeNumber(load_default=None)
    actionDefinitionVersion = WholeNumber(load_default=None)


class ObjectSchema(Schema):
    class Meta:
        unknown = INCLUDE

    objectId = fields.Raw(
        required=True,
        metadata={
            "description": "The record id: a number, or a string of at most 64 characters.",
            "oneOf": [
                {"type": "integer", "minimum": 0, "maximum": MAX_PORTAL_ID},
                {"type": "string", "minLength": 1, "maxLength": MAX_RECORD_ID, "pattern": "^[^\\x00]*$"},
            ],
        },
    )
    objectType = fields.String(
        required=True,
        validate=[validate.Length(min=1, max=MAX_RECORD_ID), NO_NUL],
        metadata={"description": "DEAL, QUOTE or COMMERCE_PAYMENT (any case)."},
    )
    properties = fields.Dict(keys=fields.String(), load_default=dict, allow_none=True)


class ExecutionRequestSchema(Schema):
    """Reads `inputFields`, falls back to `fields`, then to `typedInputs`; `context` may lack `workflowId`."""

    class Meta:
        unknown = INCLUDE

    callbackId = fields.String(required=True, validate=[validate.Length(min=1, max=255), NO_NUL])
    origin = fields.Nested(OriginSchema, required=True)
    object = fields.Nested(ObjectSchema, required=True)
    context = fields.Dict(load_default=dict, allow_none=True)
    inputFields = fields.Dict(keys=fields.String(), load_default=None, allow_none=True)
    fields_ = fields.Dict(keys=fields.String(), data_key="fields", load_default=None, allow_none=True)
    typedInputs = fields.Dict(keys=fields.String(), load_default=None, allow_none=True)

    @pre_load
    def text_is_unicode(self, data, **_):
        if (where := lone_surrogate(data)) is not None:
            raise ValidationError(
                "must be Unicode text (JSON allows a lone surrogate such as \\ud800; it cannot be stored)", where
            )
        return data

    @validates_schema
    def object_id_is_scalar(self, data, **_):
        object_id = data["object"]["objectId"]
        if isinstance(object_id, float) and object_id.is_integer():  # 101.0 is the JSON number 101
            object_id = data["object"]["objectId"] = int(object_id)
        if isinstance(object_id, bool) or not isinstance(object_id, (int, str)) or object_id == "":
            raise ValidationError("must be a record id", "object.objectId")
        if isinstance(object_id, int) and not 0 <= object_id <= MAX_PORTAL_ID:
            raise ValidationError("must be a record id (a number from 0 to 2^63-1)", "object.objectId")
        if isinstance(object_id, str) and (len(object_id) > MAX_RECORD_ID or "\x00" in object_id):
            raise ValidationError(f"must be a record id of at most {MAX_RECORD_ID} characters", "object.objectId")
        if len(data["object"]["objectType"].upper()) > MAX_RECORD_ID:  # stored upper-cased: "ß" becomes "SS"
            raise ValidationError(f"must be at most {MAX_RECORD_ID} characters", "object.objectType")

    @post_load
    def normalise(self, data, **_):
        return {
            "portal_id": data["origin"]["portalId"],
            "callback_id": data["callbackId"],
            "object_type": data["object"]["objectType"].upper(),
            "object_id": str(data["object"]["objectId"]),
            "inputs": input_values(data),
            "origin": {"origin": data["origin"], "context": data.get("context") or {}},
        }


def lone_surrogate(value) -> str | None:
    """Where the first string, key or value, holds a lone surrogate ("\\ud800" is valid JSON, not UTF-8), or None.

    Iterative: a body may nest as deep as the JSON parser allows."""
    pending = [("", value)]
    while pending:
        where, value = pending.pop()
        if isinstance(value, str):
            if not encodable(value):
                return where or "_schema"
        elif isinstance(value, dict):
            for key, item in value.items():
                if not encodable(str(key)):
                    return where or "_schema"
                pending.append((f"{where}.{key}" if where else str(key), item))
        elif isinstance(value, list):
            pending.extend((f"{where}.{n}" if where else str(n), item) for n, item in enumerate(value))
    return None


def encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def input_values(data: dict) -> dict[str, str]:
    """Every input as a string: HubSpot sends strings, but typed inputs carry {"value": ..., "type": ...}."""
    raw = data.get("inputFields") or data.get("fields_")
    if raw is None and data.get("typedInputs"):
        raw = {
            name: typed.get("value") if isinstance(typed, dict) else typed
            for name, typed in data["typedInputs"].items()
        }
    return {name: "" if value is None else stringify(value) for name, value in (raw or {}).items()}


def stringify(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def error_reasons(messages, prefix: str = "") -> list[str]:
    """marshmallow's nested message dict, flattened to 'field.sub: message' lines."""
    if isinstance(messages, list):
        return [f"{prefix}: {m}" if prefix else str(m) for m in messages]
    reasons = []
    for key, value in messages.items():
        name = "fields" if key == "fields_" else str(key)
        reasons += error_reasons(value, f"{prefix}.{name}" if prefix else name)
    return reasons


# -- what the endpoints answer ---------------------------------------------------------------------------
# Described in GET /openapi.json, and checked against the real answers by tests/app/test_openapi.py.

EXECUTION_STATES = ("BLOCK", "SUCCESS", "FAIL_CONTINUE")


def described(text: str, **more) -> dict:
    return {"metadata": {"description": text, **more}}


class OutputFieldsSchema(Schema):
    """Every output is a string; the ones not listed here are strings too (additionalProperties)."""

    hs_execution_state = fields.String(
        required=True,
        validate=validate.OneOf(EXECUTION_STATES),
        **described("BLOCK while the work is under way (the outcome follows through the callback)."),
    )
    hs_expiration_duration = fields.String(**described("With BLOCK: how long HubSpot waits (ISO-8601, e.g. P6D)."))
    quickbooks_document_id = fields.String()
    quickbooks_document_number = fields.String()
    quickbooks_document_url = fields.String(**described("The document's page in QuickBooks."))
    quickbooks_customer_id = fields.String(**described("Empty for an expense."))
    quickbooks_payment_id = fields.String(**described("create_paid_invoice: the Payment applied to the invoice."))
    error_code = fields.String(**described("A stable code (README, Error codes) when the action failed."))
    error_message = fields.String(**described("What happened and how to fix it."))


class ActionReplySchema(Schema):
    outputFields = fields.Nested(OutputFieldsSchema, required=True)


class OptionSchema(Schema):
    label = fields.String(required=True)
    value = fields.String(required=True, **described('"" for a notice (such as "Connect QuickBooks first").'))
    description = fields.String()


class OptionsPageSchema(Schema):
    options = fields.List(fields.Nested(OptionSchema), required=True)
    searchable = fields.Boolean(required=True)
    after = fields.String(**described("The cursor of the next page, when there is one."))


class CardDocumentSchema(Schema):
    kind = fields.String(required=True, **described("invoice, estimate, sales_receipt, expense or refund_receipt."))
    label = fields.String(required=True)
    number = fields.String(required=True, allow_none=True)
    amount = fields.String(required=True, allow_none=True, **described("TotalAmt, as QuickBooks states it."))
    currency = fields.String(required=True, allow_none=True)
    status = fields.String(required=True, allow_none=True)
    date = fields.String(required=True, **described("YYYY-MM-DD."))
    url = fields.String(required=True, allow_none=True)


class CardFailureSchema(Schema):
    error_code = fields.String(required=True)
    explanation = fields.String(required=True)
    fix = fields.String(required=True)
    when = fields.String(required=True, **described("ISO-8601 date and time."))
    consoleUrl = fields.String(required=True)


class CardAnswerSchema(Schema):
    documents = fields.List(fields.Nested(CardDocumentSchema), required=True, **described("Newest first."))
    lastFailure = fields.Nested(
        CardFailureSchema,
        required=True,
        allow_none=True,
        **described("The record's newest failure, unless an action succeeded since or it was dismissed."),
    )
    consoleUrl = fields.String(required=True)


# Intuit's notifications are read by app/quickbooks/webhooks.py, item by item (an unreadable event is skipped,
# not refused); these schemas only describe them. A value it reads is a string or a number, not blank.
def notified_value(text: str = "", **more) -> fields.Raw:
    return fields.Raw(
        required=True,
        metadata={"type": ["string", "integer"], "pattern": r"\S", **({"description": text} if text else {}), **more},
    )


class CloudEventSchema(Schema):
    """One of Intuit's CloudEvents."""

    class Meta:
        unknown = INCLUDE

    specversion = fields.String(required=True, **described("1.0"))
    id = notified_value("Unique per event: a replayed event is stored once.")
    source = fields.String()
    type = fields.String(
        required=True,
        **described(
            "qbo.<entity>.<operation>.v<n>, e.g. qbo.invoice.updated.v1 (any case).",
            pattern=r"^\s*[Qq][Bb][Oo]\.\w+\.\w+\.[Vv][0-9]+\s*$",
        ),
    )
    time = fields.String()
    intuitaccountid = notified_value("The QuickBooks company (realm) id.")
    intuitentityid = notified_value("The changed entity's id.")
    data = fields.Raw()


class LegacyEntitySchema(Schema):
    class Meta:
        unknown = INCLUDE

    name = notified_value("Invoice, Payment, Estimate, SalesReceipt, RefundReceipt, Purchase, ...")
    id = notified_value()
    operation = notified_value("Create, Update, Delete, Void, Merge, Emailed")
    lastUpdated = fields.Raw()


class LegacyChangeSchema(Schema):
    class Meta:
        unknown = INCLUDE

    entities = fields.List(fields.Nested(LegacyEntitySchema), required=True)


class LegacyNotificationSchema(Schema):
    class Meta:
        unknown = INCLUDE

    realmId = notified_value("The QuickBooks company (realm) id.")
    dataChangeEvent = fields.Nested(LegacyChangeSchema, required=True)


class LegacyWebhookSchema(Schema):
    """The older format: {"eventNotifications": [...]}."""

    class Meta:
        unknown = INCLUDE

    eventNotifications = fields.List(fields.Nested(LegacyNotificationSchema), required=True)


class WebhookAnswerSchema(Schema):
    received = fields.Integer(required=True, **described("Events read from the notification."))
    new = fields.Integer(required=True, **described("Events not stored before (a replay adds none)."))
    skipped = fields.List(fields.String(), required=True, **described("What could not be read, one sentence each."))


class HealthSchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(["ok"]))


class ErrorSchema(Schema):
    """Every refusal: `error` is the HTTP status in snake case (or invalid_signature), `reason` says why."""

    error = fields.String(required=True, **described("e.g. invalid_signature, not_found, request_entity_too_large"))
    reason = fields.String(required=True)


class InvalidRequestSchema(Schema):
    """A body that is JSON but not what the endpoint takes: one line per problem ('field.sub: message')."""

    error = fields.String(required=True, validate=validate.OneOf(["invalid_request"]))
    reasons = fields.List(fields.String(), required=True)
