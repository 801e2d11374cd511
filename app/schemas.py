"""marshmallow schemas for what HubSpot sends: the documented body and the one observed live."""

from marshmallow import INCLUDE, Schema, ValidationError, fields, post_load, validates_schema


class OriginSchema(Schema):
    class Meta:
        unknown = INCLUDE

    portalId = fields.Integer(required=True, strict=False)
    actionDefinitionId = fields.Integer(load_default=None)
    actionDefinitionVersion = fields.Integer(load_default=None)


class ObjectSchema(Schema):
    class Meta:
        unknown = INCLUDE

    objectId = fields.Raw(required=True)
    objectType = fields.String(required=True)
    properties = fields.Dict(keys=fields.String(), load_default=dict, allow_none=True)


class ExecutionRequestSchema(Schema):
    """Reads `inputFields`, falls back to `fields`, then to `typedInputs`; `context` may lack `workflowId`."""

    class Meta:
        unknown = INCLUDE

    callbackId = fields.String(required=True, validate=lambda v: 0 < len(v) <= 255)
    origin = fields.Nested(OriginSchema, required=True)
    object = fields.Nested(ObjectSchema, required=True)
    context = fields.Dict(load_default=dict, allow_none=True)
    inputFields = fields.Dict(keys=fields.String(), load_default=None, allow_none=True)
    fields_ = fields.Dict(keys=fields.String(), data_key="fields", load_default=None, allow_none=True)
    typedInputs = fields.Dict(keys=fields.String(), load_default=None, allow_none=True)

    @validates_schema
    def object_id_is_scalar(self, data, **_):
        if isinstance(data["object"]["objectId"], (dict, list, bool)) or data["object"]["objectId"] in ("", None):
            raise ValidationError("must be a record id", "object.objectId")

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
