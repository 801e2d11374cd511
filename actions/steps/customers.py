"""resolve_customer: the QuickBooks customer for the billed party, remembered, found, or created.

Contacts match by email (sync_filters mode) or by first name, last name and email (legacy mode);
companies match by display name. QuickBooks display names are unique across customers, vendors and
employees, so a name is checked before it is used and disambiguated (or refused) when taken.
"""

from actions.errors import ActionError, QuickBooksFault
from actions.steps.query import literal
from actions.steps.source import Party

DUPLICATE_NAME = 6240
NAME_NAMESPACES = ("Customer", "Vendor", "Employee")
MAX_NAME_TRIES = 20


def resolve_customer(ctx, party: Party) -> dict:
    customer = remembered_customer(ctx, party) or find_customer(ctx, party) or create_customer(ctx, party)
    ctx.mappings.remember(party.kind, party.record.id, str(customer["Id"]))
    return customer


def remembered_customer(ctx, party: Party) -> dict | None:
    customer_id = ctx.mappings.get(party.kind, party.record.id)
    if not customer_id:
        return None
    customer = ctx.books.read("Customer", customer_id)
    if customer and customer.get("Active", True):
        return customer
    # Deleted or made inactive in QuickBooks since we matched it: match again from scratch.
    ctx.mappings.forget(party.kind, party.record.id)
    ctx.journal.note(f"QuickBooks customer {customer_id}, remembered for {party.describe()}, is gone or inactive; "
                     "matching again.")
    return None


def find_customer(ctx, party: Party) -> dict | None:
    if party.kind == "company":
        found = query_customers(ctx, f"DisplayName = {literal(clean(party.name))}") if party.name else []
        return choose(ctx, party, found)
    if not party.email:
        return None
    found = find_by_email(ctx, party.email)
    if ctx.settings.get("contact_matching") == "legacy":
        # HubSpot's legacy integration matched first name, last name and email together.
        found = [c for c in found if same_name(c, party)]
    return choose(ctx, party, found)


def query_customers(ctx, condition: str) -> list[dict]:
    return ctx.books.query(f"SELECT * FROM Customer WHERE {condition} AND Active IN (true, false)")


def find_by_email(ctx, email: str) -> list[dict]:
    try:
        found = query_customers(ctx, f"PrimaryEmailAddr = {literal(email)}")
    except QuickBooksFault as fault:
        if fault.code != 4001:
            raise
        found = scan_customers(ctx)  # some companies refuse email filters: compare them ourselves
    # QuickBooks compares loosely; the match we promise is exact on the address, ignoring case.
    return [c for c in found if email_of(c).casefold() == email.casefold()]


def scan_customers(ctx) -> list[dict]:
    customers, start = [], 1
    while True:
        page = ctx.books.query("SELECT * FROM Customer WHERE Active IN (true, false) "
                               f"STARTPOSITION {start} MAXRESULTS 1000")
        customers += page
        if len(page) < 1000:
            return customers
        start += 1000


def same_name(customer: dict, party: Party) -> bool:
    return (customer.get("GivenName", "").casefold() == party.record.get("firstname").casefold()
            and customer.get("FamilyName", "").casefold() == party.record.get("lastname").casefold())


def choose(ctx, party: Party, candidates: list[dict]) -> dict | None:
    """Several customers match: prefer active, then the party's name, then the oldest; say which and why."""
    if not candidates:
        return None
    name = clean(party.name).casefold()

    def rank(customer):
        return (not customer.get("Active", True),
                bool(name) and customer.get("DisplayName", "").casefold() != name,
                customer.get("MetaData", {}).get("CreateTime", ""),
                int(customer["Id"]))

    chosen = sorted(candidates, key=rank)[0]
    if len(candidates) > 1:
        ctx.journal.note(f"{len(candidates)} QuickBooks customers match {party.describe()}; chose {chosen['Id']} "
                         f"('{chosen.get('DisplayName', '')}'): active first, then matching name, then oldest.")
    if not chosen.get("Active", True):
        raise ActionError("CUSTOMER_NOT_FOUND", customer_id=chosen["Id"], contact=party.describe())
    return chosen


def create_customer(ctx, party: Party) -> dict:
    body = customer_body(party)
    for display_name in free_display_names(ctx, party):
        try:
            customer = ctx.books.create("Customer", body | {"DisplayName": display_name},
                                        request_id=ctx.request_id(f"customer:{display_name}"))
        except QuickBooksFault as fault:
            if fault.code != DUPLICATE_NAME:
                raise
            if refuses_conflicts(ctx):
                raise ActionError("DUPLICATE_DISPLAY_NAME", display_name=display_name, contact=party.describe()) from fault
            continue  # taken between our check and the write: the next free name
        ctx.journal.wrote("customer", "Customer", customer)
        return customer
    raise ActionError("DUPLICATE_DISPLAY_NAME", display_name=clean(party.name), contact=party.describe())


def customer_body(party: Party) -> dict:
    body = {}
    if party.email:
        body["PrimaryEmailAddr"] = {"Address": party.email}
    if party.kind == "company":
        body["CompanyName"] = clean(party.name)[:100]
    else:
        if party.record.get("firstname"):
            body["GivenName"] = party.record.get("firstname")[:100]
        if party.record.get("lastname"):
            body["FamilyName"] = party.record.get("lastname")[:100]
    return body


def free_display_names(ctx, party: Party):
    """Candidate names that no customer, vendor or employee uses (all looked up in one batch)."""
    candidates = list(display_name_candidates(party))
    if not candidates[0]:
        raise ActionError("CONTACT_NOT_ELIGIBLE", contact=party.describe(), condition="name or email is known")
    taken = taken_names(ctx, candidates)
    if candidates[0].casefold() in taken and refuses_conflicts(ctx):
        raise ActionError("DUPLICATE_DISPLAY_NAME", display_name=candidates[0], contact=party.describe())
    for name in candidates:
        if name.casefold() not in taken:
            if name != candidates[0]:
                ctx.journal.note(f"QuickBooks display name '{candidates[0]}' is taken; "
                                 f"using '{name}' for {party.describe()}.")
            yield name


def refuses_conflicts(ctx) -> bool:
    return ctx.settings.get("display_name_conflicts") == "fail"


def taken_names(ctx, names: list[str]) -> set[str]:
    where = "DisplayName IN (" + ", ".join(literal(n) for n in names) + ") AND Active IN (true, false)"
    answers = ctx.books.query_batch([f"SELECT * FROM {entity} WHERE {where}" for entity in NAME_NAMESPACES])
    return {record.get("DisplayName", "").casefold() for answer in answers for record in answer}


def display_name_candidates(party: Party):
    """'Name', then 'Name (email)', then 'Name (2)', ...: unique, colon-free, at most 100 characters."""
    name = clean(party.name or party.email)
    yield name
    email = clean(party.email)
    if email and email != name:
        yield f"{name[:100 - len(email) - 3]} ({email})"
    for n in range(2, MAX_NAME_TRIES):
        yield f"{name[:94]} ({n})"


def clean(text: str) -> str:
    return " ".join((text or "").replace(":", " ").split())[:100]


def email_of(customer: dict) -> str:
    return (customer.get("PrimaryEmailAddr") or {}).get("Address", "")
