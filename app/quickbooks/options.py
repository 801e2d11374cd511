"""Dropdown options for the workflow editor: the portal's QuickBooks companies and lists from QuickBooks.

One function per dynamic field. `fetch_options` picks the company, serves QuickBooks lists from a short
cache, and turns every "cannot list" case into a single explanatory option: HubSpot's editor shows an
error answer as an empty, silent dropdown, so a 200 with a message the admin can read works better.
"""

import logging
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from actions.errors import QuickBooksAuthExpired, QuickBooksFault, TransientError
from actions.steps.company import US_COUNTRIES
from actions.steps.query import literal, literal_list
from actions.steps.taxes import TAX_TABLES, by_id, code_rate
from app.storage.models import QuickBooksConnection

log = logging.getLogger(__name__)

PAGE_SIZE = 100
LIST_LIMIT = 1000  # QuickBooks' MAXRESULTS ceiling; terms and accounts of one kind fit in one answer
ITEM_TYPES = ("Service", "NonInventory", "Inventory")
EXPENSE_ACCOUNT_TYPES = ("Expense", "Other Expense", "Cost of Goods Sold")
PAYMENT_ACCOUNT_TYPES = ("Bank", "Credit Card", "Other Current Asset")
DEPOSIT_ACCOUNT_TYPES = ("Bank", "Other Current Asset")

CONNECT_FIRST = "Connect QuickBooks in qbo-actions first"
PICK_ACCOUNT_FIRST = "Pick the QuickBooks account first: several QuickBooks companies are connected"
NOT_ANSWERING = "QuickBooks is not answering; try again in a minute"
LINE_ITEMS_LABEL = "Use the record's line items"
LINE_ITEMS_VALUE = "line_items"
US_NEEDS_NO_TAX_CODE = "US companies need no tax code: QuickBooks works sales tax out"


@dataclass(frozen=True)
class Page:
    """One answer to HubSpot's options request; cached pages are shared, so never mutate one."""

    options: list[dict] = field(default_factory=list)
    after: str | None = None
    searchable: bool = False

    def as_json(self) -> dict:
        body = {"options": self.options, "searchable": self.searchable}
        if self.after:
            body["after"] = self.after
        return body


class NoOptions(Exception):
    """The dropdown cannot list anything; `label` tells the admin why and what to do."""

    def __init__(self, label: str):
        self.label = label
        super().__init__(label)


def option(label: str, value: str, description: str | None = None) -> dict:
    entry = {"label": label, "value": value}
    if description:
        entry["description"] = description
    return entry


def notice(label: str) -> Page:
    # value "": choosing the notice by mistake leaves the input empty rather than naming a bogus id.
    return Page([option(label, "")])


# -- which company ---------------------------------------------------------------------------------------


def pick_connection(connections, chosen_realm: str = ""):
    """The connection the dropdown lists from: the chosen company, else the portal's only one."""
    if not connections:
        raise NoOptions(CONNECT_FIRST)
    if chosen_realm:
        connection = next((c for c in connections if c.realm_id == chosen_realm), None)
        if connection is None:
            raise NoOptions(
                f"The chosen QuickBooks account ({chosen_realm[:40]}) is not connected to this "
                "HubSpot account: pick another QuickBooks account"
            )
    elif len(connections) > 1:
        raise NoOptions(PICK_ACCOUNT_FIRST)
    else:
        connection = connections[0]
    if connection.state == QuickBooksConnection.RECONNECT_NEEDED:
        raise NoOptions(reconnect_label(connection.company_name or connection.realm_id))
    return connection


def reconnect_label(company: str) -> str:
    return f"Reconnect QuickBooks ({company}) in qbo-actions: its authorization expired"


# -- the fields ------------------------------------------------------------------------------------------


def quickbooks_account(connections) -> Page:
    """The portal's connected companies; no QuickBooks call, so no cache either."""
    if not connections:
        raise NoOptions(CONNECT_FIRST)
    return Page([option(c.company_name or c.realm_id, c.realm_id, company_description(c)) for c in connections])


