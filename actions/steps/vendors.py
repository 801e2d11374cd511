"""payments_vendor: the QuickBooks vendor an expense is paid to, chosen in the action or found or created once.

Display names are unique across customers, vendors and employees: when a customer already carries the
processor's name, the vendor gets the next free one ("HubSpot Payments (vendor)").
"""

from actions.errors import QuickBooksFault
from actions.steps.customers import NAME_NAMESPACES, name_queries

PROCESSOR_NAME = "HubSpot Payments"
MAPPING = ("vendor", "hubspot_payments")  # remembered per QuickBooks company
DUPLICATE_NAME = 6240


def payments_vendor(ctx) -> str:
    if ctx.input("vendor"):
        return ctx.input("vendor")
    vendor = remembered_vendor(ctx) or find_or_create_vendor(ctx)
    ctx.mappings.remember(*MAPPING, str(vendor["Id"]))
    return str(vendor["Id"])


def remembered_vendor(ctx) -> dict | None:
    vendor_id = ctx.mappings.get(*MAPPING)
    if not vendor_id:
        return None
    vendor = ctx.books.read("Vendor", vendor_id)
    if vendor and vendor.get("Active", True):
        return vendor
    ctx.mappings.forget(*MAPPING)
    return None


def candidate_names() -> list[str]:
    return [PROCESSOR_NAME, f"{PROCESSOR_NAME} (vendor)"] + [f"{PROCESSOR_NAME} ({n})" for n in range(2, 10)]


def find_or_create_vendor(ctx) -> dict:
    names = candidate_names()
    answers = dict(zip(NAME_NAMESPACES, ctx.books.query_batch(name_queries(names)), strict=True))
    taken = {record.get("DisplayName", "").casefold() for found in answers.values() for record in found}
    for name in names:
        vendor = next(
            (
                v
                for v in answers["Vendor"]
                if v.get("DisplayName", "").casefold() == name.casefold() and v.get("Active", True)
            ),
            None,
        )
        if vendor:
            return vendor
        if name.casefold() not in taken:
            created = create_vendor(ctx, name)
            if created:
                return created
    raise QuickBooksFault(
        DUPLICATE_NAME,
        "Duplicate Name Exists Error",
        f"Every name qbo-actions tries for the payment processor ('{PROCESSOR_NAME}' and variants) "
        "is taken; choose a vendor in the action's 'Vendor' field.",
        entity="Vendor",
    )


def create_vendor(ctx, name: str) -> dict | None:
    step = f"vendor:{name}"
    try:
        vendor = ctx.books.create(
            "Vendor", {"DisplayName": name, "CompanyName": "HubSpot"}, request_id=ctx.request_id(step)
        )
    except QuickBooksFault as fault:
        if fault.code != DUPLICATE_NAME:
            raise
        return None  # taken since we looked (another execution): the caller tries the next name
    ctx.journal.wrote(step, "Vendor", vendor)
    ctx.journal.note(f"Created the QuickBooks vendor '{name}' for HubSpot payment fees.")
    return vendor
