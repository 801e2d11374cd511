"""ask_customer / resolve_customer: the QuickBooks customer for the billed party, remembered, found, or created.

Contacts match by email (sync_filters mode) or by first name, last name and email (legacy mode);
companies match by name. QuickBooks display names are unique across customers, vendors and
employees, so a name is checked before it is used and disambiguated (or refused) when taken.

A remembered customer costs no QuickBooks request: the document is written with it, and QuickBooks refusing it
as gone or inactive has it matched again (actions/steps/memory.py). A cold lookup asks its questions (the match
query and the display-name checks) together with the document's other reads, in one /batch; creating a customer
costs that and the create. Which names and which remembered customer depend on the document's currency: before
the company's home currency is known, the questions of every currency it may turn out to be in are asked along.
"""

import threading
from dataclasses import dataclass, field, replace

from actions.errors import ActionError, QuickBooksFault
from actions.steps.memory import TRUSTED, Memory, recall
from actions.steps.query import Question, Questions, literal, literal_list
from actions.steps.source import Party

DUPLICATE_NAME = 6240
NAME_NAMESPACES = ("Customer", "Vendor", "Employee")
MAX_NAME_TRIES = 20
DISPLAY_NAME_LENGTH = 100  # QuickBooks allows 500; 100 keeps names readable on forms and in lists
FACTS = ("currency", "name")  # what a remembered customer is written with: its currency, its display name
REMEMBERED = "remembered from an earlier execution"
# A billing run starts several executions of one new contact at once: within a process one of them creates its
# customer while the others wait, then use it. Striped (a fixed number of locks): contacts are unbounded.
CREATION_LOCKS = tuple(threading.Lock() for _ in range(256))


@dataclass
class CustomerQuestions:
    """What resolving the party's customer needs from QuickBooks, asked with the document's other reads."""

    party: Party
    remembered: dict | None = None  # the customer as remembered, written with unchecked
    remembered_id: str = ""  # a remembered customer to check in QuickBooks first
    forgotten: tuple[str, str] | None = None  # (id, why): a remembered customer to forget, matched again instead
    check: Question | None = None
    matches: Question | None = None
    names: Question | None = None
    candidates: list[str] = field(default_factory=list)


def ask_customer(ctx, party: Party, questions: Questions, memory: Memory = TRUSTED) -> CustomerQuestions:
    """Use the remembered customer when memory allows; otherwise ask who matches (and which names are taken).

    It only asks (resolve_customer forgets what memory no longer holds), so it may ask for a party in a currency
    the document turns out not to be in."""
    asked = CustomerQuestions(party)
    recalled = recall(ctx, party.kind, party.mapping_key, FACTS) if party.record.id else None
    if recalled and memory.forgets("customer"):
        asked.forgotten = (recalled[0], f"QuickBooks refused it: {memory.refused.describe()}")
        recalled = None
    if recalled:
        customer_id, facts = recalled
        if facts is not None and memory.trusts("customer"):
            remembered = remembered_customer(customer_id, facts)
            if in_currency(remembered, party):
                asked.remembered = remembered
                return asked
            # Remembered in another currency than the document's: never reused silently; match again.
            asked.forgotten = (customer_id, f"it is in {facts['currency']}, the document in {party.currency}")
        else:
            # Remembered without its facts, or perhaps the reference QuickBooks just refused: is it still active?
            asked.remembered_id = customer_id
            asked.check = questions.ask([f"SELECT * FROM Customer WHERE Id = {literal(customer_id)}"])
    asked.candidates = list(display_name_candidates(party))
    if asked.candidates[0]:  # asked along even when checking a remembered customer, in case it is gone
        asked.matches = questions.ask(matching_queries(party), fallback=email_scan(ctx, party))
        asked.names = questions.ask(name_queries(asked.candidates))
    return asked


def remembered_customer(customer_id: str, facts: dict) -> dict:
    """The customer as the warm path writes with it: its id, display name and currency, as remembered."""
    remembered = {"Id": customer_id, "DisplayName": facts["name"], "Active": True}
    if facts["currency"]:
        remembered["CurrencyRef"] = {"value": facts["currency"]}
    return remembered


def foresee_customer(
    ctx, party: Party, possible: list[tuple[str, str]], questions: Questions, memory: Memory = TRUSTED
) -> None:
    """Before the document's currency is decided, ask along what ask_customer will ask for the party in each
    (document currency, home currency) it may turn out to be in: asked again then, it needs no request."""
    for currency, home_currency in possible:
        ask_customer(ctx, replace(party, currency=currency, home_currency=home_currency), questions, memory)