def company_description(connection) -> str:
    text = f"Realm ID {connection.realm_id}"
    if connection.state == QuickBooksConnection.RECONNECT_NEEDED:
        text += " · reconnect needed"
    return text


def payment_terms(books, q: str = "", start: int = 1) -> Page:
    terms = books.query(f"SELECT * FROM Term WHERE Active = true MAXRESULTS {LIST_LIMIT}")
    return Page(sorted_by_label([option(t["Name"], t["Id"], term_description(t)) for t in terms]))


def term_description(term: dict) -> str | None:
    if term.get("DueDays") is not None:
        days = int(term["DueDays"])
        return "due on receipt" if days == 0 else f"due in {days} day{'' if days == 1 else 's'}"
    if term.get("DayOfMonthDue") is not None:  # a date-driven term
        return f"due on day {term['DayOfMonthDue']} of the month"
    return None


def products(books, q: str = "", start: int = 1) -> Page:
    where = [f"Type IN {literal_list(ITEM_TYPES)}", "Active = true"]
    if q:
        where.append(f"Name LIKE {literal('%' + q + '%')}")
    items, after = read_page(books, "Item", where, order="Name", start=start)
    options = [option(i.get("FullyQualifiedName") or i["Name"], i["Id"], item_description(i)) for i in items]
    if start == 1 and q.lower() in LINE_ITEMS_LABEL.lower():
        options.insert(
            0,
            option(
                LINE_ITEMS_LABEL, LINE_ITEMS_VALUE, "Match each line item to a QuickBooks product by SKU, then by name"
            ),
        )
    return Page(options, after=after, searchable=True)


def item_description(item: dict) -> str | None:
    parts = []
    if item.get("Sku"):
        parts.append(f"SKU {item['Sku']}")
    if item.get("UnitPrice") is not None:
        parts.append(f"unit price {money(item['UnitPrice'])}")
    return " · ".join(parts) or None


def money(value) -> str:
    try:
        return f"{Decimal(str(value)):.2f}"
    except InvalidOperation:
        return str(value)


def expense_account(books, q: str = "", start: int = 1) -> Page:
    return accounts(books, EXPENSE_ACCOUNT_TYPES)


def payment_account(books, q: str = "", start: int = 1) -> Page:
    return accounts(books, PAYMENT_ACCOUNT_TYPES)


def deposit_account(books, q: str = "", start: int = 1) -> Page:
    return accounts(books, DEPOSIT_ACCOUNT_TYPES)


def accounts(books, account_types: tuple[str, ...]) -> Page:
    rows = books.query(
        f"SELECT * FROM Account WHERE AccountType IN {literal_list(account_types)} "
        f"AND Active = true MAXRESULTS {LIST_LIMIT}"
    )
    return Page(
        sorted_by_label([option(a.get("FullyQualifiedName") or a["Name"], a["Id"], a.get("AccountType")) for a in rows])
    )


def tax_code(books, q: str = "", start: int = 1) -> Page:
    """The company's active sales tax codes with their rates; US companies need none (QuickBooks works it out)."""
    if (books.country or "US").upper() in US_COUNTRIES:
        raise NoOptions(US_NEEDS_NO_TAX_CODE)
    codes, rates = by_id(*books.query_batch(TAX_TABLES))
    sales_codes = [c for c in codes.values() if c.get("Active", True) and not c.get("Hidden")]
    return Page(sorted_by_label([option(c["Name"], str(c["Id"]), f"{code_rate(c, rates)}%") for c in sales_codes]))


def vendor(books, q: str = "", start: int = 1) -> Page:
    where = ["Active = true"]
    if q:
        where.append(f"DisplayName LIKE {literal('%' + q + '%')}")
    vendors, after = read_page(books, "Vendor", where, order="DisplayName", start=start)
    options = [option(v["DisplayName"], v["Id"], vendor_description(v)) for v in vendors]
    return Page(options, after=after, searchable=True)


