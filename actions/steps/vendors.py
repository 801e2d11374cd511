"""payments_vendor: the QuickBooks vendor an expense is paid to, chosen in the action or found or created once.

Display names are unique across customers, vendors and employees: when a customer already carries the
processor's name, the vendor gets the next free one ("HubSpot Payments (vendor)").
"""

from dataclasses import dataclass

from actions.errors import QuickBooksFault
from actions.steps.customers import NAME_NAMESPACES, name_queries

PROCESSOR_NAME = "HubSpot Payments"
MAPPING = ("vendor", "hubspot_payments")  # remembered per QuickBooks company
DUPLICATE_NAME = 6240


def payments_vendor(ctx, currency: str = "", home_currency: str = "") -> str:
    """The vendor's id; with several currencies, a vendor in the fee's currency (a vendor holds one)."""
    if ctx.input("vendor"):
        return ctx.input("vendor")
    vendor = VendorWanted(currency, home_currency)
    found = remembered_vendor(ctx, vendor) or find_or_create_vendor(ctx, vendor)
    ctx.mappings.remember(MAPPING[0], vendor.mapping_key, str(found["Id"]))
    return str(found["Id"])


@dataclass(frozen=True)
class VendorWanted:
    currency: str = ""  # "" when the company keeps one currency
    home_currency: str = ""

    @property
    def foreign(self) -> str:
        return self.currency if self.currency and self.currency != self.home_currency else ""

    @property
    def mapping_key(self) -> str:
        return f"{MAPPING[1]}:{self.foreign}" if self.foreign else MAPPING[1]

    def holds(self, vendor: dict) -> bool:
        held = str((vendor.get("CurrencyRef") or {}).get("value") or self.home_currency).upper()
        return vendor.get("Active", True) and (not self.currency or held == self.currency)

    def names(self) -> list[str]:
        base = f"{PROCESSOR_NAME} ({self.foreign})" if self.foreign else PROCESSOR_NAME
        return [base, f"{base} (vendor)"] + [f"{base} ({n})" for n in range(2, 10)]

    def body(self, name: str) -> dict:
        currency = {"CurrencyRef": {"value": self.currency}} if self.currency else {}
        return {"DisplayName": name, "CompanyName": "HubSpot", **currency}


def remembered_vendor(ctx, wanted: VendorWanted) -> dict | None:
    vendor_id = ctx.mappings.get(MAPPING[0], wanted.mapping_key)
    if not vendor_id:
        return None
    vendor = ctx.books.read("Vendor", vendor_id)
    if vendor and wanted.holds(vendor):
        return vendor
    ctx.mappings.forget(MAPPING[0], wanted.mapping_key)
    return None


def find_or_create_vendor(ctx, wanted: VendorWanted) -> dict:
    names = wanted.names()
    answers = dict(zip(NAME_NAMESPACES, ctx.books.query_batch(name_queries(names)), strict=True))
    taken = {record.get("DisplayName", "").casefold() for found in answers.values() for record in found}
    for name in names:
        vendor = next(
            (
                v
                for v in answers["Vendor"]
                if v.get("DisplayName", "").casefold() == name.casefold() and wanted.holds(v)
            ),
            None,
        )
        if vendor:
            return vendor
        if name.casefold() not in taken:
            created = create_vendor(ctx, name, wanted)
            if created:
                return created
    raise QuickBooksFault(
        DUPLICATE_NAME,
        "Duplicate Name Exists Error",
        f"Every name qbo-actions tries for the payment processor ('{PROCESSOR_NAME}' and variants) "
        "is taken; choose a vendor in the action's 'Vendor' field.",
        entity="Vendor",
    )


def create_vendor(ctx, name: str, wanted: VendorWanted) -> dict | None:
    step = f"vendor:{name}"
    try:
        vendor = ctx.books.create("Vendor", wanted.body(name), request_id=ctx.request_id(step))
    except QuickBooksFault as fault:
        if fault.code != DUPLICATE_NAME:
            raise
        return None  # taken since we looked (another execution): the caller tries the next name
    ctx.journal.wrote(step, "Vendor", vendor)
    ctx.journal.note(f"Created the QuickBooks vendor '{name}' for HubSpot payment fees.")
    return vendor
