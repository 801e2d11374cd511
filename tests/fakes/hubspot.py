"""FakeHubSpot: a loopback HTTP server speaking HubSpot's wire formats, for tests.

It covers what qbo-actions talks to: OAuth (authorize, token, token metadata), CRM object reads and
updates (PATCH, batch/update), associations, the Properties API (groups, properties, batch/create),
callback completion and the workflow-action definitions API, on both the date-versioned (2026-03) and
the legacy (v1/v3/v4) paths. It enforces HubSpot's rules -- bearer tokens per portal, scopes, expiry,
single completion per callback, definition validation, property names, types and values -- because a
fake that accepts what HubSpot rejects hides bugs.

State lives in plain dicts behind one re-entrant lock, so the app's web and worker threads can
hit it concurrently while a test inspects it. Every request is recorded.

    fake = FakeHubSpot().start()
    portal = fake.portal(101)
    deal = portal.add("deals", {"dealname": "Website", "amount": 1200})
    contact = portal.add("contacts", {"email": "ada@example.test"})
    portal.associate("deals", deal, "contacts", contact)
    tokens = fake.issue_tokens(101)            # {"access_token", "refresh_token", ...}; scopes=[...] narrows
    ...                                        # point HUBSPOT_API_BASE_URL at fake.url
    assert fake.completions[0].output_fields["hs_execution_state"] == "SUCCESS"
    assert "quickbooks" in [g["name"] for g in portal.property_groups("deals")]
    assert "quickbooks_invoice_id" in portal.properties_defined("deals")
    assert portal.get("deals", deal)["properties"]["quickbooks_invoice_id"] == "130"
    fake.stop()

Load, for fault/soak suites and benchmarks (all off by default):
- fake.enforce_rate_limit = True answers 429 (errorType RATE_LIMIT) past fake.rate_limit_max (110) requests per
  portal in any sliding fake.rate_limit_interval (10 s); those 429s are counted in fake.rate_limited["ten_secondly"].
- fake.latency (+ fake.latency_jitter, uniform +/-) seconds slept per request outside the lock.
- fake.chaos(probability, kinds, timeout_seconds, paths, seed) fails requests at random ("5xx", "429",
  "timeout", "lost"), counted in fake.injected by kind; fake.calm() stops it; fake.reset_counters() zeroes both.
- fake.completions_by_callback() counts the completions HubSpot accepted per callbackId.
"""

from __future__ import annotations

import base64
import copy
import itertools
import json
import random
import re
import secrets
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit, urlunsplit

from requests.structures import CaseInsensitiveDict

from tests.fakes.server import LoopbackServer

__all__ = ["FakeHubSpot", "Portal", "RecordedRequest", "Completion", "CompletionAttempt", "DEFAULT_SCOPES"]


# --- CRM object types ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectType:
    name: str  # the plural path name: "line_items"
    type_id: str  # "0-8"
    singular: str  # "line_item"
    association_key: str  # key under "associations" in a v3 object read
    scopes: tuple[str, ...]  # any one of these grants read access
    modified_property: str  # contacts differ from every other object here
    default_properties: tuple[str, ...]  # returned when the request names no properties


OBJECT_TYPES = {
    kind.name: kind
    for kind in (
        ObjectType(
            "contacts",
            "0-1",
            "contact",
            "contacts",
            ("crm.objects.contacts.read",),
            "lastmodifieddate",
            ("email", "firstname", "lastname"),
        ),
        ObjectType(
            "companies",
            "0-2",
            "company",
            "companies",
            ("crm.objects.companies.read",),
            "hs_lastmodifieddate",
            ("name", "domain"),
        ),
        ObjectType(
            "deals",
            "0-3",
            "deal",
            "deals",
            ("crm.objects.deals.read",),
            "hs_lastmodifieddate",
            ("dealname", "amount", "closedate", "dealstage", "pipeline"),
        ),
        ObjectType(
            "products",
            "0-7",
            "product",
            "products",
            ("e-commerce", "crm.objects.products.read"),
            "hs_lastmodifieddate",
            ("name", "price", "description"),
        ),
        # HubSpot's v3 reads key line items as "line items", with a space.
        ObjectType(
            "line_items",
            "0-8",
            "line_item",
            "line items",
            ("crm.objects.line_items.read", "e-commerce"),
            "hs_lastmodifieddate",
            ("name", "quantity", "price", "amount"),
        ),
        ObjectType(
            "quotes",
            "0-14",
            "quote",
            "quotes",
            ("crm.objects.quotes.read",),
            "hs_lastmodifieddate",
            ("hs_title", "hs_expiration_date"),
        ),
        # The v3 association key for payments is a guess; no capture of it exists.
        ObjectType(
            "commerce_payments",
            "0-101",
            "commerce_payment",
            "commerce_payments",
            ("crm.objects.commercepayments.read",),
            "hs_lastmodifieddate",
            (),
        ),
    )
}
TYPE_ALIASES = {alias: kind for kind in OBJECT_TYPES.values() for alias in (kind.name, kind.type_id, kind.singular)}

# Properties that exist in a fresh portal. Asking for one that is unset returns null; asking for a
# name that exists nowhere leaves it out. Properties set through Portal.add/update also exist.
KNOWN_PROPERTIES = {
    "contacts": {
        "email",
        "firstname",
        "lastname",
        "phone",
        "mobilephone",
        "company",
        "address",
        "city",
        "state",
        "zip",
        "country",
        "jobtitle",
        "website",
        "lifecyclestage",
        "hubspot_owner_id",
    },
    "companies": {
        "name",
        "domain",
        "phone",
        "address",
        "address2",
        "city",
        "state",
        "zip",
        "country",
        "website",
        "industry",
        "description",
        "hubspot_owner_id",
    },
    "deals": {
        "dealname",
        "amount",
        "dealstage",
        "pipeline",
        "closedate",
        "deal_currency_code",
        "description",
        "dealtype",
        "hubspot_owner_id",
    },
    "products": {
        "name",
        "description",
        "hs_sku",
        "price",
        "hs_cost_of_goods_sold",
        "hs_product_type",
        "recurringbillingfrequency",
        "hs_recurring_billing_period",
        "tax",
    },
    "line_items": {
        "name",
        "description",
        "hs_sku",
        "quantity",
        "price",
        "amount",
        "currency",
        "hs_line_item_currency_code",
        "hs_product_id",
        "hs_tax_rate_group_id",
        "hs_tax_rate",
        "hs_tax_amount",
        "hs_tax_label",
        "hs_post_tax_amount",
        "discount",
        "hs_discount_percentage",
        "hs_total_discount",
        "tax",
        "hs_position_on_quote",
        "hs_recurring_billing_start_date",
        "hs_recurring_billing_end_date",
        "recurringbillingfrequency",
        "hs_recurring_billing_period",
    },
    "quotes": {
        "hs_title",
        "hs_expiration_date",
        "hs_status",
        "hs_esign_enabled",
        "hs_esign_date",
        "hs_sign_status",
        "hs_quote_esign_status",
        "hs_payment_status",
        "hs_payment_date",
        "hs_quote_amount",
        "hs_currency",
        "hs_quote_number",
        "hs_quote_link",
        "hs_terms",
    },
    "commerce_payments": {
        "hs_initial_amount",
        "hs_initiated_date",
        "hs_currency_code",
        "hs_customer_email",
        "hs_fees_amount",
        "hs_refunds_amount",
        "hs_reference_number",
        "hs_payout_date",
        "hs_net_amount",
        "hs_platform_fee",
        "hs_latest_status",
        "hs_payment_method_type",
        "hs_processor_type",
        "hs_payment_source_app",
        "hs_has_associated_invoice",
    },
}

# HUBSPOT_DEFINED unlabeled association typeIds: (from, to) -> (from->to, to->from).
ASSOCIATION_TYPE_IDS = {
    ("deals", "contacts"): (3, 4),
    ("deals", "companies"): (341, 342),
    ("deals", "line_items"): (19, 20),
    ("deals", "quotes"): (63, 64),
    ("deals", "commerce_payments"): (392, 391),
    ("contacts", "companies"): (279, 280),
    ("quotes", "contacts"): (69, 70),
    ("quotes", "companies"): (71, 72),
    ("quotes", "line_items"): (67, 68),
    ("commerce_payments", "contacts"): (387, 388),
    ("commerce_payments", "companies"): (389, 390),
    ("commerce_payments", "line_items"): (395, 396),
    ("commerce_payments", "quotes"): (397, 398),
}
# A "Primary" association carries this typeId next to the unlabeled one, as HubSpot does.
PRIMARY_TYPE_IDS = {("deals", "companies"): (5, 6), ("contacts", "companies"): (1, 2)}
# Other HubSpot-defined labels, likewise next to the unlabeled type: a quote's signer (702; the reverse id
# is not documented, 703 stands in).
DEFINED_LABEL_TYPE_IDS = {("quotes", "contacts", "Signer"): (702, 703)}
HUBSPOT_DEFINED_LABELS = {"Primary", "Signer"}
# v3 object reads name association types; these differ from "<from>_to_<to>".
V3_TYPE_NAMES = {
    5: "deal_to_company",
    341: "deal_to_company_unlabeled",
    6: "company_to_deal",
    342: "company_to_deal_unlabeled",
    1: "contact_to_company",
    279: "contact_to_company_unlabeled",
    2: "company_to_contact",
    280: "company_to_contact_unlabeled",
}

# --- properties and record writes: scopes, groups, property rules --------------------------------------------
#
# HubSpot's specs (PublicApiSpecs/CRM/Properties/.../2026-03 and v3) give one "any of" scope list for every object
# type; the split per type below is ours. Reading definitions and groups: the object's read or write scope or
# crm.schemas.<type>.read. The spec lists neither crm.objects.commercepayments.read nor crm.objects.products.read
# among them, so the fake refuses those two (UNCONFIRMED that HubSpot really does).
PROPERTY_READ_SCOPES = {
    "contacts": ("crm.objects.contacts.read", "crm.objects.contacts.write", "crm.schemas.contacts.read"),
    "companies": ("crm.objects.companies.read", "crm.objects.companies.write", "crm.schemas.companies.read"),
    "deals": ("crm.objects.deals.read", "crm.objects.deals.write", "crm.schemas.deals.read"),
    "products": ("e-commerce", "crm.objects.products.write"),
    "line_items": (
        "crm.objects.line_items.read",
        "crm.objects.line_items.write",
        "crm.schemas.line_items.read",
        "e-commerce",
    ),
    "quotes": ("crm.objects.quotes.read", "crm.objects.quotes.write", "crm.schemas.quotes.read"),
    "commerce_payments": ("crm.objects.commercepayments.write", "crm.schemas.commercepayments.read"),
}
# Creating groups and properties. The spec's write list has no crm.schemas.line_items/products.write: "e-commerce".
SCHEMA_WRITE_SCOPES = {
    "contacts": ("crm.schemas.contacts.write",),
    "companies": ("crm.schemas.companies.write",),
    "deals": ("crm.schemas.deals.write",),
    "products": ("e-commerce",),
    "line_items": ("e-commerce",),
    "quotes": ("crm.schemas.quotes.write",),
    "commerce_payments": ("crm.schemas.commercepayments.write",),
}
# Updating records (PATCH, batch/update): per-object specs (Deals, Quotes, Commerce Payments 2026-03 and v3).
OBJECT_WRITE_SCOPES = {
    "contacts": ("crm.objects.contacts.write",),
    "companies": ("crm.objects.companies.write",),
    "deals": ("crm.objects.deals.write",),
    "products": ("crm.objects.products.write", "e-commerce"),
    "line_items": ("crm.objects.line_items.write", "e-commerce"),
    "quotes": ("crm.objects.quotes.write", "e-commerce"),  # the Quotes spec accepts either
    "commerce_payments": ("crm.objects.commercepayments.write",),
}
# The write-back's scopes, which the product asks for as optional scopes; a fresh install grants them.
WRITE_BACK_SCOPES = (
    "crm.objects.deals.write",
    "crm.schemas.deals.write",
    "crm.objects.quotes.write",
    "crm.schemas.quotes.write",
    "crm.objects.commercepayments.write",
    "crm.schemas.commercepayments.write",
)