def vendor_description(record: dict) -> str | None:
    company = record.get("CompanyName")
    return company if company and company != record["DisplayName"] else None


def read_page(books, entity: str, where: list[str], *, order: str, start: int) -> tuple[list[dict], str | None]:
    """One page from `start` (1-based), and the cursor of the next page when there is one.

    Asking for one row more than a page tells whether another page exists without a COUNT query.
    """
    rows = books.query(
        f"SELECT * FROM {entity} WHERE {' AND '.join(where)} ORDERBY {order} "
        f"STARTPOSITION {start} MAXRESULTS {PAGE_SIZE + 1}"
    )
    after = str(start + PAGE_SIZE) if len(rows) > PAGE_SIZE else None
    return rows[:PAGE_SIZE], after


def sorted_by_label(options: list[dict]) -> list[dict]:
    return sorted(options, key=lambda o: o["label"].casefold())


QUICKBOOKS_FIELDS = {
    "payment_terms": payment_terms,
    "products": products,
    "expense_account": expense_account,
    "payment_account": payment_account,
    "deposit_account": deposit_account,
    "tax_code": tax_code,
    "vendor": vendor,
}
FIELDS = ("quickbooks_account", *QUICKBOOKS_FIELDS)


def start_of(after: str | None) -> int:
    """The STARTPOSITION an `after` cursor holds; ValueError for anything this module did not hand out."""
    if not after:
        return 1
    if not after.isdigit() or int(after) < 1:
        raise ValueError(f"{after!r} is not a cursor this server gave out")
    return int(after)


# -- the cache -------------------------------------------------------------------------------------------


class OptionsCache:
    """QuickBooks lists kept for a short while: the editor asks again each time a dropdown opens."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self._entries: dict[tuple, tuple[float, Page]] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple, max_age: float) -> Page | None:
        with self._lock:
            entry = self._entries.get(key)
        if entry is None or self.clock() - entry[0] >= max_age:
            return None
        return entry[1]

    def put(self, key: tuple, page: Page, max_age: float) -> None:
        now = self.clock()
        with self._lock:
            # Drop what has expired, so searches (one key per typed text) cannot grow the dict for ever.
            self._entries = {k: v for k, v in self._entries.items() if now - v[0] < max_age}
            self._entries[key] = (now, page)


# -- putting it together ---------------------------------------------------------------------------------


def fetch_options(
    field_name: str,
    *,
    connections,
    books_for,
    cache: OptionsCache,
    max_age: float,
    chosen_realm: str = "",
    q: str = "",
    after: str | None = None,
) -> Page:
    """The page for one dropdown; `books_for(connection)` builds the BooksClient only when QuickBooks is asked."""
    q = (q or "").strip()
    try:
        if field_name == "quickbooks_account":
            return quickbooks_account(connections)
        connection = pick_connection(connections, chosen_realm)
        key = (connection.realm_id, field_name, q, after or "")
        page = cache.get(key, max_age)
        if page is None:
            page = read_list(field_name, connection, books_for, q=q, start=start_of(after))
            if max_age > 0:
                cache.put(key, page, max_age)
        return page
    except NoOptions as problem:
        return notice(problem.label)


def read_list(field_name: str, connection, books_for, *, q: str, start: int) -> Page:
    company = connection.company_name or connection.realm_id
    try:
        return QUICKBOOKS_FIELDS[field_name](books_for(connection), q=q, start=start)
    except QuickBooksAuthExpired as exc:
        raise NoOptions(reconnect_label(company)) from exc
    except TransientError as exc:
        log.warning("options %s for realm %s: %s", field_name, connection.realm_id, exc.reason)
        raise NoOptions(NOT_ANSWERING) from exc
    except QuickBooksFault as fault:
        log.warning(
            "options %s for realm %s: QuickBooks fault %s %s %s",
            field_name,
            connection.realm_id,
            fault.code,
            fault.message,
            fault.detail,
        )
        raise NoOptions(f"QuickBooks refused to list them: {fault.message}") from fault
