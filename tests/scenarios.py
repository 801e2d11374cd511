"""Records seeded in the fakes: a deal with a contact and line items, and matching QuickBooks products."""

import json
import threading
from dataclasses import dataclass

from tests.conftest import REALM_ID


@dataclass
class DealScenario:
    deal_id: str
    contact_id: str
    line_item_ids: list
    widget_id: str  # QuickBooks Item ids
    service_id: str


DEFAULT_LINES = [
    {"name": "Widget", "hs_sku": "W-1", "quantity": "2", "price": "100", "amount": "200", "hs_product_id": "501"},
    {"name": "setup SERVICE", "quantity": "1", "price": "250", "amount": "250", "hs_product_id": "502"},
]


def seed_products(fake_quickbooks) -> tuple[str, str]:
    """QuickBooks Items 'Widget' (SKU W-1) and 'Setup service': the ids of both."""
    company = fake_quickbooks.company(REALM_ID)
    income = min(company.all("Account"), key=lambda a: int(a["Id"]))["Id"]
    widget = company.add_item(
        Name="Widget", Sku="W-1", Type="NonInventory", UnitPrice=100, IncomeAccountRef={"value": income}
    )
    service = company.add_item(Name="Setup service", Type="Service", UnitPrice=250, IncomeAccountRef={"value": income})
    return str(widget["Id"]), str(service["Id"])


def add_line_items(hubspot_portal, object_type: str, object_id, lines) -> list:
    line_item_ids = []
    for properties in lines:
        line_id = hubspot_portal.add("line_items", properties)
        hubspot_portal.associate(object_type, object_id, "line_items", line_id)
        line_item_ids.append(line_id)
    return line_item_ids


def seed_deal(
    hubspot_portal, fake_quickbooks, *, email="ann.lee@acme.test", firstname="Ann", lastname="Lee", lines=None
) -> DealScenario:
    widget_id, service_id = seed_products(fake_quickbooks)
    contact_id = hubspot_portal.add("contacts", {"email": email, "firstname": firstname, "lastname": lastname})
    deal_id = hubspot_portal.add("deals", {"dealname": "Acme rollout", "amount": "450", "closedate": "2026-11-30"})
    hubspot_portal.associate("deals", deal_id, "contacts", contact_id)
    line_item_ids = add_line_items(hubspot_portal, "deals", deal_id, DEFAULT_LINES if lines is None else lines)
    return DealScenario(str(deal_id), str(contact_id), line_item_ids, widget_id, service_id)


def configure(app, *, portal_id=None, realm_id=REALM_ID, company=None, **settings):
    """Store portal settings (and, with company={...}, the QuickBooks company's own), as the CLI would."""
    from actions.settings import parse_setting
    from app.extensions import db
    from app.storage.connections import get_connection, get_portal
    from tests.conftest import PORTAL_ID

    def parsed(values):
        return {
            key: parse_setting(key, value if isinstance(value, str) else json.dumps(value))
            for key, value in values.items()
        }

    with app.app_context():
        portal = get_portal(db.session, portal_id or PORTAL_ID)
        portal.settings = {**(portal.settings or {}), **parsed(settings)}
        if company:
            connection = get_connection(db.session, portal_id=portal.id, realm_id=realm_id)
            connection.settings = {**(connection.settings or {}), **parsed(company)}
        db.session.commit()


def stored_executions(app):
    from sqlalchemy import select

    from app.extensions import db
    from app.storage.models import Execution

    with app.app_context():
        db.session.expire_all()
        return list(db.session.scalars(select(Execution).order_by(Execution.id)))


def quickbooks_calls(fake_quickbooks, realm_id=REALM_ID) -> list[str]:
    """The company API requests the fake received, as 'METHOD /path' (queries and batches with their SQL)."""
    prefix = f"/v3/company/{realm_id}"
    calls = []
    for request in fake_quickbooks.requests:
        if not request.path.startswith(prefix):
            continue
        calls.append(f"{request.method} {request.path[len(prefix) :]}")
    return calls


def add_contact(hubspot_portal, deal_id, *, object_type="deals", type_id=None, label=None, **properties) -> str:
    contact_id = hubspot_portal.add("contacts", properties)
    hubspot_portal.associate(object_type, deal_id, "contacts", contact_id, type_id=type_id, label=label)
    return str(contact_id)


