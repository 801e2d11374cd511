"""ask_payments_vendor / payments_vendor: the QuickBooks vendor an expense is paid to, chosen in the action,
remembered (with its currency: written with unchecked), or found or created once.

Display names are unique across customers, vendors and employees: when a customer already carries the
processor's name, the vendor gets the next free one ("HubSpot Payments (vendor)").
"""

from dataclasses import dataclass

from actions.errors import QuickBooksFault
from actions.steps.customers import NAME_NAMESPACES, name_queries
from actions.steps.memory import TRUSTED, Memory, recall
from actions.steps.query import Question, Questions, literal

PROCESSOR_NAME = "HubSpot Payments"
MAPPING = ("vendor", "hubspot_payments")  # remembered per QuickBooks company
DUPLICATE_NAME = 6240
FACTS = ("currency",)  # what a remembered vendor is written with: the currency it holds


@dataclass
class VendorQuestions:
    wanted: "VendorWanted"
    chosen: str = ""  # the vendor chosen in the action: never looked up
    remembered: dict | None = None  # the vendor as remembered, written with unchecked
    remembered_id: str = ""  # a remembered vendor to check in QuickBooks first
    forgotten: bool = False  # the remembered vendor is the one QuickBooks refused: forget it, look it up again
    check: Question | None = None
    names: Question | None = None  # the names tried, across customers, vendors and employees


def ask_payments_vendor(
    ctx, questions: Questions, currency: str = "", home_currency: str = "", memory: Memory = TRUSTED
) -> VendorQuestions:
    """The vendor an expense is paid to: chosen in the action, remembered, or looked up with the other reads.

    It only asks (payments_vendor forgets), so it may ask for a vendor in a currency the fee turns out not to be in.
    """
    wanted = VendorWanted(currency, home_currency)
    asked = VendorQuestions(wanted, chosen=ctx.input("vendor"))
    if asked.chosen:
        return asked
    recalled = recall(ctx, MAPPING[0], wanted.mapping_key, FACTS)
    if recalled and memory.forgets("vendor"):
        asked.forgotten = True
        recalled = None
    if recalled:
        vendor_id, facts = recalled
        remembered = {"Id": vendor_id, "Active": True, "CurrencyRef": {"value": (facts or {}).get("currency")}}
        if facts is not None and memory.trusts("vendor") and wanted.holds(remembered):
            asked.remembered = remembered
            return asked
        # Remembered without its facts, or perhaps the reference QuickBooks just refused: is it still active?
        asked.remembered_id = vendor_id
        asked.check = questions.ask([f"SELECT * FROM Vendor WHERE Id = {literal(vendor_id)}"])
    asked.names = questions.ask(name_queries(wanted.names()))
    return asked


def foresee_payments_vendor(
    ctx, questions: Questions, possible: list[tuple[str, str]], memory: Memory = TRUSTED
) -> None:
    """Before the fee's currency is decided, ask along what ask_payments_vendor will ask in each (fee currency,
    home currency) it may turn out to be in: asked again then, it needs no request."""
    for currency, home_currency in possible:
        ask_payments_vendor(ctx, questions, currency, home_currency, memory)


def payments_vendor(ctx, asked: VendorQuestions) -> str:
    """The vendor's id; with several currencies, a vendor in the fee's currency (a vendor holds one)."""
    if asked.chosen:
        return asked.chosen
    wanted = asked.wanted
    if asked.forgotten:
        ctx.mappings.forget(MAPPING[0], wanted.mapping_key)
    found = asked.remembered or checked_vendor(ctx, asked) or find_or_create_vendor(ctx, asked)
    currency = (found.get("CurrencyRef") or {}).get("value") or wanted.home_currency
    ctx.mappings.remember(MAPPING[0], wanted.mapping_key, str(found["Id"]), {"currency": str(currency or "").upper()})
    return str(found["Id"])


def checked_vendor(ctx, asked: VendorQuestions) -> dict | None:
    if not asked.remembered_id:
        return None
    [found] = asked.check.answers
    vendor = found[0] if found else None
    if vendor and asked.wanted.holds(vendor):
        return vendor
    ctx.mappings.forget(MAPPING[0], asked.wanted.mapping_key)
    return None


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


def find_or_create_vendor(ctx, asked: VendorQuestions) -> dict:
    wanted = asked.wanted
    names = wanted.names()
    answers = dict(zip(NAME_NAMESPACES, asked.names.answers, strict=True))
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
