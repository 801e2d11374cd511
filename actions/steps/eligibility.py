"""check_contact_eligible: in sync_filters mode the contact must pass every data-sync filter."""

from actions.errors import ActionError
from actions.steps.source import Record, describe_contact


def check_contact_eligible(ctx, contact: Record) -> None:
    if ctx.settings.get("contact_matching") == "legacy":
        return
    for condition in ctx.settings.get("contact_sync_filters") or []:
        if not passes(contact, condition):
            raise ActionError("CONTACT_NOT_ELIGIBLE", contact=describe_contact(contact), condition=describe(condition))


def filter_properties(settings) -> list[str]:
    """Contact properties the filters read, so they are fetched with the contact."""
    if settings.get("contact_matching") == "legacy":
        return []
    return sorted({c["property"] for c in settings.get("contact_sync_filters") or []})


def passes(contact: Record, condition: dict) -> bool:
    value = contact.get(condition["property"]).casefold()
    operator = condition["operator"]
    wanted = str(condition.get("value", "")).casefold()
    wanted_list = [str(v).casefold() for v in condition.get("values") or []]
    return {
        "known": lambda: value != "",
        "unknown": lambda: value == "",
        "eq": lambda: value == wanted,
        "neq": lambda: value != wanted,
        "contains": lambda: wanted in value,
        # HubSpot multi-select values are ';'-separated: any selected value counts.
        "in": lambda: bool(set(value.split(";")) & set(wanted_list)),
        "not_in": lambda: not set(value.split(";")) & set(wanted_list),
    }[operator]()


def describe(condition: dict) -> str:
    operator = condition["operator"]
    words = {
        "known": "is known",
        "unknown": "is unknown",
        "eq": "is",
        "neq": "is not",
        "contains": "contains",
        "in": "is any of",
        "not_in": "is none of",
    }[operator]
    target = (
        condition.get("value")
        if operator in ("eq", "neq", "contains")
        else ", ".join(map(str, condition.get("values") or []))
    )
    return f"{condition['property']} {words}" + (f" {target}" if operator not in ("known", "unknown") else "")
