"""The one error catalogue: every failure becomes a stable error_code, a plain message and its fix.

Codes are a contract (workflows branch on them and hubspot-app.json has an executionRule per code):
add new ones, never rename. Steps raise `ActionError(code, **details)`; QuickBooks faults arrive as
`QuickBooksFault` and are mapped here, as data, by `explain_fault`.
"""

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    message: str  # what happened; str.format()-ed with the error's details
    fix: str  # what the HubSpot admin can do about it
    retryable: bool = False


CATALOGUE: dict[str, Entry] = {
    "ACTION_NOT_AVAILABLE": Entry(
        "The action '{action}' is not available on this server yet.",
        "Update qbo-actions to a version that includes it, or use another action for now.",
    ),
    "QUICKBOOKS_NOT_CONNECTED": Entry(
        "{reason}",
        "Open the qbo-actions console and connect QuickBooks, or pick one of the connected companies "
        "in the action's 'QuickBooks account' field.",
    ),
    "QUICKBOOKS_AUTH_EXPIRED": Entry(
        "QuickBooks no longer accepts the connection to '{company}' (its authorization expired or was revoked).",
        "Reconnect QuickBooks in the qbo-actions console, then re-enroll the record.",
    ),
    "QUICKBOOKS_UNAVAILABLE": Entry(
        "{service} kept failing or throttling our requests ({reason}), even after several retries.",
        "Nothing is wrong with the record: re-enroll it later. If it keeps happening, check "
        "status.quickbooks.intuit.com "
        "or status.hubspot.com.",
        retryable=True,
    ),
    "QUICKBOOKS_VALIDATION": Entry(
        "QuickBooks refused the {entity}: {fault_message}{fault_detail}.{advice}",
        "Correct the data QuickBooks names (in HubSpot, or in QuickBooks for its own records), "
        "then re-enroll the record.",
    ),
    "CONTACT_MISSING": Entry(
        "The {object_label} has no {party} to bill.",
        "Associate a contact (or a primary company, per the action's 'Customer' field) with the record, "
        "then re-enroll it.",
    ),
    "CONTACT_NOT_ELIGIBLE": Entry(
        "Contact {contact} does not meet the data-sync filter '{condition}'.",
        "Update the contact so it meets the filter, or change the filters with 'flask settings set', "
        "then re-enroll the record. "
        "Enroll only records whose contacts pass the filters to avoid this failure.",
    ),
    "CUSTOMER_NOT_FOUND": Entry(
        "QuickBooks customer {customer_id}, the match for {contact}, is inactive or no longer exists.",
        "Make the customer active again in QuickBooks (or merge it into an active one), then re-enroll the record.",
    ),
    "DUPLICATE_DISPLAY_NAME": Entry(
        "QuickBooks already has a customer, vendor or employee named '{display_name}', so the customer for {contact} "
        "cannot be created with that name.",
        "Rename the existing QuickBooks record, or set display_name_conflicts to 'disambiguate' so qbo-actions picks "
        "a free name such as 'Name (email)'.",
    ),
    "NO_LINE_ITEMS": Entry(
        "The {object_label} has no line items.",
        "Add line items to the record, or choose a QuickBooks product in the action's 'Products' field, "
        "then re-enroll it.",
    ),
    "PRODUCT_NOT_FOUND": Entry(
        "These line items have no matching QuickBooks product: {lines}.",
        "Use QuickBooks products on the line items (matching SKU or name), or set 'Create the product in QuickBooks "
        "if it doesn't exist' to Yes, then re-enroll the record.",
    ),
    "INVALID_INPUT": Entry(
        "{reason}",
        "Pick a current value in the action's settings in the workflow editor, then re-enroll the record.",
    ),
    "SERVICE_DATE_REQUIRED": Entry(
        "QuickBooks revenue recognition needs a service date on every line, and none could be set{where}.",
        "Give the line items a billing start date or the deal a close date, set service_dates to 'always', "
        "or turn off revenue recognition in QuickBooks.",
    ),
    "DUPLICATE_DOCUMENT_NUMBER": Entry(
        "QuickBooks already has a document numbered '{number}'{holder}.",
        "Renumber the conflicting QuickBooks document, or let QuickBooks number documents (document_numbers="
        "'quickbooks', or turn off Custom transaction numbers in QuickBooks), then re-enroll the record.",
    ),
    "QUICKBOOKS_DOCUMENT_CHANGED": Entry(
        "The QuickBooks {entity} was changed in QuickBooks after qbo-actions wrote it, so it cannot be updated.",
        "Revert the change in QuickBooks and make the adjustment in HubSpot instead, then re-enroll the record.",
    ),
    "QUICKBOOKS_PERIOD_CLOSED": Entry(
        "The transaction date falls in a period whose books are closed in QuickBooks.",
        "Ask your accountant to reopen the period (or change the closing date) in QuickBooks, "
        "then re-enroll the record.",
    ),
    "TAXABLE_LINES_NOT_ALLOWED": Entry(
        "A paid invoice can only hold non-taxable lines, and these are taxable: {lines}.",
        "Use 'Create a QuickBooks sales receipt' for payments with taxable line items, or remove the tax from "
        "those line items in HubSpot, then re-enroll the payment.",
    ),
    "PAYMENT_AMOUNT_MISMATCH": Entry(
        "The {object_label} is for {paid}, but its line items add up to {total}, so the invoice would not be "
        "paid in full.",
        "Make the payment's line items add up to the amount paid (or choose one QuickBooks product in the action's "
        "'Products' field to bill the amount as one line), then re-enroll the payment.",
    ),
    "NO_PAYMENT_FEE": Entry(
        "The {object_label} has no processing fee, so there is no expense to record.",
        "Enroll only payments with a fee: add the enrollment filter 'Fees amount is greater than 0'.",
    ),
    "NOT_FULLY_REFUNDED": Entry(
        "The {object_label} is not fully refunded: its status is '{status}' and {refunded} of {paid} was refunded.",
        "Enroll only fully refunded payments (filter: Latest status is Refunded); record partial refunds in "
        "QuickBooks by hand.",
    ),
    "PAYMENT_FROM_INVOICE": Entry(
        "The {object_label} pays a HubSpot invoice, which the QuickBooks invoice sync already records; creating "
        "another document for it would count the sale twice.",
        "Add the enrollment filter 'Source is not equal to all of Invoice' to the workflow, or, if HubSpot invoices "
        "are not synced to QuickBooks, turn on the setting allow_invoice_payments.",
    ),
    "TAX_CODE_MISSING": Entry(
        "The line item {line} has {what}, which {problem}. Setting to fill for this QuickBooks company: "
        "{setting}. Its active tax codes: {active}.",
        "Map the rate with 'flask settings set <portal> tax_codes=...' (or default_tax_code) and --realm for "
        "the QuickBooks company, then re-enroll the record.",
    ),
    "CURRENCY_MISMATCH": Entry(
        "{reason}",
        "Bill the record in the QuickBooks company's currency, let qbo-actions create a customer per currency "
        "(display_name_conflicts=disambiguate), or turn on multicurrency in QuickBooks, then re-enroll the record.",
    ),
    "CURRENCY_NOT_ENABLED": Entry(
        "The {object_label} is in {currency}, which the QuickBooks company {company} has not enabled.",
        "In QuickBooks, add the currency (gear icon, Currencies, Add currency), then re-enroll the record.",
    ),
    "HUBSPOT_REFUSED": Entry(
        "HubSpot refused {what}: {hubspot_says}.{advice}",
        "If HubSpot names missing scopes or refused our access, reinstall qbo-actions in this HubSpot account "
        "('Sign in with HubSpot' in the qbo-actions console runs the install) and approve every permission it "
        "asks for; otherwise correct the record or property HubSpot names. Then re-enroll the record.",
    ),
    "INTERNAL_ERROR": Entry(
        "qbo-actions hit an unexpected error ({reason}).",
        "Re-enroll the record; if it fails again, report it with the execution id shown in the qbo-actions console.",
    ),
}