def seed_quote(hubspot_portal, fake_quickbooks, *, quote_properties=None, lines=None) -> DealScenario:
    """A quote with the same two products as seed_deal's deal, its line items associated with the quote."""
    widget_id, service_id = seed_products(fake_quickbooks)
    quote_id = hubspot_portal.add(
        "quotes",
        {
            "hs_title": "Acme quote",
            "hs_quote_amount": "450",
            "hs_quote_number": "Q-2026-17",
            **(quote_properties or {}),
        },
    )
    line_item_ids = add_line_items(hubspot_portal, "quotes", quote_id, DEFAULT_LINES if lines is None else lines)
    return DealScenario(str(quote_id), "", line_item_ids, widget_id, service_id)


@dataclass
class PaymentScenario:
    payment_id: str
    contact_id: str
    line_item_ids: list
    widget_id: str  # QuickBooks Item ids
    service_id: str


PAYMENT_PROPERTIES = {
    "hs_initial_amount": "450",
    "hs_currency_code": "USD",
    "hs_customer_email": "ann.lee@acme.test",
    "hs_fees_amount": "13.35",
    "hs_refunds_amount": "0",
    "hs_latest_status": "succeeded",
    "hs_payment_source_app": "SALES_CHECKOUT",
    "hs_initiated_date": "2026-11-28T15:04:05Z",
    "hs_payout_date": "2026-11-30",
    "hs_reference_number": "HSP-7F3K2",
    "hs_payment_method_type": "card",
    "hs_processor_type": "hs_payments",
}


def seed_payment(
    hubspot_portal, fake_quickbooks, *, payment_properties=None, lines=None, contact=True, email="ann.lee@acme.test"
) -> PaymentScenario:
    """A HubSpot payment (commerce_payments) of 450 for seed_deal's two products, paid by card by Ann Lee.

    contact=False leaves the payment without an associated contact (only its hs_customer_email).
    """
    widget_id, service_id = seed_products(fake_quickbooks)
    payment_id = hubspot_portal.add(
        "commerce_payments", {**PAYMENT_PROPERTIES, "hs_customer_email": email, **(payment_properties or {})}
    )
    contact_id = ""
    if contact:
        contact_id = hubspot_portal.add("contacts", {"email": email, "firstname": "Ann", "lastname": "Lee"})
        hubspot_portal.associate("commerce_payments", payment_id, "contacts", contact_id)  # type 387
    line_item_ids = add_line_items(
        hubspot_portal, "commerce_payments", payment_id, DEFAULT_LINES if lines is None else lines
    )  # type 395
    return PaymentScenario(str(payment_id), str(contact_id), line_item_ids, widget_id, service_id)


def account_id(books, name: str) -> str:
    """The id of one of the fake company's accounts (Checking, Undeposited Funds, Bank Charges, Mastercard...)."""
    return str(books.find("Account", Name=name)["Id"])


# Tax codes every fake company outside the US has: its standard rate, and one for untaxed lines.
STANDARD_TAX = {"GB": ("20", "20.0% S"), "CA": ("13", "HST ON"), "AU": ("10", "GST")}
UNTAXED_TAX_CODE = {"GB": "No VAT", "CA": "Out of Scope", "AU": "GST free"}


def map_standard_tax_codes(app, books) -> dict:
    """Map the company's standard rate and its untaxed code, as an admin would with `flask settings set`.

    Answers the company settings stored ({} for a US company, which needs none)."""
    if books.country == "US":
        return {}
    rate, name = STANDARD_TAX[books.country]
    settings = {
        "tax_codes": {rate: str(books.tax_code_named(name)["Id"])},
        "default_tax_code": str(books.tax_code_named(UNTAXED_TAX_CODE[books.country])["Id"]),
    }
    configure(app, company=settings)
    return settings


def deliver_at_once(signed_post, path: str, body: bytes, times: int) -> list[int]:
    """The same signed delivery `times` times, all released at the same moment (HubSpot retrying while the first
    is still being answered): the status codes."""
    start = threading.Barrier(times)
    statuses = []

    def deliver():
        start.wait()
        statuses.append(signed_post(path, body).status_code)

    threads = [threading.Thread(target=deliver) for _ in range(times)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses
