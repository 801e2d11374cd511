"""hubspot-app.json: load it, check it, and render each action in HubSpot's definition shape.

The file writes shared input fields, output fields and execution rules once; `load_app_definition`
validates it (marshmallow for the shape, then cross-references) and expands every action into
HubSpot's v4/2026-03 definition shape, URLs still as paths. `action_definition_payload` resolves
those paths against PUBLIC_URL and gives the body the definitions API takes. Every problem in the
file is reported at once, in one `AppDefinitionError`.
"""

from __future__ import annotations

import copy
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from marshmallow import Schema, ValidationError, fields, pre_load, validate, validates_schema

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "hubspot-app.json"
PATH_SETTING = "HUBSPOT_APP_FILE"

# Object types HubSpot names in definitions; ids such as "0-14" are accepted too (QUOTE, COMMERCE_PAYMENT
# and INVOICE are not documented for custom actions yet, see the reference sheet §7).
OBJECT_TYPES = (
    "CONTACT",
    "COMPANY",
    "DEAL",
    "TICKET",
    "QUOTE",
    "LINE_ITEM",
    "PRODUCT",
    "INVOICE",
    "COMMERCE_PAYMENT",
    "SUBSCRIPTION",
    "ORDER",
    "CART",
)
OBJECT_TYPE_ID = re.compile(r"^[0-9]+-[0-9]+$")
FIELD_TYPES = (
    "bool",
    "date",
    "datetime",
    "enumeration",
    "json",
    "number",
    "object_coordinates",
    "phone_number",
    "string",
)
OUTPUT_TYPES = FIELD_TYPES + ("currency_number",)
UI_FIELD_TYPES = (
    "booleancheckbox",
    "calculation_equation",
    "checkbox",
    "date",
    "file",
    "html",
    "number",
    "phonenumber",
    "radio",
    "select",
    "text",
    "textarea",
)
VALUE_TYPES = ("STATIC_VALUE", "OBJECT_PROPERTY")
LOCALES = ("en", "fr", "de", "ja", "es", "pt-br", "nl")
NAME = re.compile(r"^[a-z][a-z0-9_]*$")
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")

# The keys of an expanded action that HubSpot's definitions API takes (all but `published`/`functions`).
DEFINITION_KEYS = (
    "actionUrl",
    "objectTypes",
    "objectRequestOptions",
    "inputFields",
    "outputFields",
    "labels",
    "executionRules",
    "inputFieldDependencies",
)


class AppDefinitionError(Exception):
    """hubspot-app.json is missing, unreadable or invalid; `problems` lists every reason."""

    def __init__(self, problems: list[str], path: Path | str | None = None):
        self.problems = list(problems)
        self.path = path
        where = f"{path}" if path else "hubspot-app.json"
        super().__init__(f"{where} is invalid:\n" + "\n".join(f"  - {problem}" for problem in self.problems))


# ---------------------------------------------------------------------------------------------------
# The file's shape


class _FileSchema(Schema):
    """Unknown keys are errors (they are usually typos); "$comment" is allowed anywhere for humans."""

    @pre_load
    def _drop_comments(self, data, **_kwargs):
        if isinstance(data, dict):
            return {key: value for key, value in data.items() if key != "$comment"}
        return data


def _path(**kwargs):
    return fields.Str(validate=validate.Regexp(r"^/[^\s]*$", error="must be a path starting with '/'"), **kwargs)


def _name(**kwargs):
    return fields.Str(validate=validate.Regexp(NAME, error="must be lower_snake_case"), **kwargs)


def _locale_dict(values, **kwargs):
    return fields.Dict(keys=fields.Str(validate=validate.OneOf(LOCALES)), values=values, **kwargs)


def _object_type(value):
    if value not in OBJECT_TYPES and not OBJECT_TYPE_ID.match(value):
        raise ValidationError(
            f"unknown objectType {value!r}; use one of {', '.join(OBJECT_TYPES)} or an id like '0-14'"
        )


class SupportSchema(_FileSchema):
    supportEmail = fields.Email()
    supportUrl = fields.Url()
    documentationUrl = fields.Url()
    supportPhone = fields.Str()


# Where an app card can sit (HubSpot's app cards reference, platform 2026.03).
CARD_LOCATIONS = ("crm.record.tab", "crm.record.sidebar", "crm.preview", "helpdesk.sidebar")