class ActionError(Exception):
    """A business failure: the action ends FAIL_CONTINUE with this code and message."""

    def __init__(self, code: str, **details):
        if code not in CATALOGUE:
            raise KeyError(f"unknown error code {code!r}: add it to the catalogue first")
        self.code = code
        self.details = details
        super().__init__(self.message)

    @property
    def entry(self) -> Entry:
        return CATALOGUE[self.code]

    @property
    def message(self) -> str:
        return f"{self.entry.message.format_map(_Missing(self.details))} {self.entry.fix}"


class _Missing(dict):
    def __missing__(self, key):
        return "?"


class TransientError(Exception):
    """HubSpot or QuickBooks is down, slow or throttling: try the whole step again later."""

    def __init__(self, reason: str, retry_after: float | None = None, service: str = "QuickBooks"):
        self.reason = reason
        self.retry_after = retry_after
        self.service = service
        super().__init__(reason)


class QuickBooksFault(Exception):
    """A fault QuickBooks answered with, read off python-quickbooks' exception."""

    def __init__(self, code: int, message: str, detail: str = "", element: str = "", entity: str = ""):
        self.code = code
        self.message = message
        self.detail = detail or ""
        self.element = element or ""
        self.entity = entity
        super().__init__(f"QuickBooks fault {code}: {message} {detail}".strip())

    def mentions(self, text: str) -> bool:
        return text.lower() in f"{self.message} {self.detail}".lower()


