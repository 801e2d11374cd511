"""Per-portal settings the shared steps read: defaults, accepted values, and parsing from the CLI or console."""

import json

FILTER_OPERATORS = ("eq", "neq", "in", "not_in", "contains", "known", "unknown")

DEFAULT_SETTINGS = {
    "contact_matching": "sync_filters",
    "contact_sync_filters": [{"property": "email", "operator": "known"}],
    "display_name_conflicts": "disambiguate",
    "product_type": "Service",
    "income_account": "",
    "service_dates": "auto",
    "document_numbers": "quickbooks",
    "document_number_property": "",
    "allow_invoice_payments": "off",
    "write_back": "on",
    "prices_include_tax": "off",
    "tax_codes": {},
    "default_tax_code": "",
}
# Settings of one QuickBooks company (kept on its connection); the others belong to the HubSpot portal.
COMPANY_SETTINGS = {"income_account", "product_type", "tax_codes", "default_tax_code"}
# On/off settings: stored as "on" or "off", typed as on/off or true/false.
BOOLEANS = {"allow_invoice_payments", "prices_include_tax", "write_back"}
BOOLEAN_WORDS = {"on": "on", "true": "on", "off": "off", "false": "off"}

CHOICES = {
    "contact_matching": ("sync_filters", "legacy"),
    "display_name_conflicts": ("disambiguate", "fail"),
    "product_type": ("Service", "NonInventory"),
    "service_dates": ("auto", "always", "never"),
    "document_numbers": ("quickbooks", "hubspot"),
}


class SettingError(ValueError):
    """A setting name or value that is not accepted; the message says what is."""


def parse_setting(key: str, text: str):
    """The stored value for `key=text`, or SettingError explaining what is accepted."""
    if key not in DEFAULT_SETTINGS:
        raise SettingError(f"unknown setting '{key}'; known: {', '.join(sorted(DEFAULT_SETTINGS))}")
    if key in BOOLEANS:
        if text.lower() not in BOOLEAN_WORDS:
            raise SettingError(f"{key} must be on or off (or true or false), not '{text}'")
        return BOOLEAN_WORDS[text.lower()]
    if key in CHOICES:
        if text not in CHOICES[key]:
            raise SettingError(f"{key} must be one of {', '.join(CHOICES[key])}, not '{text}'")
        return text
    if key == "contact_sync_filters":
        return parse_filters(text)
    if key == "tax_codes":
        return parse_tax_codes(text)
    if key == "default_tax_code" and text and not text.isdigit():
        raise SettingError("default_tax_code must be a QuickBooks TaxCode id (digits), or empty")
    if key == "income_account" and text and not text.isdigit():
        raise SettingError(
            "income_account must be a QuickBooks Account id (digits), or empty for the first Income account"
        )
    if key == "document_number_property" and text and not text.replace("_", "").isalnum():
        raise SettingError("document_number_property must be a HubSpot property name such as 'invoice_number'")
    return text


def parse_filters(text: str) -> list[dict]:
    try:
        filters = json.loads(text)
    except ValueError as exc:
        raise SettingError(f"contact_sync_filters must be a JSON list: {exc}") from None
    if not isinstance(filters, list):
        raise SettingError("contact_sync_filters must be a JSON list of conditions")
    for position, condition in enumerate(filters, start=1):
        check_filter(position, condition)
    return filters


def check_filter(position: int, condition) -> None:
    where = f"contact_sync_filters condition {position}"
    if not isinstance(condition, dict) or not isinstance(condition.get("property"), str) or not condition["property"]:
        raise SettingError(f"{where} needs a 'property' name")
    operator = condition.get("operator")
    if operator not in FILTER_OPERATORS:
        raise SettingError(f"{where}: operator must be one of {', '.join(FILTER_OPERATORS)}")
    if operator in ("in", "not_in") and not (isinstance(condition.get("values"), list) and condition["values"]):
        raise SettingError(f"{where}: '{operator}' needs a non-empty 'values' list")
    if operator in ("eq", "neq", "contains") and not isinstance(condition.get("value"), (str, int, float)):
        raise SettingError(f"{where}: '{operator}' needs a 'value'")
    unknown = set(condition) - {"property", "operator", "value", "values"}
    if unknown:
        raise SettingError(f"{where}: unknown keys {', '.join(sorted(unknown))}")


def setting_on(value) -> bool:
    return str(value).lower() in ("on", "true", "1", "yes")


def parse_tax_codes(text: str) -> dict:
    """{"<HubSpot tax rate group id or rate in percent>": "<QuickBooks TaxCode id>", ...}"""
    try:
        codes = json.loads(text or "{}")
    except ValueError as exc:
        raise SettingError(f"tax_codes must be a JSON object: {exc}") from None
    if not isinstance(codes, dict):
        raise SettingError('tax_codes must be a JSON object such as {"20": "7", "5": "8"}')
    parsed = {}
    for rate, code in codes.items():
        if not str(code).isdigit():
            raise SettingError(f"tax_codes: '{rate}' must map to a QuickBooks TaxCode id (digits), not '{code}'")
        parsed[rate_key(str(rate))] = str(code)
    return parsed


def rate_key(text: str) -> str:
    """A rate in percent spelled one way ("20.0" and "20" are the same key); group ids stay as they are."""
    try:
        number = float(text)
    except ValueError:
        return text.strip()
    spelled = f"{number:f}".rstrip("0").rstrip(".")
    return spelled if "." in f"{number:f}" else text.strip()