class CardSchema(_FileSchema):
    """The app card (`flask hubspot export-project` writes it with its React source, app/hubspot/card/)."""

    uid = fields.Str(required=True, validate=validate.Regexp(r"^[A-Za-z0-9_-]{1,64}$"))
    name = fields.Str(required=True, validate=validate.Length(min=1))
    description = fields.Str(load_default="")
    location = fields.Str(load_default="crm.record.tab", validate=validate.OneOf(CARD_LOCATIONS))
    # HubSpot's names for the records it appears on, e.g. "deals"; written to the card's hsmeta as they are.
    objectTypes = fields.List(
        fields.Str(validate=validate.Regexp(r"^[A-Za-z0-9_-]+$", error="must be an object type name such as 'deals'")),
        required=True,
        validate=validate.Length(min=1),
    )


class AppSchema(_FileSchema):
    uid = fields.Str(required=True, validate=validate.Regexp(r"^[A-Za-z0-9_-]{1,64}$"))
    name = fields.Str(required=True, validate=validate.Length(min=1))
    projectName = fields.Str()
    description = fields.Str(required=True)
    distribution = fields.Str(load_default="private", validate=validate.OneOf(("private", "marketplace")))
    redirectPaths = fields.List(_path(), required=True, validate=validate.Length(min=1))
    requiredScopes = fields.List(fields.Str(), required=True, validate=validate.Length(min=1))
    optionalScopes = fields.List(fields.Str(), load_default=list)
    conditionallyRequiredScopes = fields.List(fields.Str(), load_default=list)
    permittedFetchUrls = fields.List(fields.Url(), load_default=list)
    support = fields.Nested(SupportSchema, load_default=dict)
    card = fields.Nested(CardSchema, load_default=None)


class AppLabelsSchema(_FileSchema):
    appDisplayName = fields.Str()


class OptionSchema(_FileSchema):
    value = fields.Str(required=True)
    objectTypes = fields.List(fields.Str(validate=_object_type))


class FieldLabelsSchema(_FileSchema):
    label = fields.Str()
    description = fields.Str()
    options = fields.Dict(keys=fields.Str(), values=fields.Str())


class ShowWhenSchema(_FileSchema):
    field = fields.Str(required=True)
    equals = fields.Str(required=True)


class InputFieldSchema(_FileSchema):
    type = fields.Str(required=True, validate=validate.OneOf(FIELD_TYPES))
    fieldType = fields.Str(validate=validate.OneOf(UI_FIELD_TYPES))
    options = fields.List(fields.Nested(OptionSchema))
    dynamicOptions = fields.Bool(load_default=False)
    isRequired = fields.Bool(load_default=False)
    supportedValueTypes = fields.List(
        fields.Str(validate=validate.OneOf(VALUE_TYPES)),
        load_default=lambda: ["STATIC_VALUE"],
        validate=validate.Length(min=1),
    )
    default = fields.Str()
    dependsOn = fields.Str()
    showWhen = fields.Nested(ShowWhenSchema)
    labels = _locale_dict(fields.Nested(FieldLabelsSchema), required=True)

    @validates_schema
    def _check(self, data, **_kwargs):
        errors = {}
        if data.get("type") == "enumeration" and not data.get("options") and not data.get("dynamicOptions"):
            errors["options"] = ["an enumeration needs static options or dynamicOptions: true"]
        if data.get("dependsOn") and data.get("showWhen"):
            errors["showWhen"] = ["a field takes either dependsOn or showWhen, not both"]
        values = [option["value"] for option in data.get("options", [])]
        if len(values) != len(set(values)):
            errors.setdefault("options", []).append("option values must be unique")
        if "default" in data and values and data["default"] not in values:
            errors["default"] = [f"{data['default']!r} is not one of the options {values}"]
        if "en" not in data.get("labels", {}) or not data["labels"]["en"].get("label"):
            errors["labels"] = ["labels.en.label is required"]
        else:
            missing = [value for value in values if value not in data["labels"]["en"].get("options", {})]
            if missing:
                errors["labels"] = [f"labels.en.options has no label for {', '.join(missing)}"]
        if errors:
            raise ValidationError(errors)


class FieldOverrideSchema(_FileSchema):
    isRequired = fields.Bool()
    supportedValueTypes = fields.List(fields.Str(validate=validate.OneOf(VALUE_TYPES)), validate=validate.Length(min=1))
    labels = _locale_dict(fields.Nested(FieldLabelsSchema))