class QuickBooksAuthExpired(Exception):
    """The connection's refresh token was refused: only the admin reconnecting can fix it."""

    def __init__(self, company: str):
        self.company = company
        super().__init__(f"QuickBooks authorization for {company} expired")


# Fault code → error code; some codes need a look at the text (6000 is QuickBooks' catch-all).
FAULT_CODES = {
    6240: "DUPLICATE_DISPLAY_NAME",
    6140: "DUPLICATE_DOCUMENT_NUMBER",
    5010: "QUICKBOOKS_DOCUMENT_CHANGED",
    6210: "QUICKBOOKS_PERIOD_CLOSED",
    2500: "INVALID_INPUT",
    610: "INVALID_INPUT",
    # Authentication faults that are not a plain 401 (those are refreshed first, in the client).
    3200: "QUICKBOOKS_AUTH_EXPIRED",
    100: "QUICKBOOKS_AUTH_EXPIRED",
    120: "QUICKBOOKS_AUTH_EXPIRED",
    # Normally retried as TransientError; here for when retries are used up.
    3001: "QUICKBOOKS_UNAVAILABLE",
    10000: "QUICKBOOKS_UNAVAILABLE",
}
TRANSIENT_FAULT_CODES = {3001, 10000}  # throttled; QuickBooks' own "application error"

# Plain-words advice added to QUICKBOOKS_VALIDATION for faults that have no code of their own.
FAULT_ADVICE = {
    6070: "A line's amount did not equal its quantity times its unit price. qbo-actions rounds HubSpot's "
    "discounts so that it does; check the line items for unusual quantities or prices (for example more "
    "than 7 decimals), correct them in HubSpot, and report the execution if it happens again.",
    6100: "QuickBooks did not accept a line's sales-tax code. US companies use TAX or NON on each line: check the "
    "products' sales-tax settings in QuickBooks (and that automated sales tax is set up), then re-enroll.",
    4000: "QuickBooks could not read a search qbo-actions sent, usually because a name or SKU holds unusual "
    "characters (curly quotes, long dashes). Use plain characters in the product or contact name, or report "
    "the execution.",
    4001: "QuickBooks refused a search qbo-actions sent for this company. Report the execution id so it can be "
    "fixed; nothing needs changing in HubSpot.",
    6000: "This is one of QuickBooks' own business rules; its message says what to change.",
}


def explain_fault(fault: QuickBooksFault, **details) -> ActionError:
    """Turn a QuickBooks fault that no step handled into the catalogue's words."""
    code = FAULT_CODES.get(fault.code)
    if fault.code == 6000 and fault.mentions("service date"):
        code = "SERVICE_DATE_REQUIRED"
    if code == "DUPLICATE_DISPLAY_NAME" and fault.entity not in ("", "Customer", "Vendor", "Employee"):
        code = None  # a product or account name taken: QuickBooks' own words say which
    if code == "INVALID_INPUT":
        details.setdefault(
            "reason",
            f"QuickBooks cannot use {field_in_words(fault.element)}: "
            f"{fault.message.rstrip('.')}. {fault.detail}".strip(),
        )
    if code is None:
        code = "QUICKBOOKS_VALIDATION"
        advice = FAULT_ADVICE.get(fault.code)
        details.setdefault("advice", f" {advice}" if advice else "")
    details.setdefault("entity", in_words(fault.entity) or "document")
    details.setdefault("fault_message", fault.message.rstrip("."))
    details.setdefault("fault_detail", f" ({fault.detail.rstrip('.')})" if fault.detail else "")
    details.setdefault("number", _doc_number_from(fault.detail))
    details.setdefault("holder", f" ({fault.detail})" if fault.detail else "")
    details.setdefault("display_name", "?")
    details.setdefault("contact", "the HubSpot record")
    details.setdefault("company", "your QuickBooks company")
    details.setdefault("reason", f"QuickBooks fault {fault.code}: {fault.message}")
    details.setdefault("where", "")
    details.setdefault("advice", "")
    details.setdefault("service", "QuickBooks")
    return ActionError(code, fault_code=fault.code, **details)


# The references an admin chooses or QuickBooks links, in the admin's words.
ELEMENT_WORDS = {
    "SalesTermRef": "the payment terms chosen in the action",
    "CustomerRef": "the customer",
    "ItemRef": "a product on the line items",
    "DepositToAccountRef": "the account chosen in the action ('Deposit to' or 'Refund from')",
    "PaymentMethodRef": "the payment method",
    "TxnId": "the invoice the payment is for",
    "AccountRef": "an account chosen in the action",
    "EntityRef": "the vendor chosen in the action",
    "IncomeAccountRef": "the income account for new products",
}