# The group HubSpot puts each object's own properties in. Names follow HubSpot's "<object>information" habit;
# the payments one is a guess (UNCONFIRMED).
DEFAULT_GROUPS = {
    "contacts": ("contactinformation", "Contact information"),
    "companies": ("companyinformation", "Company information"),
    "deals": ("dealinformation", "Deal information"),
    "products": ("productinformation", "Product information"),
    "line_items": ("lineiteminformation", "Line item information"),
    "quotes": ("quoteinformation", "Quote information"),
    "commerce_payments": ("payment_information", "Payment information"),
}

# PropertyCreate (2026-03 spec): type enum, and the guide's table of the fieldTypes each type may use.
PROPERTY_FIELD_TYPES = {
    "bool": {"booleancheckbox", "calculation_equation"},
    "date": {"date", "calculation_equation"},
    "datetime": {"date", "calculation_equation"},
    "enumeration": {"booleancheckbox", "checkbox", "radio", "select", "calculation_equation"},
    "number": {"number", "calculation_equation"},
    "phone_number": {"phonenumber"},
    "string": {"text", "textarea", "file", "html", "phonenumber", "calculation_equation"},
}
PROPERTY_CREATE_KEYS = {
    "name",
    "label",
    "type",
    "fieldType",
    "groupName",
    "description",
    "displayOrder",
    "options",
    "hasUniqueValue",
    "hidden",
    "formField",
    "calculationFormula",
    "dataSensitivity",
    "externalOptions",
    "referencedObjectType",
    "currencyPropertyName",
    "numberDisplayHint",
    "textDisplayHint",
    "showCurrencySymbol",
}
GROUP_CREATE_KEYS = {"name", "label", "displayOrder"}
OPTION_KEYS = {"label", "value", "description", "displayOrder", "hidden"}
# "Internal names can only contain lowercase letters, numbers and underscores", starting with a letter; the exact
# rule and HubSpot's message are UNCONFIRMED. Group names: the same rule (UNCONFIRMED).
INTERNAL_NAME = re.compile(r"[a-z][a-z0-9_]*")
# Properties a record write may not set: HubSpot computes them ("Read-only ... properties will result in an error").
READ_ONLY_PROPERTIES = {"hs_object_id", "hs_lastmodifieddate", "lastmodifieddate", "hs_net_amount", "hs_platform_fee"}
# Types of HubSpot's own properties, for the definitions the fake lists; a sketch (UNCONFIRMED): number for these,
# datetime for names holding "date", string otherwise.
NUMBER_PROPERTIES = {
    "amount",
    "price",
    "quantity",
    "discount",
    "tax",
    "hs_object_id",
    "hs_cost_of_goods_sold",
    "hs_discount_percentage",
    "hs_total_discount",
    "hs_tax_rate",
    "hs_tax_amount",
    "hs_post_tax_amount",
    "hs_position_on_quote",
    "hs_quote_amount",
    "hs_initial_amount",
    "hs_fees_amount",
    "hs_refunds_amount",
    "hs_net_amount",
    "hs_platform_fee",
}

DEFAULT_SCOPES = (
    "oauth",
    "automation",
    "e-commerce",
    *sorted({scope for kind in OBJECT_TYPES.values() for scope in kind.scopes if scope != "e-commerce"}),
    "crm.objects.invoices.read",
    *WRITE_BACK_SCOPES,
)

BATCH_READ_LIMIT = 100
BATCH_UPDATE_LIMIT = 100
PROPERTY_BATCH_CREATE_LIMIT = 100  # UNCONFIRMED: HubSpot documents no limit for it
ASSOCIATIONS_BATCH_LIMIT = 1000
ASSOCIATIONS_PAGE_LIMIT = 500
RATE_LIMIT_MAX = 110
RATE_LIMIT_INTERVAL_SECONDS = 10
CHAOS_KINDS = ("5xx", "429", "timeout", "lost")
CHAOS_5XX_STATUSES = (500, 502, 503)
HTTP_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}
CALLBACK_ID = re.compile(r"ap-(\d+)-(\d+)-(\d+)-(\d+)")
AUTH_NOT_FOUND = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you "
    "can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)

# --- action definition rules (PublicActionDefinitionEgg in the 2026-03 spec) ---------------------------

DEFINITION_KEYS = {
    "actionUrl",
    "archivedAt",
    "executionRules",
    "functions",
    "inputFieldDependencies",
    "inputFields",
    "labels",
    "objectRequestOptions",
    "objectTypes",
    "outputFields",
    "published",
}
PATCH_KEYS = DEFINITION_KEYS - {"archivedAt", "functions"}
INPUT_FIELD_KEYS = {"isRequired", "supportedValueTypes", "typeDefinition"}
INPUT_TYPE_DEFINITION_KEYS = {
    "name",
    "type",
    "fieldType",
    "label",
    "description",
    "helpText",
    "options",
    "optionsUrl",
    "referencedObjectType",
}
OUTPUT_TYPE_DEFINITION_KEYS = INPUT_TYPE_DEFINITION_KEYS | {
    "externalOptions",
    "externalOptionsReferenceType",
    "schema",
    "useChirp",
}
LABEL_KEYS = {
    "actionName",
    "actionDescription",
    "actionCardContent",
    "appDisplayName",
    "executionRules",
    "inputFieldLabels",
    "inputFieldDescriptions",
    "inputFieldOptionLabels",
    "outputFieldLabels",
}
INPUT_TYPES = {
    "bool",
    "date",
    "datetime",
    "enumeration",
    "json",
    "number",
    "object_coordinates",
    "phone_number",
    "string",
}
OUTPUT_TYPES = INPUT_TYPES | {"currency_number"}
FIELD_TYPES = {
    "booleancheckbox",
    "calculation_equation",
    "checkbox",
    "date",
    "file",
    "html",
    "number",
    "phonenumber",
    "radio",
    "select",
    "text",
    "textarea",
}
VALUE_TYPES = {"STATIC_VALUE", "OBJECT_PROPERTY"}
DEPENDENCY_TYPES = {"SINGLE_FIELD", "CONDITIONAL_SINGLE_FIELD"}


# --- records handed to tests ----------------------------------------------------------------------------


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict  # name -> value, or a list of values when the name repeats
    headers: dict  # case-insensitive
    body: str
    json: Any  # the parsed body, or None when it is not JSON
    status: int | None = None  # what the fake answered


@dataclass(frozen=True)
class Completion:
    callback_id: str
    output_fields: dict
    typed_outputs: Any
    api_version: str  # "2026-03" or "v4"


@dataclass(frozen=True)
class CompletionAttempt:
    callback_id: str | None
    output_fields: Any
    typed_outputs: Any
    api_version: str
    status: int


# --- HTTP plumbing ---------------------------------------------------------------------------------------


@dataclass
class Response:
    status: int
    body: Any = None  # dict/list -> JSON, str/bytes -> sent as is, None -> empty
    headers: dict = field(default_factory=dict)


class ApiError(Exception):
    """Raised by handlers; becomes the HTTP answer."""

    def __init__(self, status: int, body: Any, headers: dict | None = None):
        super().__init__(f"{status}: {body}")
        self.response = Response(status, body, dict(headers or {}))


def error_body(message: str, category: str, **extra) -> dict:
    return {"status": "error", "message": message, "correlationId": str(uuid.uuid4()), "category": category, **extra}


def validation_error(message: str, **extra) -> ApiError:
    return ApiError(400, error_body(message, "VALIDATION_ERROR", **extra))


@dataclass
class Incoming:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: CaseInsensitiveDict
    body: bytes
    token: AccessToken | None = None  # set once a portal's access token is accepted

    @cached_property
    def json(self) -> Any:
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None

    def first(self, name: str, default: str | None = None) -> str | None:
        return self.query.get(name, [default])[0]

    def listed(self, name: str) -> list[str] | None:
        """A list parameter given comma-separated, repeated, or both; None when absent."""
        if name not in self.query:
            return None
        return [item.strip() for value in self.query[name] for item in value.split(",") if item.strip()]

    def form(self) -> dict[str, str]:
        if "application/x-www-form-urlencoded" not in self.headers.get("Content-Type", ""):
            return {}
        return {name: values[0] for name, values in parse_qs(self.body.decode("utf-8", "replace")).items()}

    def bearer(self) -> str | None:
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None

    def json_object(self) -> dict:
        body = self.json
        if not isinstance(body, dict):
            raise validation_error("Invalid input JSON on line 1, column 1: expected a JSON object")
        return body

    def record(self) -> RecordedRequest:
        query = {name: values[0] if len(values) == 1 else list(values) for name, values in self.query.items()}
        return RecordedRequest(
            self.method,
            self.path,
            query,
            CaseInsensitiveDict(self.headers),
            self.body.decode("utf-8", "replace"),
            self.json,
        )


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern
    handler: Callable[..., Response]
    version: str | None = None
    completes_callbacks: bool = False


@dataclass
class Fault:
    method: str | None
    path_part: str
    status: int
    body: Any
    headers: dict
    remaining: int

    def matches(self, incoming: Incoming) -> bool:
        return (self.method in (None, incoming.method)) and self.path_part in incoming.path

    def response(self) -> Response:
        return Response(self.status, copy.deepcopy(self.body), dict(self.headers))


def parse_fault_match(match: str) -> tuple[str | None, str]:
    method, _, path_part = match.strip().partition(" ")
    if method.upper() in HTTP_METHODS:
        return method.upper(), path_part.strip()
    return None, match.strip()


def default_fault_body(status: int) -> dict:
    if status == 429:
        return rate_limit_body()
    category = "INTERNAL_ERROR" if status >= 500 else "VALIDATION_ERROR"
    return error_body(f"Injected HTTP {status} (FakeHubSpot.fail_next)", category)


def rate_limit_body() -> dict:
    return {
        "status": "error",
        "message": "You have reached your ten_secondly_rolling limit.",
        "errorType": "RATE_LIMIT",
        "correlationId": str(uuid.uuid4()),
        "policyName": "TEN_SECONDLY_ROLLING",
    }


def gateway_error_page(status: int) -> str:
    """What HubSpot's edge (Cloudflare) answers when the service behind it fails: HTML, not JSON."""
    return (
        f"<!DOCTYPE html><html><head><title>{status} error</title></head><body><h1>Error {status}</h1>"
        "<p>The origin server did not answer in time or answered with an error.</p></body></html>"
    )


def chaos_fault(kind: str, status: int) -> Response:
    """The answer of a "5xx" (with its status) or "429" chaos fault."""
    if kind == "429":
        return Response(429, rate_limit_body())
    if status == 500:
        return Response(500, error_body("Injected HTTP 500 (FakeHubSpot.chaos)", "INTERNAL_ERROR"))
    return Response(status, gateway_error_page(status))


@dataclass
class Chaos:
    probability: float
    kinds: tuple[str, ...]
    timeout_seconds: float
    paths: tuple[str, ...] | None
    rng: random.Random

    def applies_to(self, path: str) -> bool:
        if self.paths is None:
            return not path.startswith("/oauth/")  # API requests, not the OAuth endpoints
        return any(part in path for part in self.paths)


def encode_body(body: Any) -> tuple[bytes, str | None]:
    if body is None:
        return b"", None
    if isinstance(body, bytes):
        return body, "application/octet-stream"
    if isinstance(body, str):
        kind = "text/html" if body.lstrip().startswith("<") else "text/plain"
        return body.encode(), f"{kind}; charset=utf-8"
    return json.dumps(body).encode(), "application/json;charset=utf-8"


class _RequestHandler(BaseHTTPRequestHandler):
    server_version = "FakeHubSpot/1.0"

    def do_GET(self):
        self.server.fake._serve(self)

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def log_message(self, format, *args):  # noqa: A002 - keep pytest output clean
        pass


def read_incoming(http: BaseHTTPRequestHandler) -> Incoming:
    parts = urlsplit(http.path)
    length = int(http.headers.get("Content-Length") or 0)
    body = http.rfile.read(length) if length else b""
    return Incoming(
        http.command,
        unquote(parts.path),
        parse_qs(parts.query, keep_blank_values=True),
        CaseInsensitiveDict(http.headers.items()),
        body,
    )


def write_response(http: BaseHTTPRequestHandler, response: Response) -> None:
    payload, content_type = encode_body(response.body)
    try:
        http.send_response(response.status)
        if content_type:
            http.send_header("Content-Type", content_type)
        http.send_header("Content-Length", str(len(payload)))
        for name, value in response.headers.items():
            http.send_header(name, str(value))
        http.end_headers()
        if payload:
            http.wfile.write(payload)
    except OSError:  # the client gave up (say, on an injected timeout): nobody is left to answer
        http.close_connection = True


# --- small helpers -----------------------------------------------------------------------------------------