class OutputFieldSchema(_FileSchema):
    type = fields.Str(load_default="string", validate=validate.OneOf(OUTPUT_TYPES))
    fieldType = fields.Str(load_default="text", validate=validate.OneOf(UI_FIELD_TYPES))
    labels = _locale_dict(fields.Str(), required=True)

    @validates_schema
    def _check(self, data, **_kwargs):
        if not data.get("labels", {}).get("en"):
            raise ValidationError({"labels": ["labels.en is required"]})


class ExecutionRuleSchema(_FileSchema):
    labelName = fields.Str(required=True, validate=validate.Regexp(r"^[A-Za-z][A-Za-z0-9_]*$"))
    conditions = fields.Dict(keys=fields.Str(), values=fields.Raw(), required=True, validate=validate.Length(min=1))
    labels = _locale_dict(fields.Str(), required=True)

    @validates_schema
    def _check(self, data, **_kwargs):
        errors = {}
        if not data.get("labels", {}).get("en"):
            errors["labels"] = ["labels.en (the message shown in the workflow history) is required"]
        for key, value in data.get("conditions", {}).items():
            strings = isinstance(value, list) and value and all(isinstance(v, str) for v in value)
            if not (isinstance(value, str) or strings):
                errors.setdefault("conditions", []).append(f"{key}: a condition is a string or a list of strings")
        if errors:
            raise ValidationError(errors)


class ActionLabelsSchema(_FileSchema):
    actionName = fields.Str(required=True, validate=validate.Length(min=1))
    actionDescription = fields.Str()
    actionCardContent = fields.Str()
    appDisplayName = fields.Str()


class ObjectRequestOptionsSchema(_FileSchema):
    properties = fields.List(fields.Str(), required=True)


class ActionSchema(_FileSchema):
    uid = fields.Str(validate=validate.Regexp(r"^[A-Za-z0-9_-]{1,64}$"))
    actionUrl = _path(required=True)
    optionsUrl = _path()
    objectTypes = fields.List(fields.Str(validate=_object_type), required=True, validate=validate.Length(min=1))
    objectRequestOptions = fields.Nested(ObjectRequestOptionsSchema)
    inputFields = fields.List(fields.Str(), required=True)
    fieldOverrides = fields.Dict(keys=fields.Str(), values=fields.Nested(FieldOverrideSchema), load_default=dict)
    outputFields = fields.List(fields.Str(), required=True)
    executionRules = fields.List(fields.Str())  # labelNames; default: every shared rule
    labels = _locale_dict(fields.Nested(ActionLabelsSchema), required=True)

    @validates_schema
    def _check(self, data, **_kwargs):
        if "en" not in data.get("labels", {}):
            raise ValidationError({"labels": ["labels.en (with actionName) is required"]})


class AppFileSchema(_FileSchema):
    app = fields.Nested(AppSchema, required=True)
    labels = _locale_dict(fields.Nested(AppLabelsSchema), load_default=dict)
    objectProperties = fields.Dict(
        keys=fields.Str(validate=_object_type), values=fields.List(fields.Str()), load_default=dict
    )
    # data_key: a field named `fields` would hide marshmallow's own Schema.fields.
    shared_fields = fields.Dict(keys=_name(), values=fields.Nested(InputFieldSchema), required=True, data_key="fields")
    outputFields = fields.Dict(keys=_name(), values=fields.Nested(OutputFieldSchema), required=True)
    executionRules = fields.List(fields.Nested(ExecutionRuleSchema), load_default=list)
    actions = fields.Dict(
        keys=_name(), values=fields.Nested(ActionSchema), required=True, validate=validate.Length(min=1)
    )


# ---------------------------------------------------------------------------------------------------
# Loading


@dataclass
class AppDefinition:
    """The validated file. `actions[name]` is HubSpot-shaped with URL paths, plus our own keys:
    `name`, `uid`, `optionsUrl` and `inputDefaults` ({field: value the server assumes when empty})."""

    app: dict
    actions: dict[str, dict]
    raw: dict = field(repr=False)
    path: Path | None = None

    @property
    def action_names(self) -> tuple[str, ...]:
        return tuple(self.actions)

    @property
    def error_codes(self) -> tuple[str, ...]:
        """Every `error_code` an execution rule matches, in rule order (the catalogue checks against it)."""
        codes = []
        for rule in self.raw["executionRules"]:
            value = rule["conditions"].get("error_code")
            for code in [value] if isinstance(value, str) else value or []:
                if code not in codes:
                    codes.append(code)
        return tuple(codes)

    def input_field_names(self, action: str) -> tuple[str, ...]:
        return tuple(item["typeDefinition"]["name"] for item in self.actions[action]["inputFields"])

    def find_action(self, action_url_path: str) -> dict | None:
        return next((a for a in self.actions.values() if a["actionUrl"] == action_url_path), None)


