"""load_source: the enrolled deal, quote or payment, the party to bill, and its line items."""

from dataclasses import dataclass, field
from datetime import UTC, datetime

from actions.errors import ActionError

# HubSpot's object type (as in execution requests) → its CRM path name and a word for messages.
OBJECT_TYPES = {
    "DEAL": ("deals", "deal"),
    "QUOTE": ("quotes", "quote"),
    "COMMERCE_PAYMENT": ("commerce_payments", "payment"),
}
RECORD_PROPERTIES = {
    "DEAL": ["dealname", "amount", "closedate", "deal_currency_code"],
    "QUOTE": [
        "hs_title",
        "hs_quote_number",
        "hs_quote_amount",
        "hs_currency",
        "hs_expiration_date",
        "hs_esign_date",
        "hs_sign_status",
    ],
    "COMMERCE_PAYMENT": [
        "hs_initial_amount",
        "hs_currency_code",
        "hs_customer_email",
        "hs_fees_amount",
        "hs_refunds_amount",
        "hs_latest_status",
        "hs_payment_source_app",
        "hs_initiated_date",
        "hs_reference_number",
        "hs_payment_method_type",
        "hs_payout_date",
    ],
}
# The day a document is dated by, first known wins: the record's own date, never the day the worker ran.
DATE_PROPERTIES = {
    "DEAL": ("closedate",),
    "QUOTE": ("hs_esign_date", "createdate"),  # signed, else issued
    "COMMERCE_PAYMENT": ("hs_initiated_date",),
}
AMOUNT_PROPERTIES = {"DEAL": "amount", "QUOTE": "hs_quote_amount", "COMMERCE_PAYMENT": "hs_initial_amount"}
TITLE_PROPERTIES = {"DEAL": "dealname", "QUOTE": "hs_title", "COMMERCE_PAYMENT": "hs_reference_number"}
LINE_ITEM_PROPERTIES = [
    "name",
    "description",
    "hs_sku",
    "quantity",
    "price",
    "amount",
    "hs_product_id",
    "discount",
    "hs_discount_percentage",
    "hs_total_discount",
    "hs_tax_rate_group_id",
    "hs_recurring_billing_start_date",
    "currency",
    "hs_tax_rate",
    "hs_tax_amount",
    "hs_tax_label",
]
CONTACT_PROPERTIES = ["email", "firstname", "lastname", "company", "phone"]
COMPANY_PROPERTIES = ["name", "domain", "phone"]
PRIMARY_COMPANY = 5  # deal → company, "Primary"
QUOTE_SIGNER = 702  # quote → contact, "Signer"
# The association type that names "the" company of each record: a deal's primary, a quote's, a payment's.
COMPANY_TYPE_IDS = {"DEAL": {PRIMARY_COMPANY}, "QUOTE": {71}, "COMMERCE_PAYMENT": {389}}


@dataclass
class Record:
    """A HubSpot CRM record: its id and its properties (absent and null both read as "")."""

    id: str
    properties: dict = field(default_factory=dict)

    def get(self, name: str) -> str:
        value = self.properties.get(name)
        return "" if value is None else str(value).strip()

    @classmethod
    def from_api(cls, body: dict) -> "Record":
        return cls(id=str(body["id"]), properties=body.get("properties") or {})


@dataclass
class Source:
    object_type: str
    record: Record
    line_items: list[Record]

    @property
    def label(self) -> str:
        return f"{OBJECT_TYPES[self.object_type][1]} {self.record.id}"

    @property
    def title(self) -> str:
        return self.record.get(TITLE_PROPERTIES[self.object_type]) or self.label

    @property
    def date(self) -> str:
        """The record's date as YYYY-MM-DD (close date, quote date, payment date), or "" when unknown."""
        return next(
            (as_date(self.record.get(name)) for name in DATE_PROPERTIES[self.object_type] if self.record.get(name)), ""
        )


def as_date(value: str) -> str:
    """HubSpot dates come as 'YYYY-MM-DD', ISO datetimes, or epoch milliseconds."""
    if not value:
        return ""
    if value.isdigit():
        return datetime.fromtimestamp(int(value) / 1000, tz=UTC).date().isoformat()
    return value[:10]


def crm_type(object_type: str) -> str:
    return OBJECT_TYPES[object_type][0]


def load_source(ctx, *, with_line_items: bool = True, extra_properties: list[str] = ()) -> Source:
    if ctx.object_type not in OBJECT_TYPES:
        raise ActionError("INVALID_INPUT", reason=f"This action cannot run on a {ctx.object_type} record.")
    path = crm_type(ctx.object_type)
    properties = sorted(set(RECORD_PROPERTIES[ctx.object_type]) | set(extra_properties))
    record = Record.from_api(ctx.crm.get_object(path, ctx.object_id, properties))
    line_items = load_associated(ctx, path, record.id, "line_items", LINE_ITEM_PROPERTIES) if with_line_items else []
    return Source(ctx.object_type, record, line_items)


