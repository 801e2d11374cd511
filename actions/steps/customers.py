"""resolve_customer: the QuickBooks customer for a HubSpot contact, found by email or created."""

from actions.errors import ActionError, QuickBooksFault
from actions.steps.query import literal
from actions.steps.source import Record

DUPLICATE_NAME = 6240
MAX_NAME_TRIES = 20


def resolve_customer(ctx, contact: Record) -> dict:
    remembered = remembered_customer(ctx, contact)
    if remembered:
        return remembered
    email = contact.get("email")
    if not email:
        raise ActionError("CONTACT_NOT_ELIGIBLE", contact=describe(contact), condition="email is known")
    customer = choose_customer(ctx, contact, find_by_email(ctx, email)) or create_customer(ctx, contact)
    ctx.mappings.remember("contact", contact.id, str(customer["Id"]))
    return customer


def remembered_customer(ctx, contact: Record) -> dict | None:
    customer_id = ctx.mappings.get("contact", contact.id)
    if not customer_id:
        return None
    customer = ctx.books.read("Customer", customer_id)
    if customer and customer.get("Active", True):
        return customer
    # Deleted or made inactive in QuickBooks since we matched it: match again from scratch.
    ctx.mappings.forget("contact", contact.id)
    ctx.journal.note(f"Remembered QuickBooks customer {customer_id} is gone or inactive; matching {describe(contact)} again.")
    return None


def find_by_email(ctx, email: str) -> list[dict]:
    query = f"SELECT * FROM Customer WHERE PrimaryEmailAddr = {literal(email)} AND Active IN (true, false)"
    try:
        found = ctx.books.query(query)
    except QuickBooksFault as fault:
        if fault.code != 4001:
            raise
        found = scan_customers(ctx)  # some companies refuse email filters: compare them ourselves
    # QuickBooks compares loosely; the match we promise is exact on the address, ignoring case.
    return [c for c in found if email_of(c).lower() == email.lower()]


def scan_customers(ctx) -> list[dict]:
    customers, start = [], 1
    while True:
        page = ctx.books.query(f"SELECT * FROM Customer WHERE Active IN (true, false) STARTPOSITION {start} MAXRESULTS 1000")
        customers += page
        if len(page) < 1000:
            return customers
        start += 1000


def choose_customer(ctx, contact: Record, candidates: list[dict]) -> dict | None:
    """Several customers share the email: prefer active, then the contact's name, then the oldest."""
    if not candidates:
        return None
    name = full_name(contact).lower()

    def rank(customer):
        return (not customer.get("Active", True),
                bool(name) and display_name_of(customer).lower() != name,
                customer.get("MetaData", {}).get("CreateTime", ""),
                int(customer["Id"]))

    chosen = sorted(candidates, key=rank)[0]
    if len(candidates) > 1:
        ctx.journal.note(f"{len(candidates)} QuickBooks customers have {contact.get('email')}; chose {chosen['Id']} "
                         f"('{display_name_of(chosen)}': active first, then matching name, then oldest).")
    return chosen


def create_customer(ctx, contact: Record) -> dict:
    body = {"PrimaryEmailAddr": {"Address": contact.get("email")}}
    if contact.get("firstname"):
        body["GivenName"] = contact.get("firstname")[:100]
    if contact.get("lastname"):
        body["FamilyName"] = contact.get("lastname")[:100]
    for display_name in display_name_candidates(contact):
        try:
            customer = ctx.books.create("Customer", body | {"DisplayName": display_name},
                                        request_id=ctx.request_id(f"customer:{display_name}"))
        except QuickBooksFault as fault:
            if fault.code != DUPLICATE_NAME:
                raise
            if ctx.settings.get("display_name_conflicts", "disambiguate") == "fail":
                raise ActionError("DUPLICATE_DISPLAY_NAME", display_name=display_name, contact=describe(contact)) from fault
            continue
        ctx.journal.wrote("customer", "Customer", customer)
        return customer
    raise ActionError("DUPLICATE_DISPLAY_NAME", display_name=full_name(contact), contact=describe(contact))


def display_name_candidates(contact: Record):
    """'Name', then 'Name (email)', then 'Name (2)', ...: QuickBooks display names are unique and colon-free."""
    name = clean(full_name(contact) or contact.get("email"))
    yield name
    email = clean(contact.get("email"))
    if email and email != name:
        yield f"{name} ({email})"
    for n in range(2, MAX_NAME_TRIES):
        yield f"{name} ({n})"


def clean(text: str) -> str:
    return " ".join(text.replace(":", " ").split())[:100]


def full_name(contact: Record) -> str:
    return " ".join(part for part in (contact.get("firstname"), contact.get("lastname")) if part)


def describe(contact: Record) -> str:
    name = full_name(contact)
    email = contact.get("email")
    label = f"{name} <{email}>" if name and email else name or email or "without name or email"
    return f"{label} (HubSpot contact {contact.id})"


def email_of(customer: dict) -> str:
    return (customer.get("PrimaryEmailAddr") or {}).get("Address", "")


def display_name_of(customer: dict) -> str:
    return customer.get("DisplayName", "")