def load_app_definition(path: str | os.PathLike | None = None) -> AppDefinition:
    """Read, validate and expand hubspot-app.json (path, else $HUBSPOT_APP_FILE, else the repo's file)."""
    path = Path(path or os.environ.get(PATH_SETTING) or DEFAULT_PATH)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise AppDefinitionError([f"cannot read the file: {exc.strerror or exc}"], path) from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AppDefinitionError([f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"], path) from exc
    return parse_app_definition(data, path=path)


def parse_app_definition(data: dict, *, path: Path | str | None = None) -> AppDefinition:
    """Validate an already-parsed file (tests feed variants through here)."""
    try:
        loaded = AppFileSchema().load(data)
    except ValidationError as exc:
        raise AppDefinitionError(_flatten(exc.messages), path) from exc
    loaded["fields"] = loaded.pop("shared_fields")
    problems = _cross_check(loaded)
    if problems:
        raise AppDefinitionError(problems, path)
    actions = {name: _expand_action(name, spec, loaded) for name, spec in loaded["actions"].items()}
    return AppDefinition(app=loaded["app"], actions=actions, raw=loaded, path=Path(path) if path else None)


def init_app(app) -> AppDefinition:
    """Load the file once at start-up (raising on any problem) and keep it on the app."""
    definition = load_app_definition(app.config.get(PATH_SETTING) or None)
    app.extensions["hubspot_app_definition"] = definition
    return definition


def _flatten(messages, prefix: str = "") -> list[str]:
    if isinstance(messages, dict):
        out = []
        for key, value in messages.items():
            if key == "key":  # marshmallow's Dict: the key (a name) itself is wrong
                out += [f"{prefix}: the name is invalid: {line}" for line in _flatten(value)]
                continue
            key = "" if key in ("_schema", "value") else str(key)  # "value": a Dict's entry, named by prefix already
            out += _flatten(value, f"{prefix}.{key}" if prefix and key else prefix or key)
        return out
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return [f"{prefix}: {m}" if prefix else m for m in messages]
    if isinstance(messages, list):
        return [line for item in messages for line in _flatten(item, prefix)]
    return [f"{prefix}: {messages}" if prefix else str(messages)]


def _cross_check(data: dict) -> list[str]:
    """What marshmallow cannot see: names that must refer to something defined elsewhere in the file."""
    problems = []
    shared_fields, outputs = data["fields"], data["outputFields"]
    rules = {rule["labelName"]: rule for rule in data["executionRules"]}

    for name, spec in shared_fields.items():
        where = f"fields.{name}"
        if spec.get("dependsOn") and spec["dependsOn"] not in shared_fields:
            problems.append(f"{where}.dependsOn names an unknown field {spec['dependsOn']!r}")
        if spec.get("dependsOn") == name:
            problems.append(f"{where}.dependsOn names the field itself")
        when = spec.get("showWhen")
        if when:
            controller = shared_fields.get(when["field"])
            if controller is None:
                problems.append(f"{where}.showWhen names an unknown field {when['field']!r}")
            elif (
                controller.get("options")
                and not controller.get("dynamicOptions")
                and when["equals"] not in [o["value"] for o in controller["options"]]
            ):
                problems.append(f"{where}.showWhen.equals {when['equals']!r} is not an option of {when['field']!r}")

    seen_labels = set()
    for rule in data["executionRules"]:
        if rule["labelName"] in seen_labels:
            problems.append(f"executionRules: labelName {rule['labelName']!r} is used twice")
        seen_labels.add(rule["labelName"])
        for key in rule["conditions"]:
            if key not in outputs:
                problems.append(f"executionRules.{rule['labelName']}: condition on unknown output field {key!r}")
        for locale, message in rule["labels"].items():
            for placeholder in PLACEHOLDER.findall(message):
                if placeholder not in outputs:
                    problems.append(
                        f"executionRules.{rule['labelName']}.labels.{locale}: "
                        f"{{{{{placeholder}}}}} is not an output field"
                    )

    action_urls = {}
    for name, spec in data["actions"].items():
        where = f"actions.{name}"
        if spec["actionUrl"] in action_urls:
            problems.append(f"{where}.actionUrl is the same as actions.{action_urls[spec['actionUrl']]}'s")
        action_urls[spec["actionUrl"]] = name
        used = spec["inputFields"]
        if len(used) != len(set(used)):
            problems.append(f"{where}.inputFields lists a field twice")
        for field_name in used:
            shared = shared_fields.get(field_name)
            if shared is None:
                problems.append(f'{where}.inputFields: unknown field {field_name!r} (define it under "fields")')
                continue
            if shared["dynamicOptions"] and not spec.get("optionsUrl"):
                problems.append(f"{where}: field {field_name!r} takes options from the action, which has no optionsUrl")
            controller = shared.get("dependsOn") or (shared.get("showWhen") or {}).get("field")
            if controller and controller in shared_fields and controller not in used:
                problems.append(
                    f"{where}: field {field_name!r} depends on {controller!r}, which the action does not use"
                )
        for field_name in spec["fieldOverrides"]:
            if field_name not in used:
                problems.append(f"{where}.fieldOverrides names {field_name!r}, which is not one of its inputFields")
        for output in spec["outputFields"]:
            if output not in outputs:
                problems.append(
                    f'{where}.outputFields: unknown output field {output!r} (define it under "outputFields")'
                )
        for label_name in spec.get("executionRules", []):
            if label_name not in rules:
                problems.append(f"{where}.executionRules: unknown rule {label_name!r}")
        for label_name in spec.get("executionRules", list(rules)):
            for key in rules.get(label_name, {}).get("conditions", {}):
                if key in outputs and key not in spec["outputFields"]:
                    problems.append(f"{where}: rule {label_name!r} needs output field {key!r}, which the action lacks")
        for locale, labels in spec["labels"].items():
            for placeholder in PLACEHOLDER.findall(labels.get("actionCardContent", "")):
                if placeholder not in used:
                    problems.append(
                        f"{where}.labels.{locale}.actionCardContent: {{{{{placeholder}}}}} is not an input field"
                    )
    return problems


# ---------------------------------------------------------------------------------------------------
# Expanding an action into HubSpot's shape


def _deep_merge(base: dict, override: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _expand_action(name: str, spec: dict, data: dict) -> dict:
    object_types = spec["objectTypes"]
    field_specs = [
        (field_name, _deep_merge(data["fields"][field_name], spec["fieldOverrides"].get(field_name, {})))
        for field_name in spec["inputFields"]
    ]
    rule_names = spec.get("executionRules") or [rule["labelName"] for rule in data["executionRules"]]
    rules = [rule for rule in data["executionRules"] if rule["labelName"] in rule_names]

    input_fields, option_values = [], {}
    for field_name, field_spec in field_specs:
        type_definition = {"name": field_name, "type": field_spec["type"]}
        if "fieldType" in field_spec:
            type_definition["fieldType"] = field_spec["fieldType"]
        values = [
            option["value"]
            for option in field_spec.get("options", [])
            if not option.get("objectTypes") or set(option["objectTypes"]) & set(object_types)
        ]
        option_values[field_name] = values
        english = field_spec["labels"]["en"].get("options", {})
        type_definition["options"] = [
            {"label": english[value], "value": value, "displayOrder": order} for order, value in enumerate(values)
        ]
        if field_spec["dynamicOptions"]:
            type_definition["optionsUrl"] = spec["optionsUrl"]
        input_fields.append(
            {
                "typeDefinition": type_definition,
                "supportedValueTypes": list(field_spec["supportedValueTypes"]),
                "isRequired": field_spec["isRequired"],
            }
        )

    locales = [locale for locale in LOCALES if locale in spec["labels"]]
    labels = {}
    for locale in locales:
        action_labels = spec["labels"][locale]
        entry = {"actionName": action_labels["actionName"]}
        for key in ("actionDescription", "actionCardContent"):
            if key in action_labels:
                entry[key] = action_labels[key]
        app_name = action_labels.get("appDisplayName") or data["labels"].get(locale, {}).get("appDisplayName")
        if app_name:
            entry["appDisplayName"] = app_name
        field_labels = {n: f["labels"].get(locale, {}) for n, f in field_specs}
        groups = {
            "inputFieldLabels": {n: fl["label"] for n, fl in field_labels.items() if fl.get("label")},
            "inputFieldDescriptions": {n: fl["description"] for n, fl in field_labels.items() if fl.get("description")},
            "inputFieldOptionLabels": {
                n: {value: fl["options"][value] for value in option_values[n] if value in fl.get("options", {})}
                for n, fl in field_labels.items()
                if option_values[n] and fl.get("options")
            },
            "outputFieldLabels": {
                n: data["outputFields"][n]["labels"][locale]
                for n in spec["outputFields"]
                if locale in data["outputFields"][n]["labels"]
            },
            "executionRules": {r["labelName"]: r["labels"][locale] for r in rules if locale in r["labels"]},
        }
        entry.update({key: value for key, value in groups.items() if value})
        labels[locale] = entry

    properties = (spec.get("objectRequestOptions") or {}).get("properties")
    if properties is None:
        properties = []
        for object_type in object_types:
            properties += [p for p in data["objectProperties"].get(object_type, []) if p not in properties]

    return {
        "name": name,
        "uid": spec.get("uid", name),
        "actionUrl": spec["actionUrl"],
        "optionsUrl": spec.get("optionsUrl"),
        "objectTypes": list(object_types),
        "objectRequestOptions": {"properties": properties},
        "inputFields": input_fields,
        "outputFields": [
            {
                "typeDefinition": {
                    "name": n,
                    "type": data["outputFields"][n]["type"],
                    "fieldType": data["outputFields"][n]["fieldType"],
                }
            }
            for n in spec["outputFields"]
        ],
        "labels": labels,
        "executionRules": [{"labelName": r["labelName"], "conditions": copy.deepcopy(r["conditions"])} for r in rules],
        "inputFieldDependencies": _dependencies(field_specs),
        "inputDefaults": {n: f["default"] for n, f in field_specs if "default" in f},
    }


def _dependencies(field_specs: list[tuple[str, dict]]) -> list[dict]:
    """Group dependsOn/showWhen into HubSpot's dependency objects, in the order fields first name them."""
    grouped: dict[tuple, dict] = {}
    for field_name, spec in field_specs:
        if spec.get("dependsOn"):
            key = ("SINGLE_FIELD", spec["dependsOn"], None)
            dependency = grouped.setdefault(
                key,
                {
                    "dependencyType": "SINGLE_FIELD",
                    "controllingFieldName": spec["dependsOn"],
                    "dependentFieldNames": [],
                },
            )
        elif spec.get("showWhen"):
            when = spec["showWhen"]
            key = ("CONDITIONAL_SINGLE_FIELD", when["field"], when["equals"])
            dependency = grouped.setdefault(
                key,
                {
                    "dependencyType": "CONDITIONAL_SINGLE_FIELD",
                    "controllingFieldName": when["field"],
                    "controllingFieldValue": when["equals"],
                    "dependentFieldNames": [],
                },
            )
        else:
            continue
        dependency["dependentFieldNames"].append(field_name)
    return list(grouped.values())


# ---------------------------------------------------------------------------------------------------
# Rendering


def resolve_url(public_url: str, path: str) -> str:
    """PUBLIC_URL + path, keeping any path prefix PUBLIC_URL has (urljoin would drop it)."""
    if not public_url or not re.match(r"^https?://[^/\s]+", public_url):
        raise ValueError(f"PUBLIC_URL must be an absolute http(s) URL, not {public_url!r}")
    return public_url.rstrip("/") + "/" + path.lstrip("/")


def action_config(action: dict, public_url: str) -> dict:
    """The HubSpot-shaped parts of an expanded action, with actionUrl and optionsUrls made absolute."""
    config = {key: copy.deepcopy(action[key]) for key in DEFINITION_KEYS}
    config["actionUrl"] = resolve_url(public_url, action["actionUrl"])
    for input_field in config["inputFields"]:
        type_definition = input_field["typeDefinition"]
        if type_definition.get("optionsUrl"):
            type_definition["optionsUrl"] = resolve_url(public_url, type_definition["optionsUrl"])
    return config


def action_definition_payload(action: dict, public_url: str) -> dict:
    """The body for POST/PATCH on HubSpot's definitions API (v4 and 2026-03 share it)."""
    config = action_config(action, public_url)
    return {
        "actionUrl": config["actionUrl"],
        "published": True,
        "objectTypes": config["objectTypes"],
        "objectRequestOptions": config["objectRequestOptions"],
        "inputFields": config["inputFields"],
        "outputFields": config["outputFields"],
        "labels": config["labels"],
        "executionRules": config["executionRules"],
        "inputFieldDependencies": config["inputFieldDependencies"],
        "functions": [],
    }