def resolve_customer(ctx, asked: CustomerQuestions) -> dict:
    """The customer, once the questions were answered: remembered, chosen among the matches, or created."""
    party = asked.party
    if asked.forgotten:
        forget_customer(ctx, party, *asked.forgotten)
    customer, how = asked.remembered or checked_customer(ctx, asked), REMEMBERED
    if customer is None:
        if not asked.candidates[0]:
            raise ActionError("CONTACT_NOT_ELIGIBLE", contact=party.describe(), condition="name or email is known")
        lookup = answered_lookup(ctx, asked)
        customer, how = choose(ctx, party, lookup.matches), f"found by {'name' if party.kind == 'company' else 'email'}"
        if customer is None:
            customer, how = create_customer(ctx, party, lookup), "created"
    if party.record.id:  # a payment's bare customer email has no HubSpot record to remember it by
        ctx.mappings.remember(party.kind, party.mapping_key, str(customer["Id"]), customer_facts(customer, party))
    # The console shows (and searches) who was billed and why.
    ctx.journal.note(
        f"Customer: QuickBooks customer {customer['Id']} '{customer.get('DisplayName', '')}' for "
        f"{party.describe()}, {how}."
    )
    return customer


def customer_facts(customer: dict, party: Party) -> dict:
    currency = (customer.get("CurrencyRef") or {}).get("value") or party.home_currency
    return {"currency": str(currency or "").upper(), "name": customer.get("DisplayName", "")}


def checked_customer(ctx, asked: CustomerQuestions) -> dict | None:
    """The remembered customer as QuickBooks has it, if it is still active and in the document's currency."""
    if asked.check is None:
        return None
    [found] = asked.check.answers
    customer = found[0] if found else None
    if customer and customer.get("Active", True) and in_currency(customer, asked.party):
        return customer
    # Deleted, made inactive or re-currencied in QuickBooks since we matched it: match again from scratch.
    forget_customer(ctx, asked.party, asked.remembered_id, "")
    return None


def forget_customer(ctx, party: Party, customer_id: str, why: str) -> None:
    ctx.mappings.forget(party.kind, party.mapping_key)
    ctx.journal.note(
        f"QuickBooks customer {customer_id}, remembered for {party.describe()}, is gone or inactive"
        f"{f' ({why})' if why else ''}; matching again."
    )


# -- finding -----------------------------------------------------------------------------------------------


@dataclass
class Lookup:
    matches: list[dict]  # customers that are this party, active or not
    taken: set[str]  # casefolded display names held by a customer, vendor or employee
    candidates: list[str]  # display names to try, best first


def answered_lookup(ctx, asked: CustomerQuestions) -> Lookup:
    """Who matches the party, and which candidate display names are taken, from the answers."""
    found = [customer for answer in asked.matches.answers for customer in answer]
    taken = {record.get("DisplayName", "").casefold() for answer in asked.names.answers for record in answer}
    return Lookup(matches=matching(ctx, asked.party, unique(found)), taken=taken, candidates=asked.candidates)


def email_scan(ctx, party: Party):
    """Some companies refuse an email filter (4001): read every customer and compare emails ourselves."""
    if not party_uses_email(party):
        return None
    return lambda: [scan_customers(ctx)]  # answers the one email query


def party_uses_email(party: Party) -> bool:
    return party.kind == "contact" and bool(party.email)


def matching_queries(party: Party) -> list[str]:
    if party.kind == "company":
        name = literal(clean(party.name))
        return (
            [
                f"SELECT * FROM Customer WHERE DisplayName = {name} AND Active IN (true, false)",
                f"SELECT * FROM Customer WHERE CompanyName = {name} AND Active IN (true, false)",
            ]
            if party.name
            else []
        )
    if not party.email:
        return []
    return [f"SELECT * FROM Customer WHERE PrimaryEmailAddr = {literal(party.email)} AND Active IN (true, false)"]


def name_queries(candidates: list[str]) -> list[str]:
    where = f"DisplayName IN {literal_list(candidates)} AND Active IN (true, false)"
    return [f"SELECT * FROM {entity} WHERE {where} MAXRESULTS 1000" for entity in NAME_NAMESPACES]


def matching(ctx, party: Party, found: list[dict]) -> list[dict]:
    """Keep the customers that really are the party: QuickBooks compares loosely."""
    if party.kind == "company":
        name = clean(party.name).casefold()
        return [c for c in found if name in (c.get("DisplayName", "").casefold(), c.get("CompanyName", "").casefold())]
    # The promise is an exact match on the address, ignoring case.
    found = [c for c in found if email_of(c).casefold() == party.email.casefold()]
    if ctx.settings.get("contact_matching") == "legacy":
        # HubSpot's legacy integration matched first name, last name and email together.
        found = [c for c in found if same_name(c, party)]
    return found


