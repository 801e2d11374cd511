"""POST /hubspot/actions/<action>/options: the workflow editor asks what a dynamic dropdown offers."""

from flask import Blueprint, abort, current_app, jsonify
from marshmallow import INCLUDE, Schema, ValidationError, fields, post_load, validate, validates

from app.blueprints.actions import load_json_body, verify_hubspot_signature
from app.extensions import db
from app.quickbooks import options as dropdowns
from app.quickbooks.client import books_client
from app.schemas import OriginSchema, stringify
from app.storage.connections import get_portal, list_connections

bp = Blueprint("hubspot_options", __name__, url_prefix="/hubspot/actions")

CACHE_KEY = "options_cache"


@bp.record_once
def create_cache(state):
    # One cache per app: tests build a fresh app each, so lists never leak between them.
    state.app.extensions.setdefault(CACHE_KEY, dropdowns.OptionsCache())


class FetchOptionsSchema(Schema):
    class Meta:
        unknown = INCLUDE

    q = fields.String(load_default="", allow_none=True)
    after = fields.String(load_default=None, allow_none=True)

    @validates("after")
    def cursor_is_ours(self, value, **_):
        try:
            dropdowns.start_of(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc


class OptionsRequestSchema(Schema):
    class Meta:
        unknown = INCLUDE

    origin = fields.Nested(OriginSchema, required=True)
    inputFieldName = fields.String(required=True, validate=validate.Length(min=1))
    inputFields = fields.Dict(keys=fields.String(), load_default=dict, allow_none=True)
    fetchOptions = fields.Nested(FetchOptionsSchema, load_default=dict, allow_none=True)

    @validates("inputFields")
    def descriptors_or_values(self, value, **_):
        for name, given in (value or {}).items():
            if isinstance(given, dict) and not isinstance(given.get("type"), str):
                raise ValidationError(f"{name}: a typed input needs a 'type' such as STATIC_VALUE")
            if isinstance(given, list):
                raise ValidationError(f"{name}: must be a value or a typed input")

    @post_load
    def normalise(self, data, **_):
        fetch = data.get("fetchOptions") or {}
        return {
            "portal_id": data["origin"]["portalId"],
            "field": data["inputFieldName"],
            "inputs": static_values(data.get("inputFields") or {}),
            "q": fetch.get("q") or "",
            "after": fetch.get("after") or None,
        }


def static_values(input_fields: dict) -> dict[str, str]:
    """Inputs whose value is known in the editor; an OBJECT_PROPERTY is only known when the workflow runs."""
    values = {}
    for name, given in input_fields.items():
        if isinstance(given, dict):
            if given["type"] != "STATIC_VALUE" or given.get("value") is None:
                continue
            given = given["value"]
        if given is not None:
            values[name] = stringify(given)
    return values


def dynamic_fields(action: str) -> set[str] | None:
    """The action's dropdown fields whose options come from us; None for an action we do not define."""
    definition = current_app.extensions["hubspot_app_definition"].actions.get(action)
    if definition is None:
        return None
    return {
        item["typeDefinition"]["name"] for item in definition["inputFields"] if item["typeDefinition"].get("optionsUrl")
    }


@bp.post("/<action>/options")
def list_options(action):
    dropdown_fields = dynamic_fields(action)
    if dropdown_fields is None:
        abort(404, description=f"Unknown action '{action}'.")
    verify_hubspot_signature()
    request_data = OptionsRequestSchema().load(load_json_body())
    field_name = request_data["field"]
    if field_name not in dropdown_fields or field_name not in dropdowns.FIELDS:
        raise ValidationError(
            {
                "inputFieldName": [
                    f"'{field_name}' is not a dropdown of {action} that this server "
                    f"fills (it fills {', '.join(sorted(dropdown_fields))})"
                ]
            }
        )
    config = current_app.config
    portal = get_portal(db.session, request_data["portal_id"])
    page = dropdowns.fetch_options(
        field_name,
        connections=list_connections(db.session, portal.id) if portal else [],
        books_for=lambda connection: books_client(connection, config),
        cache=current_app.extensions[CACHE_KEY],
        max_age=float(config.get("OPTIONS_CACHE_SECONDS", 60)),
        chosen_realm=request_data["inputs"].get("quickbooks_account", ""),
        q=request_data["q"],
        after=request_data["after"],
    )
    return jsonify(page.as_json())