def associated_ids(ctx, from_type: str, from_id: str, to_type: str, *, type_ids: set[int] | None = None) -> list[str]:
    """Associated record ids, lowest first: HubSpot promises no order, and "first" must mean the same every time."""
    ids = set()
    for association in ctx.crm.associations(from_type, from_id, to_type):
        kinds = {kind.get("typeId") for kind in association.get("associationTypes", [])}
        if type_ids is None or kinds & type_ids:
            ids.add(int(association["toObjectId"]))
    return [str(i) for i in sorted(ids)]


def load_associated(ctx, from_type: str, from_id: str, to_type: str, properties: list[str]) -> list[Record]:
    ids = associated_ids(ctx, from_type, from_id, to_type)
    if not ids:
        return []
    records = [Record.from_api(body) for body in ctx.crm.read_objects(to_type, ids, properties)]
    return sorted(records, key=lambda r: int(r.id))


@dataclass
class Party:
    """Who is billed: a contact, or a company with its contact's email for billing."""

    kind: str  # "contact" or "company": also the kind of the remembered mapping
    record: Record
    contact: Record | None = None  # the billing contact (the record itself for a contact)
    currency: str = ""  # the document's currency when the company keeps several; a customer holds one
    home_currency: str = ""

    @property
    def foreign_currency(self) -> str:
        return self.currency if self.currency and self.currency != self.home_currency else ""

    @property
    def mapping_key(self) -> str:
        """What the QuickBooks customer is remembered by: the HubSpot record, per currency but the home one."""
        return f"{self.record.id}:{self.foreign_currency}" if self.foreign_currency else self.record.id

    @property
    def email(self) -> str:
        return self.contact.get("email") if self.contact else ""

    @property
    def name(self) -> str:
        if self.kind == "company":
            return self.record.get("name")
        return " ".join(p for p in (self.record.get("firstname"), self.record.get("lastname")) if p)

    def describe(self) -> str:
        if self.kind == "company":
            return f"{self.name or 'unnamed company'} (HubSpot company {self.record.id})"
        return describe_contact(self.record)


def describe_contact(contact: Record) -> str:
    name = " ".join(p for p in (contact.get("firstname"), contact.get("lastname")) if p)
    email = contact.get("email")
    label = f"{name} <{email}>" if name and email else name or email or "without name or email"
    if not contact.id:  # a payment's customer email with no HubSpot contact behind it
        return f"{label} (the payment's customer email)"
    return f"{label} (HubSpot contact {contact.id})"


def load_party(ctx, source: Source, *, contact_properties: list[str] = ()) -> Party:
    """The party the `customer` input names: first associated contact, the record's company, or quote signer."""
    choice = ctx.input("customer", "first_associated_contact")
    properties = sorted(set(CONTACT_PROPERTIES) | set(contact_properties))
    if choice == "primary_company":
        return company_party(ctx, source, properties)
    if choice == "quote_signer" and source.object_type == "QUOTE":
        signer_ids = associated_ids(
            ctx, crm_type(source.object_type), source.record.id, "contacts", type_ids={QUOTE_SIGNER}
        )
        if signer_ids:
            contact = Record.from_api(ctx.crm.get_object("contacts", signer_ids[0], properties))
            return Party("contact", contact, contact)
        ctx.journal.note(f"The {source.label} has no signer; billing its first contact instead.")
    elif choice not in ("first_associated_contact", "quote_signer"):
        raise ActionError("INVALID_INPUT", reason=f"The 'Customer' field has an unknown value '{choice}'.")
    contact = billing_contact(ctx, source, properties)
    if contact is None:
        raise ActionError("CONTACT_MISSING", object_label=source.label, party="associated contact")
    return Party("contact", contact, contact)


def company_party(ctx, source: Source, properties: list[str]) -> Party:
    company_ids = associated_ids(
        ctx, crm_type(source.object_type), source.record.id, "companies", type_ids=COMPANY_TYPE_IDS[source.object_type]
    )
    if not company_ids:
        party = "primary company" if source.object_type == "DEAL" else "associated company"
        raise ActionError("CONTACT_MISSING", object_label=source.label, party=party)
    company = Record.from_api(ctx.crm.get_object("companies", company_ids[0], COMPANY_PROPERTIES))
    return Party("company", company, billing_contact(ctx, source, properties))


def billing_contact(ctx, source: Source, properties: list[str]) -> Record | None:
    """The first associated contact; for a payment without one, the customer email it was paid with."""
    contact_ids = associated_ids(ctx, crm_type(source.object_type), source.record.id, "contacts")
    if contact_ids:
        return Record.from_api(ctx.crm.get_object("contacts", contact_ids[0], properties))
    email = source.record.get("hs_customer_email") if source.object_type == "COMMERCE_PAYMENT" else ""
    if not email:
        return None
    ctx.journal.note(f"The {source.label} has no associated contact; billing its customer email {email}.")
    return Record(id="", properties={"email": email})