def unique(customers: list[dict]) -> list[dict]:
    return list({str(c["Id"]): c for c in customers}.values())


def scan_customers(ctx) -> list[dict]:
    customers, start = [], 1
    while True:
        page = ctx.books.query(
            f"SELECT * FROM Customer WHERE Active IN (true, false) STARTPOSITION {start} MAXRESULTS 1000"
        )
        customers += page
        if len(page) < 1000:
            return customers
        start += 1000


def same_name(customer: dict, party: Party) -> bool:
    return (
        customer.get("GivenName", "").strip().casefold() == party.record.get("firstname").casefold()
        and customer.get("FamilyName", "").strip().casefold() == party.record.get("lastname").casefold()
    )


def in_currency(customer: dict, party: Party) -> bool:
    """A QuickBooks customer holds one currency; it is this party's only if it is the document's."""
    if not party.currency:
        return True
    return str((customer.get("CurrencyRef") or {}).get("value") or party.home_currency).upper() == party.currency


def only_in_currency(ctx, party: Party, candidates: list[dict]) -> list[dict]:
    """The matches in the document's currency; matches in another are never reused silently."""
    matching_currency = [c for c in candidates if in_currency(c, party)]
    if candidates and not matching_currency:
        others = ", ".join(describe_customer(c) for c in candidates)
        if refuses_conflicts(ctx):
            raise ActionError(
                "CURRENCY_MISMATCH",
                reason=f"QuickBooks customer {others} is {party.describe()}, but in another currency than the "
                f"document's {party.currency}; a QuickBooks customer holds one currency.",
            )
        ctx.journal.note(
            f"QuickBooks customer {others} is {party.describe()} in another currency; a customer in "
            f"{party.currency} is created for documents in {party.currency}."
        )
    return matching_currency


def choose(ctx, party: Party, candidates: list[dict]) -> dict | None:
    """Several customers match: prefer active, then the party's name, then the oldest; say which and why."""
    candidates = only_in_currency(ctx, party, candidates)
    if not candidates:
        return None
    name = clean(party.name).casefold()

    def rank(customer):
        return (
            not customer.get("Active", True),
            not (name and customer.get("DisplayName", "").casefold() == name),
            customer.get("MetaData", {}).get("CreateTime", ""),
            int(customer["Id"]),
        )

    ranked = sorted(candidates, key=rank)
    chosen = ranked[0]
    if len(candidates) > 1:
        ctx.journal.note(
            f"{len(candidates)} QuickBooks customers match {party.describe()} "
            f"({', '.join(describe_customer(c) for c in ranked)}); chose {describe_customer(chosen)} "
            f"because it is {reason(rank(chosen), rank(ranked[1]))}."
        )
    if not chosen.get("Active", True):
        raise ActionError("CUSTOMER_NOT_FOUND", customer_id=chosen["Id"], contact=party.describe())
    return chosen


def reason(best: tuple, runner_up: tuple) -> str:
    if best[0] != runner_up[0]:
        return "the only active one"
    if best[1] != runner_up[1]:
        return "active and named like the HubSpot record"
    return "the oldest of the equally good matches"


def describe_customer(customer: dict) -> str:
    state = "" if customer.get("Active", True) else ", inactive"
    return f"{customer['Id']} '{customer.get('DisplayName', '')}'{state}"


# -- creating ----------------------------------------------------------------------------------------------


def create_customer(ctx, party: Party, lookup: Lookup) -> dict:
    """Create the party's customer, unless another execution of the same contact created it meanwhile."""
    lock = CREATION_LOCKS[hash((ctx.books.realm_id, party.kind, party.mapping_key)) % len(CREATION_LOCKS)]
    with lock:
        created = created_meanwhile(ctx, party)
        if created is not None:
            return created
        customer = create_named_customer(ctx, party, lookup)
        if party.record.id:  # before the lock is let go: the executions waiting for it use this customer
            ctx.mappings.remember(party.kind, party.mapping_key, str(customer["Id"]), customer_facts(customer, party))
        return customer


def created_meanwhile(ctx, party: Party) -> dict | None:
    """The customer another execution of this process created for the party while this one was looking."""
    recalled = recall(ctx, party.kind, party.mapping_key, FACTS) if party.record.id else None
    if not recalled or recalled[1] is None:
        return None
    customer = remembered_customer(*recalled)
    return customer if in_currency(customer, party) else None


