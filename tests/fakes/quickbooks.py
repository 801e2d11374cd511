"""A fake QuickBooks Online (Accounting API v3) and Intuit OAuth 2.0 server for tests.

It is a real HTTP server on loopback, so the unmodified python-quickbooks and intuit-oauth
clients talk to it exactly as they talk to Intuit. It enforces the QBO rules our code relies on
(duplicate names, document numbers, references, amounts, the query language's limits, ...):
a fake that accepts what QBO rejects hides bugs. Wire formats follow
/work/shared/reference/quickbooks-online.md.

    fake = FakeQuickBooks().start()
    company = fake.add_company()                      # realm "9130350000000001"
    tokens = fake.issue_tokens(company.realm_id)      # or run the consent flow with AuthClient
    qb = QuickBooks(auth_client=..., refresh_token=tokens["refresh_token"], company_id=company.realm_id,
                    minorversion=75)
    qb.api_url_v3 = fake.api_base; qb.sandbox = False
    ...
    fake.stop()

Faults are injected with fail_next()/throttle_next(); every request is kept in fake.requests.

Load, for fault/soak suites and benchmarks (all off by default):
- fake.enforce_rate_limits = True (or FakeQuickBooks(rate_limits=True)) enforces QBO's limits per realm:
  fake.max_in_flight (10) requests in flight at once, fake.requests_per_minute (500) and fake.batches_per_minute
  (120, /batch only; a batch counts in both) in any sliding fake.rate_window_seconds (60). Over a limit: 429
  with throttle fault 3001 (as throttle_next sends it), nothing performed, counted in fake.rate_limited by kind
  ("in_flight", "per_minute", "batch_per_minute"). fake.rate_limit_retry_after = True adds Retry-After.
  fake.peak_in_flight[realm] keeps the most requests seen in flight at once (counted with or without limits).
- fake.latency (+ fake.latency_jitter, uniform +/-) seconds slept per request outside the lock, so requests
  really overlap.
- fake.chaos(probability, kinds, timeout_seconds, seed) fails API requests at random ("5xx", "429", "timeout",
  "lost"), counted in fake.injected by kind; fake.calm() stops it. fake.reset_counters() zeroes the counters.
- fake.documents_by_request_id() and fake.documents_by_execution() tell what each requestid / execution
  (the "(execution <callbackId>)" key in PrivateNote) created, to count duplicates.
Test knobs beyond the API: fake.next_consent_realm, fake.refresh_count, company.today (a callable
giving "today" for TxnDate/DueDate), company.patch() (an edit made in QBO: bumps SyncToken),
company.find(entity, **fields), company.set_pref().

What a QuickBooks user does, for tests of status changes: company.receive_payment(invoice_id, amount),
company.void(entity, id), company.delete(entity, id). Every write is kept in company.changes; GET /cdc
(ChangeDataCapture) answers from it. Webhooks: set fake.webhook_url and fake.webhook_verifier and every
write (through the API or the user actions) POSTs a signed notification there: fake.webhook_format
"cloudevents" (default) or "legacy"; fake.webhook_delivery "sync" (before the write's answer) or "queued"
(until fake.deliver_webhooks()); fake.webhooks_enabled = False drops them; fake.webhook_sender(url, body,
headers) -> status replaces the HTTP POST (tests point it at Flask's test client). fake.webhook_deliveries
keeps every delivery.

Countries: add_company(country="US" | "GB" | "CA" | "AU") seeds the home currency (USD, GBP, CAD, AUD) and
the tax set-up. US companies use automated sales tax: lines say TAX or NON and TAX lines are taxed at
company.ast_rate (default 8.25). Elsewhere every sales line names one of the company's TaxCodes (seeded
per country; company.add_tax_code(name, rate_percent), company.tax_code_named(name)) and QBO computes
TxnTaxDetail per tax rate; lines stay net, TotalAmt includes the tax. Multicurrency:
company.enable_currency("EUR") (a CompanyCurrency; turns multicurrency on), company.exchange_rates
({"EUR": Decimal("1.08")}) for transactions that omit ExchangeRate.

Leniencies, on purpose: entity names in queries match case-insensitively; MAXRESULTS above 1000 is
capped, not rejected; "ORDER BY" is accepted like "ORDERBY" (python-quickbooks' all() sends it).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import itertools
import json
import math
import random
import re
import secrets
import threading
import time
import traceback
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit
from xml.sax.saxutils import escape as xml_escape

import requests

from tests.fakes.server import LoopbackServer

__all__ = [
    "Company",
    "FakeQuickBooks",
    "ParsedQuery",
    "QboFault",
    "QueryCondition",
    "QueryEngine",
    "QueryParser",
    "RecordedRequest",
]

# QBO stamps times in the company's zone; sandbox companies live in US Pacific.
QBO_TZ = timezone(timedelta(hours=-8))


def qbo_timestamp() -> str:
    return datetime.now(QBO_TZ).isoformat(timespec="milliseconds")


# --------------------------------------------------------------------------------------------
# Faults
# --------------------------------------------------------------------------------------------

BUSINESS_VALIDATION_MESSAGE = "A business validation error has occurred while processing your request"
INACTIVE_REFERENCE_DETAIL = (
    "Invalid Reference Id : Something you're trying to use has been made inactive. "
    "Check the fields with accounts, customers, items, vendors or employees."
)
NAME_LIST_CONFLICT = "Another customer, vendor or employee is already using this name. Please use a different name."
THROTTLE_MESSAGE = "message=ThrottleExceeded; errorCode=003001; statusCode=429"

# Messages QBO pairs with a code; fail_next() uses them when the test gives only a code.
KNOWN_FAULT_MESSAGES = {
    "500": "Unsupported Operation",
    "610": "Object Not Found",
    "1040": "Number of items in the batch request exceeds the limit",
    "2010": "Request has invalid or unsupported property",
    "2020": "Required Param Missing",
    "2170": "Invalid Enumeration",
    "2500": "Invalid Reference Id",
    "3001": THROTTLE_MESSAGE,
    "3200": "message=AuthenticationFailed; errorCode=003200; statusCode=401",
    "4000": "Error parsing query",
    "4001": "Invalid query",
    "5010": "Stale Object Error",
    "6000": BUSINESS_VALIDATION_MESSAGE,
    "6070": "Amount is not equal to UnitPrice * Qty",
    "6080": "No Name Provided",
    "6100": "Invalid Line TaxCode",
    "6140": "Duplicate Document Number Error",
    "6210": "Account Period Closed",
    "6240": "Duplicate Name Exists Error",
    "10000": "An application error has occurred while processing your request",
}


class QboFault(Exception):
    """One QBO error. The rules raise it; the server renders it as a Fault envelope."""

    def __init__(self, code, message, detail="", element="", *, status=400, fault_type="ValidationFault"):
        super().__init__(f"{code} {message}: {detail}")
        self.code = str(code)
        self.message = message
        self.detail = detail
        self.element = element
        self.status = status
        self.fault_type = fault_type

    def fault(self) -> dict:
        error = {"Message": self.message, "Detail": self.detail, "code": self.code, "element": self.element}
        return {"Error": [error], "type": self.fault_type}

    def envelope(self) -> dict:
        return {"Fault": self.fault(), "time": qbo_timestamp()}


def required_param_missing(element: str) -> QboFault:
    return QboFault(
        "2020", "Required Param Missing", f"Required parameter {element} is missing in the request", element
    )


def invalid_reference(element: str) -> QboFault:
    return QboFault("2500", "Invalid Reference Id", INACTIVE_REFERENCE_DETAIL, element)


def invalid_property(element: str, value: Any) -> QboFault:
    return QboFault(
        "2010",
        "Request has invalid or unsupported property",
        f"Property Name:{element} specified is unsupported or invalid. Supplied value:{value}",
        element,
    )


def invalid_enumeration(element: str, value: Any) -> QboFault:
    return QboFault("2170", "Invalid Enumeration", f"Invalid Enumeration : {value}", element)


def business_validation_error(text: str, element: str = "") -> QboFault:
    return QboFault("6000", BUSINESS_VALIDATION_MESSAGE, f"Business Validation Error: {text}", element)


def string_length_error(element: str, value: str, maximum: int) -> QboFault:
    return business_validation_error(
        "String length is either shorter or longer than supported by specification. "
        f"Min:0 Max:{maximum} supported. Supplied length:{len(value)}",
        element,
    )


def duplicate_name(conflict: str) -> QboFault:
    return QboFault("6240", "Duplicate Name Exists Error", f"The name supplied already exists. : {conflict}")


def object_not_found(entity: str, entity_id: Any) -> QboFault:
    return QboFault(
        "610",
        "Object Not Found",
        f"Object Not Found : Something you're trying to use has been made inactive. "
        f"Check the fields with accounts, customers, items, vendors or employees. "
        f"({entity} Id={entity_id})",
    )


def unsupported_operation(text: str) -> QboFault:
    return QboFault("500", "Unsupported Operation", text)


def query_parser_error(detail: str) -> QboFault:
    return QboFault("4000", "Error parsing query", f"QueryParserError: {detail}")


def query_validation_error(detail: str) -> QboFault:
    return QboFault("4001", "Invalid query", f"QueryValidationError: {detail}")


# --------------------------------------------------------------------------------------------
# Entity catalogue
# --------------------------------------------------------------------------------------------

WRITABLE_ENTITIES = (
    "Customer",
    "Vendor",
    "Employee",
    "Item",
    "Account",
    "Term",
    "PaymentMethod",
    "Invoice",
    "Estimate",
    "SalesReceipt",
    "RefundReceipt",
    "CreditMemo",
    "Payment",
    "Purchase",
)
# Stored and readable (GET /taxcode/{id}, queries) but not written through POST /{entity}: QBO creates
# tax codes and rates through /taxservice/taxcode, and the fake does not model that or CompanyCurrency writes.
READ_ONLY_ENTITIES = ("TaxAgency", "TaxRate", "TaxCode", "CompanyCurrency")
STORED_ENTITIES = WRITABLE_ENTITIES + READ_ONLY_ENTITIES
ENTITY_BY_PATH = {name.lower(): name for name in STORED_ENTITIES}
NAME_LIST_ENTITIES = ("Customer", "Vendor", "Employee")  # one shared DisplayName namespace
LIST_ENTITIES = frozenset(("Customer", "Vendor", "Employee", "Item", "Account", "Term", "PaymentMethod"))
SALES_DOCUMENTS = frozenset(("Invoice", "Estimate", "SalesReceipt", "RefundReceipt", "CreditMemo"))
TRANSACTIONS = SALES_DOCUMENTS | {"Payment", "Purchase"}
VOIDABLE = frozenset(("Invoice", "SalesReceipt", "Payment", "RefundReceipt"))
# Invoice and CreditMemo share one DocNumber sequence; the others each have their own.
DOC_NUMBER_FAMILY = {
    "Invoice": "Invoice",
    "CreditMemo": "Invoice",
    "Estimate": "Estimate",
    "SalesReceipt": "SalesReceipt",
    "RefundReceipt": "RefundReceipt",
}
FIRST_DOC_NUMBER = 1001
REVENUE_RECOGNITION_DOCUMENTS = frozenset(("Invoice", "SalesReceipt", "Estimate"))
ITEM_TYPES = ("Service", "NonInventory", "Inventory")
PURCHASE_PAYMENT_TYPES = ("Cash", "Check", "CreditCard")
EXPENSE_LINE_DETAILS = ("AccountBasedExpenseLineDetail", "ItemBasedExpenseLineDetail")
ACCOUNT_CLASSIFICATION = {
    "Bank": "Asset",
    "Other Current Asset": "Asset",
    "Fixed Asset": "Asset",
    "Other Asset": "Asset",
    "Accounts Receivable": "Asset",
    "Equity": "Equity",
    "Expense": "Expense",
    "Other Expense": "Expense",
    "Cost of Goods Sold": "Expense",
    "Accounts Payable": "Liability",
    "Credit Card": "Liability",
    "Long Term Liability": "Liability",
    "Other Current Liability": "Liability",
    "Income": "Revenue",
    "Other Income": "Revenue",
}
# Which funding accounts each Purchase.PaymentType may draw on.
PURCHASE_ACCOUNT_TYPES = {
    "Cash": ("Bank", "Other Current Asset"),
    "Check": ("Bank", "Other Current Asset"),
    "CreditCard": ("Credit Card",),
}
US_LINE_TAX_CODES = ("TAX", "NON")
GLOBAL_TAX_CALCULATIONS = ("TaxExcluded", "TaxInclusive", "NotApplicable")
# ISO 4217 codes the fake knows (QBO's names); a CurrencyRef outside this list is never a valid currency.
CURRENCY_NAMES = {
    "USD": "United States Dollar",
    "CAD": "Canadian Dollar",
    "GBP": "British Pound Sterling",
    "EUR": "Euro",
    "AUD": "Australian Dollar",
    "NZD": "New Zealand Dollar",
    "JPY": "Japanese Yen",
    "CHF": "Swiss Franc",
    "SEK": "Swedish Krona",
    "NOK": "Norwegian Krone",
    "DKK": "Danish Krone",
    "PLN": "Polish Zloty",
    "MXN": "Mexican Peso",
    "INR": "Indian Rupee",
    "CNY": "Chinese Yuan Renminbi",
    "HKD": "Hong Kong Dollar",
    "SGD": "Singapore Dollar",
    "ZAR": "South African Rand",
}
# Only these account types may hold a foreign currency; income, expense and the others are always in the
# home currency (Intuit, "Manage multiple currencies").
FOREIGN_CURRENCY_ACCOUNT_TYPES = ("Bank", "Credit Card", "Accounts Receivable", "Accounts Payable")


@dataclass(frozen=True)
class CountrySetup:
    """What a new QBO company of one country starts with: home currency, address, tax agency and codes.

    tax_codes: (name, description, rate in percent or None for a code without a rate).
    missing_tax_code: the detail of QBO's 6000 when a line has no TaxCodeRef (None: US, lines use TAX/NON).
    """

    currency: str
    address: dict
    agency: str = ""
    tax_codes: tuple[tuple[str, str, Any], ...] = ()
    missing_tax_code: str | None = None


COUNTRY_SETUPS = {
    "US": CountrySetup(
        "USD",
        {"Line1": "123 Sierra Way", "City": "San Pablo", "CountrySubDivisionCode": "CA", "PostalCode": "87999"},
        agency="California Department of Tax and Fee Administration",
    ),
    "GB": CountrySetup(
        "GBP",
        {"Line1": "1 High Street", "City": "London", "PostalCode": "SW1A 1AA"},
        agency="HM Revenue & Customs",
        tax_codes=(
            ("20.0% S", "Standard rated 20%", 20),
            ("5.0% R", "Reduced rate 5%", 5),
            ("0.0% Z", "Zero-rated", 0),
            ("Exempt", "Exempt", 0),
            ("No VAT", "No VAT", None),
        ),
        # Seen verbatim from QBO (intuit/quickbooks-online-mcp-server#94): code 6000, element "".
        missing_tax_code="Make sure all your transactions have a VAT rate before you save.",
    ),
    "CA": CountrySetup(
        "CAD",
        {"Line1": "100 King Street West", "City": "Toronto", "CountrySubDivisionCode": "ON", "PostalCode": "M5X 1A9"},
        agency="Canada Revenue Agency",
        tax_codes=(
            ("HST ON", "HST Ontario 13%", 13),
            ("GST", "GST 5%", 5),
            ("Zero-rated", "Zero-rated", 0),
            ("Exempt", "Exempt", 0),
            ("Out of Scope", "Out of scope of tax", None),
        ),
        # Seen verbatim from QBO (ruckus/quickbooks-ruby#351, activepieces#8539): code 6000, element "".
        missing_tax_code="Make sure all your transactions have a GST/HST rate before you save.",
    ),
    "AU": CountrySetup(
        "AUD",
        {"Line1": "1 George Street", "City": "Sydney", "CountrySubDivisionCode": "NSW", "PostalCode": "2000"},
        agency="Australian Taxation Office",
        tax_codes=(
            ("GST", "GST 10%", 10),
            ("GST free", "GST free", 0),
            ("Out of Scope", "Out of scope of tax", None),
        ),
        # UNCONFIRMED: the AU wording; GB says "VAT rate" and CA "GST/HST rate", so AU is taken to say "GST rate".
        missing_tax_code="Make sure all your transactions have a GST rate before you save.",
    ),
}
SYSTEM_FIELDS = ("Id", "SyncToken", "MetaData", "domain", "sparse")
AST_RATE_NAME = "Automated Sales Tax"  # the fake's stand-in for the jurisdiction code/rate AST creates

# Properties a WHERE/ORDERBY may use. QBO rejects the others with 4001 "not queryable"
# (notably PrimaryEmailAddr.Address anywhere and Vendor.PrimaryEmailAddr).
_COMMON_QUERYABLE = ("Id", "MetaData.CreateTime", "MetaData.LastUpdatedTime")
_PERSON_QUERYABLE = (
    "DisplayName",
    "GivenName",
    "MiddleName",
    "FamilyName",
    "Title",
    "Suffix",
    "PrintOnCheckName",
    "CompanyName",
    "Active",
    "Balance",
)
_SALES_QUERYABLE = (
    "DocNumber",
    "TxnDate",
    "CustomerRef",
    "TotalAmt",
    "Balance",
    "DueDate",
    "EmailStatus",
    "PrintStatus",
)
QUERYABLE_FIELDS = {
    "Customer": _COMMON_QUERYABLE
    + _PERSON_QUERYABLE
    + ("FullyQualifiedName", "PrimaryEmailAddr", "BalanceWithJobs", "Job", "ParentRef"),
    "Vendor": _COMMON_QUERYABLE + _PERSON_QUERYABLE,
    "Employee": _COMMON_QUERYABLE + _PERSON_QUERYABLE + ("EmployeeNumber",),
    "Item": _COMMON_QUERYABLE
    + ("Name", "Sku", "Type", "Description", "Active", "FullyQualifiedName", "ParentRef", "SubItem", "UnitPrice"),
    "Account": _COMMON_QUERYABLE
    + (
        "Name",
        "AccountType",
        "AccountSubType",
        "Classification",
        "Active",
        "FullyQualifiedName",
        "CurrentBalance",
        "SubAccount",
        "AcctNum",
    ),
    "Term": _COMMON_QUERYABLE + ("Name", "Active", "Type", "DueDays"),
    "PaymentMethod": _COMMON_QUERYABLE + ("Name", "Active", "Type"),
    "Invoice": _COMMON_QUERYABLE + _SALES_QUERYABLE,
    "Estimate": _COMMON_QUERYABLE + _SALES_QUERYABLE + ("TxnStatus", "ExpirationDate"),
    "SalesReceipt": _COMMON_QUERYABLE + _SALES_QUERYABLE,
    "RefundReceipt": _COMMON_QUERYABLE + _SALES_QUERYABLE,
    "CreditMemo": _COMMON_QUERYABLE + _SALES_QUERYABLE,
    "Payment": _COMMON_QUERYABLE + ("TxnDate", "CustomerRef", "TotalAmt", "UnappliedAmt", "PaymentRefNum"),
    "Purchase": _COMMON_QUERYABLE
    + ("DocNumber", "TxnDate", "PaymentType", "AccountRef", "EntityRef", "TotalAmt", "Credit"),
    # Filterable per Intuit's XSD: TaxCode Name/Active/Hidden, TaxRate Name/Active/RateValue; Taxable and
    # TaxGroup are allowed here as well. Customer/Vendor CurrencyRef is not filterable (4001).
    "TaxCode": _COMMON_QUERYABLE + ("Name", "Active", "Hidden", "Taxable", "TaxGroup"),
    "TaxRate": _COMMON_QUERYABLE + ("Name", "Active", "RateValue"),
    "TaxAgency": _COMMON_QUERYABLE + ("DisplayName",),
    "CompanyCurrency": _COMMON_QUERYABLE + ("Code", "Name", "Active"),
    "CompanyInfo": _COMMON_QUERYABLE,
    "Preferences": _COMMON_QUERYABLE,
}


def canonical_entity(name: str) -> str:
    """'invoice' or 'Invoice' -> 'Invoice'; KeyError for anything the fake does not store."""
    try:
        return ENTITY_BY_PATH[name.lower()]
    except KeyError:
        raise KeyError(f"unknown QuickBooks entity {name!r}") from None


# --------------------------------------------------------------------------------------------
# Value helpers
# --------------------------------------------------------------------------------------------


def strip_absent(value: Any) -> Any:
    """Drop what python-quickbooks sends for "unset" ("", None, [], refs left empty): QBO ignores them."""
    if isinstance(value, dict):
        cleaned = {key: strip_absent(item) for key, item in value.items()}
        return {key: item for key, item in cleaned.items() if not _is_absent(item)}
    if isinstance(value, list):
        cleaned = [strip_absent(item) for item in value]
        return [item for item in cleaned if not _is_absent(item)]
    return value


def _is_absent(value: Any) -> bool:
    return value is None or (isinstance(value, (str, list, dict)) and len(value) == 0)


def to_decimal(value: Any, element: str) -> Decimal:
    # Amounts arrive as JSON numbers, or as strings when python-quickbooks runs with use_decimal.
    if isinstance(value, bool):
        raise invalid_property(element, value)
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise invalid_property(element, value) from None


def money(amount: Decimal) -> Decimal:
    return amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def check_date(value: Any, element: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise invalid_property(element, value)
    try:
        date.fromisoformat(value)
    except ValueError:
        raise invalid_property(element, value) from None
    return value


def display_name_of(record: dict) -> str:
    return record.get("DisplayName") or record.get("FullyQualifiedName") or record.get("Name") or ""


def currency_ref(code: str) -> dict:
    return {"value": code, "name": CURRENCY_NAMES.get(code, code)}


def currency_code_of(record: dict | None) -> str:
    """The code in a record's CurrencyRef ("" when it has none)."""
    ref = (record or {}).get("CurrencyRef")
    return str(ref.get("value") or "") if isinstance(ref, dict) else ""


def default_preferences(country: str = "US") -> dict:
    """A new company's preferences. US companies use automated sales tax (PartnerTaxEnabled); the others
    track VAT/GST with tax codes."""
    return {
        "AccountingInfoPrefs": {
            "TrackDepartments": False,
            "ClassTrackingPerTxn": False,
            "ClassTrackingPerTxnLine": False,
            "CustomerTerminology": "Customers",
            "FirstMonthOfFiscalYear": "January",
            "UseAccountNumbers": False,
        },
        "ProductAndServicesPrefs": {
            "ForSales": True,
            "ForPurchase": True,
            "QuantityWithPriceAndRate": True,
            "QuantityOnHand": True,
            "RevenueRecognition": False,
            "RevenueRecognitionFrequency": "Monthly",
        },
        "SalesFormsPrefs": {
            "CustomTxnNumbers": False,
            "AllowServiceDate": True,
            "AllowDiscount": True,
            "AllowDeposit": False,
            "AllowShipping": False,
            "AllowEstimates": True,
            "AutoApplyCredit": True,
            "AutoApplyPayments": True,
            "UsingPriceLevels": False,
            "UsingProgressInvoicing": False,
            "IPNSupportEnabled": False,
            "EmailCopyToCompany": False,
            "ETransactionEnabledStatus": "NotApplicable",
        },
        "VendorAndPurchasesPrefs": {"TrackingByCustomer": True, "BillableExpenseTracking": True},
        "TaxPrefs": {"UsingSalesTax": True, "PartnerTaxEnabled": country == "US"},
        "CurrencyPrefs": {
            "MultiCurrencyEnabled": False,
            "HomeCurrency": currency_ref(COUNTRY_SETUPS[country].currency),
        },
        "ReportPrefs": {"ReportBasis": "Accrual", "CalcAgingReportFromTxnDate": False},
    }


# --------------------------------------------------------------------------------------------
# Query language
# --------------------------------------------------------------------------------------------


@dataclass
class QueryCondition:
    field: str
    operator: str  # "=", "<", ">", "<=", ">=", "IN", "LIKE"
    value: Any  # str, Decimal, bool, or a list of those for IN


@dataclass
class ParsedQuery:
    entity: str
    count: bool = False
    select_all: bool = True
    fields: list[str] = field(default_factory=list)  # extra/projected fields ("SELECT *, Sku")
    conditions: list[QueryCondition] = field(default_factory=list)
    order_by: list[tuple[str, bool]] = field(default_factory=list)  # (field, descending)
    start_position: int = 1
    max_results: int | None = None


@dataclass
class _Token:
    kind: str  # KEYWORD, ID, STRING, NUMBER, OP, PUNCT, EOF
    text: str
    value: Any
    column: int


class QueryParser:
    """Parses QBO's query language (an SQL subset) into a ParsedQuery.

    SELECT * | SELECT *, field... | SELECT field, ... | SELECT COUNT(*)
      FROM Entity [WHERE cond [AND cond]...] [ORDERBY|ORDER BY field [ASC|DESC], ...]
      [STARTPOSITION n] [MAXRESULTS n]
    cond: field (=|<|>|<=|>=) value | field IN (value, ...) | field LIKE 'pattern'

    Anything else (OR, parentheses, !=, JOIN, ...) is a 4000 parse error whose detail imitates
    QBO's JavaCC parser ('Encountered " <OR> "OR "" at line 1, column 40.').
    """

    KEYWORDS = frozenset(
        (
            "SELECT",
            "FROM",
            "WHERE",
            "AND",
            "OR",
            "NOT",
            "IN",
            "LIKE",
            "ORDERBY",
            "ORDER",
            "BY",
            "ASC",
            "DESC",
            "STARTPOSITION",
            "MAXRESULTS",
            "COUNT",
            "TRUE",
            "FALSE",
            "JOIN",
            "GROUP",
            "HAVING",
            "IS",
            "NULL",
            "UNION",
            "LIMIT",
            "ON",
            "AS",
        )
    )
    _TOKEN_RE = re.compile(
        r"""
          (?P<space>\s+)
        | (?P<string>'(?:\\.|[^'\\])*')
        | (?P<number>-?\d+(?:\.\d+)?)
        | (?P<word>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
        | (?P<op><=|>=|!=|<>|=|<|>)
        | (?P<punct>[(),*])
    """,
        re.VERBOSE,
    )
    COMPARISONS = ("=", "<", ">", "<=", ">=")

    def __init__(self, text: str):
        self.text = text
        self.tokens = self._tokenize(text)
        self.position = 0

    @classmethod
    def parse(cls, text: str) -> ParsedQuery:
        return cls(text)._query()

    # -- lexer ---------------------------------------------------------------------------------

    def _tokenize(self, text: str) -> list[_Token]:
        tokens, offset = [], 0
        while offset < len(text):
            match = self._TOKEN_RE.match(text, offset)
            if match is None:  # e.g. curly quotes, an unterminated string, '!' alone
                char = text[offset]
                raise query_parser_error(
                    f'Lexical error at line 1, column {offset + 1}.  Encountered: "{char}" ({ord(char)}), after : ""'
                )
            kind, lexeme = match.lastgroup, match.group()
            if kind != "space":
                tokens.append(self._token(kind, lexeme, offset + 1))
            offset = match.end()
        tokens.append(_Token("EOF", "", None, len(text) + 1))
        return tokens

    def _token(self, kind: str, lexeme: str, column: int) -> _Token:
        if kind == "string":
            # \' is a quote and \\ a backslash: a backslash escapes the next character.
            return _Token("STRING", lexeme, re.sub(r"\\(.)", r"\1", lexeme[1:-1]), column)
        if kind == "number":
            return _Token("NUMBER", lexeme, Decimal(lexeme), column)
        if kind == "word" and lexeme.upper() in self.KEYWORDS:
            return _Token("KEYWORD", lexeme, lexeme.upper(), column)
        return _Token({"word": "ID", "op": "OP", "punct": "PUNCT"}[kind], lexeme, lexeme, column)

    # -- token helpers -------------------------------------------------------------------------

    @property
    def _current(self) -> _Token:
        return self.tokens[self.position]

    def _advance(self) -> _Token:
        token = self._current
        self.position += 1
        return token

    def _accept(self, kind: str, value: str | None = None) -> _Token | None:
        token = self._current
        if token.kind == kind and (value is None or token.value == value):
            return self._advance()
        return None

    def _expect(self, kind: str, value: str | None = None) -> _Token:
        token = self._accept(kind, value)
        if token is None:
            raise self._unexpected()
        return token

    def _unexpected(self) -> QboFault:
        token = self._current
        if token.kind == "EOF":
            described = '"<EOF>"'
        else:
            label = {"KEYWORD": f"<{token.value}>", "ID": "<ID>", "STRING": "<STRING>", "NUMBER": "<INTEGER>"}.get(
                token.kind, f'"{token.text}"'
            )
            described = f'" {label} "{token.text} ""'
        return query_parser_error(f"Encountered {described} at line 1, column {token.column}.")

    # -- grammar -------------------------------------------------------------------------------

    def _query(self) -> ParsedQuery:
        self._expect("KEYWORD", "SELECT")
        query = ParsedQuery(entity="")
        self._select_list(query)
        self._expect("KEYWORD", "FROM")
        query.entity = self._expect("ID").text
        if self._accept("KEYWORD", "WHERE"):
            query.conditions = self._conditions()
        query.order_by = self._order_by()
        self._paging(query)
        self._expect("EOF")
        return query

    def _select_list(self, query: ParsedQuery) -> None:
        if self._accept("KEYWORD", "COUNT"):
            self._expect("PUNCT", "(")
            self._expect("PUNCT", "*")
            self._expect("PUNCT", ")")
            query.count = True
            return
        if self._accept("PUNCT", "*"):
            query.select_all = True
        else:
            query.select_all = False
            query.fields.append(self._expect("ID").text)
        while self._accept("PUNCT", ","):
            query.fields.append(self._expect("ID").text)

    def _conditions(self) -> list[QueryCondition]:
        conditions = [self._condition()]
        while self._accept("KEYWORD", "AND"):
            conditions.append(self._condition())
        return conditions

    def _condition(self) -> QueryCondition:
        name = self._expect("ID").text
        if self._current.kind == "OP":
            if self._current.value not in self.COMPARISONS:  # QBO has no != / <>
                raise self._unexpected()
            operator = self._advance().value
            return QueryCondition(name, operator, self._value())
        if self._accept("KEYWORD", "IN"):
            self._expect("PUNCT", "(")
            values = [self._value()]
            while self._accept("PUNCT", ","):
                values.append(self._value())
            self._expect("PUNCT", ")")
            return QueryCondition(name, "IN", values)
        if self._accept("KEYWORD", "LIKE"):
            return QueryCondition(name, "LIKE", self._expect("STRING").value)
        raise self._unexpected()

    def _value(self) -> Any:
        token = self._current
        if token.kind in ("STRING", "NUMBER"):
            return self._advance().value
        if token.kind == "KEYWORD" and token.value in ("TRUE", "FALSE"):
            return self._advance().value == "TRUE"
        raise self._unexpected()

    def _order_by(self) -> list[tuple[str, bool]]:
        if not self._accept("KEYWORD", "ORDERBY"):
            if not self._accept("KEYWORD", "ORDER"):
                return []
            self._expect("KEYWORD", "BY")  # python-quickbooks' all() writes "ORDER BY"
        order = [self._order_item()]
        while self._accept("PUNCT", ","):
            order.append(self._order_item())
        return order

    def _order_item(self) -> tuple[str, bool]:
        name = self._expect("ID").text
        descending = bool(self._accept("KEYWORD", "DESC"))
        if not descending:
            self._accept("KEYWORD", "ASC")
        return name, descending

    def _paging(self, query: ParsedQuery) -> None:
        for _ in range(2):  # either order
            if self._accept("KEYWORD", "STARTPOSITION"):
                query.start_position = self._integer()
            elif self._accept("KEYWORD", "MAXRESULTS"):
                query.max_results = self._integer()

    def _integer(self) -> int:
        token = self._current
        if token.kind != "NUMBER" or token.value != token.value.to_integral_value():
            raise self._unexpected()
        return int(self._advance().value)


class QueryEngine:
    """Runs a query against one company, the way QBO does: AND only, case-insensitive strings,
    inactive list records hidden unless the query mentions Active, 1-based paging, 1000 max."""

    DEFAULT_MAX_RESULTS = 100
    MAX_RESULTS_LIMIT = 1000

    def __init__(self, company: Company):
        self.company = company

    def run(self, sql: str) -> dict:
        """The QueryResponse object for `sql`, or a QboFault (4000/4001)."""
        query = QueryParser.parse(sql or "")
        entity = self._resolve_entity(query.entity)
        for name in [c.field for c in query.conditions] + [name for name, _ in query.order_by]:
            self._require_queryable(entity, name)
        records = [r for r in self.company.query_source(entity) if self._matches_all(r, query.conditions)]
        # UNCONFIRMED: TaxCode, TaxRate and CompanyCurrency queries return inactive rows too (integrators report
        # filtering tax codes on Active themselves); only name lists and accounts hide them unless asked.
        if entity in LIST_ENTITIES and not any(c.field.lower() == "active" for c in query.conditions):
            records = [r for r in records if r.get("Active", True)]
        if query.count:
            return {"totalCount": len(records)}
        return self._page(entity, self._sorted(records, query.order_by), query)

    def _resolve_entity(self, name: str) -> str:
        for entity in QUERYABLE_FIELDS:
            if entity.lower() == name.lower():
                return entity
        raise query_validation_error(f"Metadata not found for Entity: {name}")

    @staticmethod
    def _require_queryable(entity: str, name: str) -> None:
        if name.lower() not in {allowed.lower() for allowed in QUERYABLE_FIELDS[entity]}:
            raise query_validation_error(f"property '{name}' is not queryable")

    def _page(self, entity: str, records: list[dict], query: ParsedQuery) -> dict:
        if query.max_results is not None and query.max_results < 1:
            raise query_validation_error("MAXRESULTS must be at least 1")
        limit = min(query.max_results or self.DEFAULT_MAX_RESULTS, self.MAX_RESULTS_LIMIT)
        start = max(query.start_position, 1)  # an Intuit sample uses 0; QBO treats it as 1
        page = records[start - 1 : start - 1 + limit]
        if not page:
            return {}  # QBO omits the entity key (and paging) when nothing matches
        return {
            entity: [self._project(record, query) for record in page],
            "startPosition": start,
            "maxResults": len(page),
        }

    @staticmethod
    def _project(record: dict, query: ParsedQuery) -> dict:
        if query.select_all:
            return copy.deepcopy(record)
        picked = {name: copy.deepcopy(record[name]) for name in query.fields if name in record}
        return {"Id": record["Id"], **picked, "domain": "QBO", "sparse": True}

    # -- matching ------------------------------------------------------------------------------

    def _matches_all(self, record: dict, conditions: list[QueryCondition]) -> bool:
        return all(self._matches(field_value(record, c.field), c) for c in conditions)

    @staticmethod
    def _matches(stored: Any, condition: QueryCondition) -> bool:
        if stored is None:
            return False
        if condition.operator == "IN":
            return any(compare_values(stored, wanted) == 0 for wanted in condition.value)
        if condition.operator == "LIKE":
            pattern = ".*".join(re.escape(part) for part in str(condition.value).split("%"))
            return re.fullmatch(pattern, str(stored), re.IGNORECASE | re.DOTALL) is not None
        ordering = compare_values(stored, condition.value)
        if ordering is None:
            return False
        return {"=": ordering == 0, "<": ordering < 0, ">": ordering > 0, "<=": ordering <= 0, ">=": ordering >= 0}[
            condition.operator
        ]

    @staticmethod
    def _sorted(records: list[dict], order_by: list[tuple[str, bool]]) -> list[dict]:
        ordered = sorted(records, key=lambda r: sort_key(r["Id"]))
        for name, descending in reversed(order_by):  # stable sorts, last key first
            ordered.sort(key=lambda r: sort_key(field_value(r, name)), reverse=descending)
        return ordered


def field_value(record: dict, path: str) -> Any:
    """A (dotted) property of a record; refs compare on their value and emails on their address."""
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part, next((v for k, v in value.items() if k.lower() == part.lower()), None))
    if isinstance(value, dict):
        value = value.get("value", value.get("Address"))
    return value


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def _as_decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float, Decimal)):
        return Decimal(str(value))
    if isinstance(value, str) and re.fullmatch(r"-?\d+(\.\d+)?", value.strip()):
        return Decimal(value.strip())
    return None


def _as_datetime(value: Any) -> datetime | None:
    if not isinstance(value, str) or not re.match(r"\d{4}-\d{2}-\d{2}", value):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=QBO_TZ)


def compare_values(stored: Any, wanted: Any) -> int | None:
    """-1/0/1 comparing a stored value with a query literal, or None when they cannot compare."""

    def order(a, b):
        return (a > b) - (a < b)

    if isinstance(stored, bool) or isinstance(wanted, bool):
        left, right = _as_bool(stored), _as_bool(wanted)
        return order(left, right) if left is not None and right is not None else None
    left_number, right_number = _as_decimal(stored), _as_decimal(wanted)
    if left_number is not None and right_number is not None:
        return order(left_number, right_number)
    left_time, right_time = _as_datetime(stored), _as_datetime(wanted)
    if left_time is not None and right_time is not None:
        return order(left_time, right_time)
    return order(str(stored).casefold(), str(wanted).casefold())


def sort_key(value: Any) -> tuple:
    # Group by kind so mixed or missing values never compare across types.
    if value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (1, int(value))
    number = _as_decimal(value)
    if number is not None:
        return (2, number)
    moment = _as_datetime(value)
    if moment is not None:
        return (3, moment.timestamp())
    return (4, str(value).casefold())


# --------------------------------------------------------------------------------------------
# Business rules
# --------------------------------------------------------------------------------------------


