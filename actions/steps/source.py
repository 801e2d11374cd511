"""load_source: the enrolled deal, quote or payment, the party to bill, and its line items."""

from dataclasses import dataclass, field

from actions.errors import ActionError

# HubSpot's object type (as in execution requests) → its CRM path name and a word for messages.
OBJECT_TYPES = {
    "DEAL": ("deals", "deal"),
    "QUOTE": ("quotes", "quote"),
    "COMMERCE_PAYMENT": ("commerce_payments", "payment"),
}
RECORD_PROPERTIES = {
    "DEAL": ["dealname", "amount", "closedate", "deal_currency_code"],
    "QUOTE": ["hs_title", "hs_quote_number", "hs_quote_amount", "hs_currency", "hs_expiration_date",
              "hs_esign_date", "hs_sign_status"],
    "COMMERCE_PAYMENT": ["hs_initial_amount", "hs_currency_code", "hs_customer_email", "hs_fees_amount",
                         "hs_refunds_amount", "hs_latest_status", "hs_payment_source_app", "hs_initiated_date",
                         "hs_reference_number", "hs_payment_method_type"],
}
LINE_ITEM_PROPERTIES = ["name", "description", "hs_sku", "quantity", "price", "amount", "hs_product_id",
                        "discount", "hs_discount_percentage", "hs_total_discount", "hs_tax_rate_group_id",
                        "hs_recurring_billing_start_date", "currency"]
CONTACT_PROPERTIES = ["email", "firstname", "lastname", "company", "phone"]


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


def crm_type(object_type: str) -> str:
    return OBJECT_TYPES[object_type][0]


def load_source(ctx, *, with_line_items: bool = True) -> Source:
    if ctx.object_type not in OBJECT_TYPES:
        raise ActionError("INVALID_INPUT", reason=f"This action cannot run on a {ctx.object_type} record.")
    path = crm_type(ctx.object_type)
    record = Record.from_api(ctx.crm.get_object(path, ctx.object_id, RECORD_PROPERTIES[ctx.object_type]))
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


def load_first_contact(ctx, source: Source) -> Record:
    """The billed contact: the lowest-id contact associated with the record (HubSpot's "first associated contact")."""
    ids = associated_ids(ctx, crm_type(source.object_type), source.record.id, "contacts")
    if not ids:
        raise ActionError("CONTACT_MISSING", object_label=source.label, party="associated contact")
    return Record.from_api(ctx.crm.get_object("contacts", ids[0], CONTACT_PROPERTIES))