def field_in_words(element: str) -> str:
    last = element.rsplit(".", 1)[-1]
    return ELEMENT_WORDS.get(last, f"the value of {element}" if element else "a value it was given")


def _doc_number_from(detail: str) -> str:
    marker = "DocNumber="
    if marker not in detail:
        return "?"
    return detail.split(marker, 1)[1].split()[0]


def in_words(entity: str) -> str:
    """QuickBooks' entity name as a HubSpot admin would say it: SalesReceipt → sales receipt."""
    return re.sub(r"(?<!^)(?=[A-Z])", " ", entity or "").lower()


# -- references QuickBooks no longer holds --------------------------------------------------------------------

# A document is written with references remembered from earlier executions (actions/steps/memory.py) without
# asking QuickBooks first; these faults say one of them is gone (deleted, merged) or inactive.
REFERENCE_FAULT_CODES = {610, 2500}
# The remembered references by the element a fault names: the header's AccountRef is a purchase's funding account,
# a line's AccountRef (Line.AccountBasedExpenseLineDetail.AccountRef) is chosen in the action and never remembered.
REFERENCE_ELEMENTS = {
    "CustomerRef": "customer",
    "ItemRef": "item",
    "PaymentMethodRef": "payment_method",
    "EntityRef": "vendor",
}
HEADER_REFERENCES = {"AccountRef": "account"}
# 6000-series faults with a meaning of their own are never about a stale reference.
NOT_REFERENCE_FAULTS = {6070, 6100, 6140, 6210, 6240}
# Without an element, the words that tell which kind of record a fault is about ("(Customer Id=58)").
REFERENCE_WORDS = {
    "customer": "customer",
    "item": "item",
    "product": "item",
    "payment method": "payment_method",
    "vendor": "vendor",
    "payee": "vendor",
    "account": "account",
}
GONE_WORDS = ("inactive", "deleted", "not found", "does not exist", "no longer exists", "invalid reference")


@dataclass(frozen=True)
class Refused:
    """What a QuickBooks fault says about the references a document named."""

    fault: QuickBooksFault
    kinds: frozenset[str]  # customer, item, payment_method, vendor, account; empty: it does not say which
    named: bool  # the fault points at the reference itself (its element or record id), not in general words

    def about(self, kind: str) -> bool:
        """Could this kind of reference be the one refused? (QuickBooks reports only the first bad one.)"""
        return not self.kinds or kind in self.kinds

    def describe(self) -> str:
        where = f" on {self.fault.element}" if self.fault.element else ""
        detail = f": {self.fault.detail.rstrip('.')}" if self.fault.detail else ""
        return f"fault {self.fault.code} {self.fault.message.rstrip('.')}{where}{detail}"


def refused_references(fault: QuickBooksFault) -> Refused | None:
    """The references a fault says are gone or inactive (610, 2500, a 6000-series rule about a reference), or None
    when the fault is about something else."""
    element = fault.element or ""
    last = element.rsplit(".", 1)[-1]
    kind = REFERENCE_ELEMENTS.get(last) or (HEADER_REFERENCES.get(element) if "." not in element else None)
    text = f"{fault.message} {fault.detail}".lower()
    if fault.code in REFERENCE_FAULT_CODES:
        if element:
            return Refused(fault, frozenset({kind}) if kind else frozenset({"other"}), named=bool(kind))
        named = named_kinds(text, ids_only=True)
        return Refused(fault, named, named=bool(named))
    if not 6000 <= fault.code < 7000 or fault.code in NOT_REFERENCE_FAULTS or fault.mentions("service date"):
        return None
    if kind:
        return Refused(fault, frozenset({kind}), named=True)
    if element == "CurrencyRef" or not element:
        # A record in another currency than the document's, or one QuickBooks says is gone, in words.
        gone = any(word in text for word in GONE_WORDS) or element == "CurrencyRef"
        kinds = named_kinds(text)
        if gone and kinds:
            return Refused(fault, kinds, named=True)
    return None


def named_kinds(text: str, *, ids_only: bool = False) -> frozenset[str]:
    """The kinds of record a fault's words name: "(Customer Id=58)" always, plain words unless ids_only."""
    found = {kind for word, kind in REFERENCE_WORDS.items() if re.search(rf"\b{word}\s+id\s*=", text)}
    if not ids_only and not found:
        found = {kind for word, kind in REFERENCE_WORDS.items() if re.search(rf"\b{word}", text)}
    return frozenset(found)