def iso_now() -> str:
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def object_type_named(name: str) -> ObjectType:
    kind = TYPE_ALIASES.get(str(name).lower())
    if kind is None:
        raise ValueError(f"unknown HubSpot object type {name!r}; use one of {sorted(OBJECT_TYPES)}")
    return kind


def property_value(value: Any) -> str | None:
    """HubSpot stores and returns every property value as a string."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def as_number(object_id: str) -> int | str:
    return int(object_id) if object_id.isdigit() else object_id


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(str(offset).encode()).decode()


def decode_cursor(after: str | None) -> int:
    if not after:
        return 0
    try:
        return int(base64.urlsafe_b64decode(after.encode()).decode())
    except ValueError:
        raise validation_error(f"Invalid paging cursor: {after}") from None


def association_type(type_id: int, label: str | None = None) -> dict:
    category = "HUBSPOT_DEFINED" if label is None or label in HUBSPOT_DEFINED_LABELS else "USER_DEFINED"
    return {"category": category, "typeId": type_id, "label": label}


def type_id_pair(table: dict, source: str, target: str) -> tuple[int, int] | None:
    if (source, target) in table:
        return table[source, target]
    if (target, source) in table:
        forward, reverse = table[target, source]
        return reverse, forward
    return None


def defined_label_type_ids(source: str, target: str, label: str | None) -> tuple[int, int] | None:
    """HubSpot's own ids for a label it defines (Primary, Signer) between two types, if it has one."""
    if label == "Primary":
        return type_id_pair(PRIMARY_TYPE_IDS, source, target)
    return type_id_pair(
        {(a, b): ids for (a, b, name), ids in DEFINED_LABEL_TYPE_IDS.items() if name == label}, source, target
    )


def association_types(
    source: ObjectType, target: ObjectType, type_id: int | None, label: str | None
) -> tuple[list[dict], list[dict]]:
    """The association types to store from->to and to->from."""
    unlabeled = type_id_pair(ASSOCIATION_TYPE_IDS, source.name, target.name)
    if type_id is None and label is None:
        if unlabeled is None:
            raise ValueError(f"no default association type for {source.name} -> {target.name}; pass type_id")
        return [association_type(unlabeled[0])], [association_type(unlabeled[1])]
    defined = defined_label_type_ids(source.name, target.name, label)
    if defined and unlabeled and type_id in (None, defined[0]):
        return (
            [association_type(unlabeled[0]), association_type(defined[0], label)],
            [association_type(unlabeled[1]), association_type(defined[1], label)],
        )
    if type_id is None:
        raise ValueError(f"label {label!r} on {source.name} -> {target.name} needs an explicit type_id")
    known = {pair[0]: pair[1] for pair in (unlabeled, defined) if pair}
    # HubSpot pairs custom label ids; the reverse of a custom id is not documented, so id + 1 stands in.
    return [association_type(type_id, label)], [association_type(known.get(type_id, type_id + 1), label)]


# --- property definitions, groups and record values ----------------------------------------------------------


def property_group_json(name: str, label: str, display_order: int = -1) -> dict:
    """A PropertyGroup as HubSpot answers it: name, label, displayOrder, archived."""
    return {"name": name, "label": label, "displayOrder": display_order, "archived": False}


def hubspot_property_definition(kind: ObjectType, name: str, custom: bool = False) -> dict:
    """A Property for a property the fake knows without a definition: HubSpot's own, or one a test made exist.

    Their types are a sketch (see NUMBER_PROPERTIES); only properties created through the API carry real rules.
    """
    kind_of_value = "number" if name in NUMBER_PROPERTIES else "datetime" if "date" in name else "string"
    field_type = {"number": "number", "datetime": "date", "string": "text"}[kind_of_value]
    definition = {
        "name": name,
        "label": name.replace("_", " ").capitalize(),
        "type": kind_of_value,
        "fieldType": field_type,
        "description": "",
        "groupName": DEFAULT_GROUPS[kind.name][0],
        "options": [],
        "displayOrder": -1,
        "calculated": False,
        "externalOptions": False,
        "hasUniqueValue": name == "hs_object_id",
        "hidden": False,
        "modificationMetadata": {
            "archivable": custom,
            "readOnlyDefinition": not custom,
            "readOnlyValue": name in READ_ONLY_PROPERTIES,
        },
        "formField": False,
        "dataSensitivity": "non_sensitive",
        "archived": False,
    }
    if not custom:
        definition["hubspotDefined"] = True
    return definition


def created_property_definition(body: dict) -> dict:
    """The Property HubSpot answers for a valid PropertyCreate (shape of live 2026-02 captures, 3P)."""
    now = iso_now()
    options = [
        {
            "label": option["label"],
            "value": option["value"],
            "description": option.get("description", ""),
            "displayOrder": option.get("displayOrder", index),
            "hidden": option.get("hidden", False),
        }
        for index, option in enumerate(body.get("options") or [])
    ]
    definition = {
        "name": body["name"],
        "label": body["label"],
        "type": body["type"],
        "fieldType": body["fieldType"],
        "description": body.get("description", ""),
        "groupName": body["groupName"],
        "options": options,
        "displayOrder": body.get("displayOrder", -1),
        "calculated": False,
        "externalOptions": body.get("externalOptions", False),
        "hasUniqueValue": body.get("hasUniqueValue", False),
        "hidden": body.get("hidden", False),
        "modificationMetadata": {"archivable": True, "readOnlyDefinition": False, "readOnlyValue": False},
        "formField": body.get("formField", False),
        "dataSensitivity": body.get("dataSensitivity", "non_sensitive"),
        "createdAt": now,
        "updatedAt": now,
        "archived": False,
    }
    for name in ("calculationFormula", "referencedObjectType", "numberDisplayHint", "textDisplayHint"):
        if name in body:
            definition[name] = body[name]
    return definition


def property_create_problem(body: Any, group_names: set[str]) -> str | None:
    """Why HubSpot would refuse this PropertyCreate (400), or None. Messages are ours (UNCONFIRMED wording)."""
    if not isinstance(body, dict):
        return "Invalid input JSON on line 1, column 1: expected a PropertyCreate object"
    unknown = [key for key in body if key not in PROPERTY_CREATE_KEYS]
    if unknown:
        return f'Invalid input JSON on line 1, column 1: Unrecognized field "{unknown[0]}" (PropertyCreate)'
    missing = [key for key in ("name", "label", "type", "fieldType", "groupName") if not isinstance(body.get(key), str)]
    if missing:
        return f"Some required fields were not set: [{', '.join(missing)}]"
    name, kind_of_value, field_type = body["name"], body["type"], body["fieldType"]
    if not INTERNAL_NAME.fullmatch(name):
        return (
            f"Property name '{name}' is invalid: internal names must start with a letter and contain only "
            "lowercase letters, numbers and underscores"
        )
    if kind_of_value not in PROPERTY_FIELD_TYPES:
        return f"Invalid property type '{kind_of_value}'; valid types are {sorted(PROPERTY_FIELD_TYPES)}"
    if field_type not in PROPERTY_FIELD_TYPES[kind_of_value]:
        return (
            f"fieldType '{field_type}' is not valid for a property of type '{kind_of_value}'; "
            f"use one of {sorted(PROPERTY_FIELD_TYPES[kind_of_value])}"
        )
    if field_type == "calculation_equation" and not isinstance(body.get("calculationFormula"), str):
        return "A calculation_equation property needs a calculationFormula"
    if body["groupName"] not in group_names:
        return f"Property group '{body['groupName']}' does not exist"
    return option_list_problem(body)


def option_list_problem(body: dict) -> str | None:
    options = body.get("options")
    if body["type"] == "enumeration" and not body.get("externalOptions") and not options:
        return f"Property '{body['name']}' is an enumeration and needs options"
    if options is None:
        return None
    if not isinstance(options, list) or not all(isinstance(option, dict) for option in options):
        return "options must be a list of {label, value} objects"
    for option in options:
        unknown = [key for key in option if key not in OPTION_KEYS]
        if unknown:
            return f'Invalid input JSON on line 1, column 1: Unrecognized field "{unknown[0]}" (OptionInput)'
        if not isinstance(option.get("label"), str) or not isinstance(option.get("value"), str):
            return "Every option needs a string label and a string value"
    values = [option["value"] for option in options]
    repeated = sorted({value for value in values if values.count(value) > 1})
    if repeated:
        return f"Option values must be unique; repeated: {', '.join(repeated)}"
    return None


def group_create_problem(body: Any) -> str | None:
    """Why HubSpot would refuse this PropertyGroupCreate (400), or None (UNCONFIRMED wording)."""
    if not isinstance(body, dict):
        return "Invalid input JSON on line 1, column 1: expected a PropertyGroupCreate object"
    unknown = [key for key in body if key not in GROUP_CREATE_KEYS]
    if unknown:
        return f'Invalid input JSON on line 1, column 1: Unrecognized field "{unknown[0]}" (PropertyGroupCreate)'
    missing = [key for key in ("name", "label") if not isinstance(body.get(key), str)]
    if missing:
        return f"Some required fields were not set: [{', '.join(missing)}]"
    if not INTERNAL_NAME.fullmatch(body["name"]):
        return (
            f"Property group name '{body['name']}' is invalid: names must start with a letter and contain only "
            "lowercase letters, numbers and underscores"
        )
    if "displayOrder" in body and (not isinstance(body["displayOrder"], int) or isinstance(body["displayOrder"], bool)):
        return "displayOrder must be a whole number"
    return None


def property_exists_error(name: str) -> dict:
    """HubSpot's answer to creating a property whose name is taken (observed live, 3P: 409 in a single create)."""
    return error_body(
        f"A property named '{name}' already exists.",
        "OBJECT_ALREADY_EXISTS",
        subCategory="Properties.PROPERTY_WITH_NAME_EXISTS",
        context={"name": [name]},
    )


def group_exists_error(name: str) -> dict:
    # UNCONFIRMED: no capture of a duplicate group create exists; modelled on the property answer.
    return error_body(
        f"A property group named '{name}' already exists.", "OBJECT_ALREADY_EXISTS", context={"name": [name]}
    )


def is_number(value: str) -> bool:
    """HubSpot refuses numbers with surrounding whitespace since April 2025."""
    if value != value.strip():
        return False
    try:
        return float(value) not in (float("inf"), float("-inf")) and value.lower() != "nan"
    except ValueError:
        return False


def value_problem(definition: dict | None, name: str, value: str | None) -> tuple[str, str] | None:
    """(error code, message) when HubSpot would refuse this value; None when fine. "" (or null) clears a value.

    Only properties created through the API are checked beyond existence: number (INVALID_FLOAT, message
    UNCONFIRMED), enumeration and bool (INVALID_OPTION, message as captured live, 3P). Dates are not checked.
    """
    if definition is None or value is None or value == "":
        return None
    if definition["type"] == "number" and not is_number(value):
        return "INVALID_FLOAT", f"{value} was not a valid number."
    if definition["type"] in ("enumeration", "bool"):
        allowed = [option["value"] for option in definition["options"]] or ["true", "false"]
        chosen = value.split(";") if definition["fieldType"] == "checkbox" else [value]
        if any(item not in allowed for item in chosen):
            return "INVALID_OPTION", f"{value} was not one of the allowed options: [{', '.join(allowed)}]"
    return None


def property_values_error(problems: list[tuple[str, str, str]], portal_id: int) -> ApiError:
    """HubSpot's 400 for refused record values: a JSON list inside `message`, the same again in `errors`.

    Shape as captured live (3P logs, 2024-2025): problems are (property name, error code, message).
    """
    listed = [
        {
            "isValid": False,
            "message": message,
            "error": code,
            "name": name,
            "localizedErrorMessage": message,
            "portalId": portal_id,
        }
        for name, code, message in problems
    ]
    return validation_error(
        "Property values were not valid: " + json.dumps(listed, separators=(",", ":")),
        errors=[
            {"message": message, "code": code, "context": {"propertyName": [name]}} for name, code, message in problems
        ],
    )


# --- a portal's CRM data ---------------------------------------------------------------------------------


@dataclass
class CrmRecord:
    id: str
    properties: dict[str, str | None]
    created_at: str
    updated_at: str


class Portal:
    """One HubSpot account's CRM objects and associations. Methods are safe to call from any thread."""

    def __init__(self, portal_id: int, lock: threading.RLock):
        self.id = portal_id
        self._lock = lock
        self._objects: dict[str, dict[str, CrmRecord]] = {name: {} for name in OBJECT_TYPES}
        self._extra_properties: dict[str, set[str]] = {name: set() for name in OBJECT_TYPES}
        # (type, id) -> to_type -> to_id -> [association types], in insertion order.
        self._links: dict[tuple[str, str], dict[str, dict[str, list[dict]]]] = {}
        self._ids = itertools.count(101)
        # Property groups per object type (HubSpot's own group first), and the properties created through the API.
        self._groups: dict[str, dict[str, dict]] = {
            name: {DEFAULT_GROUPS[name][0]: property_group_json(*DEFAULT_GROUPS[name], display_order=0)}
            for name in OBJECT_TYPES
        }
        self._defined: dict[str, dict[str, dict]] = {name: {} for name in OBJECT_TYPES}

    # -- setup API for tests --

    def add(self, object_type: str, properties: dict, id: str | int | None = None) -> str:  # noqa: A002
        kind = object_type_named(object_type)
        with self._lock:
            object_id = str(id) if id is not None else self._next_id(kind)
            if object_id in self._objects[kind.name]:
                raise ValueError(f"{kind.name} {object_id} already exists in portal {self.id}")
            now = iso_now()
            values = {name: property_value(value) for name, value in properties.items()}
            values.setdefault("createdate", now)
            values.setdefault(kind.modified_property, now)
            values["hs_object_id"] = object_id
            self._extra_properties[kind.name].update(values)
            self._objects[kind.name][object_id] = CrmRecord(object_id, values, values["createdate"], now)
            return object_id

    def update(self, object_type: str, id: str | int, properties: dict) -> None:  # noqa: A002
        kind = object_type_named(object_type)
        with self._lock:
            record = self._require(kind, str(id))
            record.properties.update({name: property_value(value) for name, value in properties.items()})
            record.updated_at = record.properties[kind.modified_property] = iso_now()
            self._extra_properties[kind.name].update(properties)

    def get(self, object_type: str, id: str | int) -> dict | None:  # noqa: A002
        """A copy of the stored object with every property, or None."""
        kind = object_type_named(object_type)
        with self._lock:
            record = self._objects[kind.name].get(str(id))
            if record is None:
                return None
            return {
                "id": record.id,
                "properties": dict(record.properties),
                "createdAt": record.created_at,
                "updatedAt": record.updated_at,
                "archived": False,
            }

    def remove(self, object_type: str, id: str | int) -> None:  # noqa: A002
        """Delete an object and its associations, as HubSpot does."""
        kind = object_type_named(object_type)
        with self._lock:
            self._require(kind, str(id))
            del self._objects[kind.name][str(id)]
            for to_type, targets in self._links.pop((kind.name, str(id)), {}).items():
                for to_id in targets:
                    self._links.get((to_type, to_id), {}).get(kind.name, {}).pop(str(id), None)

    def define_property(self, object_type: str, name: str) -> None:
        """Make a custom property exist (read back as null while unset), as if made in HubSpot's UI."""
        with self._lock:
            self._extra_properties[object_type_named(object_type).name].add(name)

    def define_group(self, object_type: str, name: str, label: str | None = None, display_order: int = -1) -> None:
        """Make a property group exist, as if made in HubSpot's UI."""
        with self._lock:
            self._groups[object_type_named(object_type).name][name] = property_group_json(
                name, label or name, display_order
            )

    def property_groups(self, object_type: str) -> list[dict]:
        """Every property group of an object type (HubSpot's own and created ones), as the API lists them."""
        with self._lock:
            return copy.deepcopy(list(self._groups[object_type_named(object_type).name].values()))

    def properties_defined(self, object_type: str) -> dict[str, dict]:
        """The properties created through the Properties API on an object type: name -> HubSpot's Property body."""
        with self._lock:
            return copy.deepcopy(self._defined[object_type_named(object_type).name])

    def associate(
        self,
        from_type: str,
        from_id: str | int,
        to_type: str,
        to_id: str | int,
        type_id: int | None = None,
        label: str | None = None,
    ) -> None:
        source, target = object_type_named(from_type), object_type_named(to_type)
        forward, reverse = association_types(source, target, type_id, label)
        with self._lock:
            self._require(source, str(from_id))
            self._require(target, str(to_id))
            self._link(source, str(from_id), target, str(to_id), forward)
            self._link(target, str(to_id), source, str(from_id), reverse)

    def associated_ids(self, from_type: str, from_id: str | int, to_type: str) -> list[str]:
        with self._lock:
            return [
                to_id
                for to_id, _ in self.associations_of(
                    object_type_named(from_type), str(from_id), object_type_named(to_type)
                )
            ]

    # -- properties and writes used by the HTTP handlers (caller holds the lock) --

    def groups_of(self, kind: ObjectType) -> dict[str, dict]:
        return self._groups[kind.name]

    def known_properties(self, kind: ObjectType) -> set[str]:
        always = {"hs_object_id", "createdate", kind.modified_property}
        return KNOWN_PROPERTIES[kind.name] | self._extra_properties[kind.name] | always

    def property_definition(self, kind: ObjectType, name: str) -> dict | None:
        """The Property body for a known property; None when the object type has no such property."""
        if name in self._defined[kind.name]:
            return self._defined[kind.name][name]
        if name not in self.known_properties(kind):
            return None
        hubspot_defined = name in KNOWN_PROPERTIES[kind.name] | {"hs_object_id", "createdate", kind.modified_property}
        return hubspot_property_definition(kind, name, custom=not hubspot_defined)

    def property_definitions(self, kind: ObjectType) -> list[dict]:
        return [self.property_definition(kind, name) for name in sorted(self.known_properties(kind))]

    def create_property(self, kind: ObjectType, body: dict) -> dict:
        """Store a validated PropertyCreate; the property then exists on every record (null while unset)."""
        definition = created_property_definition(body)
        self._defined[kind.name][definition["name"]] = definition
        self._extra_properties[kind.name].add(definition["name"])
        return definition

    def write_problems(self, kind: ObjectType, values: dict[str, str | None]) -> list[tuple[str, str, str]]:
        """Why HubSpot would refuse these record values: (name, error code, message) for each bad one."""
        known, problems = self.known_properties(kind), []
        for name, value in values.items():
            if name not in known:
                problems.append((name, "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist'))
            elif name in READ_ONLY_PROPERTIES:
                # UNCONFIRMED: error code and message for a read-only property.
                message = f'Property "{name}" is a read only property; its value cannot be set.'
                problems.append((name, "READ_ONLY_VALUE", message))
            elif found := value_problem(self._defined[kind.name].get(name), name, value):
                problems.append((name, *found))
        return problems

    def write(self, kind: ObjectType, record: CrmRecord, values: dict[str, str | None]) -> None:
        record.properties.update(values)
        record.updated_at = record.properties[kind.modified_property] = iso_now()

    # -- reads used by the HTTP handlers (caller holds the lock) --

    def find(self, kind: ObjectType, key: str, id_property: str | None = None) -> CrmRecord | None:
        if not id_property or id_property == "hs_object_id":
            return self._objects[kind.name].get(key)
        return next(
            (record for record in self._objects[kind.name].values() if record.properties.get(id_property) == key), None
        )

    def associations_of(self, kind: ObjectType, object_id: str, to_kind: ObjectType) -> list[tuple[str, list]]:
        """HubSpot promises no order; newest first keeps clients from relying on insertion or id order."""
        targets = self._links.get((kind.name, object_id), {}).get(to_kind.name, {})
        return [(to_id, copy.deepcopy(types)) for to_id, types in reversed(targets.items())]

    def object_json(
        self, kind: ObjectType, record: CrmRecord, requested: list[str] | None, association_kinds: list[ObjectType] = ()
    ) -> dict:
        known = KNOWN_PROPERTIES[kind.name] | self._extra_properties[kind.name]
        names = kind.default_properties if requested is None else requested
        properties = {name: record.properties.get(name) for name in names if name in known}
        for name in ("hs_object_id", "createdate", kind.modified_property):
            properties[name] = record.properties.get(name)
        body = {
            "id": record.id,
            "properties": properties,
            "createdAt": record.created_at,
            "updatedAt": record.updated_at,
            "archived": False,
        }
        associations = self._v3_associations(kind, record.id, association_kinds)
        if associations:
            body["associations"] = associations
        return body

    def _v3_associations(self, kind: ObjectType, object_id: str, association_kinds) -> dict:
        found = {}
        for to_kind in association_kinds:
            results = [
                {"id": to_id, "type": self._v3_type_name(kind, to_kind, link_type)}
                for to_id, types in self.associations_of(kind, object_id, to_kind)
                for link_type in types
            ]
            if results:
                found[to_kind.association_key] = {"results": results}
        return found

    @staticmethod
    def _v3_type_name(kind: ObjectType, to_kind: ObjectType, link_type: dict) -> str:
        if link_type["category"] != "HUBSPOT_DEFINED":
            return str(link_type["typeId"])
        return V3_TYPE_NAMES.get(link_type["typeId"], f"{kind.singular}_to_{to_kind.singular}")

    def _require(self, kind: ObjectType, object_id: str) -> CrmRecord:
        record = self._objects[kind.name].get(object_id)
        if record is None:
            raise KeyError(f"portal {self.id} has no {kind.singular} {object_id}")
        return record

    def _link(self, source: ObjectType, from_id: str, target: ObjectType, to_id: str, types: list[dict]) -> None:
        stored = self._links.setdefault((source.name, from_id), {}).setdefault(target.name, {}).setdefault(to_id, [])
        stored.extend(link_type for link_type in types if link_type not in stored)

    def _next_id(self, kind: ObjectType) -> str:
        while (candidate := str(next(self._ids))) in self._objects[kind.name]:
            pass
        return candidate


# --- OAuth state -----------------------------------------------------------------------------------------


@dataclass
class AccessToken:
    value: str
    portal_id: int
    scopes: frozenset
    expires_at: float


@dataclass
class RefreshToken:
    value: str
    portal_id: int
    scopes: frozenset
    lifetime: int
    revoked: bool = False


@dataclass
class AuthCode:
    portal_id: int
    redirect_uri: str
    scopes: frozenset


def oauth_error(status: str, message: str, error: str) -> ApiError:
    return ApiError(
        400,
        {
            "status": status,
            "message": message,
            "correlationId": str(uuid.uuid4()),
            "error": error,
            "error_description": message,
        },
    )


# --- the server ------------------------------------------------------------------------------------------

# Path prefixes per API version; "v4" stands for the legacy family (objects v3, associations and actions v4).
VERSION_PREFIXES = {
    "2026-03": {
        "objects": "/crm/objects/2026-03",
        "object_associations": "/crm/objects/2026-03",
        "associations": "/crm/associations/2026-03",
        "callbacks": "/automation/actions/callbacks/2026-03",
        "actions": "/automation/actions/2026-03",
        "properties": "/crm/properties/2026-03",
    },
    "v4": {
        "objects": "/crm/v3/objects",
        "object_associations": "/crm/v4/objects",
        "associations": "/crm/v4/associations",
        "callbacks": "/automation/v4/actions/callbacks",
        "actions": "/automation/v4/actions",
        "properties": "/crm/v3/properties",
    },
}
SEGMENT = r"[^/]+"


class FakeHubSpot(LoopbackServer):
    handler_class = _RequestHandler
    thread_name = "FakeHubSpot"

    def __init__(
        self,
        client_id: str = "hs-client-id",
        client_secret: str = "hs-client-secret",
        app_id: int = 4242,
        developer_api_key: str = "hs-dev-key",
        *,
        latency: float = 0.0,
        latency_jitter: float = 0.0,
    ):
        self.client_id = client_id
        self.client_secret = client_secret
        self.app_id = app_id
        self.developer_api_key = developer_api_key
        self.developer_tokens: set[str] = set()
        self.next_install_portal = 101
        self.grant_optional_scopes = True  # the installing user accepts every optional scope
        # The 2026-03 spec lists typedOutputs as required, but SDK 12 never sends it and HubSpot accepts
        # that; set True to pin our "always send typedOutputs" decision.
        self.require_typed_outputs = False
        self.enforce_rate_limit = False  # headers are always sent; 429s only when asked
        self.rate_limit_max = RATE_LIMIT_MAX  # per portal, in any sliding rate_limit_interval seconds
        self.rate_limit_interval = RATE_LIMIT_INTERVAL_SECONDS
        self.latency = latency  # seconds slept per request, outside the lock
        self.latency_jitter = latency_jitter  # +/- uniformly around latency
        self.rate_limited: Counter[str] = Counter()  # 429s the rate limit caused, by policy
        self.rate_limited_at: list[float] = []  # when (time.time()), to tell which fault they followed
        self.injected: Counter[str] = Counter()  # faults chaos() injected, by kind
        self._chaos: Chaos | None = None
        self._load_lock = threading.Lock()  # chaos draws and their counters: never waits for self._lock
        self.refresh_count = 0
        self.requests: list[RecordedRequest] = []
        self.completions: list[Completion] = []
        self.completion_attempts: list[CompletionAttempt] = []
        self.definitions: dict[int, dict[str, dict]] = {app_id: {}}
        self._lock = threading.RLock()
        self._portals: dict[int, Portal] = {}
        self._access_tokens: dict[str, AccessToken] = {}
        self._refresh_tokens: dict[str, RefreshToken] = {}
        self._codes: dict[str, AuthCode] = {}
        self._finished_callbacks: set[str] = set()
        self._faults: list[Fault] = []
        self._rate_windows: dict[int, deque] = {}
        self._definition_ids = itertools.count(1_000_001)
        self._callback_numbers = itertools.count(56_776_413_549)
        self._routes = self._route_table()

    # -- test API --

    def portal(self, portal_id: int) -> Portal:
        with self._lock:
            if portal_id not in self._portals:
                self._portals[portal_id] = Portal(portal_id, self._lock)
            return self._portals[portal_id]

    def issue_tokens(self, portal_id: int, expires_in: int = 1800, scopes=None) -> dict:
        """Install the app into a portal without the browser dance; returns HubSpot's token body.

        `scopes` (a list or a space-separated string) replaces DEFAULT_SCOPES, so a test can leave out the
        write-back's scopes; an empty list grants nothing.
        """
        with self._lock:
            self.portal(portal_id)
            scopes = scopes.split() if isinstance(scopes, str) else scopes
            refresh = RefreshToken(
                f"hs-refresh-{portal_id}-{secrets.token_hex(8)}",
                portal_id,
                frozenset(DEFAULT_SCOPES if scopes is None else scopes),
                expires_in,
            )
            self._refresh_tokens[refresh.value] = refresh
            return self._token_body(refresh)

    def expire_access_token(self, token: str) -> None:
        with self._lock:
            self._access_tokens[token].expires_at = time.time() - 1

    def revoke_refresh_token(self, token: str) -> None:
        with self._lock:
            self._refresh_tokens[token].revoked = True

    def fail_next(
        self,
        match: str = "POST /automation/actions/callbacks",
        status: int = 500,
        body: Any = None,
        times: int = 1,
        headers: dict | None = None,
    ) -> None:
        """Answer the next `times` requests matching "METHOD path-substring" (or "" for any) with `status`."""
        method, path_part = parse_fault_match(match)
        fault_body = default_fault_body(status) if body is None else body
        with self._lock:
            self._faults.append(Fault(method, path_part, status, fault_body, dict(headers or {}), times))

    def requests_to(self, method: str, path_contains: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.method == method.upper() and path_contains in r.path]

    def completion_for(self, callback_id: str) -> Completion | None:
        with self._lock:
            return next((c for c in self.completions if c.callback_id == callback_id), None)

    def completions_by_callback(self) -> Counter[str]:
        """{callbackId: completions HubSpot accepted} (lost answers included); more than 1 would be a bug."""
        with self._lock:
            return Counter(completion.callback_id for completion in self.completions)

    def chaos(
        self,
        probability: float,
        kinds: tuple[str, ...] | list[str] = ("5xx", "429", "timeout"),
        timeout_seconds: float = 3.0,
        paths: list[str] | tuple[str, ...] | None = None,
        seed: int | None = None,
    ) -> None:
        """From now on each request fails with `probability`, of one of `kinds` drawn at random: "5xx": 500
        (JSON) or 502/503 (HTML from the edge), nothing done; "429": the ten-secondly RATE_LIMIT body, nothing
        done; "timeout": nothing done, a 504 after `timeout_seconds`, when the client has given up; "lost": done
        (a callback completed), then answered 502. Only requests whose path contains one of `paths` (say
        ["/callbacks/"]); without `paths`, every request but OAuth's. Counted in fake.injected; calm() stops it."""
        kinds = tuple(kinds)
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"probability {probability} is not between 0 and 1")
        unknown = [kind for kind in kinds if kind not in CHAOS_KINDS]
        if not kinds or unknown:
            raise ValueError(f"chaos kinds must be some of {CHAOS_KINDS}, not {list(kinds)}")
        with self._load_lock:
            self._chaos = Chaos(
                probability, kinds, timeout_seconds, tuple(paths) if paths is not None else None, random.Random(seed)
            )

    def calm(self) -> None:
        """No more chaos: requests are answered normally again."""
        with self._load_lock:
            self._chaos = None

    def reset_counters(self) -> None:
        """Zero fake.rate_limited and fake.injected (the rate-limit windows are kept)."""
        with self._load_lock:
            self.rate_limited.clear()
            self.injected.clear()

    def expire_callback(self, callback_id: str) -> None:
        """The action's wait ran out: later completions are refused as not pending."""
        with self._lock:
            self._finished_callbacks.add(callback_id)

    def new_callback_id(self, portal_id: int) -> str:
        with self._lock:
            return f"ap-{portal_id}-{next(self._callback_numbers)}-1-0"

    def execution_request(
        self,
        portal_id: int,
        object_type: str,
        object_id: str | int,
        input_fields: dict,
        *,
        properties: dict | None = None,
        callback_id: str | None = None,
        action_definition_id: int = 10646377,
        workflow_id: int = 192814114,
    ) -> dict:
        """The body HubSpot POSTs to an actionUrl, in the shape observed for 2026.03 projects."""
        kind = object_type_named(object_type)
        body = {
            "callbackId": callback_id or self.new_callback_id(portal_id),
            "origin": {
                "portalId": portal_id,
                "actionDefinitionId": action_definition_id,
                "actionDefinitionVersion": 1,
                "extensionDefinitionId": action_definition_id,
                "extensionDefinitionVersionId": 1,
            },
            "context": {"source": "WORKFLOWS", "workflowId": workflow_id, "actionId": 1},
            "object": {"objectId": as_number(str(object_id)), "objectType": kind.singular.upper()},
            "fields": dict(input_fields),
            "inputFields": dict(input_fields),
            "typedInputs": {name: {"value": value, "type": "STRING"} for name, value in input_fields.items()},
        }
        if properties is not None:
            body["object"]["properties"] = dict(properties)
        return body

    # -- request handling --

    def _route_table(self) -> list[Route]:
        table = [
            Route("GET", re.compile(r"/oauth/authorize"), self._authorize),
            Route("POST", re.compile(r"/oauth/(?:2026-03|v1)/token"), self._token),
            Route("GET", re.compile(rf"/oauth/v1/access-tokens/(?P<token>{SEGMENT})"), self._access_token_info),
            Route("GET", re.compile(rf"/oauth/v1/refresh-tokens/(?P<token>{SEGMENT})"), self._refresh_token_info),
            Route("DELETE", re.compile(rf"/oauth/v1/refresh-tokens/(?P<token>{SEGMENT})"), self._delete_refresh),
        ]
        for version, prefix in VERSION_PREFIXES.items():

            def route(method, pattern, handler, version=version, **extra):
                table.append(Route(method, re.compile(pattern), handler, version, **extra))

            obj, actions = rf"/(?P<object_type>{SEGMENT})/(?P<object_id>{SEGMENT})", prefix["actions"]
            route("GET", prefix["objects"] + obj, self._get_object)
            route("PATCH", prefix["objects"] + obj, self._update_object)
            route("POST", prefix["objects"] + rf"/(?P<object_type>{SEGMENT})/batch/read", self._batch_read)
            route("POST", prefix["objects"] + rf"/(?P<object_type>{SEGMENT})/batch/update", self._batch_update)
            # Groups and batch/create first: "groups" and "batch" would otherwise read as property names.
            props = prefix["properties"] + rf"/(?P<object_type>{SEGMENT})"
            route("GET", props + "/groups", self._list_groups)
            route("POST", props + "/groups", self._create_group)
            route("GET", props + rf"/groups/(?P<group_name>{SEGMENT})", self._get_group)
            route("POST", props + "/batch/create", self._batch_create_properties)
            route("GET", props, self._list_properties)
            route("POST", props, self._create_property)
            route("GET", props + rf"/(?P<property_name>{SEGMENT})", self._get_property)
            route(
                "GET",
                prefix["object_associations"] + obj + rf"/associations/(?P<to_type>{SEGMENT})",
                self._list_associations,
            )
            route(
                "POST",
                prefix["associations"] + rf"/(?P<from_type>{SEGMENT})/(?P<to_type>{SEGMENT})/batch/read",
                self._batch_read_associations,
            )
            route("POST", prefix["callbacks"] + "/complete", self._complete_batch, completes_callbacks=True)
            route(
                "POST",
                prefix["callbacks"] + rf"/(?P<callback_id>{SEGMENT})/complete",
                self._complete_one,
                completes_callbacks=True,
            )
            route("GET", actions + r"/(?P<app_id>\d+)", self._list_definitions)
            route("POST", actions + r"/(?P<app_id>\d+)", self._create_definition)
            for method, handler in (
                ("GET", self._get_definition),
                ("PATCH", self._patch_definition),
                ("DELETE", self._delete_definition),
            ):
                route(method, actions + rf"/(?P<app_id>\d+)/(?P<definition_id>{SEGMENT})", handler)
        return table

    def _serve(self, http: BaseHTTPRequestHandler) -> None:
        incoming = read_incoming(http)
        drawn = self._draw_chaos(incoming.path)
        self._sleep_latency()  # outside the lock: concurrent requests really overlap
        injected = None
        if drawn is not None:
            kind, timeout_seconds, status = drawn
            if kind == "timeout":
                time.sleep(timeout_seconds)
                injected = Response(504, gateway_error_page(504), {"Connection": "close"})
            elif kind != "lost":
                injected = chaos_fault(kind, status)
        with self._lock:
            recorded = incoming.record()
            self.requests.append(recorded)
            response = self._respond(incoming, injected)
            if drawn is not None and drawn[0] == "lost":  # done, then the answer is lost on the way back
                response = Response(502, gateway_error_page(502))
            recorded.status = response.status
        write_response(http, response)

    def _draw_chaos(self, path: str) -> tuple[str, float, int] | None:
        """(kind, timeout_seconds, status for a 5xx) when chaos strikes this request."""
        with self._load_lock:
            chaos = self._chaos
            if chaos is None or not chaos.applies_to(path) or chaos.rng.random() >= chaos.probability:
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

    def _respond(self, incoming: Incoming, injected: Response | None = None) -> Response:
        route, params = self._match(incoming)
        fault = None if injected is not None else self._take_fault(incoming)
        if injected is not None:
            response = injected
        elif fault is not None:
            response = fault.response()
        elif route is None:
            response = Response(404, error_body(f"No route for {incoming.method} {incoming.path}", "NOT_FOUND"))
        else:
            try:
                response = route.handler(incoming, version=route.version, **params)
            except ApiError as error:
                response = error.response
        if route is not None and route.completes_callbacks:
            self._record_attempts(incoming, route.version, params, response.status)
        if incoming.token is not None:
            response.headers.update(self._rate_limit_headers(incoming.token.portal_id))
        return response

    def _match(self, incoming: Incoming) -> tuple[Route | None, dict]:
        for route in self._routes:
            found = route.pattern.fullmatch(incoming.path)
            if found and route.method == incoming.method:
                return route, found.groupdict()
        return None, {}

    def _take_fault(self, incoming: Incoming) -> Fault | None:
        for fault in self._faults:
            if fault.matches(incoming):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    # -- authentication and rate limits --

    def _authenticate(self, incoming: Incoming) -> Portal:
        """The portal whose live access token made the request; 401 without one."""
        token = self._access_tokens.get(incoming.bearer() or "")
        if token is None:
            raise ApiError(401, error_body(AUTH_NOT_FOUND, "INVALID_AUTHENTICATION"))
        if token.expires_at <= time.time():
            raise self._expired_error(token)
        incoming.token = token
        self._count_request(token.portal_id)
        return self.portal(token.portal_id)

    def _require_scope(self, incoming: Incoming, needed: tuple[str, ...]) -> None:
        """403 unless the token holds one of `needed`."""
        if not incoming.token.scopes & set(needed):
            raise self._missing_scopes_error(needed)

    @staticmethod
    def _expired_error(token: AccessToken) -> ApiError:
        ago = int(time.time() - token.expires_at)
        expired_at = datetime.fromtimestamp(token.expires_at, UTC).isoformat()
        return ApiError(
            401,
            error_body(
                f"The OAuth token used to make this call expired {ago} second(s) ago.",
                "EXPIRED_AUTHENTICATION",
                context={"expire time": [expired_at]},
            ),
        )

    @staticmethod
    def _missing_scopes_error(needed: tuple[str, ...]) -> ApiError:
        return ApiError(
            403,
            error_body(
                "This app hasn't been granted all required scopes to make this call. Read more about required "
                "scopes here: https://developers.hubspot.com/scopes.",
                "MISSING_SCOPES",
                errors=[
                    {
                        "message": "One or more of the following scopes are required.",
                        "context": {"requiredGranularScopes": list(needed)},
                    }
                ],
                links={"scopes": "https://developers.hubspot.com/scopes"},
            ),
        )

    def _count_request(self, portal_id: int) -> None:
        """The portal's sliding window (per installed account, so per token's hub); a refused request
        does not count in it."""
        window = self._rate_windows.setdefault(portal_id, deque())
        now = time.monotonic()
        while window and now - window[0] >= self.rate_limit_interval:
            window.popleft()
        if self.enforce_rate_limit and len(window) >= self.rate_limit_max:
            with self._load_lock:
                self.rate_limited["ten_secondly"] += 1
                self.rate_limited_at.append(time.time())
            raise ApiError(429, rate_limit_body())
        window.append(now)

    def _rate_limit_headers(self, portal_id: int) -> dict:
        used = len(self._rate_windows.get(portal_id, ()))
        return {
            "X-HubSpot-RateLimit-Max": str(self.rate_limit_max),
            "X-HubSpot-RateLimit-Remaining": str(max(0, self.rate_limit_max - used)),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(self.rate_limit_interval * 1000)),
        }

    @staticmethod
    def _object_type(name: str) -> ObjectType:
        kind = TYPE_ALIASES.get(name)
        if kind is None:
            raise validation_error(f"Unable to infer object type from: {name}")
        return kind

    # -- OAuth --

    def _authorize(self, incoming: Incoming, version=None) -> Response:
        redirect_uri = incoming.first("redirect_uri")
        scopes = (incoming.first("scope") or "").split()
        if incoming.first("client_id") != self.client_id:
            raise validation_error(f"Couldn't find an app with client_id {incoming.first('client_id')}")
        if not redirect_uri or not redirect_uri.startswith(("http://", "https://")):
            raise validation_error("redirect_uri is missing or not an http(s) URL")
        if "oauth" not in scopes:
            raise validation_error("The scope parameter must include the 'oauth' scope")
        optional = (incoming.first("optional_scope") or "").split() if self.grant_optional_scopes else []
        code = f"hs-code-{secrets.token_hex(8)}"
        self._codes[code] = AuthCode(self.next_install_portal, redirect_uri, frozenset(scopes + optional))
        self.portal(self.next_install_portal)
        query = {"code": code} | ({"state": incoming.first("state")} if "state" in incoming.query else {})
        return Response(302, None, {"Location": add_query(redirect_uri, query)})

    def _token(self, incoming: Incoming, version=None) -> Response:
        form = incoming.form()
        grant_type = form.get("grant_type")
        if grant_type not in ("authorization_code", "refresh_token"):
            raise oauth_error("BAD_GRANT_TYPE", "missing or unknown grant type", "unsupported_grant_type")
        if form.get("client_id") != self.client_id:
            raise oauth_error("BAD_CLIENT_ID", "missing or unknown client id", "invalid_client")
        if form.get("client_secret") != self.client_secret:
            raise oauth_error("BAD_CLIENT_SECRET", "missing or invalid client secret", "invalid_client")
        if grant_type == "authorization_code":
            return Response(200, self._redeem_code(form))
        return Response(200, self._refresh(form))

    def _redeem_code(self, form: dict) -> dict:
        code = self._codes.get(form.get("code", ""))
        if code is None:
            raise oauth_error("BAD_AUTH_CODE", "missing or unknown auth code", "invalid_grant")
        if form.get("redirect_uri") != code.redirect_uri:
            raise oauth_error("BAD_REDIRECT_URI", "redirect_uri does not match initial redirect_uri", "invalid_grant")
        del self._codes[form["code"]]  # codes are single-use
        refresh = RefreshToken(f"hs-refresh-{code.portal_id}-{secrets.token_hex(8)}", code.portal_id, code.scopes, 1800)
        self._refresh_tokens[refresh.value] = refresh
        return self._token_body(refresh)

    def _refresh(self, form: dict) -> dict:
        refresh = self._refresh_tokens.get(form.get("refresh_token", ""))
        if refresh is None or refresh.revoked:
            raise oauth_error("BAD_REFRESH_TOKEN", "missing or invalid refresh token", "invalid_grant")
        self.refresh_count += 1
        return self._token_body(refresh)

    def _token_body(self, refresh: RefreshToken) -> dict:
        """A new access token; HubSpot's refresh tokens do not rotate, so the same one comes back."""
        access = AccessToken(
            f"hs-access-{refresh.portal_id}-{secrets.token_hex(12)}",
            refresh.portal_id,
            refresh.scopes,
            time.time() + refresh.lifetime,
        )
        self._access_tokens[access.value] = access
        return {
            "token_type": "bearer",
            "access_token": access.value,
            "refresh_token": refresh.value,
            "expires_in": refresh.lifetime,
        }

    def _access_token_info(self, incoming: Incoming, token: str, version=None) -> Response:
        access = self._access_tokens.get(token)
        if access is None:
            raise ApiError(
                404, {"status": "error", "message": "Access token not found", "correlationId": str(uuid.uuid4())}
            )
        if access.expires_at <= time.time():
            raise ApiError(
                400, {"status": "error", "message": "The access token is expired", "correlationId": str(uuid.uuid4())}
            )
        return Response(
            200,
            {
                "token": token,
                "user": "admin@example.test",
                "hub_id": access.portal_id,
                "app_id": self.app_id,
                "scopes": sorted(access.scopes),
                "hub_domain": f"portal-{access.portal_id}.example.test",
                "expires_in": int(access.expires_at - time.time()),
                "user_id": 7001,
                "token_type": "access",
            },
        )

    def _refresh_token_info(self, incoming: Incoming, token: str, version=None) -> Response:
        refresh = self._refresh_tokens.get(token)
        if refresh is None or refresh.revoked:
            raise ApiError(
                404, {"status": "error", "message": "Refresh token not found", "correlationId": str(uuid.uuid4())}
            )
        return Response(
            200,
            {
                "token": token,
                "user": "admin@example.test",
                "hub_id": refresh.portal_id,
                "client_id": self.client_id,
                "scopes": sorted(refresh.scopes),
                "hub_domain": f"portal-{refresh.portal_id}.example.test",
                "user_id": 7001,
                "token_type": "refresh",
            },
        )

    def _delete_refresh(self, incoming: Incoming, token: str, version=None) -> Response:
        if token not in self._refresh_tokens:
            raise ApiError(404, {"status": "error", "message": "Refresh token not found"})
        self._refresh_tokens[token].revoked = True
        return Response(204)

    # -- CRM reads --

    def _get_object(self, incoming: Incoming, object_type: str, object_id: str, version=None) -> Response:
        portal = self._authenticate(incoming)
        kind = self._object_type(object_type)
        self._require_scope(incoming, kind.scopes)
        record = portal.find(kind, object_id, incoming.first("idProperty"))
        if record is None:
            raise ApiError(
                404,
                error_body(
                    "Object not found.  objectId are usually numeric.", "OBJECT_NOT_FOUND", context={"id": [object_id]}
                ),
            )
        association_kinds = [self._object_type(name) for name in incoming.listed("associations") or []]
        return Response(200, portal.object_json(kind, record, incoming.listed("properties"), association_kinds))

    def _batch_read(self, incoming: Incoming, object_type: str, version=None) -> Response:
        portal = self._authenticate(incoming)
        kind = self._object_type(object_type)
        self._require_scope(incoming, kind.scopes)
        body = incoming.json_object()
        ids = self._batch_ids(body, BATCH_READ_LIMIT)
        requested = body.get("properties")
        if requested is not None and not (isinstance(requested, list) and all(isinstance(p, str) for p in requested)):
            raise validation_error("properties must be a list of property names")
        started = iso_now()
        # HubSpot returns batch results in no particular order; reversing keeps clients honest.
        found = [(key, portal.find(kind, key, body.get("idProperty"))) for key in reversed(ids)]
        results = [portal.object_json(kind, record, requested) for _, record in found if record is not None]
        missing = [key for key, record in reversed(found) if record is None]
        reply = {"status": "COMPLETE", "results": results, "startedAt": started, "completedAt": iso_now()}
        if not missing:
            return Response(200, reply)
        reply["numErrors"] = 1
        reply["errors"] = [
            {
                "status": "error",
                "category": "OBJECT_NOT_FOUND",
                "context": {"ids": missing},
                "message": f"Could not get some {kind.singular.upper()} objects, they may be deleted "
                "or not exist. Check that ids are valid.",
            }
        ]
        return Response(207, reply)

    @staticmethod
    def _batch_ids(body: dict, limit: int) -> list[str]:
        inputs = body.get("inputs")
        if not isinstance(inputs, list) or not all(isinstance(item, dict) and "id" in item for item in inputs):
            raise validation_error('inputs must be a list of {"id": ...} objects')
        if len(inputs) > limit:
            raise validation_error(
                f"Batch input size of {len(inputs)} exceeds the limit of {limit}", context={"limit": [str(limit)]}
            )
        return list(dict.fromkeys(str(item["id"]) for item in inputs))

    def _list_associations(
        self, incoming: Incoming, object_type: str, object_id: str, to_type: str, version=None
    ) -> Response:
        portal = self._authenticate(incoming)
        kind, to_kind = self._object_type(object_type), self._object_type(to_type)
        self._require_scope(incoming, kind.scopes)
        limit = self._limit(incoming, default=ASSOCIATIONS_PAGE_LIMIT, maximum=ASSOCIATIONS_PAGE_LIMIT)
        start = decode_cursor(incoming.first("after"))
        links = portal.associations_of(kind, object_id, to_kind)
        page = {
            "results": [
                {"toObjectId": as_number(to_id), "associationTypes": types}
                for to_id, types in links[start : start + limit]
            ]
        }
        if start + limit < len(links):
            page["paging"] = {"next": {"after": encode_cursor(start + limit)}}
        return Response(200, page)

    @staticmethod
    def _limit(incoming: Incoming, default: int, maximum: int) -> int:
        raw = incoming.first("limit", str(default))
        if not raw.isdigit() or not 1 <= int(raw) <= maximum:
            raise validation_error(f"limit must be a whole number from 1 to {maximum}, not {raw}")
        return int(raw)

    def _batch_read_associations(self, incoming: Incoming, from_type: str, to_type: str, version=None) -> Response:
        portal = self._authenticate(incoming)
        kind, to_kind = self._object_type(from_type), self._object_type(to_type)
        self._require_scope(incoming, kind.scopes)
        ids = self._batch_ids(incoming.json_object(), ASSOCIATIONS_BATCH_LIMIT)
        started, results, errors = iso_now(), [], []
        for object_id in reversed(ids):
            links = portal.associations_of(kind, object_id, to_kind)
            if links:
                results.append(
                    {
                        "from": {"id": object_id},
                        "to": [{"toObjectId": as_number(to_id), "associationTypes": types} for to_id, types in links],
                    }
                )
            else:
                errors.append(self._no_associations_error(kind, object_id, to_kind))
        reply = {"status": "COMPLETE", "results": results, "startedAt": started, "completedAt": iso_now()}
        if not errors:
            return Response(200, reply)
        return Response(207, reply | {"numErrors": len(errors), "errors": errors})

    @staticmethod
    def _no_associations_error(kind: ObjectType, object_id: str, to_kind: ObjectType) -> dict:
        return {
            "status": "error",
            "category": "OBJECT_NOT_FOUND",
            "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
            "message": f"No {to_kind.singular} is associated with {kind.singular} {object_id}.",
            "context": {"fromObjectId": [object_id], "toObjectType": [to_kind.singular]},
        }

    # -- properties and groups --

    def _schema_access(self, incoming: Incoming, object_type: str, write: bool) -> tuple[Portal, ObjectType]:
        portal = self._authenticate(incoming)
        kind = self._object_type(object_type)
        self._require_scope(incoming, (SCHEMA_WRITE_SCOPES if write else PROPERTY_READ_SCOPES)[kind.name])
        return portal, kind

    def _list_groups(self, incoming: Incoming, object_type: str, version=None) -> Response:
        portal, kind = self._schema_access(incoming, object_type, write=False)
        return Response(200, {"results": copy.deepcopy(list(portal.groups_of(kind).values()))})

    def _get_group(self, incoming: Incoming, object_type: str, group_name: str, version=None) -> Response:
        portal, kind = self._schema_access(incoming, object_type, write=False)
        group = portal.groups_of(kind).get(group_name)
        if group is None:
            # UNCONFIRMED: message; the category is what HubSpot answers for a missing property (observed, 3P).
            raise ApiError(
                404, error_body(f"Unable to find property group {group_name} for {kind.name}", "OBJECT_NOT_FOUND")
            )
        return Response(200, copy.deepcopy(group))

    def _create_group(self, incoming: Incoming, object_type: str, version=None) -> Response:
        portal, kind = self._schema_access(incoming, object_type, write=True)
        body = incoming.json
        problem = group_create_problem(body)
        if problem:
            raise validation_error(problem)
        groups = portal.groups_of(kind)
        if body["name"] in groups:
            raise ApiError(409, group_exists_error(body["name"]))
        groups[body["name"]] = property_group_json(body["name"], body["label"], body.get("displayOrder", -1))
        location = f"{self.url}{incoming.path}/{body['name']}"
        return Response(201, copy.deepcopy(groups[body["name"]]), {"Location": location})

    def _list_properties(self, incoming: Incoming, object_type: str, version=None) -> Response:
        portal, kind = self._schema_access(incoming, object_type, write=False)
        archived = incoming.first("archived", "false") == "true"  # nothing is ever archived here
        return Response(200, {"results": [] if archived else copy.deepcopy(portal.property_definitions(kind))})

    def _get_property(self, incoming: Incoming, object_type: str, property_name: str, version=None) -> Response:
        portal, kind = self._schema_access(incoming, object_type, write=False)
        definition = portal.property_definition(kind, property_name)
        if definition is None or incoming.first("archived", "false") == "true":
            # Observed (3P, 2026-09): 404 OBJECT_NOT_FOUND. The message is UNCONFIRMED.
            raise ApiError(
                404,
                error_body(
                    f"Unable to find property {property_name} for {kind.name}",
                    "OBJECT_NOT_FOUND",
                    context={"propertyName": [property_name]},
                ),
            )
        return Response(200, copy.deepcopy(definition))

    def _create_property(self, incoming: Incoming, object_type: str, version=None) -> Response:
        portal, kind = self._schema_access(incoming, object_type, write=True)
        body = incoming.json
        problem = property_create_problem(body, set(portal.groups_of(kind)))
        if problem:
            raise validation_error(problem)
        if portal.property_definition(kind, body["name"]) is not None:
            raise ApiError(409, property_exists_error(body["name"]))
        definition = portal.create_property(kind, body)
        location = f"{self.url}{incoming.path}/{body['name']}"
        return Response(201, copy.deepcopy(definition), {"Location": location})

    def _batch_create_properties(self, incoming: Incoming, object_type: str, version=None) -> Response:
        """201 when every input is created; 207 with OBJECT_ALREADY_EXISTS errors for names taken (observed, 3P).

        An invalid input refuses the whole batch with 400 and creates nothing (UNCONFIRMED: HubSpot may instead
        list it in `errors`).
        """
        portal, kind = self._schema_access(incoming, object_type, write=True)
        inputs = incoming.json_object().get("inputs")
        if not isinstance(inputs, list):
            raise validation_error("Some required fields were not set: [inputs]")
        if len(inputs) > PROPERTY_BATCH_CREATE_LIMIT:
            raise validation_error(
                f"Batch input size of {len(inputs)} exceeds the limit of {PROPERTY_BATCH_CREATE_LIMIT}",
                context={"limit": [str(PROPERTY_BATCH_CREATE_LIMIT)]},
            )
        groups = set(portal.groups_of(kind))
        for index, body in enumerate(inputs):
            problem = property_create_problem(body, groups)
            if problem:
                raise validation_error(f"inputs[{index}]: {problem}")
        started, results, errors = iso_now(), [], []
        for body in inputs:
            if portal.property_definition(kind, body["name"]) is not None:
                error = property_exists_error(body["name"])
                errors.append({key: error[key] for key in ("status", "category", "subCategory", "message", "context")})
            else:
                results.append(copy.deepcopy(portal.create_property(kind, body)))
        reply = {"status": "COMPLETE", "results": results, "startedAt": started, "completedAt": iso_now()}
        if not errors:
            return Response(201, reply)
        return Response(207, reply | {"numErrors": len(errors), "errors": errors})

    # -- record updates --

    @staticmethod
    def _property_values(properties: Any) -> dict[str, str | None]:
        """A SimplePublicObjectInput's properties as HubSpot stores them: strings (numbers and booleans become text)."""
        if not isinstance(properties, dict):
            raise validation_error("Some required fields were not set: [properties]")
        if any(isinstance(value, (dict, list)) for value in properties.values()):
            raise validation_error("Invalid input JSON on line 1, column 1: property values must be strings")
        return {name: property_value(value) for name, value in properties.items()}

    def _update_object(self, incoming: Incoming, object_type: str, object_id: str, version=None) -> Response:
        portal = self._authenticate(incoming)
        kind = self._object_type(object_type)
        self._require_scope(incoming, OBJECT_WRITE_SCOPES[kind.name])
        body = incoming.json_object()
        unknown = [key for key in body if key != "properties"]
        if unknown:
            raise validation_error(
                f'Invalid input JSON on line 1, column 1: Unrecognized field "{unknown[0]}" (SimplePublicObjectInput)'
            )
        values = self._property_values(body.get("properties"))
        if not values:
            raise validation_error("No properties found to update, please provide at least one.")
        record = portal.find(kind, object_id, incoming.first("idProperty"))
        if record is None:
            raise ApiError(
                404,
                error_body(
                    "Object not found.  objectId are usually numeric.", "OBJECT_NOT_FOUND", context={"id": [object_id]}
                ),
            )
        problems = portal.write_problems(kind, values)
        if problems:
            raise property_values_error(problems, portal.id)
        portal.write(kind, record, values)
        # UNCONFIRMED: HubSpot's answer carries the written properties and the defaults; the rest may differ.
        return Response(200, portal.object_json(kind, record, list(values)))

    def _batch_update(self, incoming: Incoming, object_type: str, version=None) -> Response:
        """200 when every id exists; 207 with OBJECT_NOT_FOUND for the missing ones (the others are updated).

        A bad property value anywhere refuses the whole batch (400 "Property values were not valid", captured live,
        3P), as do repeated ids ("Duplicate IDs found in batch input", captured live, 3P).
        """
        portal = self._authenticate(incoming)
        kind = self._object_type(object_type)
        self._require_scope(incoming, OBJECT_WRITE_SCOPES[kind.name])
        inputs = incoming.json_object().get("inputs")
        if not isinstance(inputs, list) or not all(
            isinstance(item, dict) and "id" in item and "properties" in item for item in inputs
        ):
            raise validation_error('inputs must be a list of {"id": ..., "properties": {...}} objects')
        if len(inputs) > BATCH_UPDATE_LIMIT:
            raise validation_error(
                f"Batch input size of {len(inputs)} exceeds the limit of {BATCH_UPDATE_LIMIT}",
                context={"limit": [str(BATCH_UPDATE_LIMIT)]},
            )
        ids = [str(item["id"]) for item in inputs]
        repeated = list(dict.fromkeys(key for key in ids if ids.count(key) > 1))
        if repeated:
            raise validation_error(
                f"Duplicate IDs found in batch input: [{', '.join(repeated)}]. IDs must be unique",
                context={"ids": repeated},
            )
        writes = [
            (
                str(item["id"]),
                portal.find(kind, str(item["id"]), item.get("idProperty")),
                self._property_values(item["properties"]),
            )
            for item in inputs
        ]
        problems = [problem for _, _, values in writes for problem in portal.write_problems(kind, values)]
        if problems:
            raise property_values_error(problems, portal.id)
        started = iso_now()
        for _, record, values in writes:
            if record is not None:
                portal.write(kind, record, values)
        # No particular order, as with batch reads.
        results = [portal.object_json(kind, record, list(values)) for _, record, values in reversed(writes) if record]
        missing = [key for key, record, _ in writes if record is None]
        reply = {"status": "COMPLETE", "results": results, "startedAt": started, "completedAt": iso_now()}
        if not missing:
            return Response(200, reply)
        reply["numErrors"] = 1
        reply["errors"] = [
            {
                "status": "error",
                "category": "OBJECT_NOT_FOUND",
                # A live capture (3P) showed "ids": [""] here: match results by id, not by this context.
                "context": {"ids": missing},
                "message": f"Could not get some {kind.singular.upper()} objects, they may be deleted "
                "or not exist. Check that ids are valid.",
            }
        ]
        return Response(207, reply)

    # -- callback completion --

    def _complete_one(self, incoming: Incoming, callback_id: str, version=None) -> Response:
        portal = self._authenticate(incoming)
        self._require_scope(incoming, ("automation",))
        body = incoming.json_object()
        self._check_completion(portal.id, callback_id, body, pending=set())
        self._accept_completion(callback_id, body, version)
        return Response(204)

    def _complete_batch(self, incoming: Incoming, version=None) -> Response:
        portal = self._authenticate(incoming)
        self._require_scope(incoming, ("automation",))
        inputs = incoming.json_object().get("inputs")
        if not isinstance(inputs, list) or not inputs or not all(isinstance(item, dict) for item in inputs):
            raise validation_error("inputs must be a non-empty list of completions")
        # Check every input before completing any, so a refused batch changes nothing.
        batch_ids: set[str] = set()
        for item in inputs:
            self._check_completion(portal.id, item.get("callbackId"), item, pending=batch_ids)
            batch_ids.add(item["callbackId"])
        for item in inputs:
            self._accept_completion(item["callbackId"], item, version)
        return Response(204)

    def _check_completion(self, portal_id: int, callback_id: Any, body: dict, pending: set[str]) -> None:
        found = CALLBACK_ID.fullmatch(callback_id) if isinstance(callback_id, str) else None
        if found is None:
            raise validation_error(f"Invalid callbackId: {callback_id}")
        if int(found.group(1)) != portal_id:
            raise ApiError(
                403, error_body(f"Callback {callback_id} does not belong to portal {portal_id}", "FORBIDDEN")
            )
        problem = completion_body_problem(body, self.require_typed_outputs)
        if problem:
            raise validation_error(problem)
        if callback_id in self._finished_callbacks or callback_id in pending:
            raise validation_error(f"Callback {callback_id} is not in a pending state")

    def _accept_completion(self, callback_id: str, body: dict, version: str) -> None:
        self._finished_callbacks.add(callback_id)
        self.completions.append(
            Completion(callback_id, dict(body["outputFields"]), copy.deepcopy(body.get("typedOutputs")), version)
        )

    def _record_attempts(self, incoming: Incoming, version: str, params: dict, status: int) -> None:
        body = incoming.json
        if "callback_id" in params:
            items = [(params["callback_id"], body if isinstance(body, dict) else {})]
        else:
            inputs = body.get("inputs") if isinstance(body, dict) else None
            items = (
                [(item.get("callbackId"), item) for item in inputs if isinstance(item, dict)]
                if isinstance(inputs, list)
                else [(None, {})]
            )
        for callback_id, item in items:
            self.completion_attempts.append(
                CompletionAttempt(callback_id, item.get("outputFields"), item.get("typedOutputs"), version, status)
            )

    # -- action definitions --

    def _developer_app(self, incoming: Incoming, app_id: str) -> dict[str, dict]:
        """The app's definitions, once the caller proved to be its developer (hapikey or developer token)."""
        if "hapikey" in incoming.query and incoming.first("hapikey") != self.developer_api_key:
            raise ApiError(
                401,
                error_body(
                    "The API key provided is invalid. View or manage your API key here: "
                    "https://app.hubspot.com/l/api-key/",
                    "INVALID_AUTHENTICATION",
                ),
            )
        if incoming.first("hapikey") != self.developer_api_key and incoming.bearer() not in self.developer_tokens:
            raise ApiError(401, error_body(AUTH_NOT_FOUND, "INVALID_AUTHENTICATION"))
        if int(app_id) not in self.definitions:
            raise ApiError(404, error_body(f"App {app_id} not found", "OBJECT_NOT_FOUND"))
        return self.definitions[int(app_id)]

    def _definition(self, stored: dict[str, dict], definition_id: str, archived: bool = False) -> dict:
        definition = stored.get(definition_id)
        if definition is None or ("archivedAt" in definition) != archived:
            raise ApiError(404, error_body(f"Unable to find definition with id {definition_id}", "OBJECT_NOT_FOUND"))
        return definition

    def _list_definitions(self, incoming: Incoming, app_id: str, version=None) -> Response:
        stored = self._developer_app(incoming, app_id)
        archived = incoming.first("archived", "false") == "true"
        matching = [
            d for _, d in sorted(stored.items(), key=lambda item: int(item[0])) if ("archivedAt" in d) == archived
        ]
        limit = self._limit(incoming, default=20, maximum=100)
        start = int(incoming.first("after") or 0)
        page = {"results": copy.deepcopy(matching[start : start + limit])}
        if start + limit < len(matching):
            page["paging"] = {"next": {"after": str(start + limit)}}
        return Response(200, page)

    def _create_definition(self, incoming: Incoming, app_id: str, version=None) -> Response:
        stored = self._developer_app(incoming, app_id)
        body = incoming.json_object()
        raise_for_problems(definition_problems(body, DEFINITION_KEYS))
        definition_id = str(next(self._definition_ids))
        functions = [
            {"functionType": f.get("functionType"), "id": str(index)}
            for index, f in enumerate(body.get("functions") or [])
            if isinstance(f, dict)
        ]
        stored[definition_id] = copy.deepcopy(body) | {"functions": functions, "id": definition_id, "revisionId": "1"}
        location = f"{self.url}{incoming.path}/{definition_id}"
        return Response(201, copy.deepcopy(stored[definition_id]), {"Location": location})

    def _get_definition(self, incoming: Incoming, app_id: str, definition_id: str, version=None) -> Response:
        stored = self._developer_app(incoming, app_id)
        archived = incoming.first("archived", "false") == "true"
        return Response(200, copy.deepcopy(self._definition(stored, definition_id, archived)))

    def _patch_definition(self, incoming: Incoming, app_id: str, definition_id: str, version=None) -> Response:
        stored = self._developer_app(incoming, app_id)
        current = self._definition(stored, definition_id)
        changes = incoming.json_object()
        problems = unknown_keys(changes, PATCH_KEYS, "the patch")
        merged = current | copy.deepcopy(changes)
        raise_for_problems(problems or definition_problems(merged, DEFINITION_KEYS | {"id", "revisionId"}))
        stored[definition_id] = merged | {"revisionId": str(int(current["revisionId"]) + 1)}
        return Response(200, copy.deepcopy(stored[definition_id]))

    def _delete_definition(self, incoming: Incoming, app_id: str, definition_id: str, version=None) -> Response:
        stored = self._developer_app(incoming, app_id)
        self._definition(stored, definition_id)["archivedAt"] = int(time.time() * 1000)
        return Response(204)


def add_query(url: str, params: dict) -> str:
    parts = urlsplit(url)
    query = "&".join(filter(None, [parts.query, urlencode(params)]))
    return urlunsplit(parts._replace(query=query))


# --- callback completion rules -------------------------------------------------------------------------


def completion_body_problem(body: dict, require_typed_outputs: bool) -> str | None:
    outputs = body.get("outputFields")
    if not isinstance(outputs, dict):
        return "outputFields is required and must be an object of string values"
    not_strings = sorted(name for name, value in outputs.items() if not isinstance(value, str))
    if not_strings:
        return f"outputFields values must be strings; not strings: {', '.join(not_strings)}"
    state = outputs.get("hs_execution_state")
    if state not in ("SUCCESS", "FAIL_CONTINUE"):
        return f"hs_execution_state must be SUCCESS or FAIL_CONTINUE, not {state!r}"
    typed = body.get("typedOutputs")
    if typed is None and require_typed_outputs:
        return "typedOutputs is required (send {} when there are none)"
    if typed is not None and not isinstance(typed, dict):
        return "typedOutputs must be an object"
    return None


# --- action definition validation ------------------------------------------------------------------------


def raise_for_problems(problems: list[str]) -> None:
    if problems:
        raise validation_error(
            f"Invalid input JSON on line 1, column 1: {problems[0]}",
            errors=[{"message": problem} for problem in problems],
        )