def create_named_customer(ctx, party: Party, lookup: Lookup) -> dict:
    body = customer_body(party)
    for display_name in free_display_names(ctx, party, lookup):
        try:
            customer = ctx.books.create(
                "Customer",
                body | {"DisplayName": display_name},
                request_id=ctx.request_id(f"customer:{display_name}"),
                before_batch=may_go_in_batch(party),
            )
        except QuickBooksFault as fault:
            if fault.code != DUPLICATE_NAME:
                raise
            # Taken between our check and the write: by this party's customer (an execution of the same contact
            # in another process), or by someone else.
            holder = party_holding(ctx, party, display_name)
            if holder is not None:
                ctx.journal.note(
                    f"QuickBooks customer {describe_customer(holder)} for {party.describe()} was created "
                    "meanwhile (by another execution of the same contact); using it."
                )
                return holder
            if refuses_conflicts(ctx):
                raise ActionError(
                    "DUPLICATE_DISPLAY_NAME", display_name=display_name, contact=party.describe()
                ) from fault
            ctx.journal.note(
                f"QuickBooks display name '{display_name}' was taken while creating the customer "
                f"for {party.describe()}; trying the next free name."
            )
            continue
        ctx.journal.wrote("customer", "Customer", customer)
        return customer
    raise ActionError("DUPLICATE_DISPLAY_NAME", display_name=lookup.candidates[0], contact=party.describe())


def may_go_in_batch(party: Party):
    """Customers created at once may share one /batch, which has no request id per write, only when a retry after
    an unanswered batch finds the customer by its match (email, or company name) instead of creating another."""
    findable = bool(party.name) if party.kind == "company" else party_uses_email(party)
    return (lambda: None) if findable else None


def party_holding(ctx, party: Party, display_name: str) -> dict | None:
    """The customer holding `display_name`, if it is this party's (an active match in the document's currency)."""
    found = ctx.books.query(
        f"SELECT * FROM Customer WHERE DisplayName = {literal(display_name)} AND Active IN (true, false)"
    )
    ours = [c for c in matching(ctx, party, found) if c.get("Active", True) and in_currency(c, party)]
    return ours[0] if ours else None


def customer_body(party: Party) -> dict:
    body = {"CurrencyRef": {"value": party.currency}} if party.currency else {}
    if party.email:
        body["PrimaryEmailAddr"] = {"Address": party.email}
    if party.kind == "company":
        body["CompanyName"] = clean(party.name)
    else:
        if party.record.get("firstname"):
            body["GivenName"] = party.record.get("firstname")[:100]
        if party.record.get("lastname"):
            body["FamilyName"] = party.record.get("lastname")[:100]
    return body


def free_display_names(ctx, party: Party, lookup: Lookup):
    """The candidate names that no customer, vendor or employee uses, best first."""
    first = lookup.candidates[0]
    if first.casefold() in lookup.taken and refuses_conflicts(ctx):
        raise ActionError("DUPLICATE_DISPLAY_NAME", display_name=first, contact=party.describe())
    for name in lookup.candidates:
        if name.casefold() not in lookup.taken:
            if name != first:
                ctx.journal.note(f"QuickBooks display name '{first}' is taken; using '{name}' for {party.describe()}.")
            yield name


def refuses_conflicts(ctx) -> bool:
    return ctx.settings.get("display_name_conflicts") == "fail"


def display_name_candidates(party: Party):
    """'Name', then 'Name (email)', then 'Name (2)', ...: unique, colon-free, at most 100 characters."""
    name = clean(party.name or party.email)
    seen = set()
    email = clean(party.email)
    suffixes = [f" ({party.foreign_currency})"] if party.foreign_currency else []
    suffixes += ([f" ({email})"] if email and email.casefold() != name.casefold() else []) + [
        f" ({n})" for n in range(2, MAX_NAME_TRIES + 1)
    ]
    for candidate in [name] + [
        name[: DISPLAY_NAME_LENGTH - len(suffix)].rstrip() + suffix
        for suffix in suffixes
        if len(suffix) < DISPLAY_NAME_LENGTH // 2
    ]:
        if candidate.casefold() not in seen:
            seen.add(candidate.casefold())
            yield candidate


def clean(text: str) -> str:
    """QuickBooks rejects colons in names (they separate sub-customers); collapse whitespace too."""
    return " ".join((text or "").replace(":", " ").split())[:DISPLAY_NAME_LENGTH]


def email_of(customer: dict) -> str:
    return (customer.get("PrimaryEmailAddr") or {}).get("Address", "")