class EntityRules:
    """QBO's validation and derived fields. prepare() returns the document to store or raises QboFault.

    `existing` is the stored record on an update (None on create); uniqueness checks skip it.
    Checks that can fail come before anything that consumes a number from a counter.
    """

    def __init__(self, company: Company):
        self.company = company

    def prepare(self, entity: str, doc: dict, existing: dict | None) -> dict:
        if entity in NAME_LIST_ENTITIES:
            return self._person(entity, doc, existing)
        if entity in SALES_DOCUMENTS:
            return self._sales_document(entity, doc, existing)
        handler = {
            "Item": self._item,
            "Account": self._account,
            "Term": self._term,
            "PaymentMethod": self._payment_method,
            "Payment": self._payment,
            "Purchase": self._purchase,
        }[entity]
        return handler(doc, existing)

    # -- shared checks -------------------------------------------------------------------------

    def reference(
        self,
        container: dict,
        key: str,
        entities: str | tuple[str, ...],
        *,
        required: bool = False,
        element: str | None = None,
    ) -> dict | None:
        """Validate container[key] = {"value": id}: it must name an existing, active record.
        Fills in the ref's name like QBO does; returns the referenced record."""
        element = element or key
        entities = (entities,) if isinstance(entities, str) else entities
        ref = container.get(key)
        if not isinstance(ref, dict) or _is_absent(ref.get("value")):
            if required:
                raise required_param_missing(element)
            container.pop(key, None)
            return None
        ref_type = ref.get("type") if len(entities) > 1 else None  # EntityRef says Vendor/Customer/Employee
        for entity in entities:
            record = self.company.lookup(entity, str(ref["value"]))
            if record is None or not record.get("Active", True):
                continue
            if ref_type and ref_type.lower() != entity.lower():
                continue
            ref["value"] = record["Id"]
            ref["name"] = display_name_of(record)
            if len(entities) > 1:
                ref["type"] = entity
            return record
        raise invalid_reference(element)

    def _unique_name(
        self, entities: tuple[str, ...], key: str, name: str, existing: dict | None, conflict: str
    ) -> None:
        wanted = name.strip().casefold()
        for entity in entities:
            for record in self.company.records(entity):  # active and inactive alike
                if existing is not None and record["Id"] == existing["Id"]:
                    continue
                if str(record.get(key, "")).strip().casefold() == wanted:
                    raise duplicate_name(conflict)

    def _required_name(self, doc: dict, maximum: int) -> str:
        name = doc.get("Name")
        if _is_absent(name):
            raise required_param_missing("Name")
        name = str(name)
        if len(name) > maximum:
            raise string_length_error("Name", name, maximum)
        return name

    def _txn_date(self, doc: dict) -> None:
        doc["TxnDate"] = check_date(doc.get("TxnDate") or self.company.today().isoformat(), "TxnDate")

    # -- currencies ----------------------------------------------------------------------------

    def _currency(
        self,
        doc: dict,
        *,
        required_with_multicurrency: bool = False,
        existing: dict | None = None,
        adds_to_list: bool = False,
    ) -> str:
        """Check and normalise doc["CurrencyRef"]; returns its code. Absent: the stored record's currency on an
        update, else the home currency. A name's or account's currency is fixed once set. adds_to_list: a
        Customer/Vendor naming a currency missing from the company's list adds it (Intuit's Customer reference:
        "If specified currency is not currently in the company's currency list, it is added")."""
        given = currency_code_of(doc)
        if required_with_multicurrency and self.company.multicurrency and not given:
            raise required_param_missing("CurrencyRef")
        home = self.company.home_currency
        fixed = currency_code_of(existing) if existing else ""
        code = given or fixed or home
        if fixed and code != fixed:
            # UNCONFIRMED: code and wording; Intuit documents Customer.CurrencyRef as "Once set, it cannot be changed".
            raise business_validation_error(
                f"You can't change the currency of this record from {fixed} to {code} once it has been set.",
                "CurrencyRef",
            )
        if code != home and code != fixed:
            self._foreign_currency_allowed(code, adds_to_list=adds_to_list)
        doc["CurrencyRef"] = currency_ref(code)
        return code

    def _foreign_currency_allowed(self, code: str, *, adds_to_list: bool) -> None:
        if not self.company.multicurrency:
            # UNCONFIRMED: code and wording for a foreign CurrencyRef in a company without multicurrency.
            raise business_validation_error(
                f"Multicurrency is turned off in this company: use its home currency "
                f"{self.company.home_currency}, not {code}.",
                "CurrencyRef",
            )
        row = self.company.company_currency(code)
        if row is None and adds_to_list and code in CURRENCY_NAMES:
            self.company.enable_currency(code)
            return
        if row is None or not row.get("Active", True):
            # UNCONFIRMED: a currency that is neither home nor an active CompanyCurrency taken as a bad reference.
            raise QboFault(
                "2500",
                "Invalid Reference Id",
                f"Invalid Reference Id : Currency {code} is not in this company's active currency list.",
                "CurrencyRef",
            )

    def _same_currency(self, currency: str, record: dict | None, what: str, element: str) -> None:
        """A transaction is in its customer's / vendor's / account's currency."""
        if record is None:
            return
        theirs = currency_code_of(record) or self.company.home_currency
        if theirs != currency:
            # UNCONFIRMED: code and wording of QBO's currency mismatch between a transaction and its name/account.
            raise business_validation_error(
                f"The transaction currency ({currency}) must be the same as the {what}'s currency ({theirs}).",
                element,
            )

    def _account_in_currency(self, account: dict | None, currency: str, element: str) -> None:
        """A deposit account holds the home currency or the transaction's."""
        if account is None:
            return
        theirs = currency_code_of(account) or self.company.home_currency
        if theirs not in (self.company.home_currency, currency):
            # UNCONFIRMED in QBO; the wording is QuickBooks Desktop's for the same rule.
            raise business_validation_error(
                "The currency of the account must be either in home currency or the transaction currency.", element
            )

    def _exchange_rate(self, doc: dict, currency: str) -> Decimal | None:
        """ExchangeRate (home units per foreign unit) of a multicurrency transaction: as sent, else the company's
        table (company.exchange_rates), 1 for the home currency. Without multicurrency there is none."""
        if not self.company.multicurrency:
            for key in ("ExchangeRate", "HomeTotalAmt", "HomeBalance"):
                doc.pop(key, None)
            return None
        if currency == self.company.home_currency:
            rate = Decimal(1)
        elif not _is_absent(doc.get("ExchangeRate")):
            rate = to_decimal(doc["ExchangeRate"], "ExchangeRate")
            if rate <= 0:
                raise invalid_property("ExchangeRate", doc["ExchangeRate"])
        else:
            rate = Decimal(str(self.company.exchange_rates.get(currency, 1)))
        doc["ExchangeRate"] = float(rate)
        return rate

    @staticmethod
    def _amount(container: dict, element: str) -> Decimal:
        if _is_absent(container.get("Amount")):
            raise required_param_missing(element)
        amount = money(to_decimal(container["Amount"], element))
        container["Amount"] = float(amount)
        return amount

    @staticmethod
    def _keep_read_only(doc: dict, existing: dict | None, defaults: dict) -> None:
        # Clients may echo read-only fields back (python-quickbooks sends Balance: 0); QBO ignores them.
        for key, default in defaults.items():
            doc[key] = existing.get(key, default) if existing else default

    # -- names ---------------------------------------------------------------------------------

    def _person(self, entity: str, doc: dict, existing: dict | None) -> dict:
        parts = [str(doc[k]) for k in ("Title", "GivenName", "MiddleName", "FamilyName", "Suffix") if doc.get(k)]
        display_name = doc.get("DisplayName") or " ".join(parts)
        if not display_name:
            raise QboFault(
                "6080",
                "No Name Provided",
                "Please provide at least one of: Title, GivenName, MiddleName, FamilyName, Suffix or DisplayName.",
                "DisplayName",
            )
        if ":" in display_name:
            raise business_validation_error("The DisplayName cannot contain a colon (:).", "DisplayName")
        if len(display_name) > 500:
            raise string_length_error("DisplayName", display_name, 500)
        self._unique_name(NAME_LIST_ENTITIES, "DisplayName", display_name, existing, NAME_LIST_CONFLICT)
        doc["DisplayName"] = display_name
        doc.setdefault("PrintOnCheckName", display_name)
        doc.setdefault("Active", True)
        if entity == "Customer":
            doc["FullyQualifiedName"] = display_name
            self._keep_read_only(doc, existing, {"Balance": 0, "BalanceWithJobs": 0})
            self.reference(doc, "SalesTermRef", "Term")
            self.reference(doc, "PaymentMethodRef", "PaymentMethod")
            self._currency(doc, existing=existing, adds_to_list=True)  # last: it may add a CompanyCurrency
        elif entity == "Vendor":
            self._keep_read_only(doc, existing, {"Balance": 0})
            self.reference(doc, "TermRef", "Term")
            # UNCONFIRMED: Vendors taken to add a missing currency to the list as Intuit documents for Customers.
            self._currency(doc, existing=existing, adds_to_list=True)
        return doc

    # -- lists ---------------------------------------------------------------------------------

    def _item(self, doc: dict, existing: dict | None) -> dict:
        name = self._required_name(doc, 100)
        if any(char in name for char in ":\t\n"):
            raise business_validation_error("The Name cannot contain a colon (:), a tab or a new line.", "Name")
        self._unique_name(
            ("Item",),
            "Name",
            name,
            existing,
            "Another product or service is already using this name. Please use a different name.",
        )
        item_type = doc.get("Type")
        if not item_type:
            raise required_param_missing("Type")
        if item_type not in ITEM_TYPES:
            raise invalid_enumeration("Type", item_type)
        self.reference(doc, "IncomeAccountRef", "Account", required=True)
        inventory = item_type == "Inventory"
        self.reference(doc, "AssetAccountRef", "Account", required=inventory)
        self.reference(doc, "ExpenseAccountRef", "Account", required=inventory)
        if inventory:
            if not doc.get("InvStartDate"):
                raise required_param_missing("InvStartDate")
            check_date(doc["InvStartDate"], "InvStartDate")
            doc.setdefault("QtyOnHand", 0)
            doc["TrackQtyOnHand"] = True
        # Default tax codes of the item (non-US: TaxCode ids; US: TAX/NON). The fake never copies them onto lines
        # that lack a TaxCodeRef (UNCONFIRMED whether QBO does): send the line's code.
        self.reference(doc, "SalesTaxCodeRef", "TaxCode")
        self.reference(doc, "PurchaseTaxCodeRef", "TaxCode")
        doc["FullyQualifiedName"] = name
        doc.setdefault("Active", True)
        doc.setdefault("UnitPrice", 0)
        doc.setdefault("Taxable", False)  # US: subject to sales tax; python-quickbooks always sends it
        return doc

    def _account(self, doc: dict, existing: dict | None) -> dict:
        name = self._required_name(doc, 100)
        if ":" in name:
            raise business_validation_error("The Name cannot contain a colon (:).", "Name")
        self._unique_name(
            ("Account",),
            "Name",
            name,
            existing,
            "Another account is already using this name. Please use a different name.",
        )
        account_type = doc.get("AccountType")
        if not account_type:
            raise required_param_missing("AccountType")
        if account_type not in ACCOUNT_CLASSIFICATION:
            raise invalid_enumeration("AccountType", account_type)
        doc["Classification"] = ACCOUNT_CLASSIFICATION[account_type]
        given = currency_code_of(doc)
        if given and given != self.company.home_currency and account_type not in FOREIGN_CURRENCY_ACCOUNT_TYPES:
            # UNCONFIRMED: code and wording; Intuit: only bank, credit card, AR and AP accounts take a currency.
            raise business_validation_error(
                f"A {account_type} account is always in the home currency {self.company.home_currency}.",
                "CurrencyRef",
            )
        doc["FullyQualifiedName"] = name
        doc.setdefault("Active", True)
        doc.setdefault("SubAccount", False)
        self._keep_read_only(doc, existing, {"CurrentBalance": 0, "CurrentBalanceWithSubAccounts": 0})
        self._currency(doc, existing=existing)
        return doc

    def _term(self, doc: dict, existing: dict | None) -> dict:
        name = self._required_name(doc, 31)
        self._unique_name(
            ("Term",), "Name", name, existing, "Another term is already using this name. Please use a different name."
        )
        if _is_absent(doc.get("DueDays")) and _is_absent(doc.get("DayOfMonthDue")):
            raise required_param_missing("DueDays")
        if not _is_absent(doc.get("DueDays")):
            days = to_decimal(doc["DueDays"], "DueDays")
            if days < 0 or days != days.to_integral_value():
                raise invalid_property("DueDays", doc["DueDays"])
            doc["DueDays"] = int(days)
        doc["Type"] = "STANDARD" if "DueDays" in doc else "DATE_DRIVEN"
        doc.setdefault("Active", True)
        return doc

    def _payment_method(self, doc: dict, existing: dict | None) -> dict:
        name = self._required_name(doc, 31)
        self._unique_name(
            ("PaymentMethod",),
            "Name",
            name,
            existing,
            "Another payment method is already using this name. Please use a different name.",
        )
        doc.setdefault("Type", "NON_CREDIT_CARD")
        doc.setdefault("Active", True)
        return doc

    # -- sales documents -----------------------------------------------------------------------

    def _sales_document(self, entity: str, doc: dict, existing: dict | None) -> dict:
        customer = self.reference(doc, "CustomerRef", "Customer", required=True)
        currency = self._currency(doc, required_with_multicurrency=True)
        self._same_currency(currency, customer, "customer", "CurrencyRef")
        mode = self._global_tax_calculation(doc)
        lines, net_total = self._sales_lines(entity, doc, mode)
        tax_detail, tax = self._tax_detail(lines, ("SalesItemLineDetail",), "SalesTaxRateList", mode)
        self.reference(doc, "SalesTermRef", "Term")
        self.reference(doc, "PaymentMethodRef", "PaymentMethod")
        if entity in ("SalesReceipt", "RefundReceipt"):
            # A refund must say which account paid it out; a sales receipt defaults to Undeposited Funds.
            account = self.reference(doc, "DepositToAccountRef", "Account", required=entity == "RefundReceipt")
            self._account_in_currency(account, currency, "DepositToAccountRef")
            if entity == "SalesReceipt" and "DepositToAccountRef" not in doc:
                doc["DepositToAccountRef"] = self.company.undeposited_funds_ref()
        self._linked_transactions(doc)
        self._txn_date(doc)
        for element in ("DueDate", "ShipDate", "ExpirationDate"):
            if doc.get(element):
                check_date(doc[element], element)
        self._doc_number(entity, doc, existing)
        # Lines and the subtotal stay net of tax; TotalAmt adds the tax QBO computed (TaxExcluded or TaxInclusive).
        subtotal = {"Amount": float(net_total), "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}}
        doc["Line"] = lines + [subtotal]
        doc["TxnTaxDetail"] = tax_detail  # QBO computes it: whatever the client sent is replaced
        total = net_total + tax
        doc["TotalAmt"] = float(total)
        for key in ("HomeBalance", "HomeTotalAmt"):  # echoed zeros from python-quickbooks; recomputed below
            doc.pop(key, None)
        rate = self._exchange_rate(doc, currency)
        if rate is not None:
            doc["HomeTotalAmt"] = float(money(total * rate))
        self._sales_document_specifics(entity, doc, total, existing)
        return doc

    def _sales_document_specifics(self, entity: str, doc: dict, total: Decimal, existing: dict | None) -> None:
        if entity == "Invoice":
            self.company.apply_payments(doc, invoice_id=existing and existing["Id"])
            if not doc.get("DueDate"):
                term = self.company.lookup("Term", doc.get("SalesTermRef", {}).get("value", ""))
                due = date.fromisoformat(doc["TxnDate"]) + timedelta(days=(term or {}).get("DueDays", 0))
                doc["DueDate"] = due.isoformat()
        elif entity == "Estimate":
            doc.setdefault("TxnStatus", "Pending")
        elif entity == "CreditMemo":
            doc["Balance"] = float(total)
            doc["RemainingCredit"] = float(total)
            if "ExchangeRate" in doc:
                doc["HomeBalance"] = float(money(total * Decimal(str(doc["ExchangeRate"]))))
        else:
            doc["Balance"] = 0.0
            if "ExchangeRate" in doc:
                doc["HomeBalance"] = 0.0

    def _sales_lines(self, entity: str, doc: dict, mode: str) -> tuple[list[dict], Decimal]:
        # QBO recomputes the subtotal line, so a read-modify-save round trip must not duplicate it.
        lines = [line for line in doc.get("Line", []) if line.get("DetailType") != "SubTotalLineDetail"]
        if not lines:
            raise required_param_missing("Line")
        total = Decimal("0")
        for number, line in enumerate(lines, start=1):
            total += self._sales_line(entity, line, total, mode)
            line["Id"] = str(number)
            line["LineNum"] = number
        return lines, money(total)

    def _sales_line(self, entity: str, line: dict, running_total: Decimal, mode: str) -> Decimal:
        detail_type = line.get("DetailType")
        if not detail_type:
            raise required_param_missing("Line.DetailType")
        if detail_type == "SalesItemLineDetail":
            return self._sales_item_line(entity, line, mode)
        if detail_type == "DiscountLineDetail":
            return -self._discount_line(line, running_total)
        if detail_type == "DescriptionOnly":
            return Decimal("0")  # text only; QBO ignores its Amount
        if detail_type == "GroupLineDetail":
            return self._amount(line, "Line.Amount")
        raise invalid_enumeration("Line.DetailType", detail_type)

    def _sales_item_line(self, entity: str, line: dict, mode: str) -> Decimal:
        detail = line.get("SalesItemLineDetail")
        if not isinstance(detail, dict):
            raise required_param_missing("Line.SalesItemLineDetail")
        amount = self._amount(line, "Line.Amount")
        self.reference(detail, "ItemRef", "Item", required=True, element="Line.SalesItemLineDetail.ItemRef")
        self._qty_times_price(detail, amount)
        self._service_date(entity, detail)
        self._line_tax_code(detail, mode, "Line.SalesItemLineDetail.TaxCodeRef")
        if not _is_absent(detail.get("TaxInclusiveAmt")):
            # The gross amount of a TaxInclusive line: kept as sent, informational (Amount is the net).
            detail["TaxInclusiveAmt"] = float(money(to_decimal(detail["TaxInclusiveAmt"], "TaxInclusiveAmt")))
        return amount

    @staticmethod
    def _qty_times_price(detail: dict, amount: Decimal) -> None:
        if detail.get("Qty") is None or detail.get("UnitPrice") is None:
            return
        qty = to_decimal(detail["Qty"], "Line.SalesItemLineDetail.Qty")
        price = to_decimal(detail["UnitPrice"], "Line.SalesItemLineDetail.UnitPrice")
        # QBO keeps 7 decimals on UnitPrice: it rounds what it receives, then checks Amount against that.
        price = price.quantize(Decimal("0.0000001"), rounding=ROUND_HALF_UP)
        detail["UnitPrice"] = float(price)
        if qty == 0 and price == 0:
            return  # python-quickbooks' "unset" defaults; QBO takes an Amount-only line
        if abs(amount - money(qty * price)) > Decimal("0.005"):
            raise QboFault(
                "6070",
                "Amount is not equal to UnitPrice * Qty",
                f"Amount is not equal to UnitPrice * Qty. Supplied value:{amount}",
                "Line.Amount",
            )

    def _service_date(self, entity: str, detail: dict) -> None:
        if detail.get("ServiceDate"):
            check_date(detail["ServiceDate"], "Line.SalesItemLineDetail.ServiceDate")
        elif entity in REVENUE_RECOGNITION_DOCUMENTS and self.company.pref(
            "ProductAndServicesPrefs.RevenueRecognition"
        ):
            raise business_validation_error(
                "Enter a service date for the line for revenue recognition.", "Line.SalesItemLineDetail.ServiceDate"
            )

    # -- tax -----------------------------------------------------------------------------------

    def _global_tax_calculation(self, doc: dict) -> str:
        """TaxExcluded (the default), TaxInclusive or NotApplicable; automated US sales tax ignores it."""
        value = doc.get("GlobalTaxCalculation")
        if value is not None and value not in GLOBAL_TAX_CALCULATIONS:
            raise invalid_enumeration("GlobalTaxCalculation", value)
        if self.company.country == "US":
            doc.pop("GlobalTaxCalculation", None)
            return "TaxExcluded"
        doc["GlobalTaxCalculation"] = value or "TaxExcluded"
        return doc["GlobalTaxCalculation"]

    def _line_tax_code(self, detail: dict, mode: str, element: str) -> None:
        """US: TAX or NON (absent = NON). Elsewhere: an existing, active TaxCode of the company, required."""
        ref = detail.get("TaxCodeRef")
        code = ref.get("value") if isinstance(ref, dict) else None
        if self.company.country == "US":
            if code is None:
                detail["TaxCodeRef"] = {"value": "NON"}
            elif code not in US_LINE_TAX_CODES:
                raise QboFault(
                    "6100",
                    "Invalid Line TaxCode",
                    f"Invalid line TaxCode {code}: US companies use TAX or NON.",
                    element,
                )
            return
        if code is None:
            if mode == "NotApplicable":
                return  # UNCONFIRMED: amounts "out of scope of tax" taken to need no line tax codes
            raise business_validation_error(COUNTRY_SETUPS[self.company.country].missing_tax_code)
        record = self.company.lookup("TaxCode", str(code))  # TAX/NON do not exist outside the US
        if record is None or not record.get("Active", True):
            raise invalid_reference(element)
        detail["TaxCodeRef"] = {"value": record["Id"]}

    def _tax_detail(
        self, lines: list[dict], detail_keys: tuple[str, ...], rate_list: str, mode: str
    ) -> tuple[dict, Decimal]:
        """The TxnTaxDetail QBO computes, and its TotalTax: one TaxLine per tax rate, the tax being the sum of
        the net line amounts carrying that rate times the rate, rounded half up to cents. US companies with
        automated sales tax tax the TAX lines at company.ast_rate."""
        bases: dict[str, Decimal] = {}  # TaxRate id -> net amount taxed at it
        percents: dict[str, Decimal] = {}
        items = [line for line in lines if line.get("DetailType") in detail_keys]
        us = self.company.country == "US"
        if us:
            if not self.company.pref("TaxPrefs.PartnerTaxEnabled"):
                return {"TotalTax": 0.0}, Decimal(0)  # legacy (manual) US sales tax: not modelled, no tax
            rate = self.company.ast_tax_rate()
            for line in items:
                if line[line["DetailType"]].get("TaxCodeRef", {}).get("value") == "TAX":
                    bases[rate["Id"]] = bases.get(rate["Id"], Decimal(0)) + Decimal(str(line["Amount"]))
                    percents[rate["Id"]] = self.company.ast_rate
        elif mode != "NotApplicable":
            for line in items:
                code_id = str(line[line["DetailType"]].get("TaxCodeRef", {}).get("value", ""))
                code = self.company.lookup("TaxCode", code_id) or {}
                for rate_detail in (code.get(rate_list) or {}).get("TaxRateDetail", []):
                    rate = self.company.lookup("TaxRate", str(rate_detail["TaxRateRef"]["value"]))
                    bases[rate["Id"]] = bases.get(rate["Id"], Decimal(0)) + Decimal(str(line["Amount"]))
                    percents[rate["Id"]] = Decimal(str(rate["RateValue"]))
        factor = _discount_factor(lines, items)
        tax_lines, total_tax = [], Decimal(0)
        for rate_id, base in bases.items():
            net = money(base * factor)
            tax = money(net * percents[rate_id] / 100)
            total_tax += tax
            tax_lines.append(
                {
                    "Amount": float(tax),
                    "DetailType": "TaxLineDetail",
                    "TaxLineDetail": {
                        "TaxRateRef": {"value": rate_id},
                        "PercentBased": True,
                        "TaxPercent": float(percents[rate_id]),
                        "NetAmountTaxable": float(net),
                    },
                }
            )
        detail: dict = {"TotalTax": float(total_tax)}
        if us and tax_lines:
            detail["TxnTaxCodeRef"] = {"value": self.company.ast_tax_code()["Id"]}
        if tax_lines:
            detail["TaxLine"] = tax_lines
        return detail, total_tax

    @staticmethod
    def _discount_line(line: dict, running_total: Decimal) -> Decimal:
        detail = line.get("DiscountLineDetail", {})
        if detail.get("PercentBased") and detail.get("DiscountPercent") is not None:
            percent = to_decimal(detail["DiscountPercent"], "Line.DiscountLineDetail.DiscountPercent")
            line["Amount"] = float(money(running_total * percent / 100))
        if _is_absent(line.get("Amount")):
            raise required_param_missing("Line.Amount")
        return money(to_decimal(line["Amount"], "Line.Amount"))

    def _linked_transactions(self, doc: dict) -> None:
        for link in doc.get("LinkedTxn", []):
            txn_type = link.get("TxnType")
            if txn_type in TRANSACTIONS and self.company.lookup(txn_type, str(link.get("TxnId", ""))) is None:
                raise invalid_reference("LinkedTxn")

    def _doc_number(self, entity: str, doc: dict, existing: dict | None) -> None:
        family = DOC_NUMBER_FAMILY[entity]
        number = doc.get("DocNumber")
        if number is None and existing is not None and existing.get("DocNumber"):
            doc["DocNumber"] = existing["DocNumber"]  # an update that omits the number keeps it
            return
        custom_numbers = self.company.pref("SalesFormsPrefs.CustomTxnNumbers")
        if number == "AUTO_GENERATE" or (number is None and not custom_numbers):
            doc["DocNumber"] = self.company.next_doc_number(family)
            return
        if number is None:
            return  # custom numbers on: QBO leaves the number empty
        number = str(number)
        if len(number) > 21:
            raise string_length_error("DocNumber", number, 21)
        holder = self.company.document_with_number(family, number, exclude_id=existing and existing["Id"])
        if holder is not None:
            holder_entity, holder_record = holder
            raise QboFault(
                "6140",
                "Duplicate Document Number Error",
                "You must specify a different number. This number has already been used. "
                f"DocNumber={number} is assigned to TxnType={holder_entity} "
                f"with TxnId={holder_record['Id']}",
                "DocNumber",
            )
        doc["DocNumber"] = number

    # -- payments and expenses -----------------------------------------------------------------

    def _payment(self, doc: dict, existing: dict | None) -> dict:
        customer = self.reference(doc, "CustomerRef", "Customer", required=True)
        # UNCONFIRMED: CurrencyRef required with multicurrency on, as on sales documents.
        currency = self._currency(doc, required_with_multicurrency=True)
        self._same_currency(currency, customer, "customer", "CurrencyRef")
        if _is_absent(doc.get("TotalAmt")):
            raise required_param_missing("TotalAmt")
        total = money(to_decimal(doc["TotalAmt"], "TotalAmt"))
        if total < 0:
            raise invalid_property("TotalAmt", doc["TotalAmt"])
        applied = sum((self._payment_line(line, customer, existing) for line in doc.get("Line", [])), Decimal("0"))
        if applied > total:
            raise business_validation_error(
                "The amount applied to transactions cannot exceed the payment's TotalAmt.", "TotalAmt"
            )
        self.reference(doc, "PaymentMethodRef", "PaymentMethod")
        account = self.reference(doc, "DepositToAccountRef", "Account")
        self._account_in_currency(account, currency, "DepositToAccountRef")
        doc.setdefault("DepositToAccountRef", self.company.undeposited_funds_ref())
        self._txn_date(doc)
        self._exchange_rate(doc, currency)
        doc["TotalAmt"] = float(total)
        doc["UnappliedAmt"] = float(total - applied)
        return doc

    def _payment_line(self, line: dict, customer: dict, existing: dict | None) -> Decimal:
        amount = self._amount(line, "Line.Amount")
        for link in line.get("LinkedTxn", []):
            txn_type, txn_id = link.get("TxnType"), str(link.get("TxnId", ""))
            if txn_type not in ("Invoice", "CreditMemo"):
                raise invalid_enumeration("Line.LinkedTxn.TxnType", txn_type)
            target = self.company.lookup(txn_type, txn_id)
            if target is None or target.get("CustomerRef", {}).get("value") != customer["Id"]:
                raise invalid_reference("Line.LinkedTxn.TxnId")
            link["TxnId"] = txn_id
            if txn_type == "Invoice":
                available = to_decimal(target.get("Balance", 0), "Balance") + _applied_to(existing, txn_id)
                if amount > available:
                    raise business_validation_error(
                        f"The payment amount {amount} exceeds the open balance {available} of invoice "
                        f"{target.get('DocNumber', txn_id)}.",
                        "Line.Amount",
                    )
        return amount

    def _purchase(self, doc: dict, existing: dict | None) -> dict:
        payment_type = doc.get("PaymentType")
        if not payment_type:
            raise required_param_missing("PaymentType")
        if payment_type not in PURCHASE_PAYMENT_TYPES:
            raise invalid_enumeration("PaymentType", payment_type)
        account = self.reference(doc, "AccountRef", "Account", required=True)
        if account["AccountType"] not in PURCHASE_ACCOUNT_TYPES[payment_type]:
            raise business_validation_error(
                f"A {payment_type} expense must be paid from a "
                f"{' or '.join(PURCHASE_ACCOUNT_TYPES[payment_type])} account.",
                "AccountRef",
            )
        payee = self.reference(doc, "EntityRef", NAME_LIST_ENTITIES)
        self.reference(doc, "PaymentMethodRef", "PaymentMethod")
        currency = self._currency(doc)
        self._same_currency(currency, account, "account", "AccountRef")
        self._same_currency(currency, payee, "payee", "EntityRef")  # employees are always in the home currency
        mode = self._global_tax_calculation(doc)
        lines = doc.get("Line", [])
        if not lines:
            raise required_param_missing("Line")
        net = sum((self._expense_line(number, line, mode) for number, line in enumerate(lines, start=1)), Decimal(0))
        if doc.get("DocNumber") and len(str(doc["DocNumber"])) > 21:
            raise string_length_error("DocNumber", str(doc["DocNumber"]), 21)
        tax = Decimal(0)
        if self.company.country != "US":  # US expenses carry no sales tax here
            doc["TxnTaxDetail"], tax = self._tax_detail(lines, EXPENSE_LINE_DETAILS, "PurchaseTaxRateList", mode)
        else:
            doc.pop("TxnTaxDetail", None)
        self._txn_date(doc)
        self._exchange_rate(doc, currency)
        doc.setdefault("Credit", False)
        doc["TotalAmt"] = float(money(net) + tax)
        return doc

    def _expense_line(self, number: int, line: dict, mode: str) -> Decimal:
        detail_type = line.get("DetailType")
        if detail_type == "AccountBasedExpenseLineDetail":
            detail = line.get(detail_type) or {}
            line[detail_type] = detail
            self.reference(
                detail, "AccountRef", "Account", required=True, element="Line.AccountBasedExpenseLineDetail.AccountRef"
            )
        elif detail_type == "ItemBasedExpenseLineDetail":
            detail = line.get(detail_type) or {}
            line[detail_type] = detail
            self.reference(detail, "ItemRef", "Item", required=True, element="Line.ItemBasedExpenseLineDetail.ItemRef")
        elif not detail_type:
            raise required_param_missing("Line.DetailType")
        else:
            raise invalid_enumeration("Line.DetailType", detail_type)
        self.reference(detail, "CustomerRef", "Customer")
        if self.company.country != "US":
            # UNCONFIRMED: expense lines outside the US taken to need a tax code like sales lines
            # ("Make sure all your transactions have a VAT rate"); US expense lines are not checked.
            self._line_tax_code(detail, mode, f"Line.{detail_type}.TaxCodeRef")
        line["Id"] = str(number)
        line["LineNum"] = number
        return self._amount(line, "Line.Amount")


def _discount_factor(lines: list[dict], items: list[dict]) -> Decimal:
    """The share of the item lines left after discount lines: the taxable amounts shrink in proportion.
    UNCONFIRMED: how QBO spreads a document discount over tax rates (the fake prorates it)."""
    gross = sum((Decimal(str(line["Amount"])) for line in items), Decimal(0))
    discount = sum(
        (Decimal(str(line.get("Amount", 0))) for line in lines if line.get("DetailType") == "DiscountLineDetail"),
        Decimal(0),
    )
    if not gross or not discount:
        return Decimal(1)
    return (gross - discount) / gross


def _applied_to(payment: dict | None, invoice_id: str) -> Decimal:
    """What a stored payment applies to one invoice (0 without a payment)."""
    applied = Decimal("0")
    for line in (payment or {}).get("Line", []):
        if any(
            link.get("TxnType") == "Invoice" and str(link.get("TxnId")) == invoice_id
            for link in line.get("LinkedTxn", [])
        ):
            applied += Decimal(str(line.get("Amount", 0)))
    return applied


# --------------------------------------------------------------------------------------------
# Company
# --------------------------------------------------------------------------------------------


class Company:
    """One QBO company (realm): entity stores, preferences, and the write operations.

    Ids come from one per-company counter, so an id of the wrong kind (a customer id used as an
    item id) is always an invalid reference. Helpers return deep copies of stored records.
    """

    DEFAULT_AST_RATE = Decimal("8.25")

    def __init__(self, realm_id: str, name: str, country: str, lock: threading.RLock):
        if country not in COUNTRY_SETUPS:
            raise ValueError(f"country {country!r}: the fake models {', '.join(COUNTRY_SETUPS)}")
        self.realm_id = realm_id
        self.name = name
        self.country = country  # CompanyInfo.Country: "US", "GB" (QBO's code for the UK), "CA", "AU"
        self.preferences = default_preferences(country)
        self.today: Callable[[], date] = date.today  # replace for deterministic TxnDate/DueDate
        # Rates (home units per foreign unit) used when a foreign-currency transaction omits ExchangeRate.
        self.exchange_rates: dict[str, Decimal] = {}
        self.created_at = qbo_timestamp()
        self._lock = lock
        self._stores: dict[str, dict[str, dict]] = {entity: {} for entity in STORED_ENTITIES}
        self._ids = itertools.count(1)
        self._doc_counters: dict[str, int] = {}
        self._ast_rate = self.DEFAULT_AST_RATE
        self._rules = EntityRules(self)
        self._queries = QueryEngine(self)
        # Every write, oldest first: {"entity", "id", "operation", "time"} (operation as webhooks name it).
        self.changes: list[dict] = []
        self._deleted: dict[str, dict[str, dict]] = {}  # entity -> Id -> what CDC says of a deleted record
        self.on_change: Callable[[Company, dict], None] | None = None  # FakeQuickBooks queues webhooks here
        self.after_write: Callable[[], None] | None = None  # and delivers them here, outside the lock

    def __repr__(self) -> str:
        return f"Company(realm_id={self.realm_id!r}, name={self.name!r}, country={self.country!r})"

    @property
    def home_currency(self) -> str:
        return (self.pref("CurrencyPrefs.HomeCurrency") or {}).get("value") or COUNTRY_SETUPS[self.country].currency

    @property
    def multicurrency(self) -> bool:
        return bool(self.pref("CurrencyPrefs.MultiCurrencyEnabled"))

    @property
    def ast_rate(self) -> Decimal:
        """US automated sales tax: the rate (percent) QBO applies to TAX lines (the fake has no addresses)."""
        return self._ast_rate

    @ast_rate.setter
    def ast_rate(self, value: Any) -> None:
        with self._lock:
            self._ast_rate = Decimal(str(value))
            rate = self.ast_tax_rate(required=False)
            if rate is not None:  # keep the TaxRate entity in step
                rate["RateValue"] = float(self._ast_rate)
                rate["EffectiveTaxRate"][0]["RateValue"] = float(self._ast_rate)

    # -- preferences ---------------------------------------------------------------------------

    def set_pref(self, path: str, value: Any) -> None:
        """set_pref("SalesFormsPrefs.CustomTxnNumbers", True), or a bare unique leaf name
        ("CustomTxnNumbers"). HomeCurrency accepts a code ("CAD")."""
        section, _, leaf = self._pref_path(path).rpartition(".")
        if leaf == "HomeCurrency" and isinstance(value, str):
            value = currency_ref(value)
        with self._lock:
            self.preferences.setdefault(section, {})[leaf] = value

    def pref(self, path: str) -> Any:
        section, _, leaf = self._pref_path(path).rpartition(".")
        return self.preferences.get(section, {}).get(leaf)

    def _pref_path(self, path: str) -> str:
        if "." in path:
            return path
        sections = [section for section, values in self.preferences.items() if path in values]
        if len(sections) != 1:
            raise KeyError(f"preference {path!r} is not in exactly one section; use Section.{path}")
        return f"{sections[0]}.{path}"

    def preferences_entity(self) -> dict:
        return {
            **copy.deepcopy(self.preferences),
            "Id": "1",
            "SyncToken": "0",
            "domain": "QBO",
            "sparse": False,
            "MetaData": {"CreateTime": self.created_at, "LastUpdatedTime": self.created_at},
        }

    def company_info(self, requested_id: str | None = None) -> dict:
        if requested_id is not None and requested_id != self.realm_id:
            raise object_not_found("CompanyInfo", requested_id)
        return {
            "Id": "1",
            "CompanyName": self.name,
            "LegalName": self.name,
            "Country": self.country,
            "CompanyAddr": {"Id": "1", **COUNTRY_SETUPS[self.country].address, "Country": self.country},
            "Email": {"Address": "noreply@quickbooks.com"},
            "FiscalYearStartMonth": "January",
            "SupportedLanguages": "en",
            "CompanyStartDate": self.created_at[:10],
            "NameValue": [
                {"Name": "SubscriptionStatus", "Value": "SUBSCRIBED"},
                {"Name": "OfferingSku", "Value": "QuickBooks Online Advanced"},
            ],
            "SyncToken": "0",
            "domain": "QBO",
            "sparse": False,
            "MetaData": {"CreateTime": self.created_at, "LastUpdatedTime": self.created_at},
        }

    # -- seeding helpers (they go through the same rules as the API, so they raise QboFault) ----

    def add_customer(self, **fields) -> dict:
        return self._seed("Customer", fields)

    def add_vendor(self, **fields) -> dict:
        return self._seed("Vendor", fields)

    def add_employee(self, **fields) -> dict:
        return self._seed("Employee", fields)

    def add_item(self, **fields) -> dict:
        """Defaults: Type "Service", IncomeAccountRef = "Sales of Product Income"."""
        fields.setdefault("Type", "Service")
        if "IncomeAccountRef" not in fields:
            income = self.find("Account", Name="Sales of Product Income")
            if income is not None:
                fields["IncomeAccountRef"] = income["Id"]
        return self._seed("Item", fields)

    def add_account(self, Name: str, AccountType: str, **fields) -> dict:  # noqa: N803 - QBO's names
        return self._seed("Account", {"Name": Name, "AccountType": AccountType, **fields})

    def add_term(self, Name: str, DueDays: int, **fields) -> dict:  # noqa: N803 - QBO's names
        return self._seed("Term", {"Name": Name, "DueDays": DueDays, **fields})

    def add_payment_method(self, Name: str, **fields) -> dict:  # noqa: N803 - QBO's names
        return self._seed("PaymentMethod", {"Name": Name, **fields})

    def add_tax_code(
        self, name: str, rate_percent: Any = None, active: bool = True, *, description: str | None = None
    ) -> dict:
        """A TaxCode as QBO's tax service creates it, with its TaxRate(s): rate_percent is a number (20, "7.5"),
        a list of numbers (a group of rates, e.g. [5, "9.975"]) or None (a code without a rate, not taxable).
        The same rates serve sales and purchases."""
        percents = [] if rate_percent is None else rate_percent
        if not isinstance(percents, (list, tuple)):
            percents = [percents]
        with self._lock:
            if any(code["Name"].casefold() == name.casefold() for code in self.records("TaxCode")):
                raise ValueError(f"tax code {name!r} already exists")
            agency = next(iter(self.records("TaxAgency")), None) or self._seed_tax_agency()
            details = []
            for percent in percents:
                value = Decimal(str(percent))
                rate_name = name if len(percents) == 1 else f"{name} {value}%"
                rate = self._insert(
                    "TaxRate",
                    {
                        "Name": rate_name,
                        "Description": description or rate_name,
                        "RateValue": float(value),
                        "Active": True,
                        "SpecialTaxType": "ZERO_RATE" if value == 0 else "NONE",
                        "DisplayType": "ReadOnly",
                        "AgencyRef": {"value": agency["Id"]},
                        "EffectiveTaxRate": [{"RateValue": float(value), "EffectiveDate": "2000-01-01T00:00:00-08:00"}],
                    },
                )
                details.append(
                    {
                        "TaxRateRef": {"value": rate["Id"], "name": rate["Name"]},
                        "TaxTypeApplicable": "TaxOnAmount",
                        "TaxOrder": 0,
                    }
                )
            code = self._insert(
                "TaxCode",
                {
                    "Name": name,
                    "Description": description or name,
                    "Active": active,
                    "Hidden": False,
                    "Taxable": bool(details),
                    # Intuit's XSD: TaxGroup is true for a code made of tax rates, false only for the US
                    # pseudo-codes TAX and NON (QBO's own CA codes show TaxGroup true).
                    "TaxGroup": True,
                    "SalesTaxRateList": {"TaxRateDetail": copy.deepcopy(details)},
                    "PurchaseTaxRateList": {"TaxRateDetail": copy.deepcopy(details)},
                    "TaxCodeConfigType": "USER_DEFINED",
                },
            )
            return copy.deepcopy(code)

    def tax_code_named(self, name: str) -> dict:
        """The TaxCode called `name` (case-insensitive); KeyError when there is none."""
        with self._lock:
            for code in self.records("TaxCode"):
                if code["Name"].casefold() == name.casefold():
                    return copy.deepcopy(code)
        raise KeyError(f"no tax code named {name!r} in {self!r}")

    def enable_currency(self, code: str, active: bool = True) -> dict:
        """Add a currency to the company's list (a CompanyCurrency), turning multicurrency on as QBO requires.
        Enabling a listed currency again sets its Active flag. UNCONFIRMED: the home currency is taken not to be
        a CompanyCurrency row (it is always allowed; Preferences.CurrencyPrefs.HomeCurrency names it)."""
        code = code.upper()
        if code not in CURRENCY_NAMES:
            raise ValueError(f"unknown currency {code!r}; extend CURRENCY_NAMES")
        with self._lock:
            if code == self.home_currency:
                raise ValueError(f"{code} is the home currency of {self!r}")
            self.set_pref("CurrencyPrefs.MultiCurrencyEnabled", True)
            row = self.company_currency(code)
            if row is None:
                row = self._insert("CompanyCurrency", {"Code": code, "Name": CURRENCY_NAMES[code], "Active": active})
            elif row.get("Active", True) != active:
                row["Active"] = active
                self._bump(row)
            return copy.deepcopy(row)

    def company_currency(self, code: str) -> dict | None:
        """The stored CompanyCurrency row of `code` (None when the company's list lacks it)."""
        return next((row for row in self.records("CompanyCurrency") if row["Code"] == code), None)

    def ast_tax_rate(self, required: bool = True) -> dict | None:
        """US: the stored TaxRate automated sales tax applies (its RateValue follows company.ast_rate)."""
        rate = next((r for r in self.records("TaxRate") if r.get("Name") == AST_RATE_NAME), None)
        if rate is None and required:
            raise business_validation_error("Automated sales tax is not set up in this company.")
        return rate

    def ast_tax_code(self) -> dict:
        return next(c for c in self.records("TaxCode") if c.get("Name") == AST_RATE_NAME)

    def _seed_taxes(self) -> None:
        setup = COUNTRY_SETUPS[self.country]
        if self.country == "US":
            # What QBO answers for US companies: the pseudo-codes TAX and NON (and CustomSalesTax), plus the
            # code and rate automated sales tax created for the company's jurisdiction.
            pseudo_codes = (("TAX", True, False), ("NON", False, False), ("CustomSalesTax", True, True))
            for code_id, taxable, group in pseudo_codes:
                self._insert(
                    "TaxCode",
                    {"Name": code_id, "Description": code_id, "Active": True, "Taxable": taxable, "TaxGroup": group},
                    entity_id=code_id,
                )
            code = self.add_tax_code(AST_RATE_NAME, self._ast_rate)
            self.lookup("TaxCode", code["Id"])["TaxCodeConfigType"] = "SYSTEM_GENERATED"
            return
        for name, description, percent in setup.tax_codes:
            self.add_tax_code(name, percent, description=description)

    def _seed_tax_agency(self) -> dict:
        return self._insert(
            "TaxAgency",
            {
                "DisplayName": COUNTRY_SETUPS[self.country].agency,
                "TaxTrackedOnSales": True,
                "TaxTrackedOnPurchases": self.country != "US",
            },
        )

    def _insert(self, entity: str, fields: dict, entity_id: str | None = None) -> dict:
        """Store a record QBO creates itself (tax codes, rates, agencies, currencies): no rules run."""
        now = qbo_timestamp()
        record = {
            **copy.deepcopy(fields),
            "Id": entity_id or str(next(self._ids)),
            "SyncToken": "0",
            "domain": "QBO",
            "sparse": False,
            "MetaData": {"CreateTime": now, "LastUpdatedTime": now},
        }
        self._stores[entity][record["Id"]] = record
        return record

    def _seed(self, entity: str, fields: dict) -> dict:
        # Conveniences for tests: IncomeAccountRef="5" means {"value": "5"}; an email string is an address.
        payload = {}
        for key, value in fields.items():
            if key.endswith("Ref") and isinstance(value, (str, int)):
                value = {"value": str(value)}
            elif key.endswith("EmailAddr") and isinstance(value, str):
                value = {"Address": value}
            payload[key] = value
        return self.write(entity, payload, mode="create")

    def seed_defaults(self) -> None:
        """What a new QBO company has and our code relies on (see add_company)."""
        self.add_account("Sales of Product Income", "Income", AccountSubType="SalesOfProductIncome")
        self.add_account("Services", "Income", AccountSubType="ServiceFeeIncome")
        self.add_account("Checking", "Bank", AccountSubType="Checking")
        self.add_account("Undeposited Funds", "Other Current Asset", AccountSubType="UndepositedFunds")
        self.add_account("Bank Charges", "Expense", AccountSubType="BankCharges")
        self.add_account("Mastercard", "Credit Card", AccountSubType="CreditCard")
        self.add_term("Net 15", 15)
        self.add_term("Net 30", 30)
        self.add_term("Due on receipt", 0)
        for method in ("Cash", "Check", "Credit Card"):
            self.add_payment_method(method, Type="CREDIT_CARD" if method == "Credit Card" else "NON_CREDIT_CARD")
        self._seed_taxes()

    # -- reading -------------------------------------------------------------------------------

    def get(self, entity: str, entity_id: Any) -> dict | None:
        with self._lock:
            record = self.lookup(canonical_entity(entity), str(entity_id))
            return copy.deepcopy(record)

    def all(self, entity: str) -> list[dict]:
        with self._lock:
            return copy.deepcopy(list(self.records(canonical_entity(entity))))

    def find(self, entity: str, **fields) -> dict | None:
        """The first record whose fields equal the given ones (strings compared case-insensitively)."""
        for record in self.all(entity):
            if all(compare_values(field_value(record, k), v) == 0 for k, v in fields.items()):
                return record
        return None

    def patch(self, entity: str, entity_id: Any, **fields) -> dict:
        """Change a stored record directly, as a user editing it in QBO would: no rules run, but
        SyncToken and LastUpdatedTime move on (so a stale client update gets 5010)."""
        with self._lock:
            record = self.lookup(canonical_entity(entity), str(entity_id))
            if record is None:
                raise KeyError(f"no {entity} with Id {entity_id}")
            record.update(copy.deepcopy(fields))
            self._bump(record)
            self._record_change(canonical_entity(entity), record, "Update")
            patched = copy.deepcopy(record)
        self._written()
        return patched

    def read(self, entity: str, entity_id: str) -> dict:
        """GET /{entity}/{id}: the record, or 610."""
        record = self.get(entity, entity_id)
        if record is None:
            raise object_not_found(entity, entity_id)
        return record

    def query(self, sql: str) -> dict:
        with self._lock:
            return self._queries.run(sql)

    # Internal accessors below return the stored dicts themselves; the rules and the query engine use them.

    def records(self, entity: str):
        return self._stores[entity].values()

    def lookup(self, entity: str, entity_id: str) -> dict | None:
        return self._stores.get(entity, {}).get(entity_id)

    def query_source(self, entity: str) -> list[dict]:
        if entity == "CompanyInfo":
            return [self.company_info()]
        if entity == "Preferences":
            return [self.preferences_entity()]
        return list(self.records(entity))

    def undeposited_funds_ref(self) -> dict:
        account = next((a for a in self.records("Account") if a.get("AccountSubType") == "UndepositedFunds"), None)
        if account is None:
            raise business_validation_error("This company has no Undeposited Funds account.", "DepositToAccountRef")
        return {"value": account["Id"], "name": account["Name"]}

    def next_doc_number(self, family: str) -> str:
        number = self._doc_counters.get(family, FIRST_DOC_NUMBER)
        while self.document_with_number(family, str(number)) is not None:
            number += 1
        self._doc_counters[family] = number + 1
        return str(number)

    def document_with_number(self, family: str, number: str, exclude_id: str | None = None):
        """(entity, record) of the document in `family` that holds `number`, if any."""
        for entity, entity_family in DOC_NUMBER_FAMILY.items():
            if entity_family != family:
                continue
            for record in self.records(entity):
                if record["Id"] != exclude_id and str(record.get("DocNumber", "")).casefold() == number.casefold():
                    return entity, record
        return None

    # -- writing -------------------------------------------------------------------------------

    def write(self, entity: str, payload: dict, mode: str = "auto") -> dict:
        """One write, as the API receives it. mode: "auto" (update when the payload has an Id),
        "create", "update", "delete" or "void". Returns the response entity; raises QboFault."""
        entity = canonical_entity(entity)
        if entity in READ_ONLY_ENTITIES:
            # Loud on purpose: QBO writes these through other endpoints (/taxservice/taxcode) the fake lacks.
            raise NotImplementedError(f"the fake does not write {entity} through POST /{entity.lower()}")
        if not isinstance(payload, dict):
            raise invalid_property(entity, payload)
        payload = strip_absent(payload)
        with self._lock:
            if mode == "delete":
                written = self._delete(entity, payload)
            elif mode == "void":
                written = self._void(entity, payload)
            elif mode == "update" or (mode == "auto" and payload.get("Id")):
                written = self._update(entity, payload)
            else:
                written = self._create(entity, payload)
        self._written()
        return written

    def _create(self, entity: str, payload: dict) -> dict:
        doc = self._rules.prepare(entity, self._without_system_fields(payload), existing=None)
        now = qbo_timestamp()
        doc.update(
            {
                "Id": str(next(self._ids)),
                "SyncToken": "0",
                "domain": "QBO",
                "sparse": False,
                "MetaData": {"CreateTime": now, "LastUpdatedTime": now},
            }
        )
        self._stores[entity][doc["Id"]] = doc
        self._record_change(entity, doc, "Create")
        self._after_write(entity)
        return copy.deepcopy(doc)

    def _update(self, entity: str, payload: dict) -> dict:
        existing = self._existing(entity, payload)
        candidate = payload
        if payload.get("sparse") is True:  # a sparse update only changes the fields it sends
            candidate = {**copy.deepcopy(existing), **payload}
        doc = self._rules.prepare(entity, self._without_system_fields(candidate), existing=existing)
        doc.update(
            {
                "Id": existing["Id"],
                "SyncToken": existing["SyncToken"],
                "domain": "QBO",
                "sparse": False,
                "MetaData": dict(existing["MetaData"]),
            }
        )
        self._bump(doc)
        self._stores[entity][doc["Id"]] = doc
        self._record_change(entity, doc, "Update")
        self._after_write(entity)
        return copy.deepcopy(doc)

    def _delete(self, entity: str, payload: dict) -> dict:
        if entity not in TRANSACTIONS:
            raise unsupported_operation(f"Operation Delete is not supported for {entity}; make it inactive.")
        existing = self._existing(entity, payload)
        del self._stores[entity][existing["Id"]]
        tombstone = {"Id": existing["Id"], "status": "Deleted", "domain": "QBO"}
        tombstone["MetaData"] = {"LastUpdatedTime": qbo_timestamp()}
        self._deleted.setdefault(entity, {})[existing["Id"]] = tombstone
        self._record_change(entity, tombstone, "Delete")
        self._after_write(entity)
        return {"status": "Deleted", "domain": "QBO", "Id": existing["Id"]}

    def _void(self, entity: str, payload: dict) -> dict:
        if entity not in VOIDABLE:
            raise unsupported_operation(f"Operation Void is not supported for {entity}.")
        record = self._existing(entity, payload)
        for line in record.get("Line", []):
            line["Amount"] = 0.0
        record.update({"TotalAmt": 0.0, "PrivateNote": "Voided"})
        for key in ("Balance", "HomeBalance", "HomeTotalAmt"):
            if key in record:
                record[key] = 0.0
        if "TxnTaxDetail" in record:
            record["TxnTaxDetail"] = {"TotalTax": 0.0}
        if entity == "Payment":
            record["UnappliedAmt"] = 0.0
        self._bump(record)
        self._record_change(entity, record, "Void")
        self._after_write(entity)
        return copy.deepcopy(record)

    def _existing(self, entity: str, payload: dict) -> dict:
        """The stored record an update/delete/void names, after QBO's optimistic-locking check."""
        entity_id = payload.get("Id")
        if entity_id is None:
            raise required_param_missing("Id")
        record = self.lookup(entity, str(entity_id))
        if record is None:
            raise object_not_found(entity, entity_id)
        if payload.get("SyncToken") is None:
            raise required_param_missing("SyncToken")
        if str(payload["SyncToken"]) != record["SyncToken"]:
            raise QboFault(
                "5010",
                "Stale Object Error",
                "Stale Object Error : You and QuickBooks were working on this at the same time. "
                "QuickBooks finished before you did, so your work was not saved.",
            )
        return record

    @staticmethod
    def _without_system_fields(payload: dict) -> dict:
        doc = copy.deepcopy(payload)
        for key in SYSTEM_FIELDS:
            doc.pop(key, None)
        return doc

    @staticmethod
    def _bump(record: dict) -> None:
        record["SyncToken"] = str(int(record["SyncToken"]) + 1)
        record["MetaData"]["LastUpdatedTime"] = qbo_timestamp()

    def _after_write(self, entity: str) -> None:
        if entity in ("Invoice", "Payment"):
            self._refresh_invoice_balances()

    def _refresh_invoice_balances(self) -> None:
        # A payment written, changed, voided or deleted moves its invoices' balances (and SyncTokens).
        for invoice in self.records("Invoice"):
            if self.apply_payments(invoice, invoice["Id"]):
                self._bump(invoice)
                self._record_change("Invoice", invoice, "Update")

    def apply_payments(self, invoice: dict, invoice_id: str | None) -> bool:
        """Set an invoice's Balance (TotalAmt - payments applied) and its Payment LinkedTxn entries.
        True when that changed anything."""
        paid, payment_links = Decimal("0"), []
        for payment in self.records("Payment") if invoice_id else ():
            for line in payment.get("Line", []):
                if any(
                    link.get("TxnType") == "Invoice" and str(link.get("TxnId")) == invoice_id
                    for link in line.get("LinkedTxn", [])
                ):
                    paid += Decimal(str(line.get("Amount", 0)))
                    if {"TxnId": payment["Id"], "TxnType": "Payment"} not in payment_links:
                        payment_links.append({"TxnId": payment["Id"], "TxnType": "Payment"})
        balance = float(money(Decimal(str(invoice.get("TotalAmt", 0))) - paid))
        links = [link for link in invoice.get("LinkedTxn", []) if link.get("TxnType") != "Payment"]
        links += [link for link in payment_links if link not in links]
        changed = balance != invoice.get("Balance") or links != invoice.get("LinkedTxn", [])
        invoice["Balance"] = balance
        if invoice.get("ExchangeRate") is not None and self.multicurrency:
            invoice["HomeBalance"] = float(money(Decimal(str(balance)) * Decimal(str(invoice["ExchangeRate"]))))
        invoice.pop("LinkedTxn", None)
        if links:
            invoice["LinkedTxn"] = links
        return changed

    # -- the change log: webhooks and ChangeDataCapture ------------------------------------------

    def _record_change(self, entity: str, record: dict, operation: str) -> None:
        change = {
            "entity": entity,
            "id": record["Id"],
            "operation": operation,
            "time": record["MetaData"]["LastUpdatedTime"],
        }
        self.changes.append(change)
        if self.on_change is not None:
            self.on_change(self, change)

    def _written(self) -> None:
        if self.after_write is not None:
            self.after_write()

    def change_data_capture(self, entities: str, changed_since: str) -> dict:
        """GET /cdc: the named entities changed since then (deleted ones as {"Id", "status": "Deleted"}),
        grouped by entity, each group by LastUpdatedTime with deletions last, at most 1000 objects."""
        if not entities:
            raise required_param_missing("entities")
        if not changed_since:
            raise required_param_missing("changedSince")
        since = _as_datetime(changed_since)
        if since is None:
            raise invalid_property("changedSince", changed_since)
        # UNCONFIRMED: the fault QBO gives for a look-back beyond its 30 days (the fake refuses it like this).
        if since < datetime.now(QBO_TZ) - timedelta(days=CDC_MAX_DAYS):
            raise invalid_property("changedSince", f"{changed_since} is more than {CDC_MAX_DAYS} days ago")
        names = []
        for name in entities.split(","):
            try:
                entity = canonical_entity(name.strip())
            except KeyError:
                raise invalid_property("entities", name) from None
            if entity in CDC_UNSUPPORTED:
                raise invalid_property("entities", name)
            names.append(entity)
        groups, left = [], CDC_MAX_OBJECTS
        with self._lock:
            for entity in names:
                changed = [r for r in self.records(entity) if _as_datetime(r["MetaData"]["LastUpdatedTime"]) >= since]
                changed.sort(key=lambda r: _as_datetime(r["MetaData"]["LastUpdatedTime"]))
                gone = [
                    r
                    for r in self._deleted.get(entity, {}).values()
                    if _as_datetime(r["MetaData"]["LastUpdatedTime"]) >= since
                ]
                found = (changed + sorted(gone, key=lambda r: r["MetaData"]["LastUpdatedTime"]))[:left]
                left -= len(found)
                # UNCONFIRMED: how an entity with no changes appears in QueryResponse (here: an empty object).
                groups.append(
                    {entity: copy.deepcopy(found), "startPosition": 1, "maxResults": len(found)} if found else {}
                )
        return {"CDCResponse": [{"QueryResponse": groups}]}

    # -- what a QuickBooks user does (tests of statuses that change after the app wrote a document) --

    def receive_payment(self, invoice_id: Any, amount: Any, **fields) -> dict:
        """A Payment of `amount` applied to the invoice, entered as a user would ("Receive payment")."""
        invoice = self.get("Invoice", invoice_id)
        if invoice is None:
            raise KeyError(f"no Invoice with Id {invoice_id}")
        payment = {
            "CustomerRef": invoice["CustomerRef"],
            "TotalAmt": amount,
            "Line": [{"Amount": amount, "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}],
            **fields,
        }
        if invoice.get("CurrencyRef") and self.multicurrency:
            payment.setdefault("CurrencyRef", invoice["CurrencyRef"])
        return self.write("Payment", payment, mode="create")

    def void(self, entity: str, entity_id: Any) -> dict:
        record = self.read(entity, str(entity_id))
        return self.write(entity, {"Id": record["Id"], "SyncToken": record["SyncToken"]}, mode="void")

    def delete(self, entity: str, entity_id: Any) -> dict:
        record = self.read(entity, str(entity_id))
        return self.write(entity, {"Id": record["Id"], "SyncToken": record["SyncToken"]}, mode="delete")


# --------------------------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------------------------


@dataclass
class RecordedRequest:
    method: str
    path: str  # without the query string
    query: dict[str, str]
    headers: dict[str, str]
    body: str
    json: Any = None

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)


@dataclass
class _Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json;charset=UTF-8"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: Any, headers: dict | None = None) -> _Response:
        return cls(status, json.dumps(payload).encode(), headers=dict(headers or {}))

    @classmethod
    def text(cls, status: int, text: str, content_type: str, headers: dict | None = None) -> _Response:
        return cls(status, text.encode(), content_type, dict(headers or {}))


@dataclass
class _FaultRule:
    method: str | None
    suffix: str
    response: _Response
    commit: bool
    remaining: int

    def matches(self, request: RecordedRequest, api_path: str | None) -> bool:
        if self.method and self.method != request.method:
            return False
        if api_path is None:  # OAuth endpoints fail only when a rule names them
            return bool(self.suffix) and request.path.endswith(self.suffix)
        return api_path.endswith(self.suffix)


def _fault_type_for(status: int) -> str:
    return {401: "AuthenticationFault", 403: "AuthorizationFault", 429: "SERVICE"}.get(
        status, "SystemFault" if status >= 500 else "ValidationFault"
    )


def _xml_fault(code: str, message: str, detail: str, fault_type: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        f'<IntuitResponse xmlns="http://schema.intuit.com/finance/v3" time="{qbo_timestamp()}">'
        f'<Fault type="{fault_type}"><Error code="{code}"><Message>{xml_escape(message)}</Message>'
        f"<Detail>{xml_escape(detail)}</Detail></Error></Fault></IntuitResponse>"
    )


def _html_error_page(status: int) -> str:
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Error"
    return (
        f"<!DOCTYPE html><html><head><title>{status} {reason}</title></head>"
        f"<body><h1>{status} {reason}</h1><p>The server is temporarily unable to service your request.</p>"
        "</body></html>"
    )


def _fault_response(
    status: int,
    body: str | None = None,
    *,
    code: str | int | None = None,
    message: str | None = None,
    detail: str | None = None,
    headers: dict | None = None,
    xml: bool = False,
) -> _Response:
    """An injected failure: `body` verbatim, else a Fault from code/message/detail, else an HTML error page."""
    if body is None and code is not None:
        code = str(code)
        message = message or KNOWN_FAULT_MESSAGES.get(code, "Error")
        fault_type = _fault_type_for(status)
        if xml:
            body = _xml_fault(code, message, detail or "", fault_type)
        else:
            body = json.dumps(QboFault(code, message, detail or "", fault_type=fault_type).envelope())
    if body is None:
        body = _html_error_page(status)
    return _Response.text(status, body, _guess_content_type(body), headers)


def _throttle_response(retry_after: int | None = None, xml: bool = True) -> _Response:
    """QBO's throttle: 429 with fault 3001 (XML by default, as QBO historically sent it)."""
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return _fault_response(
        429, code="3001", message=THROTTLE_MESSAGE, detail="The request limit was reached.", headers=headers, xml=xml
    )


def _guess_content_type(body: str) -> str:
    stripped = body.lstrip()
    if stripped.startswith("<?xml") or stripped.startswith("<IntuitResponse"):
        return "application/xml"
    if stripped.startswith("<"):
        return "text/html"
    try:
        json.loads(body)
        return "application/json;charset=UTF-8"
    except ValueError:
        return "text/plain"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like Intuit; every response carries Content-Length
    disable_nagle_algorithm = True  # headers and body go out separately; Nagle would stall each reply ~40 ms

    def do_GET(self):  # noqa: N802 - http.server's naming
        self._handle()

    def do_POST(self):  # noqa: N802
        self._handle()

    def do_PUT(self):  # noqa: N802
        self._handle()

    def do_DELETE(self):  # noqa: N802
        self._handle()

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        split = urlsplit(self.path)
        query = {key: values[0] for key, values in parse_qs(split.query, keep_blank_values=True).items()}
        request = RecordedRequest(self.command, split.path, query, dict(self.headers.items()), body, _maybe_json(body))
        self._write(self.server.fake._serve(request))

    def _write(self, response: _Response) -> None:
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            self.send_header("intuit_tid", secrets.token_hex(16))
            for key, value in response.headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(response.body)
        except OSError:  # the client gave up (say, on an injected timeout): nobody is left to answer
            self.close_connection = True

    def log_message(self, format, *args):  # noqa: A002 - keep test output quiet
        pass


def _maybe_json(body: str) -> Any:
    try:
        return json.loads(body) if body else None
    except ValueError:
        return None


# --------------------------------------------------------------------------------------------
# Webhooks
# --------------------------------------------------------------------------------------------


@dataclass
class WebhookDelivery:
    url: str
    body: bytes
    headers: dict[str, str]
    events: int
    status: int | None = None
    error: str = ""

    @property
    def json(self) -> Any:
        return json.loads(self.body)


def webhook_signature(body: bytes, verifier: str) -> str:
    """intuit-signature: base64 of the HMAC-SHA256 of the raw body, keyed with the app's verifier token."""
    return base64.b64encode(hmac.new(verifier.encode(), body, hashlib.sha256).digest()).decode()


def webhook_payload(changes: list[tuple[str, dict]], style: str) -> Any:
    """One notification of (realm, change) pairs, as a CloudEvents array or the legacy eventNotifications."""
    if style == "cloudevents":
        return [cloud_event(realm, change) for realm, change in changes]
    if style != "legacy":
        raise ValueError(f"webhook_format {style!r}: use one of {WEBHOOK_FORMATS}")
    by_realm: dict[str, list[dict]] = {}
    for realm, change in changes:
        by_realm.setdefault(realm, []).append(
            {
                "name": change["entity"],
                "id": change["id"],
                "operation": change["operation"],
                "lastUpdated": legacy_time(change["time"]),
            }
        )
    return {
        "eventNotifications": [
            {"realmId": realm, "dataChangeEvent": {"entities": entities}} for realm, entities in by_realm.items()
        ]
    }


def cloud_event(realm: str, change: dict) -> dict:
    occurred = datetime.fromisoformat(change["time"]).astimezone(UTC)
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "intuit.qbo",  # UNCONFIRMED: the value Intuit puts in `source`
        "type": f"qbo.{change['entity'].lower()}.{CLOUDEVENT_OPERATIONS[change['operation']]}.v1",
        "datacontenttype": "application/json",
        "time": occurred.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "intuitentityid": change["id"],
        "intuitaccountid": realm,
        "data": {},  # UNCONFIRMED: what Intuit puts in `data`; the app reads the record back instead
    }


def legacy_time(stamp: str) -> str:
    """LastUpdatedTime as the legacy lastUpdated shows it: 2015-10-05T14:42:19-0700 (no fraction, no colon)."""
    moment = datetime.fromisoformat(stamp)
    return moment.strftime("%Y-%m-%dT%H:%M:%S%z")


def _post_webhook(url: str, body: bytes, headers: dict) -> int:
    return requests.post(url, data=body, headers=headers, timeout=10).status_code


# --------------------------------------------------------------------------------------------
# OAuth
# --------------------------------------------------------------------------------------------


@dataclass
class _Grant:
    """One connection (consent). Revoking it kills every token issued under it."""

    realm_id: str
    revoked: bool = False


class _TokenBook:
    """Intuit's side of OAuth: single-use authorization codes, access and refresh tokens."""

    ACCESS_LIFETIME = 3600
    REFRESH_LIFETIME = 8726400  # 101 days, as Intuit reports it

    def __init__(self):
        self._codes: dict[str, tuple[str, str]] = {}  # code -> (realm, redirect_uri)
        self._access: dict[str, tuple[_Grant, float]] = {}  # token -> (grant, expires_at)
        self._refresh: dict[str, _Grant] = {}
        self._revoked_refresh: set[str] = set()

    def issue_code(self, realm_id: str, redirect_uri: str) -> str:
        code = "AB11" + secrets.token_urlsafe(24)
        self._codes[code] = (realm_id, redirect_uri)
        return code

    def redeem_code(self, code: str, redirect_uri: str) -> dict | None:
        entry = self._codes.pop(code, None)  # single use, even when the redirect_uri is wrong
        if entry is None or entry[1] != redirect_uri:
            return None
        return self.issue(_Grant(entry[0]))

    def issue(self, grant: _Grant, access_expires_in: int = ACCESS_LIFETIME) -> dict:
        access, refresh = "eyJ" + secrets.token_urlsafe(32), "RT1-" + secrets.token_urlsafe(32)
        self._access[access] = (grant, time.time() + access_expires_in)
        self._refresh[refresh] = grant
        return {
            "token_type": "bearer",
            "access_token": access,
            "refresh_token": refresh,
            "expires_in": access_expires_in,
            "x_refresh_token_expires_in": self.REFRESH_LIFETIME,
        }

    def rotate(self, refresh_token: str) -> dict | None:
        # The old refresh token stays valid (QBO's 24 h grace) unless revoked.
        grant = self._refresh.get(refresh_token)
        if grant is None or grant.revoked or refresh_token in self._revoked_refresh:
            return None
        return self.issue(grant)

    def access_problem(self, token: str, realm_id: str) -> str | None:
        """Why `token` may not call `realm_id`'s API, or None when it may."""
        entry = self._access.get(token)
        if entry is None or entry[0].revoked or entry[0].realm_id != realm_id:
            return f"Token invalid: {token[:12]}..."
        if entry[1] <= time.time():
            return f"Token expired: {token[:12]}..."
        return None

    def expire_access(self, token: str) -> None:
        grant, _ = self._access[token]
        self._access[token] = (grant, 0.0)

    def revoke_refresh(self, token: str) -> None:
        if token not in self._refresh:
            raise KeyError("unknown refresh token")
        self._revoked_refresh.add(token)

    def revoke_grant(self, token: str) -> None:
        grant = self._refresh.get(token) or self._access.get(token, (None,))[0]
        if grant is not None:
            grant.revoked = True


# --------------------------------------------------------------------------------------------
# The fake
# --------------------------------------------------------------------------------------------

API_PATH_RE = re.compile(r"^/v3/company/(?P<realm>[^/]+)(?P<rest>/.*)?$")
DISCOVERY_PATHS = ("/.well-known/openid_configuration", "/.well-known/openid_sandbox_configuration")
AUTHORIZE_PATH = "/connect/oauth2"
TOKEN_PATH = "/oauth2/v1/tokens/bearer"
REVOKE_PATH = "/oauth2/v1/tokens/revoke"
ACCOUNTING_SCOPE = "com.intuit.quickbooks.accounting"
MAX_BATCH_ITEMS = 30
CDC_MAX_DAYS = 30
CDC_MAX_OBJECTS = 1000
CDC_UNSUPPORTED = frozenset(("TaxAgency", "TaxCode", "TaxRate"))
WEBHOOK_FORMATS = ("cloudevents", "legacy")
# CloudEvents `type` is qbo.<entity>.<operation>.v1. UNCONFIRMED: "voided" and "merged" (seen as "void" too).
CLOUDEVENT_OPERATIONS = {
    "Create": "created",
    "Update": "updated",
    "Delete": "deleted",
    "Void": "voided",
    "Merge": "merged",
    "Emailed": "emailed",
}
HTTP_METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")
# QBO's limits per realm + app: 10 in flight, 500 a minute [BLOG 2016-08-08 in quickbooks-online.md section 7];
# 120 /batch requests a minute is Intuit's batch limit as commonly quoted, not in our reference: UNCONFIRMED.
MAX_IN_FLIGHT = 10
REQUESTS_PER_MINUTE = 500
BATCHES_PER_MINUTE = 120
RATE_WINDOW_SECONDS = 60.0
CHAOS_KINDS = ("5xx", "429", "timeout", "lost")
CHAOS_5XX_STATUSES = (500, 502, 503)
EXECUTION_KEY_RE = re.compile(r"\(execution ([^()\s]+)\)")


@dataclass
class _Chaos:
    probability: float
    kinds: tuple[str, ...]
    timeout_seconds: float
    rng: random.Random


class FakeQuickBooks(LoopbackServer):
    """QuickBooks Online + Intuit OAuth on http://127.0.0.1:<port>. See the module docstring."""

    handler_class = _Handler
    thread_name = "fake-quickbooks"

    def __init__(
        self,
        client_id: str = "qbo-client-id",
        client_secret: str = "qbo-client-secret",
        *,
        rate_limits: bool = False,
        latency: float = 0.0,
        latency_jitter: float = 0.0,
    ):
        self.client_id = client_id
        self.client_secret = client_secret
        self.requests: list[RecordedRequest] = []
        self.refresh_count = 0  # refresh_token grant requests from an authenticated client
        self.next_consent_realm: str | None = None  # None: the first company
        self.companies: dict[str, Company] = {}
        self._lock = threading.RLock()
        self._tokens = _TokenBook()
        self._fault_rules: list[_FaultRule] = []
        self._replays: dict[tuple[str, str], _Response] = {}  # (realm, requestid) -> first response
        # Webhooks (see the module docstring): nothing is sent until webhook_url is set.
        self.webhook_url: str | None = None
        self.webhook_verifier = ""
        self.webhook_format = "cloudevents"
        self.webhook_delivery = "sync"
        self.webhooks_enabled = True
        self.webhook_sender: Callable[[str, bytes, dict], int] | None = None
        self.webhook_deliveries: list[WebhookDelivery] = []
        self.webhooks_dropped = 0  # changes not notified because webhooks_enabled was False
        self._pending_webhooks: list[tuple[str, dict]] = []  # (realm, change)
        self._handling = threading.local()  # set while a request is served: deliveries wait for its end
        # Load (see the module docstring). The limiter has its own lock: a request is counted in flight on
        # arrival, while another may hold self._lock.
        self.enforce_rate_limits = rate_limits
        self.max_in_flight = MAX_IN_FLIGHT
        self.requests_per_minute = REQUESTS_PER_MINUTE
        self.batches_per_minute = BATCHES_PER_MINUTE
        self.rate_window_seconds = RATE_WINDOW_SECONDS
        self.rate_limit_retry_after = False  # True: our 429s say when the window lets the next request in
        self.latency = latency
        self.latency_jitter = latency_jitter
        self.rate_limited: Counter[str] = Counter()  # 429s the limits caused, by kind
        self.injected: Counter[str] = Counter()  # faults chaos() injected, by kind
        self.peak_in_flight: Counter[str] = Counter()  # realm -> most requests seen in flight at once
        self._limits_lock = threading.Lock()
        self._in_flight: Counter[str] = Counter()  # realm -> requests between arrival and answer
        self._request_times: dict[str, deque] = {}  # realm -> monotonic arrival of each admitted request
        self._batch_times: dict[str, deque] = {}  # the same, /batch requests only
        self._chaos: _Chaos | None = None
        self._created_by_request: dict[tuple[str, str], list[tuple[str, str]]] = {}  # (realm, requestid) -> made

    @property
    def api_base(self) -> str:
        return self.url + "/v3"

    @property
    def discovery_url(self) -> str:
        return self.url + DISCOVERY_PATHS[0]

    # -- companies -----------------------------------------------------------------------------

    def add_company(
        self, realm_id: str = "9130350000000001", name: str = "Sandbox Company", country: str = "US", **prefs
    ) -> Company:
        """A company seeded like a new QBO company; prefs are leaf names (CustomTxnNumbers=True)
        or use company.set_pref("Section.Name", value) afterwards."""
        with self._lock:
            if realm_id in self.companies:
                raise ValueError(f"company {realm_id} already exists")
            company = Company(realm_id, name, country, self._lock)
            for key, value in prefs.items():
                company.set_pref(key, value)
            company.seed_defaults()
            company.on_change = self._queue_webhook
            company.after_write = self._deliver_after_user_write
            self.companies[realm_id] = company
            return company

    def company(self, realm_id: str) -> Company:
        return self.companies[realm_id]

    # -- requests ------------------------------------------------------------------------------

    def requests_to(self, method: str, path_suffix: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.method == method.upper() and r.path.endswith(path_suffix)]

    def reset_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    # -- what was created: invariants of fault/soak suites ---------------------------------------

    def entities(self, realm_id: str, entity: str) -> list[dict]:
        """Every stored record of `entity` in the realm (deep copies), like company(realm_id).all(entity)."""
        return self.company(realm_id).all(entity)

    def documents_by_request_id(self, realm_id: str | None = None) -> dict[str, list[tuple[str, str]]]:
        """{requestid: [(entity, Id) created by its first performed request]} for every API request that
        carried a requestid and was performed (a replay adds nothing; a failed one maps to []). Lost responses
        count: their request was performed. Realms merged unless `realm_id` names one."""
        with self._lock:
            result: dict[str, list[tuple[str, str]]] = {}
            for (realm, request_id), created in self._created_by_request.items():
                if realm_id is None or realm == realm_id:
                    result.setdefault(request_id, []).extend(created)
            return result

    def documents_by_execution(
        self, realm_id: str | None = None, entities: tuple[str, ...] | list[str] | None = None
    ) -> dict[str, list[tuple[str, str]]]:
        """{callbackId: [(entity, Id), ...]} of the stored records whose PrivateNote carries our tracking key
        "(execution <callbackId>)" (actions/steps/documents.py); more than one of an entity for a callbackId
        is a duplicate. `entities` narrows the entities looked at; realms merged unless `realm_id` names one."""
        with self._lock:
            companies = [self.company(realm_id)] if realm_id is not None else list(self.companies.values())
            names = [canonical_entity(name) for name in entities] if entities else STORED_ENTITIES
            result: dict[str, list[tuple[str, str]]] = {}
            for company in companies:
                for entity in names:
                    for record in company.records(entity):
                        for callback_id in EXECUTION_KEY_RE.findall(str(record.get("PrivateNote") or "")):
                            result.setdefault(callback_id, []).append((entity, record["Id"]))
            return result

    # -- OAuth helpers -------------------------------------------------------------------------

    def issue_tokens(self, realm_id: str, access_expires_in: int = _TokenBook.ACCESS_LIFETIME) -> dict:
        """Tokens as if the realm had just been connected (no consent round trip)."""
        with self._lock:
            self.company(realm_id)  # KeyError for an unknown realm
            return {**self._tokens.issue(_Grant(realm_id), access_expires_in), "realm_id": realm_id}

    def expire_access_token(self, token: str) -> None:
        with self._lock:
            self._tokens.expire_access(token)

    def revoke_refresh_token(self, token: str) -> None:
        with self._lock:
            self._tokens.revoke_refresh(token)

    # -- fault injection -----------------------------------------------------------------------

    def fail_next(
        self,
        match: str = "POST /invoice",
        status: int = 503,
        body: str | None = None,
        *,
        code: str | int | None = None,
        message: str | None = None,
        detail: str | None = None,
        times: int = 1,
        commit: bool = False,
        headers: dict | None = None,
        xml: bool = False,
    ) -> None:
        """The next `times` requests matching `match` ("METHOD suffix-of-the-path-after-/v3/company/{realm}",
        or "" for any API request) fail with `status`. The body is `body` verbatim, else a Fault built from
        code/message/detail (XML when xml=True), else an HTML error page like a load balancer's.
        commit=True performs the request first (stores, remembers the requestid), then fails: a lost response."""
        response = _fault_response(status, body, code=code, message=message, detail=detail, headers=headers, xml=xml)
        method, suffix = self._parse_match(match)
        with self._lock:
            self._fault_rules.append(_FaultRule(method, suffix, response, commit, times))

    def throttle_next(self, match: str = "", times: int = 1, retry_after: int | None = None, xml: bool = True) -> None:
        """429 with QBO's throttle fault (code 3001), XML by default as QBO historically sent it."""
        method, suffix = self._parse_match(match)
        with self._lock:
            self._fault_rules.append(_FaultRule(method, suffix, _throttle_response(retry_after, xml), False, times))

    @staticmethod
    def _parse_match(match: str) -> tuple[str | None, str]:
        parts = match.strip().split(None, 1)
        if parts and parts[0].upper() in HTTP_METHODS:
            return parts[0].upper(), parts[1].strip() if len(parts) > 1 else ""
        return None, match.strip()

    def _take_fault_rule(self, request: RecordedRequest, api_path: str | None) -> _FaultRule | None:
        for rule in self._fault_rules:
            if rule.matches(request, api_path):
                rule.remaining -= 1
                if rule.remaining <= 0:
                    self._fault_rules.remove(rule)
                return rule
        return None

    # -- load: rate limits, latency, chaos -------------------------------------------------------

    def chaos(
        self,
        probability: float,
        kinds: tuple[str, ...] | list[str] = CHAOS_KINDS,
        timeout_seconds: float = 3.0,
        seed: int | None = None,
    ) -> None:
        """From now on each API request (not OAuth) fails with `probability`, of one of `kinds` drawn at random:
        "5xx": 500/502/503 HTML error page, nothing performed; "429": throttle 3001 with Retry-After 1, nothing
        performed; "timeout": nothing performed, the answer (504) comes after `timeout_seconds`, when the client
        has given up; "lost": performed (stored, requestid remembered), then answered 502. Counted in
        fake.injected. Replaces an earlier chaos(); calm() stops it."""
        kinds = tuple(kinds)
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"probability {probability} is not between 0 and 1")
        unknown = [kind for kind in kinds if kind not in CHAOS_KINDS]
        if not kinds or unknown:
            raise ValueError(f"chaos kinds must be some of {CHAOS_KINDS}, not {list(kinds)}")
        with self._limits_lock:
            self._chaos = _Chaos(probability, kinds, timeout_seconds, random.Random(seed))

    def calm(self) -> None:
        """No more chaos: requests are answered normally again."""
        with self._limits_lock:
            self._chaos = None

    def reset_counters(self) -> None:
        """Zero fake.rate_limited, fake.injected and fake.peak_in_flight (the limits' windows are kept)."""
        with self._limits_lock:
            self.rate_limited.clear()
            self.injected.clear()
            self.peak_in_flight.clear()

    def in_flight(self, realm_id: str) -> int:
        """Requests to the realm between arrival and answer, now."""
        with self._limits_lock:
            return self._in_flight[realm_id]

    def _admit(self, realm: str, rest: str, method: str) -> _Response | None:
        """Count the request in flight and in the realm's windows; a 429 instead when over a limit."""
        is_batch = method == "POST" and rest.strip("/").lower() == "batch"
        with self._limits_lock:
            now = time.monotonic()
            window = self.rate_window_seconds
            requests_seen = self._request_times.setdefault(realm, deque())
            batches_seen = self._batch_times.setdefault(realm, deque())
            for seen in (requests_seen, batches_seen):
                while seen and now - seen[0] >= window:
                    seen.popleft()
            if self.enforce_rate_limits:
                refusal = None
                if self._in_flight[realm] >= self.max_in_flight:
                    refusal, wait = "in_flight", 1.0
                elif len(requests_seen) >= self.requests_per_minute:
                    refusal, wait = "per_minute", window - (now - requests_seen[0])
                elif is_batch and len(batches_seen) >= self.batches_per_minute:
                    refusal, wait = "batch_per_minute", window - (now - batches_seen[0])
                if refusal is not None:
                    self.rate_limited[refusal] += 1
                    return _throttle_response(max(1, math.ceil(wait)) if self.rate_limit_retry_after else None)
            self._in_flight[realm] += 1
            self.peak_in_flight[realm] = max(self.peak_in_flight[realm], self._in_flight[realm])
            requests_seen.append(now)
            if is_batch:
                batches_seen.append(now)
            return None

    def _release(self, realm: str) -> None:
        with self._limits_lock:
            self._in_flight[realm] -= 1
            if self._in_flight[realm] <= 0:
                del self._in_flight[realm]

    def _draw_chaos(self) -> tuple[str, float, int] | None:
        """(kind, timeout_seconds, status for a 5xx) when chaos strikes this request."""
        with self._limits_lock:
            chaos = self._chaos
            if chaos is None or chaos.rng.random() >= chaos.probability:
                return None
            kind = chaos.rng.choice(chaos.kinds)
            self.injected[kind] += 1
            return kind, chaos.timeout_seconds, chaos.rng.choice(CHAOS_5XX_STATUSES)

    def _sleep_latency(self) -> None:
        delay = self.latency
        if self.latency_jitter:
            delay += random.uniform(-self.latency_jitter, self.latency_jitter)
        if delay > 0:
            time.sleep(delay)

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    # -- request handling ----------------------------------------------------------------------

    def _serve(self, request: RecordedRequest) -> _Response:
        """One HTTP request, on its own handler thread: limits and chaos, latency (outside every lock), then
        the answer. The realm's in-flight slot is held from arrival until the answer is ready to be written."""
        api = API_PATH_RE.match(request.path)
        if api is None:  # OAuth and discovery: no realm, no limits, no chaos
            self._sleep_latency()
            return self._handle(request)
        realm = api.group("realm")
        refusal = self._admit(realm, api.group("rest") or "/", request.method)
        if refusal is not None:
            self._record(request)
            self._sleep_latency()
            return refusal
        try:
            drawn = self._draw_chaos()
            self._sleep_latency()
            if drawn is None:
                return self._handle(request)
            kind, timeout_seconds, status = drawn
            if kind == "lost":
                return self._handle(request, lost=_fault_response(502))
            if kind == "timeout":
                time.sleep(timeout_seconds)
                self._record(request)
                return _fault_response(504, headers={"Connection": "close"})
            self._record(request)
            if kind == "429":
                return _throttle_response(retry_after=1)
            return _fault_response(status)
        finally:
            self._release(realm)

    def _handle(self, request: RecordedRequest, lost: _Response | None = None) -> _Response:
        self._handling.active = True
        try:
            response = self._handle_locked(request, lost)
        finally:
            self._handling.active = False
        if self.webhook_delivery == "sync":
            self.deliver_webhooks()  # before the answer, outside the lock: the receiver may read back at once
        return response

    def _handle_locked(self, request: RecordedRequest, lost: _Response | None = None) -> _Response:
        # One request at a time: the fake's state changes atomically, like one QBO company would.
        with self._lock:
            self.requests.append(request)
            api = API_PATH_RE.match(request.path)
            if lost is not None:  # chaos: performed, then the answer is lost on the way back
                self._route(request, api)
                return lost
            rule = self._take_fault_rule(request, (api.group("rest") or "/") if api else None)
            if rule is not None and not rule.commit:
                return rule.response
            response = self._route(request, api)
            return rule.response if rule is not None else response

    # -- webhooks ------------------------------------------------------------------------------

    def _queue_webhook(self, company: Company, change: dict) -> None:
        # Called under the lock for every write; cheap: the delivery happens later, outside it.
        if not self.webhook_url:
            return
        if not self.webhooks_enabled:
            self.webhooks_dropped += 1
            return
        self._pending_webhooks.append((company.realm_id, dict(change)))

    def _deliver_after_user_write(self) -> None:
        if self.webhook_delivery == "sync" and not getattr(self._handling, "active", False):
            self.deliver_webhooks()

    def deliver_webhooks(self) -> list[WebhookDelivery]:
        """Send every queued change now, in one notification (Intuit batches changes the same way)."""
        with self._lock:
            pending, self._pending_webhooks = self._pending_webhooks, []
            url, verifier, style = self.webhook_url, self.webhook_verifier, self.webhook_format
        if not pending or not url:
            return []
        body = json.dumps(webhook_payload(pending, style)).encode()
        headers = {"Content-Type": "application/json", "intuit-signature": webhook_signature(body, verifier)}
        if style == "cloudevents":
            headers["Content-Type"] = "application/cloudevents-batch+json"  # UNCONFIRMED: Intuit's exact type
        delivery = WebhookDelivery(url, body, headers, len(pending))
        try:
            delivery.status = (self.webhook_sender or _post_webhook)(url, body, headers)
        except Exception as exc:  # the receiver being down is the test's business, not the fake's crash
            delivery.error = f"{type(exc).__name__}: {exc}"
        with self._lock:
            self.webhook_deliveries.append(delivery)
        return [delivery]

    def _route(self, request: RecordedRequest, api: re.Match | None) -> _Response:
        path = request.path.rstrip("/") or "/"
        if api is not None:
            return self._api(request, api.group("realm"), api.group("rest") or "/")
        if path in DISCOVERY_PATHS and request.method == "GET":
            return _Response.json(200, self._discovery_document())
        if path == AUTHORIZE_PATH and request.method == "GET":
            return self._authorize(request)
        if path == TOKEN_PATH and request.method == "POST":
            return self._token(request)
        if path == REVOKE_PATH and request.method == "POST":
            return self._revoke(request)
        return _Response.json(404, {"error": "not_found", "path": request.path})

    # -- OAuth endpoints -----------------------------------------------------------------------

    def _discovery_document(self) -> dict:
        return {
            "issuer": self.url,
            "authorization_endpoint": self.url + AUTHORIZE_PATH,
            "token_endpoint": self.url + TOKEN_PATH,
            "revocation_endpoint": self.url + REVOKE_PATH,
            "userinfo_endpoint": self.url + "/v1/openid_connect/userinfo",
            "jwks_uri": self.url + "/op/v1/jwks",
            "response_types_supported": ["code"],
            "scopes_supported": ["openid", "email", "profile", ACCOUNTING_SCOPE],
            "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        }

    def _authorize(self, request: RecordedRequest) -> _Response:
        params = request.query
        problem = None
        if params.get("client_id") != self.client_id:
            problem = "invalid_client"
        elif params.get("response_type") != "code":
            problem = "unsupported_response_type"
        elif ACCOUNTING_SCOPE not in params.get("scope", "").split():
            problem = "invalid_scope"
        elif not params.get("redirect_uri"):
            problem = "invalid_request: redirect_uri"
        realm_id = self.next_consent_realm or next(iter(self.companies), None)
        if problem is None and realm_id is None:
            problem = "no company to connect: call add_company() first"
        if problem is not None:
            return _Response.text(400, f"<html><body>Error: {problem}</body></html>", "text/html")
        code = self._tokens.issue_code(realm_id, params["redirect_uri"])
        answer = {"code": code, **({"state": params["state"]} if "state" in params else {}), "realmId": realm_id}
        separator = "&" if "?" in params["redirect_uri"] else "?"
        return _Response(302, headers={"Location": params["redirect_uri"] + separator + urlencode(answer)})

    def _client_authenticated(self, request: RecordedRequest) -> bool:
        header = request.header("Authorization") or ""
        if not header.startswith("Basic "):
            return False
        try:
            client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return (client_id, secret) == (self.client_id, self.client_secret)

    def _token(self, request: RecordedRequest) -> _Response:
        if not self._client_authenticated(request):
            return _Response.json(401, {"error": "invalid_client"})
        form = {key: values[0] for key, values in parse_qs(request.body).items()}
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            tokens = self._tokens.redeem_code(form.get("code", ""), form.get("redirect_uri", ""))
            if tokens is None:
                return _Response.json(400, {"error": "invalid_grant"})
            return _Response.json(200, tokens)
        if grant_type == "refresh_token":
            self.refresh_count += 1
            tokens = self._tokens.rotate(form.get("refresh_token", ""))
            if tokens is None:
                return _Response.json(
                    400, {"error": "invalid_grant", "error_description": "Incorrect or invalid refresh token"}
                )
            return _Response.json(200, tokens)
        return _Response.json(400, {"error": "unsupported_grant_type"})

    def _revoke(self, request: RecordedRequest) -> _Response:
        if not self._client_authenticated(request):
            return _Response.json(401, {"error": "invalid_client"})
        token = (request.json or {}).get("token") if isinstance(request.json, dict) else None
        if not token:
            return _Response.json(400, {"error": "invalid_request"})
        self._tokens.revoke_grant(token)
        return _Response(200, b"")  # empty: intuit-oauth only parses a non-empty body

    # -- API -----------------------------------------------------------------------------------

    def _api(self, request: RecordedRequest, realm_id: str, rest: str) -> _Response:
        denied = self._authenticate(request, realm_id)
        if denied is not None:
            return denied
        company = self.companies[realm_id]  # a live token implies the company exists
        request_id = request.query.get("requestid")
        if request_id and (realm_id, request_id) in self._replays:
            return self._replays[(realm_id, request_id)]  # QBO's idempotency: same answer, no new work
        changes_before = len(company.changes)
        response = self._api_response(company, request, rest)
        if request_id:
            self._replays[(realm_id, request_id)] = response
            self._created_by_request[(realm_id, request_id)] = [
                (change["entity"], change["id"])
                for change in company.changes[changes_before:]
                if change["operation"] == "Create"
            ]
        return response

    def _authenticate(self, request: RecordedRequest, realm_id: str) -> _Response | None:
        header = request.header("Authorization") or ""
        token = header[len("Bearer ") :] if header.startswith("Bearer ") else ""
        problem = self._tokens.access_problem(token, realm_id)
        if problem is None:
            return None
        # Lower-case keys: this is how QBO's gateway shapes its 401s.
        body = {
            "fault": {
                "error": [{"message": KNOWN_FAULT_MESSAGES["3200"], "detail": problem, "code": "3200"}],
                "type": "AUTHENTICATION",
            },
            "time": qbo_timestamp(),
        }
        return _Response.json(401, body, {"WWW-Authenticate": 'Bearer realm="Intuit", error="invalid_token"'})

    def _api_response(self, company: Company, request: RecordedRequest, rest: str) -> _Response:
        try:
            return _Response.json(200, {**self._api_call(company, request, rest), "time": qbo_timestamp()})
        except QboFault as fault:
            return _Response.json(fault.status, fault.envelope())
        except Exception:  # a bug in the fake must be loud, not look like a QBO answer
            fault = QboFault(
                "10000",
                KNOWN_FAULT_MESSAGES["10000"],
                "Fake QuickBooks crashed:\n" + traceback.format_exc(),
                status=500,
                fault_type="SystemFault",
            )
            return _Response.json(500, fault.envelope())

    def _api_call(self, company: Company, request: RecordedRequest, rest: str) -> dict:
        parts = [part for part in rest.split("/") if part]
        head = parts[0].lower() if parts else ""
        method = request.method
        if head == "query" and len(parts) == 1:
            sql = request.query.get("query", "") if method == "GET" else request.body
            return {"QueryResponse": company.query(sql)}
        if head == "batch" and method == "POST" and len(parts) == 1:
            return self._batch(company, self._json_body(request))
        if head == "cdc" and method == "GET" and len(parts) == 1:
            return company.change_data_capture(request.query.get("entities", ""), request.query.get("changedSince", ""))
        if head == "preferences" and method == "GET" and len(parts) == 1:
            return {"Preferences": company.preferences_entity()}
        if head == "companyinfo" and method == "GET" and len(parts) == 2:
            return {"CompanyInfo": company.company_info(parts[1])}
        entity = ENTITY_BY_PATH.get(head)
        if entity is not None and method == "GET" and len(parts) == 2:
            return {entity: company.read(entity, parts[1])}
        if entity is not None and method == "POST" and len(parts) == 1:
            return {entity: company.write(entity, self._json_body(request), self._write_mode(request))}
        if entity in ("Invoice", "Estimate", "SalesReceipt") and method == "POST" and parts[2:] == ["send"]:
            return {entity: self._send(company, entity, parts[1], request.query.get("sendTo"))}
        raise unsupported_operation(f"Operation {method} {rest} is not supported.")

    @staticmethod
    def _write_mode(request: RecordedRequest) -> str:
        operation = request.query.get("operation")
        if operation == "delete":
            return "delete"
        if operation == "void" or (operation == "update" and request.query.get("include") == "void"):
            return "void"
        return "auto"

    @staticmethod
    def _json_body(request: RecordedRequest) -> Any:
        if request.json is None:
            raise invalid_property("body", "Unable to parse the request body as JSON")
        return request.json

    @staticmethod
    def _send(company: Company, entity: str, entity_id: str, send_to: str | None) -> dict:
        record = company.read(entity, entity_id)
        address = send_to or record.get("BillEmail", {}).get("Address")
        if not address:
            raise business_validation_error("Enter an email address to send this transaction to.", "BillEmail")
        patched = company.patch(
            entity,
            entity_id,
            EmailStatus="EmailSent",
            DeliveryInfo={"DeliveryType": "Email", "DeliveryTime": qbo_timestamp()},
        )
        return patched

    # -- batch ---------------------------------------------------------------------------------

    def _batch(self, company: Company, payload: Any) -> dict:
        items = payload.get("BatchItemRequest") if isinstance(payload, dict) else None
        if not isinstance(items, list):
            raise required_param_missing("BatchItemRequest")
        if len(items) > MAX_BATCH_ITEMS:
            raise QboFault(
                "1040",
                KNOWN_FAULT_MESSAGES["1040"],
                f"Batch request has {len(items)} items; the maximum is {MAX_BATCH_ITEMS}.",
            )
        return {"BatchItemResponse": [self._batch_item(company, item) for item in items]}

    @staticmethod
    def _batch_item(company: Company, item: dict) -> dict:
        """One item's answer; its fault stays in the item and does not fail the batch."""
        batch_id = item.get("bId")
        try:
            if "Query" in item:
                return {"bId": batch_id, "QueryResponse": company.query(item["Query"])}
            entity = next((key for key in item if key in WRITABLE_ENTITIES), None)
            if entity is None:
                raise required_param_missing("BatchItemRequest entity")
            operation = item.get("operation")
            modes = {
                "create": "create",
                "update": "void" if item.get("optionsData") == "void" else "update",
                "delete": "delete",
            }
            if operation not in modes:
                raise invalid_enumeration("operation", operation)
            return {"bId": batch_id, entity: company.write(entity, item[entity], modes[operation])}
        except QboFault as fault:
            return {"bId": batch_id, "Fault": fault.fault()}