def unknown_keys(value: dict, allowed: set[str], where: str) -> list[str]:
    return [f'Unrecognized field "{key}" in {where}' for key in value if key not in allowed]


def is_http_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def definition_problems(definition: dict, allowed_keys: set[str]) -> list[str]:
    problems = unknown_keys(definition, allowed_keys, "the definition") + top_level_problems(definition)
    if problems:
        return problems  # the nested checks below rely on these shapes
    input_names = [
        f["typeDefinition"]["name"]
        for f in definition["inputFields"]
        if isinstance(f, dict) and isinstance(f.get("typeDefinition"), dict)
    ]
    return (
        field_list_problems(definition["inputFields"], "inputFields")
        + field_list_problems(definition.get("outputFields", []), "outputFields")
        + dependency_problems(definition.get("inputFieldDependencies", []), input_names)
        + execution_rule_problems(definition.get("executionRules", []), definition["labels"])
        + request_option_problems(definition.get("objectRequestOptions"))
    )


def top_level_problems(definition: dict) -> list[str]:
    problems = []
    if not is_http_url(definition.get("actionUrl")):
        problems.append("actionUrl is required and must be an http(s) URL")
    if not isinstance(definition.get("inputFields"), list):
        problems.append("inputFields is required and must be a list")
    if not isinstance(definition.get("published"), bool):
        problems.append("published is required and must be true or false")
    object_types = definition.get("objectTypes")
    if not (isinstance(object_types, list) and object_types and all(isinstance(t, str) for t in object_types)):
        problems.append("objectTypes is required and must be a non-empty list of strings")
    for name in ("outputFields", "inputFieldDependencies", "executionRules", "functions"):
        if name in definition and not isinstance(definition[name], list):
            problems.append(f"{name} must be a list")
    return problems + label_problems(definition.get("labels"))


def label_problems(labels: Any) -> list[str]:
    if not isinstance(labels, dict) or not isinstance(labels.get("en"), dict):
        return ["labels is required and must hold an 'en' object"]
    problems = []
    for locale, texts in labels.items():
        if not isinstance(texts, dict):
            problems.append(f"labels.{locale} must be an object")
            continue
        problems += unknown_keys(texts, LABEL_KEYS, f"labels.{locale}")
        if not isinstance(texts.get("actionName"), str) or not texts["actionName"]:
            problems.append(f"labels.{locale}.actionName is required")
    return problems


def field_list_problems(fields: list, where: str) -> list[str]:
    """inputFields and outputFields: each a typed field with a unique name."""
    problems, names = [], []
    is_input = where == "inputFields"
    for index, item in enumerate(fields):
        place = f"{where}[{index}]"
        if not isinstance(item, dict):
            problems.append(f"{place} must be an object")
            continue
        problems += unknown_keys(item, INPUT_FIELD_KEYS if is_input else {"typeDefinition"}, place)
        if is_input:
            problems += input_field_problems(item, place)
        definition = item.get("typeDefinition")
        problems += type_definition_problems(definition, f"{place}.typeDefinition", is_input)
        if isinstance(definition, dict):
            names.append(definition.get("name"))
    duplicates = sorted({str(name) for name in names if names.count(name) > 1})
    if duplicates:
        problems.append(f"{where} names must be unique; repeated: {', '.join(duplicates)}")
    return problems


def input_field_problems(item: dict, place: str) -> list[str]:
    problems = []
    if not isinstance(item.get("isRequired"), bool):
        problems.append(f"{place}.isRequired is required and must be true or false")
    value_types = item.get("supportedValueTypes", [])
    if not isinstance(value_types, list) or not all(v in VALUE_TYPES for v in value_types):
        problems.append(f"{place}.supportedValueTypes must be a list of {sorted(VALUE_TYPES)}")
    return problems


def type_definition_problems(definition: Any, place: str, is_input: bool) -> list[str]:
    if not isinstance(definition, dict):
        return [f"{place} is required and must be an object"]
    problems = unknown_keys(definition, INPUT_TYPE_DEFINITION_KEYS if is_input else OUTPUT_TYPE_DEFINITION_KEYS, place)
    if not isinstance(definition.get("name"), str) or not definition["name"]:
        problems.append(f"{place}.name is required")
    types = INPUT_TYPES if is_input else OUTPUT_TYPES
    if definition.get("type") not in types:
        problems.append(f"{place}.type must be one of {sorted(types)}, not {definition.get('type')!r}")
    if "fieldType" in definition and definition["fieldType"] not in FIELD_TYPES:
        problems.append(f"{place}.fieldType must be one of {sorted(FIELD_TYPES)}, not {definition['fieldType']!r}")
    if is_input and definition.get("referencedObjectType", "OWNER") != "OWNER":
        problems.append(f"{place}.referencedObjectType may only be OWNER")
    return problems + option_problems(definition, place)


def option_problems(definition: dict, place: str) -> list[str]:
    options, options_url = definition.get("options"), definition.get("optionsUrl")
    problems = []
    if "optionsUrl" in definition and not is_http_url(options_url):
        problems.append(f"{place}.optionsUrl must be an http(s) URL")
    if options is not None and not (
        isinstance(options, list)
        and all(
            isinstance(o, dict) and isinstance(o.get("label"), str) and isinstance(o.get("value"), str) for o in options
        )
    ):
        problems.append(f"{place}.options must be a list of {{label, value}} objects with string values")
    if definition.get("type") == "enumeration" and not options and options_url is None:
        problems.append(f"{place} is an enumeration and needs options or optionsUrl")
    return problems


def dependency_problems(dependencies: list, input_names: list[str]) -> list[str]:
    problems = []
    for index, dependency in enumerate(dependencies):
        place = f"inputFieldDependencies[{index}]"
        if not isinstance(dependency, dict):
            problems.append(f"{place} must be an object")
            continue
        kind = dependency.get("dependencyType")
        allowed = {"dependencyType", "controllingFieldName", "dependentFieldNames"}
        if kind == "CONDITIONAL_SINGLE_FIELD":
            allowed.add("controllingFieldValue")
            if not isinstance(dependency.get("controllingFieldValue"), str):
                problems.append(f"{place}.controllingFieldValue is required for CONDITIONAL_SINGLE_FIELD")
        elif kind not in DEPENDENCY_TYPES:
            problems.append(f"{place}.dependencyType must be one of {sorted(DEPENDENCY_TYPES)}, not {kind!r}")
        problems += unknown_keys(dependency, allowed, place)
        if dependency.get("controllingFieldName") not in input_names:
            problems.append(
                f"{place}.controllingFieldName {dependency.get('controllingFieldName')!r} is not an input field"
            )
        dependents = dependency.get("dependentFieldNames")
        if not isinstance(dependents, list) or not dependents:
            problems.append(f"{place}.dependentFieldNames must be a non-empty list")
        else:
            problems += [
                f"{place}.dependentFieldNames: {name!r} is not an input field"
                for name in dependents
                if name not in input_names
            ]
    return problems


def execution_rule_problems(rules: list, labels: dict) -> list[str]:
    messages = labels["en"].get("executionRules") or {}
    problems = []
    for index, rule in enumerate(rules):
        place = f"executionRules[{index}]"
        if not isinstance(rule, dict):
            problems.append(f"{place} must be an object")
            continue
        problems += unknown_keys(rule, {"labelName", "conditions"}, place)
        if not isinstance(rule.get("conditions"), dict):
            problems.append(f"{place}.conditions is required and must be an object")
        if rule.get("labelName") not in messages:
            problems.append(f"{place}.labelName {rule.get('labelName')!r} has no message in labels.en.executionRules")
    return problems


def request_option_problems(options: Any) -> list[str]:
    if options is None:
        return []
    properties = options.get("properties") if isinstance(options, dict) else None
    if not (isinstance(properties, list) and all(isinstance(p, str) for p in properties)):
        return ["objectRequestOptions.properties is required and must be a list of property names"]
    return unknown_keys(options, {"properties"}, "objectRequestOptions")
