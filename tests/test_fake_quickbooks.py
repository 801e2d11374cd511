"""Tests of the fake QuickBooks server, driven by the real python-quickbooks and intuit-oauth clients.

If the unmodified libraries work against the fake, the app's code (built on them) can trust it; and
every rule asserted here is one QBO enforces, so the app's tests see the failures production would.
"""

import json
import re
import threading
import time
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from intuitlib.client import AuthClient
from intuitlib.enums import Scopes
from intuitlib.exceptions import AuthClientError
from quickbooks import QuickBooks
from quickbooks.batch import batch_create
from quickbooks.exceptions import (
    AuthorizationException,
    GeneralException,
    ObjectNotFoundException,
    QuickbooksException,
    ValidationException,
)
from quickbooks.objects.base import EmailAddress, Ref
from quickbooks.objects.company_info import CompanyInfo
from quickbooks.objects.companycurrency import CompanyCurrency
from quickbooks.objects.customer import Customer
from quickbooks.objects.detailline import (
    AccountBasedExpenseLine,
    AccountBasedExpenseLineDetail,
    SalesItemLine,
    SalesItemLineDetail,
)
from quickbooks.objects.invoice import Invoice
from quickbooks.objects.item import Item
from quickbooks.objects.payment import Payment, PaymentLine
from quickbooks.objects.preferences import Preferences
from quickbooks.objects.purchase import Purchase
from quickbooks.objects.taxcode import TaxCode
from quickbooks.objects.taxrate import TaxRate
from quickbooks.objects.vendor import Vendor

from tests.fakes.quickbooks import FakeQuickBooks, QboFault, QueryParser

REALM = "9130350000000001"
REDIRECT_URI = "https://qbo-actions.test/oauth/quickbooks/callback"


@pytest.fixture(autouse=True)
def _insecure_transport_allowed(monkeypatch):
    # requests-oauthlib (inside python-quickbooks) refuses plain http unless told it is a local test.
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")


@pytest.fixture
def fake():
    with FakeQuickBooks() as server:
        server.add_company(REALM)
        yield server


@pytest.fixture
def company(fake):
    return fake.company(REALM)


def connect(fake) -> AuthClient:
    """The consent flow as the app runs it: authorize URL -> redirect with code -> token exchange."""
    auth_client = AuthClient(fake.client_id, fake.client_secret, REDIRECT_URI, environment=fake.discovery_url)
    url = auth_client.get_authorization_url([Scopes.ACCOUNTING], state_token="state-123")
    redirect = requests.get(url, allow_redirects=False)
    assert redirect.status_code == 302
    callback = parse_qs(urlsplit(redirect.headers["Location"]).query)
    assert callback["state"] == ["state-123"]
    auth_client.get_bearer_token(callback["code"][0], realm_id=callback["realmId"][0])
    return auth_client


def client_for(fake, auth_client) -> QuickBooks:
    qb = QuickBooks(
        auth_client=auth_client,
        refresh_token=auth_client.refresh_token,
        company_id=auth_client.realm_id,
        minorversion=75,
    )
    qb.api_url_v3 = fake.api_base
    qb.sandbox = False
    return qb


@pytest.fixture
def auth_client(fake):
    return connect(fake)


@pytest.fixture
def qb(fake, auth_client):
    return client_for(fake, auth_client)


@pytest.fixture
def customer(company):
    return company.add_customer(DisplayName="Acme Corp", PrimaryEmailAddr="ap@acme.test")


@pytest.fixture
def item(company):
    return company.add_item(Name="Consulting", Sku="CONS-1")


def ref(value) -> Ref:
    reference = Ref()
    reference.value = value
    return reference


def new_invoice(
    customer_id, item_id, amount=100, *, qty=None, unit_price=None, doc_number=None, service_date=None
) -> Invoice:
    """An invoice built the way python-quickbooks users build one (its empty defaults included)."""
    line = SalesItemLine()
    line.Amount = amount
    line.SalesItemLineDetail = SalesItemLineDetail()
    line.SalesItemLineDetail.ItemRef = ref(item_id)
    if qty is not None:
        line.SalesItemLineDetail.Qty = qty
    if unit_price is not None:
        line.SalesItemLineDetail.UnitPrice = unit_price
    if service_date is not None:
        line.SalesItemLineDetail.ServiceDate = service_date
    invoice = Invoice()
    invoice.CustomerRef = ref(customer_id)
    invoice.Line.append(line)
    if doc_number is not None:
        invoice.DocNumber = doc_number
    return invoice


def new_customer(display_name, **fields) -> Customer:
    customer = Customer()
    customer.DisplayName = display_name
    for key, value in fields.items():
        setattr(customer, key, value)
    return customer


# --- OAuth ----------------------------------------------------------------------------------------


def test_consent_flow_yields_tokens_for_the_company(fake, auth_client):
    assert auth_client.realm_id == REALM
    assert auth_client.access_token and auth_client.refresh_token
    assert auth_client.expires_in == 3600
    assert auth_client.x_refresh_token_expires_in == 8726400


def test_authorization_code_is_single_use_and_client_secret_is_checked(fake):
    auth_client = AuthClient(fake.client_id, fake.client_secret, REDIRECT_URI, environment=fake.discovery_url)
    redirect = requests.get(auth_client.get_authorization_url([Scopes.ACCOUNTING]), allow_redirects=False)
    code = parse_qs(urlsplit(redirect.headers["Location"]).query)["code"][0]
    auth_client.get_bearer_token(code, realm_id=REALM)

    with pytest.raises(AuthClientError) as reused:
        auth_client.get_bearer_token(code, realm_id=REALM)
    assert reused.value.status_code == 400
    assert json.loads(reused.value.content)["error"] == "invalid_grant"

    wrong_secret = AuthClient(fake.client_id, "not-the-secret", REDIRECT_URI, environment=fake.discovery_url)
    with pytest.raises(AuthClientError) as rejected:
        wrong_secret.refresh(refresh_token=auth_client.refresh_token)
    assert rejected.value.status_code == 401
    assert json.loads(rejected.value.content) == {"error": "invalid_client"}


def test_authorize_requires_the_accounting_scope(fake):
    auth_client = AuthClient(fake.client_id, fake.client_secret, REDIRECT_URI, environment=fake.discovery_url)
    url = auth_client.get_authorization_url([Scopes.OPENID])
    assert requests.get(url, allow_redirects=False).status_code == 400


def test_refresh_rotates_and_a_revoked_refresh_token_is_invalid_grant(fake, auth_client):
    first_refresh_token = auth_client.refresh_token
    auth_client.refresh()
    assert auth_client.refresh_token != first_refresh_token
    assert fake.refresh_count == 1

    auth_client.refresh(refresh_token=first_refresh_token)  # the old one keeps working for a while
    fake.revoke_refresh_token(first_refresh_token)
    with pytest.raises(AuthClientError) as error:
        auth_client.refresh(refresh_token=first_refresh_token)
    assert error.value.status_code == 400
    assert json.loads(error.value.content) == {
        "error": "invalid_grant",
        "error_description": "Incorrect or invalid refresh token",
    }
    assert fake.refresh_count == 3


def test_expired_access_token_is_401(fake, auth_client, qb):
    fake.expire_access_token(auth_client.access_token)
    with pytest.raises(AuthorizationException) as error:
        Customer.all(qb=qb)
    assert error.value.error_code == 401
    fault = json.loads(error.value.detail)["fault"]
    assert fault["error"][0]["code"] == "3200"
    assert fault["error"][0]["detail"].startswith("Token expired")


def test_revoke_endpoint_disconnects_the_app(fake, auth_client, qb):
    assert auth_client.revoke()
    with pytest.raises(AuthorizationException):
        Customer.all(qb=qb)
    with pytest.raises(AuthClientError):
        auth_client.refresh()


def test_issued_tokens_work_for_their_realm_only(fake):
    other = fake.add_company("9130350000000002", name="Other Co")
    tokens = fake.issue_tokens(other.realm_id)
    headers = {"Authorization": f"Bearer {tokens['access_token']}", "Accept": "application/json"}
    assert requests.get(f"{fake.api_base}/company/{other.realm_id}/preferences", headers=headers).status_code == 200
    assert requests.get(f"{fake.api_base}/company/{REALM}/preferences", headers=headers).status_code == 401


# --- Customers and queries ------------------------------------------------------------------------


def test_create_and_query_customers(company, qb):
    created = new_customer("Adam's Candy Shop", PrimaryEmailAddr=EmailAddress()).save(qb=qb)
    assert created.Id and created.SyncToken == "0"
    company.add_customer(DisplayName="Retired Co", Active=False)
    company.add_customer(DisplayName="Bolt Ltd", GivenName="Bo")

    found = Customer.filter(DisplayName="adam's candy SHOP", qb=qb)  # python-quickbooks writes \' here
    assert [c.Id for c in found] == [created.Id]

    active_names = {c.DisplayName for c in Customer.all(qb=qb)}
    assert active_names == {"Adam's Candy Shop", "Bolt Ltd"}
    assert [c.DisplayName for c in Customer.where("Active = false", qb=qb)] == ["Retired Co"]
    assert len(Customer.where("Active IN (true, false)", qb=qb)) == 3

    chosen = Customer.choose(["bolt ltd", "Retired Co"], field="DisplayName", qb=qb)
    assert [c.DisplayName for c in chosen] == ["Bolt Ltd"]  # IN still hides inactive records
    assert [c.DisplayName for c in Customer.where("DisplayName LIKE '%candy%'", qb=qb)] == ["Adam's Candy Shop"]
    assert Customer.count("DisplayName LIKE 'B%'", qb=qb) == 1


def test_query_paging_ordering_and_empty_result(company, qb):
    for name in ("Charlie", "alpha", "Bravo"):
        company.add_customer(DisplayName=name)
    page = qb.query("SELECT * FROM Customer ORDERBY DisplayName DESC STARTPOSITION 2 MAXRESULTS 1")
    assert page["QueryResponse"]["startPosition"] == 2
    assert [c["DisplayName"] for c in page["QueryResponse"]["Customer"]] == ["Bravo"]
    assert qb.query("SELECT * FROM Customer WHERE DisplayName = 'nobody'")["QueryResponse"] == {}
    assert qb.query("SELECT COUNT(*) FROM Customer")["QueryResponse"] == {"totalCount": 3}
    items = qb.query("SELECT *, Sku FROM Item")["QueryResponse"]
    assert "Item" not in items  # the company starts without items


def test_customer_email_query_rules(company, customer, qb):
    found = qb.query("SELECT * FROM Customer WHERE PrimaryEmailAddr = 'AP@ACME.test'")
    assert [c["Id"] for c in found["QueryResponse"]["Customer"]] == [customer["Id"]]

    with pytest.raises(ValidationException) as nested:
        qb.query("SELECT * FROM Customer WHERE PrimaryEmailAddr.Address = 'ap@acme.test'")
    assert nested.value.error_code == 4001
    assert "property 'PrimaryEmailAddr.Address' is not queryable" in nested.value.detail

    with pytest.raises(ValidationException) as vendor:
        qb.query("SELECT * FROM Vendor WHERE PrimaryEmailAddr = 'ap@acme.test'")
    assert vendor.value.error_code == 4001


@pytest.mark.parametrize(
    "where",
    [
        "DisplayName = 'a' OR DisplayName = 'b'",
        "(DisplayName = 'a')",
        "DisplayName != 'a'",
    ],
)
def test_query_grammar_qbo_lacks_is_a_parse_error(qb, where):
    with pytest.raises(ValidationException) as error:
        Customer.where(where, qb=qb)
    assert error.value.error_code == 4000
    assert error.value.detail.startswith("QueryParserError: Encountered")


def test_or_parse_error_names_the_token(qb):
    with pytest.raises(ValidationException) as error:
        qb.query("SELECT * FROM Customer WHERE DisplayName = 'a' OR Active = true")
    assert '" <OR> "OR "" at line 1, column 48' in error.value.detail


def test_unknown_entity_is_invalid_query(qb):
    with pytest.raises(ValidationException) as error:
        qb.query("SELECT * FROM Widget")
    assert error.value.error_code == 4001


def test_get_query_and_backslash_escapes(fake, company, auth_client):
    company.add_item(Name=r"Cable \ 2m", Sku="C'2")
    response = requests.get(
        f"{fake.api_base}/company/{REALM}/query",
        params={"query": r"SELECT * FROM Item WHERE Sku IN ('c\'2', 'x') AND Name = 'cable \\ 2m'"},
        headers={"Authorization": f"Bearer {auth_client.access_token}"},
    )
    assert response.status_code == 200
    assert [i["Sku"] for i in response.json()["QueryResponse"]["Item"]] == ["C'2"]


def test_query_parser_reads_the_whole_language():
    query = QueryParser.parse(
        "select count(*) from Invoice where TxnDate >= '2025-01-01' and "
        "MetaData.LastUpdatedTime < '2025-02-01T00:00:00-08:00' and Balance > 0"
    )
    assert query.count and query.entity == "Invoice"
    assert [(c.field, c.operator) for c in query.conditions] == [
        ("TxnDate", ">="),
        ("MetaData.LastUpdatedTime", "<"),
        ("Balance", ">"),
    ]


# --- Names ----------------------------------------------------------------------------------------


def test_display_name_is_unique_across_customers_vendors_and_employees(company, qb):
    company.add_vendor(DisplayName="Globex")
    with pytest.raises(QuickbooksException) as error:
        new_customer("GLOBEX").save(qb=qb)
    assert error.value.error_code == 6240
    assert "Another customer, vendor or employee is already using this name" in error.value.detail

    company.add_customer(DisplayName="Sleeping Co", Active=False)
    vendor = Vendor()
    vendor.DisplayName = "sleeping co"
    with pytest.raises(QuickbooksException) as inactive:
        vendor.save(qb=qb)
    assert inactive.value.error_code == 6240


def test_display_name_built_from_name_parts_and_rules(qb):
    built = new_customer("", GivenName="Ann", FamilyName="Lee").save(qb=qb)
    assert built.DisplayName == "Ann Lee"
    with pytest.raises(QuickbooksException) as nameless:
        Customer().save(qb=qb)
    assert nameless.value.error_code == 6080
    with pytest.raises(QuickbooksException) as colon:
        new_customer("Acme: East").save(qb=qb)
    assert colon.value.error_code == 6000 and "colon" in colon.value.detail


def test_full_update_checks_sync_token(company, customer, qb):
    stale = Customer.get(customer["Id"], qb=qb)
    company.patch("Customer", customer["Id"], CompanyName="Changed in QBO")
    stale.CompanyName = "Ours"
    with pytest.raises(QuickbooksException) as error:
        stale.save(qb=qb)
    assert error.value.error_code == 5010

    fresh = Customer.get(customer["Id"], qb=qb)
    fresh.CompanyName = "Ours"
    saved = fresh.save(qb=qb)
    assert saved.SyncToken == "2"
    assert company.get("Customer", customer["Id"])["CompanyName"] == "Ours"


def test_reading_a_missing_record_is_610(qb):
    with pytest.raises(ObjectNotFoundException) as error:
        Customer.get("999", qb=qb)
    assert error.value.error_code == 610


# --- Invoices -------------------------------------------------------------------------------------


def test_invoice_create_derives_qbo_fields(company, customer, item, qb):
    company.today = lambda: date(2025, 1, 15)
    invoice = new_invoice(customer["Id"], item["Id"], 150, qty=1.5, unit_price=100)
    invoice.SalesTermRef = ref(company.find("Term", Name="Net 30")["Id"])
    saved = invoice.save(qb=qb)

    stored = company.get("Invoice", saved.Id)
    assert stored["DocNumber"] == "1001"
    assert stored["TxnDate"] == "2025-01-15" and stored["DueDate"] == "2025-02-14"
    assert stored["TotalAmt"] == 150.0 and stored["Balance"] == 150.0
    assert stored["CustomerRef"] == {"value": customer["Id"], "name": "Acme Corp"}
    assert [line["DetailType"] for line in stored["Line"]] == ["SalesItemLineDetail", "SubTotalLineDetail"]
    assert stored["Line"][0]["Id"] == "1"
    assert "ShipDate" not in stored  # python-quickbooks' "" means absent


def test_requestid_replays_the_first_response(company, customer, item, qb, fake):
    request_id = str(uuid.uuid4())
    first = new_invoice(customer["Id"], item["Id"]).save(qb=qb, request_id=request_id)
    second = new_invoice(customer["Id"], item["Id"], amount=999).save(qb=qb, request_id=request_id)
    assert first.Id == second.Id
    assert len(company.all("Invoice")) == 1
    assert len(fake.requests_to("POST", "/invoice")) == 2


def test_lost_response_then_replay_returns_the_committed_invoice(company, customer, item, qb, fake):
    fake.fail_next("POST /invoice", status=503, commit=True)
    request_id = str(uuid.uuid4())
    with pytest.raises(QuickbooksException) as lost:
        new_invoice(customer["Id"], item["Id"]).save(qb=qb, request_id=request_id)
    assert lost.value.error_code == 10000  # the HTML 503 page is not JSON
    assert len(company.all("Invoice")) == 1

    retried = new_invoice(customer["Id"], item["Id"]).save(qb=qb, request_id=request_id)
    assert retried.Id == company.all("Invoice")[0]["Id"]
    assert len(company.all("Invoice")) == 1


def test_injected_fault_without_commit_changes_nothing(company, customer, item, qb, fake):
    fake.fail_next("POST /invoice", status=400, code="6210", detail="Account Period Closed")
    with pytest.raises(QuickbooksException) as error:
        new_invoice(customer["Id"], item["Id"]).save(qb=qb)
    assert error.value.error_code == 6210
    assert company.all("Invoice") == []
    assert new_invoice(customer["Id"], item["Id"]).save(qb=qb).Id  # the rule was consumed


def test_amount_must_equal_qty_times_unit_price(customer, item, qb):
    with pytest.raises(QuickbooksException) as error:
        new_invoice(customer["Id"], item["Id"], 30, qty=3, unit_price=9.99).save(qb=qb)
    assert error.value.error_code == 6070
    assert new_invoice(customer["Id"], item["Id"], 29.97, qty=3, unit_price=9.99).save(qb=qb).Id


def test_duplicate_doc_number(company, customer, item, qb):
    first = new_invoice(customer["Id"], item["Id"], doc_number="INV-7").save(qb=qb)
    with pytest.raises(QuickbooksException) as error:
        new_invoice(customer["Id"], item["Id"], doc_number="inv-7").save(qb=qb)
    assert error.value.error_code == 6140
    assert f"DocNumber=inv-7 is assigned to TxnType=Invoice with TxnId={first.Id}" in error.value.detail
    with pytest.raises(QuickbooksException) as too_long:
        new_invoice(customer["Id"], item["Id"], doc_number="X" * 22).save(qb=qb)
    assert too_long.value.error_code == 6000


def test_custom_transaction_numbers_leave_doc_number_empty(company, customer, item, qb):
    company.set_pref("SalesFormsPrefs.CustomTxnNumbers", True)
    assert Preferences.get(qb=qb).SalesFormsPrefs.CustomTxnNumbers is True
    saved = new_invoice(customer["Id"], item["Id"]).save(qb=qb)
    assert "DocNumber" not in company.get("Invoice", saved.Id)
    auto = new_invoice(customer["Id"], item["Id"], doc_number="AUTO_GENERATE").save(qb=qb)
    assert auto.DocNumber == "1001"


def test_revenue_recognition_needs_service_dates(company, customer, item, qb):
    company.set_pref("ProductAndServicesPrefs.RevenueRecognition", True)
    with pytest.raises(QuickbooksException) as error:
        new_invoice(customer["Id"], item["Id"]).save(qb=qb)
    assert error.value.error_code == 6000
    assert error.value.message == "A business validation error has occurred while processing your request"
    assert error.value.detail == (
        "Business Validation Error: Enter a service date for the line for revenue recognition."
    )
    assert new_invoice(customer["Id"], item["Id"], service_date="2025-01-10").save(qb=qb).Id


def test_invalid_references_are_2500(company, customer, item, qb):
    company.patch("Customer", customer["Id"], Active=False)
    with pytest.raises(ValidationException) as inactive:
        new_invoice(customer["Id"], item["Id"]).save(qb=qb)
    assert inactive.value.error_code == 2500
    assert "has been made inactive" in inactive.value.detail

    other = company.add_customer(DisplayName="Live Co")
    with pytest.raises(ValidationException) as unknown_item:
        new_invoice(other["Id"], other["Id"]).save(qb=qb)  # a customer's id is not an item's
    assert unknown_item.value.error_code == 2500

    with pytest.raises(ValidationException) as missing:
        Invoice().save(qb=qb)
    assert missing.value.error_code == 2020


def test_invalid_reference_names_the_element(fake, company, customer, auth_client):
    body = {
        "CustomerRef": {"value": customer["Id"]},
        "Line": [
            {"DetailType": "SalesItemLineDetail", "Amount": 5, "SalesItemLineDetail": {"ItemRef": {"value": "424242"}}}
        ],
    }
    response = requests.post(
        f"{fake.api_base}/company/{REALM}/invoice",
        json=body,
        headers={"Authorization": f"Bearer {auth_client.access_token}"},
    )
    assert response.status_code == 400
    error = response.json()["Fault"]["Error"][0]
    assert (error["code"], error["element"]) == ("2500", "Line.SalesItemLineDetail.ItemRef")


def test_payment_reduces_invoice_balance(company, customer, item, qb):
    invoice = new_invoice(customer["Id"], item["Id"], 100).save(qb=qb)
    payment = Payment()
    payment.CustomerRef = ref(customer["Id"])
    payment.TotalAmt = 120
    line = PaymentLine()
    line.Amount = 100
    line.LinkedTxn.append(invoice.to_linked_txn())
    payment.Line.append(line)
    saved = payment.save(qb=qb)

    assert saved.UnappliedAmt == 20.0
    assert Invoice.get(invoice.Id, qb=qb).Balance == 0.0
    assert company.get("Invoice", invoice.Id)["SyncToken"] == "1"


def test_purchase_totals_its_lines(company, qb):
    vendor = company.add_vendor(DisplayName="Paper Supply")
    purchase = Purchase()
    purchase.PaymentType = "Cash"
    purchase.AccountRef = ref(company.find("Account", Name="Checking")["Id"])
    purchase.EntityRef = ref(vendor["Id"])
    for amount in (10, 32.5):
        line = AccountBasedExpenseLine()
        line.Amount = amount
        line.AccountBasedExpenseLineDetail = AccountBasedExpenseLineDetail()
        line.AccountBasedExpenseLineDetail.AccountRef = ref(company.find("Account", Name="Bank Charges")["Id"])
        purchase.Line.append(line)
    assert purchase.save(qb=qb).TotalAmt == 42.5

    purchase.PaymentType = "CreditCard"  # a credit-card expense cannot come out of Checking
    with pytest.raises(QuickbooksException) as error:
        purchase.save(qb=qb)
    assert error.value.error_code == 6000


# --- Throttling, batch, settings ------------------------------------------------------------------


def test_throttle_is_xml_and_python_quickbooks_cannot_read_it(fake, customer, qb):
    fake.throttle_next(retry_after=2)
    with pytest.raises(QuickbooksException) as error:
        Customer.all(qb=qb)
    assert error.value.error_code == 10000
    assert error.value.message.startswith("Error reading json response")
    assert 'code="3001"' in error.value.message
    assert len(Customer.all(qb=qb)) == 1


def test_batch_with_two_queries(company, item, qb):
    company.add_item(Name="Widget", Sku="W-1")
    body = {
        "BatchItemRequest": [
            {"bId": "q0", "Query": "SELECT * FROM Item WHERE Sku IN ('W-1', 'NOPE')"},
            {"bId": "q1", "Query": "SELECT * FROM Item WHERE Name IN ('consulting') OR Sku = 'x'"},
        ]
    }
    answers = {a["bId"]: a for a in qb.batch_operation(json.dumps(body))["BatchItemResponse"]}
    assert [i["Name"] for i in answers["q0"]["QueryResponse"]["Item"]] == ["Widget"]
    assert answers["q1"]["Fault"]["Error"][0]["code"] == "4000"  # per item: the batch itself succeeded


def test_batch_create_reports_faults_per_item(company, qb):
    company.add_customer(DisplayName="Taken")
    result = batch_create([new_customer("Fresh"), new_customer("taken")], qb=qb)
    assert [c.DisplayName for c in result.successes] == ["Fresh"]
    assert result.faults[0].Error[0].code == "6240"


def test_batch_over_30_items_is_rejected(qb):
    body = {"BatchItemRequest": [{"bId": str(n), "Query": "SELECT * FROM Term"} for n in range(31)]}
    with pytest.raises(GeneralException) as error:
        qb.batch_operation(json.dumps(body))
    assert error.value.error_code == 1040


def test_item_rules(company, qb):
    item = Item()
    item.Name = "Hosting"
    item.Type = "Service"
    with pytest.raises(ValidationException) as no_account:
        item.save(qb=qb)
    assert no_account.value.error_code == 2020
    item.IncomeAccountRef = ref(company.find("Account", Name="Services")["Id"])
    assert item.save(qb=qb).Id

    duplicate = Item()
    duplicate.Name, duplicate.Type, duplicate.IncomeAccountRef = "HOSTING", "Service", item.IncomeAccountRef
    with pytest.raises(QuickbooksException) as error:
        duplicate.save(qb=qb)
    assert error.value.error_code == 6240


def test_preferences_and_company_info(fake, qb):
    fake.company(REALM).set_pref("MultiCurrencyEnabled", True)
    preferences = Preferences.get(qb=qb)
    assert preferences.CurrencyPrefs.MultiCurrencyEnabled is True
    assert preferences.ProductAndServicesPrefs.RevenueRecognition is False
    info = CompanyInfo.get(REALM, qb=qb)
    assert (info.CompanyName, info.Country) == ("Sandbox Company", "US")


def test_multicurrency_requires_currency_on_sales_documents(company, customer, item, qb):
    company.set_pref("CurrencyPrefs.MultiCurrencyEnabled", True)
    with pytest.raises(ValidationException) as error:
        new_invoice(customer["Id"], item["Id"]).save(qb=qb)
    assert error.value.error_code == 2020 and "CurrencyRef" in error.value.detail


def test_requests_are_recorded(fake, customer, qb):
    fake.reset_requests()
    Customer.filter(DisplayName="Acme Corp", qb=qb)
    [query] = fake.requests_to("POST", "/query")
    assert query.body == "SELECT * FROM Customer WHERE DisplayName = 'Acme Corp'"
    assert query.query["minorversion"] == "75"
    assert query.header("Content-Type") == "application/text"


# --- Countries, tax codes and sales tax -----------------------------------------------------------

COUNTRY_REALMS = {"GB": "9130350000000044", "CA": "9130350000000124", "AU": "9130350000000036"}


class Api:
    """Raw JSON calls to one company, for asserting exact fault codes and elements."""

    def __init__(self, fake, realm_id):
        token = fake.issue_tokens(realm_id)["access_token"]
        self.base = f"{fake.api_base}/company/{realm_id}"
        self.headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    def post(self, entity, body, **params):
        return requests.post(
            f"{self.base}/{entity.lower()}", json=body, params={"minorversion": 75, **params}, headers=self.headers
        )

    def created(self, entity, body):
        response = self.post(entity, body)
        assert response.status_code == 200, response.text
        return response.json()[entity]

    def get(self, entity, entity_id):
        return requests.get(f"{self.base}/{entity.lower()}/{entity_id}", headers=self.headers)

    def query(self, sql):
        response = requests.get(f"{self.base}/query", params={"query": sql}, headers=self.headers)
        assert response.status_code == 200, response.text
        return response.json()["QueryResponse"]


def fault_of(response) -> dict:
    assert response.status_code == 400, response.text
    return response.json()["Fault"]["Error"][0]


def qb_client_for(fake, realm_id) -> QuickBooks:
    tokens = fake.issue_tokens(realm_id)
    auth_client = AuthClient(
        fake.client_id,
        fake.client_secret,
        REDIRECT_URI,
        environment=fake.discovery_url,
        access_token=tokens["access_token"],
        refresh_token=tokens["refresh_token"],
        realm_id=realm_id,
    )
    return client_for(fake, auth_client)


def sales_line(item_id, amount, tax_code=None, **detail) -> dict:
    line_detail = {"ItemRef": {"value": item_id}, **detail}
    if tax_code is not None:
        line_detail["TaxCodeRef"] = {"value": tax_code}
    return {"DetailType": "SalesItemLineDetail", "Amount": amount, "SalesItemLineDetail": line_detail}


@pytest.fixture
def uk(fake):
    return fake.add_company(COUNTRY_REALMS["GB"], name="Tea Ltd", country="GB")


@pytest.fixture
def uk_api(fake, uk):
    return Api(fake, uk.realm_id)


@pytest.fixture
def uk_customer(uk):
    return uk.add_customer(DisplayName="Crumpet & Co")


@pytest.fixture
def uk_item(uk):
    return uk.add_item(Name="Darjeeling")


def uk_code(uk, name) -> str:
    return uk.tax_code_named(name)["Id"]


EXPECTED_SEEDS = {
    "US": ("USD", True, ["TAX", "NON", "CustomSalesTax", "Automated Sales Tax"]),
    "GB": ("GBP", False, ["20.0% S", "5.0% R", "0.0% Z", "Exempt", "No VAT"]),
    "CA": ("CAD", False, ["HST ON", "GST", "Zero-rated", "Exempt", "Out of Scope"]),
    "AU": ("AUD", False, ["GST", "GST free", "Out of Scope"]),
}
SEEDED_RATES = {
    "GB": {"20.0% S": 20, "5.0% R": 5, "0.0% Z": 0, "Exempt": 0, "No VAT": None},
    "CA": {"HST ON": 13, "GST": 5, "Zero-rated": 0, "Exempt": 0, "Out of Scope": None},
    "AU": {"GST": 10, "GST free": 0, "Out of Scope": None},
}


@pytest.mark.parametrize("country", ["US", "GB", "CA", "AU"])
def test_each_country_is_seeded_with_its_currency_and_tax_set_up(fake, country):
    realm = COUNTRY_REALMS.get(country, "9130350000000999")
    fake.add_company(realm, name=f"{country} Co", country=country)
    qb = qb_client_for(fake, realm)
    currency, automated_sales_tax, code_names = EXPECTED_SEEDS[country]

    assert CompanyInfo.get(realm, qb=qb).Country == country
    preferences = Preferences.get(qb=qb)
    assert preferences.CurrencyPrefs.HomeCurrency.value == currency
    assert preferences.CurrencyPrefs.MultiCurrencyEnabled is False
    assert preferences.TaxPrefs.UsingSalesTax is True
    assert preferences.TaxPrefs.PartnerTaxEnabled is automated_sales_tax

    codes = TaxCode.all(qb=qb)
    assert sorted(code.Name for code in codes) == sorted(code_names)
    if country == "US":
        pseudo = {(c.Id, c.Taxable, c.TaxGroup) for c in codes if c.Id in ("TAX", "NON")}
        assert pseudo == {("TAX", True, False), ("NON", False, False)}
        return
    rates = {rate.Id: rate for rate in TaxRate.all(qb=qb)}
    for code in codes:
        details = code.SalesTaxRateList.TaxRateDetail
        expected = SEEDED_RATES[country][code.Name]
        assert code.Active is True and code.TaxGroup is True
        assert code.Taxable is (expected is not None)
        assert [rates[d.TaxRateRef.value].RateValue for d in details] == ([] if expected is None else [expected])
        assert [d.TaxRateRef.value for d in code.PurchaseTaxRateList.TaxRateDetail] == [
            d.TaxRateRef.value for d in details
        ]


def test_tax_code_and_rate_shapes_reads_and_queries(fake, uk, uk_api):
    standard = uk.tax_code_named("20.0% S")
    assert {key: standard[key] for key in ("Name", "Active", "Hidden", "Taxable", "TaxGroup")} == {
        "Name": "20.0% S",
        "Active": True,
        "Hidden": False,
        "Taxable": True,
        "TaxGroup": True,
    }
    [detail] = standard["SalesTaxRateList"]["TaxRateDetail"]
    assert (detail["TaxTypeApplicable"], detail["TaxOrder"]) == ("TaxOnAmount", 0)
    rate = uk_api.get("TaxRate", detail["TaxRateRef"]["value"]).json()["TaxRate"]
    assert (rate["Name"], rate["RateValue"], rate["Active"], rate["DisplayType"]) == ("20.0% S", 20, True, "ReadOnly")
    assert rate["SpecialTaxType"] == "NONE" and rate["EffectiveTaxRate"][0]["RateValue"] == 20
    agency = uk_api.get("TaxAgency", rate["AgencyRef"]["value"]).json()["TaxAgency"]
    assert agency["DisplayName"] == "HM Revenue & Customs"
    assert uk_api.get("TaxCode", standard["Id"]).json()["TaxCode"]["Name"] == "20.0% S"
    assert uk_api.get("TaxCode", "TAX").status_code == 400  # 610: no pseudo-codes outside the US

    by_name = uk_api.query("SELECT * FROM TaxCode WHERE Name = '20.0% s'")["TaxCode"]
    assert [c["Id"] for c in by_name] == [standard["Id"]]
    ids = [uk_code(uk, "Exempt"), uk_code(uk, "No VAT")]
    assert [
        c["Name"] for c in uk_api.query(f"SELECT * FROM TaxCode WHERE Id IN ('{ids[0]}', '{ids[1]}')")["TaxCode"]
    ] == [
        "Exempt",
        "No VAT",
    ]
    assert [c["Name"] for c in uk_api.query("SELECT * FROM TaxCode WHERE Taxable = false")["TaxCode"]] == ["No VAT"]
    zero_rates = uk_api.query("SELECT * FROM TaxRate WHERE RateValue = 0")["TaxRate"]
    assert {r["Name"] for r in zero_rates} == {"0.0% Z", "Exempt"}
    assert {r["SpecialTaxType"] for r in zero_rates} == {"ZERO_RATE"}

    # QBO creates tax codes through its tax service: the fake refuses, loudly, to write them here.
    assert uk_api.post("TaxCode", {"Name": "Mine"}).status_code == 500


def test_inactive_tax_codes_are_listed_and_refused_on_lines(uk, uk_api, uk_customer, uk_item):
    group = uk.add_tax_code("Import VAT", [5, "2.5"])
    assert [d["TaxRateRef"]["name"] for d in group["SalesTaxRateList"]["TaxRateDetail"]] == [
        "Import VAT 5%",
        "Import VAT 2.5%",
    ]
    uk.patch("TaxCode", group["Id"], Active=False)
    assert "Import VAT" in {c["Name"] for c in uk_api.query("SELECT * FROM TaxCode")["TaxCode"]}
    active = uk_api.query("SELECT * FROM TaxCode WHERE Active = true")["TaxCode"]
    assert "Import VAT" not in {c["Name"] for c in active}

    response = uk_api.post(
        "Invoice", {"CustomerRef": {"value": uk_customer["Id"]}, "Line": [sales_line(uk_item["Id"], 10, group["Id"])]}
    )
    error = fault_of(response)
    assert (error["code"], error["element"]) == ("2500", "Line.SalesItemLineDetail.TaxCodeRef")


def test_uk_invoice_computes_tax_per_rate(fake, uk, uk_customer, uk_item):
    qb = qb_client_for(fake, uk.realm_id)
    invoice = Invoice()
    invoice.CustomerRef = ref(uk_customer["Id"])
    for amount, code in ((10.03, "20.0% S"), (10.03, "20.0% S"), (50, "0.0% Z"), (7, "No VAT")):
        line = SalesItemLine()
        line.Amount = amount
        line.SalesItemLineDetail = SalesItemLineDetail()
        line.SalesItemLineDetail.ItemRef = ref(uk_item["Id"])
        line.SalesItemLineDetail.TaxCodeRef = ref(uk_code(uk, code))
        invoice.Line.append(line)
    saved = invoice.save(qb=qb)

    standard_rate = uk.tax_code_named("20.0% S")["SalesTaxRateList"]["TaxRateDetail"][0]["TaxRateRef"]["value"]
    zero_rate = uk.tax_code_named("0.0% Z")["SalesTaxRateList"]["TaxRateDetail"][0]["TaxRateRef"]["value"]
    stored = uk.get("Invoice", saved.Id)
    assert stored["GlobalTaxCalculation"] == "TaxExcluded"
    # One tax line per rate, rounded once on the rate's total (20.06 x 20% = 4.012 -> 4.01, not 2 x 2.01).
    assert stored["TxnTaxDetail"] == {
        "TotalTax": 4.01,
        "TaxLine": [
            {
                "Amount": 4.01,
                "DetailType": "TaxLineDetail",
                "TaxLineDetail": {
                    "TaxRateRef": {"value": standard_rate},
                    "PercentBased": True,
                    "TaxPercent": 20,
                    "NetAmountTaxable": 20.06,
                },
            },
            {
                "Amount": 0.0,
                "DetailType": "TaxLineDetail",
                "TaxLineDetail": {
                    "TaxRateRef": {"value": zero_rate},
                    "PercentBased": True,
                    "TaxPercent": 0,
                    "NetAmountTaxable": 50.0,
                },
            },
        ],
    }
    assert [line["Amount"] for line in stored["Line"]] == [10.03, 10.03, 50.0, 7.0, 77.06]  # net; subtotal net
    assert stored["TotalAmt"] == 81.07 and stored["Balance"] == 81.07
    assert saved.TxnTaxDetail.TotalTax == 4.01  # python-quickbooks reads it
    assert saved.TxnTaxDetail.TaxLine[0].TaxLineDetail.TaxRateRef.value == standard_rate


def test_tax_inclusive_keeps_lines_net_and_stores_the_gross_amount(uk_api, uk, uk_customer, uk_item):
    line = sales_line(uk_item["Id"], 100, uk_code(uk, "20.0% S"), Qty=2, UnitPrice=50, TaxInclusiveAmt=120)
    stored = uk_api.created(
        "SalesReceipt",
        {"CustomerRef": {"value": uk_customer["Id"]}, "GlobalTaxCalculation": "TaxInclusive", "Line": [line]},
    )
    assert stored["GlobalTaxCalculation"] == "TaxInclusive"
    assert stored["Line"][0]["Amount"] == 100.0
    assert stored["Line"][0]["SalesItemLineDetail"]["TaxInclusiveAmt"] == 120.0
    assert stored["TxnTaxDetail"]["TotalTax"] == 20.0
    assert stored["TotalAmt"] == 120.0

    error = fault_of(
        uk_api.post(
            "Invoice",
            {"CustomerRef": {"value": uk_customer["Id"]}, "GlobalTaxCalculation": "Gross", "Line": [line]},
        )
    )
    assert (error["code"], error["element"]) == ("2170", "GlobalTaxCalculation")


@pytest.mark.parametrize("entity", ["Invoice", "Estimate", "SalesReceipt", "CreditMemo", "RefundReceipt"])
def test_non_us_sales_lines_need_a_tax_code(uk, uk_api, uk_customer, uk_item, entity):
    body = {"CustomerRef": {"value": uk_customer["Id"]}, "Line": [sales_line(uk_item["Id"], 10)]}
    if entity == "RefundReceipt":
        body["DepositToAccountRef"] = {"value": uk.find("Account", Name="Checking")["Id"]}
    error = fault_of(uk_api.post(entity, body))
    assert error == {
        "Message": "A business validation error has occurred while processing your request",
        "Detail": "Business Validation Error: Make sure all your transactions have a VAT rate before you save.",
        "code": "6000",
        "element": "",
    }
    body["Line"] = [sales_line(uk_item["Id"], 10, uk_code(uk, "Exempt"))]
    assert uk_api.created(entity, body)["TotalAmt"] == 10.0


@pytest.mark.parametrize(("country", "words"), [("CA", "a GST/HST rate"), ("AU", "a GST rate")])
def test_missing_tax_code_fault_names_the_country_tax(fake, country, words):
    company = fake.add_company(COUNTRY_REALMS[country], name="Maple", country=country)
    api = Api(fake, company.realm_id)
    customer, item = company.add_customer(DisplayName="Moose"), company.add_item(Name="Syrup")
    error = fault_of(
        api.post("Invoice", {"CustomerRef": {"value": customer["Id"]}, "Line": [sales_line(item["Id"], 5)]})
    )
    assert error["code"] == "6000"
    assert (
        error["Detail"] == f"Business Validation Error: Make sure all your transactions have {words} before you save."
    )
    hst = company.tax_code_named("HST ON" if country == "CA" else "GST")["Id"]
    invoice = api.created(
        "Invoice", {"CustomerRef": {"value": customer["Id"]}, "Line": [sales_line(item["Id"], 5, hst)]}
    )
    assert invoice["TotalAmt"] == (5.65 if country == "CA" else 5.5)


@pytest.mark.parametrize("code", ["TAX", "NON", "424242"])
def test_non_us_lines_refuse_us_pseudo_codes_and_unknown_codes(uk_api, uk_customer, uk_item, code):
    body = {"CustomerRef": {"value": uk_customer["Id"]}, "Line": [sales_line(uk_item["Id"], 10, code)]}
    error = fault_of(uk_api.post("Invoice", body))
    assert (error["code"], error["Message"], error["element"]) == (
        "2500",
        "Invalid Reference Id",
        "Line.SalesItemLineDetail.TaxCodeRef",
    )


def test_discount_lines_reduce_the_taxable_amounts(uk_api, uk, uk_customer, uk_item):
    lines = [
        sales_line(uk_item["Id"], 100, uk_code(uk, "20.0% S")),
        {"DetailType": "DiscountLineDetail", "Amount": 10, "DiscountLineDetail": {"PercentBased": False}},
    ]
    stored = uk_api.created("Invoice", {"CustomerRef": {"value": uk_customer["Id"]}, "Line": lines})
    assert stored["TxnTaxDetail"]["TaxLine"][0]["TaxLineDetail"]["NetAmountTaxable"] == 90.0
    assert (stored["TxnTaxDetail"]["TotalTax"], stored["TotalAmt"]) == (18.0, 108.0)


def test_non_us_expenses_are_taxed_with_purchase_rates(uk, uk_api):
    checking, fees = uk.find("Account", Name="Checking"), uk.find("Account", Name="Bank Charges")
    line = {
        "DetailType": "AccountBasedExpenseLineDetail",
        "Amount": 40,
        "AccountBasedExpenseLineDetail": {"AccountRef": {"value": fees["Id"]}},
    }
    body = {"PaymentType": "Cash", "AccountRef": {"value": checking["Id"]}, "Line": [line]}
    assert fault_of(uk_api.post("Purchase", body))["Detail"].endswith("have a VAT rate before you save.")
    line["AccountBasedExpenseLineDetail"]["TaxCodeRef"] = {"value": uk_code(uk, "20.0% S")}
    purchase = uk_api.created("Purchase", body)
    assert (purchase["TxnTaxDetail"]["TotalTax"], purchase["TotalAmt"]) == (8.0, 48.0)
    line["AccountBasedExpenseLineDetail"]["TaxCodeRef"] = {"value": uk_code(uk, "No VAT")}
    assert uk_api.created("Purchase", body)["TotalAmt"] == 40.0


def test_us_automated_sales_tax_taxes_tax_lines_at_the_company_rate(fake, company, customer, item):
    company.ast_rate = Decimal("7")
    api = Api(fake, REALM)
    body = {
        "CustomerRef": {"value": customer["Id"]},
        "GlobalTaxCalculation": "TaxInclusive",  # ignored under automated sales tax
        "TxnTaxDetail": {"TotalTax": 99},  # QBO computes the tax itself
        "Line": [sales_line(item["Id"], 100.10, "TAX"), sales_line(item["Id"], 50, "NON"), sales_line(item["Id"], 1)],
    }
    invoice = api.created("Invoice", body)
    rate = company.find("TaxRate", Name="Automated Sales Tax")
    assert rate["RateValue"] == 7
    assert invoice["TxnTaxDetail"] == {
        "TotalTax": 7.01,
        "TxnTaxCodeRef": {"value": company.find("TaxCode", Name="Automated Sales Tax")["Id"]},
        "TaxLine": [
            {
                "Amount": 7.01,
                "DetailType": "TaxLineDetail",
                "TaxLineDetail": {
                    "TaxRateRef": {"value": rate["Id"]},
                    "PercentBased": True,
                    "TaxPercent": 7,
                    "NetAmountTaxable": 100.1,
                },
            }
        ],
    }
    assert "GlobalTaxCalculation" not in invoice
    assert invoice["Line"][2]["SalesItemLineDetail"]["TaxCodeRef"] == {"value": "NON"}
    assert invoice["TotalAmt"] == 158.11 and invoice["Balance"] == 158.11

    untaxed = api.created("Invoice", {"CustomerRef": {"value": customer["Id"]}, "Line": [sales_line(item["Id"], 80)]})
    assert (untaxed["TxnTaxDetail"], untaxed["TotalAmt"]) == ({"TotalTax": 0.0}, 80.0)

    error = fault_of(
        api.post("Invoice", {"CustomerRef": {"value": customer["Id"]}, "Line": [sales_line(item["Id"], 1, rate["Id"])]})
    )
    assert error["code"] == "6100"


def test_us_pseudo_tax_codes_are_queryable(company, qb):
    codes = {code.Id: code for code in TaxCode.where("Active = true", qb=qb)}
    assert {"TAX", "NON", "CustomSalesTax"} <= set(codes)
    assert (codes["NON"].Taxable, codes["NON"].TaxGroup) == (False, False)
    assert TaxCode.get("TAX", qb=qb).Name == "TAX"


def test_items_carry_taxable(company, qb):
    assert company.add_item(Name="Plain")["Taxable"] is False
    assert company.add_item(Name="Taxed", Taxable=True)["Taxable"] is True
    assert [i.Name for i in Item.where("Name = 'Taxed'", qb=qb) if i.Taxable] == ["Taxed"]
    with pytest.raises(QboFault) as bad_code:
        company.add_item(Name="Odd", SalesTaxCodeRef="424242")
    assert bad_code.value.code == "2500"


# --- Currencies -----------------------------------------------------------------------------------


@pytest.fixture
def multicurrency(uk):
    uk.enable_currency("EUR")
    uk.exchange_rates = {"EUR": Decimal("0.85")}
    return uk


def zero_rated_invoice(customer_id, item_id, uk, amount=100, **fields) -> dict:
    return {
        "CustomerRef": {"value": customer_id},
        "Line": [sales_line(item_id, amount, uk_code(uk, "0.0% Z"))],
        **fields,
    }


def test_company_currency_rows_and_queries(fake, multicurrency, uk_api):
    uk = multicurrency
    assert uk.pref("CurrencyPrefs.MultiCurrencyEnabled") is True  # enable_currency turns it on
    uk.enable_currency("USD", active=False)
    rows = uk_api.query("SELECT * FROM CompanyCurrency")["CompanyCurrency"]
    assert [(r["Code"], r["Name"], r["Active"]) for r in rows] == [
        ("EUR", "Euro", True),
        ("USD", "United States Dollar", False),
    ]  # the home currency GBP is not a row
    active = CompanyCurrency.where("Active = true", qb=qb_client_for(fake, uk.realm_id))
    assert [(c.Code, c.Name) for c in active] == [("EUR", "Euro")]
    assert uk_api.get("CompanyCurrency", rows[0]["Id"]).json()["CompanyCurrency"]["Code"] == "EUR"
    assert uk_api.query("SELECT * FROM CompanyCurrency WHERE Code = 'eur'")["CompanyCurrency"][0]["Id"] == rows[0]["Id"]
    with pytest.raises(ValueError):
        uk.enable_currency("GBP")


def test_foreign_currency_needs_multicurrency(uk, uk_api, uk_customer, uk_item):
    euro = {"CurrencyRef": {"value": "EUR"}}
    for entity, body in (
        ("Customer", {"DisplayName": "Euro Co", **euro}),
        ("Invoice", zero_rated_invoice(uk_customer["Id"], uk_item["Id"], uk, **euro)),
    ):
        error = fault_of(uk_api.post(entity, body))
        assert (error["code"], error["element"]) == ("6000", "CurrencyRef")
        assert "Multicurrency is turned off" in error["Detail"]
    # The home currency, named or not, is always fine; without multicurrency nothing carries an exchange rate.
    invoice = uk_api.created(
        "Invoice",
        zero_rated_invoice(uk_customer["Id"], uk_item["Id"], uk, CurrencyRef={"value": "GBP"}, ExchangeRate=1),
    )
    assert invoice["CurrencyRef"] == {"value": "GBP", "name": "British Pound Sterling"}
    assert "ExchangeRate" not in invoice and "HomeTotalAmt" not in invoice


def test_a_customer_currency_is_set_once_and_may_add_the_currency(multicurrency, uk_api):
    uk = multicurrency
    customer = uk_api.created("Customer", {"DisplayName": "Swiss AG", "CurrencyRef": {"value": "CHF"}})
    assert customer["CurrencyRef"] == {"value": "CHF", "name": "Swiss Franc"}
    assert uk.company_currency("CHF")["Active"] is True  # QBO adds a name's new currency to the list
    home = uk_api.created("Customer", {"DisplayName": "Local Ltd"})
    assert home["CurrencyRef"]["value"] == "GBP"

    kept = uk_api.created(
        "Customer", {"Id": customer["Id"], "SyncToken": customer["SyncToken"], "DisplayName": "Swiss"}
    )
    assert kept["CurrencyRef"]["value"] == "CHF"  # an update that omits CurrencyRef keeps it
    error = fault_of(
        uk_api.post(
            "Customer",
            {"Id": kept["Id"], "SyncToken": kept["SyncToken"], "DisplayName": "Swiss", "CurrencyRef": {"value": "EUR"}},
        )
    )
    assert (error["code"], error["element"]) == ("6000", "CurrencyRef")

    uk.enable_currency("EUR", active=False)
    error = fault_of(uk_api.post("Customer", {"DisplayName": "Paris SA", "CurrencyRef": {"value": "EUR"}}))
    assert (error["code"], error["element"]) == ("2500", "CurrencyRef")


def test_sales_documents_are_in_their_customer_currency(multicurrency, uk_api, uk_item):
    uk = multicurrency
    euro_customer = uk.add_customer(DisplayName="Berlin GmbH", CurrencyRef="EUR")
    pound_customer = uk.add_customer(DisplayName="Leeds Ltd")

    missing = fault_of(uk_api.post("Invoice", zero_rated_invoice(euro_customer["Id"], uk_item["Id"], uk)))
    assert (missing["code"], missing["element"]) == ("2020", "CurrencyRef")  # required with multicurrency
    mismatch = fault_of(
        uk_api.post(
            "Invoice", zero_rated_invoice(pound_customer["Id"], uk_item["Id"], uk, CurrencyRef={"value": "EUR"})
        )
    )
    assert (mismatch["code"], mismatch["element"]) == ("6000", "CurrencyRef")
    assert "must be the same as the customer's currency (GBP)" in mismatch["Detail"]
    not_listed = fault_of(
        uk_api.post("Invoice", zero_rated_invoice(euro_customer["Id"], uk_item["Id"], uk, CurrencyRef={"value": "JPY"}))
    )
    assert (not_listed["code"], not_listed["element"]) == ("2500", "CurrencyRef")

    invoice = uk_api.created(
        "Invoice", zero_rated_invoice(euro_customer["Id"], uk_item["Id"], uk, 100.10, CurrencyRef={"value": "EUR"})
    )
    assert invoice["CurrencyRef"] == {"value": "EUR", "name": "Euro"}
    assert (invoice["ExchangeRate"], invoice["TotalAmt"], invoice["HomeTotalAmt"]) == (0.85, 100.1, 85.09)
    assert invoice["HomeBalance"] == 85.09

    given = uk_api.created(
        "SalesReceipt",
        zero_rated_invoice(euro_customer["Id"], uk_item["Id"], uk, 200, CurrencyRef={"value": "EUR"}, ExchangeRate=0.9),
    )
    assert (given["ExchangeRate"], given["HomeTotalAmt"]) == (0.9, 180.0)
    pounds = uk_api.created(
        "Estimate",
        zero_rated_invoice(pound_customer["Id"], uk_item["Id"], uk, 40, CurrencyRef={"value": "GBP"}, ExchangeRate=3),
    )
    assert (pounds["ExchangeRate"], pounds["HomeTotalAmt"]) == (1.0, 40.0)  # home currency: always 1


def test_deposit_and_payment_accounts_follow_the_transaction_currency(multicurrency, uk_api, uk_item):
    uk = multicurrency
    euro_customer = uk.add_customer(DisplayName="Lyon SARL", CurrencyRef="EUR")
    euro_bank = uk.add_account("Euro Current", "Bank", CurrencyRef="EUR")
    uk.enable_currency("USD")
    dollar_bank = uk.add_account("Dollar Current", "Bank", CurrencyRef="USD")
    invoice = uk_api.created(
        "Invoice", zero_rated_invoice(euro_customer["Id"], uk_item["Id"], uk, 50, CurrencyRef={"value": "EUR"})
    )
    payment = {
        "CustomerRef": {"value": euro_customer["Id"]},
        "CurrencyRef": {"value": "EUR"},
        "TotalAmt": 50,
        "Line": [{"Amount": 50, "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}],
        "DepositToAccountRef": {"value": dollar_bank["Id"]},
    }
    wrong_account = fault_of(uk_api.post("Payment", payment))
    assert (wrong_account["code"], wrong_account["element"]) == ("6000", "DepositToAccountRef")
    pounds = fault_of(uk_api.post("Payment", {**payment, "CurrencyRef": {"value": "GBP"}}))
    assert (pounds["code"], pounds["element"]) == ("6000", "CurrencyRef")
    missing = fault_of(uk_api.post("Payment", {key: v for key, v in payment.items() if key != "CurrencyRef"}))
    assert missing["code"] == "2020"

    paid = uk_api.created("Payment", {**payment, "DepositToAccountRef": {"value": euro_bank["Id"]}})
    assert (paid["ExchangeRate"], paid["UnappliedAmt"]) == (0.85, 0.0)
    assert uk.get("Invoice", invoice["Id"])["HomeBalance"] == 0.0
    undeposited = uk_api.created(
        "SalesReceipt",
        zero_rated_invoice(euro_customer["Id"], uk_item["Id"], uk, 5, CurrencyRef={"value": "EUR"}),
    )
    assert undeposited["DepositToAccountRef"]["name"] == "Undeposited Funds"  # home currency: fine


def test_expenses_match_their_account_and_vendor_currency(multicurrency, uk_api):
    uk = multicurrency
    euro_bank = uk.add_account("Euro Current", "Bank", CurrencyRef="EUR")
    euro_vendor = uk.add_vendor(DisplayName="Rome SpA", CurrencyRef="EUR")
    pound_vendor = uk.add_vendor(DisplayName="York Ltd")
    line = {
        "DetailType": "AccountBasedExpenseLineDetail",
        "Amount": 20,
        "AccountBasedExpenseLineDetail": {
            "AccountRef": {"value": uk.find("Account", Name="Bank Charges")["Id"]},
            "TaxCodeRef": {"value": uk_code(uk, "Exempt")},
        },
    }
    body = {
        "PaymentType": "Cash",
        "AccountRef": {"value": euro_bank["Id"]},
        "EntityRef": {"value": euro_vendor["Id"], "type": "Vendor"},
        "CurrencyRef": {"value": "EUR"},
        "Line": [line],
    }
    no_currency = fault_of(uk_api.post("Purchase", {k: v for k, v in body.items() if k != "CurrencyRef"}))
    assert (no_currency["code"], no_currency["element"]) == ("6000", "AccountRef")  # GBP expense, EUR account
    other_vendor = fault_of(uk_api.post("Purchase", {**body, "EntityRef": {"value": pound_vendor["Id"]}}))
    assert (other_vendor["code"], other_vendor["element"]) == ("6000", "EntityRef")
    purchase = uk_api.created("Purchase", body)
    assert (purchase["CurrencyRef"]["value"], purchase["ExchangeRate"], purchase["TotalAmt"]) == ("EUR", 0.85, 20.0)

    income = fault_of(
        uk_api.post("Account", {"Name": "Euro Sales", "AccountType": "Income", "CurrencyRef": {"value": "EUR"}})
    )
    assert (income["code"], income["element"]) == ("6000", "CurrencyRef")


def test_names_cannot_be_queried_by_currency(multicurrency, uk_api):
    response = requests.get(
        f"{uk_api.base}/query",
        params={"query": "SELECT * FROM Customer WHERE CurrencyRef = 'EUR'"},
        headers=uk_api.headers,
    )
    error = fault_of(response)
    assert error["code"] == "4001" and "property 'CurrencyRef' is not queryable" in error["Detail"]


# -- what a user does in QuickBooks, ChangeDataCapture and webhooks ------------------------------------------


def since_an_hour_ago() -> str:
    return (datetime.now(timezone(timedelta(hours=-8))) - timedelta(hours=1)).isoformat(timespec="seconds")


def test_user_actions_pay_void_and_delete_an_invoice(company, customer, item, qb):
    invoice = new_invoice(customer["Id"], item["Id"], 100).save(qb=qb)

    payment = company.receive_payment(invoice.Id, 40)

    assert payment["Line"][0]["LinkedTxn"] == [{"TxnId": invoice.Id, "TxnType": "Invoice"}]
    stored = company.get("Invoice", invoice.Id)
    assert stored["Balance"] == 60.0 and {"TxnId": payment["Id"], "TxnType": "Payment"} in stored["LinkedTxn"]
    company.void("Payment", payment["Id"])
    assert company.get("Invoice", invoice.Id)["Balance"] == 100.0
    voided = company.void("Invoice", invoice.Id)
    assert (voided["TotalAmt"], voided["Balance"], voided["PrivateNote"]) == (0.0, 0.0, "Voided")
    company.delete("Invoice", invoice.Id)
    with pytest.raises(ObjectNotFoundException):
        Invoice.get(invoice.Id, qb=qb)
    assert company.get("Invoice", invoice.Id) is None
    changes = [(c["entity"], c["operation"]) for c in company.changes]
    assert changes[changes.index(("Invoice", "Create")) :] == [
        ("Invoice", "Create"),
        ("Payment", "Create"),
        ("Invoice", "Update"),  # the payment moved its balance
        ("Payment", "Void"),
        ("Invoice", "Update"),
        ("Invoice", "Void"),
        ("Invoice", "Delete"),
    ]


def test_change_data_capture_lists_changes_and_deletions(company, customer, item, qb):
    since = since_an_hour_ago()
    kept = new_invoice(customer["Id"], item["Id"], 100).save(qb=qb)
    gone = new_invoice(customer["Id"], item["Id"], 50).save(qb=qb)
    payment = company.receive_payment(kept.Id, 100)
    company.delete("Invoice", gone.Id)

    answer = qb.change_data_capture("Invoice,Payment,Estimate", since)

    groups = answer["CDCResponse"][0]["QueryResponse"]
    invoices, payments = groups[0]["Invoice"], groups[1]["Payment"]
    assert [i["Id"] for i in invoices] == [kept.Id, gone.Id]  # changed ones by LastUpdatedTime, deletions last
    assert invoices[0]["Balance"] == 0.0
    assert invoices[1]["status"] == "Deleted" and invoices[1]["MetaData"]["LastUpdatedTime"]
    assert [p["Id"] for p in payments] == [payment["Id"]]
    assert groups[2] == {}  # no estimate changed
    assert answer["time"]

    later = qb.change_data_capture("Invoice", company.get("Payment", payment["Id"])["MetaData"]["LastUpdatedTime"])
    assert [i["Id"] for i in later["CDCResponse"][0]["QueryResponse"][0]["Invoice"]] == [kept.Id, gone.Id]


def test_change_data_capture_rules(company, qb):
    too_old = (datetime.now(UTC) - timedelta(days=31)).isoformat(timespec="seconds")
    with pytest.raises(QuickbooksException) as old:
        qb.change_data_capture("Invoice", too_old)
    with pytest.raises(QuickbooksException) as unsupported:
        qb.change_data_capture("TaxCode", since_an_hour_ago())
    with pytest.raises(QuickbooksException) as unknown:
        qb.change_data_capture("Invoice,Spaceship", since_an_hour_ago())
    assert {old.value.error_code, unsupported.value.error_code, unknown.value.error_code} == {2010}


class WebhookSink:
    """Collects what the fake POSTs, answering 200."""

    def __init__(self):
        self.received: list[tuple[str, bytes, dict]] = []

    def __call__(self, url, body, headers):
        self.received.append((url, body, headers))
        return 200

    def payloads(self) -> list:
        return [json.loads(body) for _, body, _ in self.received]


@pytest.fixture
def sink(fake):
    sink = WebhookSink()
    fake.webhook_url = "https://qbo-actions.test/quickbooks/webhooks"
    fake.webhook_verifier = "verifier-token"
    fake.webhook_sender = sink
    return sink


def expected_signature(body: bytes, token: str = "verifier-token") -> str:
    import base64
    import hashlib
    import hmac

    return base64.b64encode(hmac.new(token.encode(), body, hashlib.sha256).digest()).decode()


def test_no_webhook_is_sent_without_a_url(fake, company, customer, item, qb):
    new_invoice(customer["Id"], item["Id"], 100).save(qb=qb)

    assert fake.webhook_deliveries == []


def test_an_api_write_is_notified_as_signed_cloud_events_before_its_answer(fake, company, customer, item, qb, sink):
    invoice = new_invoice(customer["Id"], item["Id"], 100).save(qb=qb)

    assert len(sink.received) == 1  # delivered before the create answered
    url, body, headers = sink.received[0]
    assert url == fake.webhook_url and headers["intuit-signature"] == expected_signature(body)
    [event] = json.loads(body)
    assert event["specversion"] == "1.0" and event["id"]
    assert event["type"] == "qbo.invoice.created.v1"
    assert (event["intuitaccountid"], event["intuitentityid"]) == (REALM, invoice.Id)
    updated = datetime.fromisoformat(company.get("Invoice", invoice.Id)["MetaData"]["LastUpdatedTime"])
    assert datetime.fromisoformat(event["time"]) == updated and event["time"].endswith("Z")
    assert fake.webhook_deliveries[0].status == 200


def test_a_payment_is_notified_with_the_invoice_it_moved_in_the_legacy_format(fake, company, customer, item, sink):
    fake.webhook_format = "legacy"
    invoice = company.write("Invoice", {"CustomerRef": {"value": customer["Id"]}, "Line": [line_for(item, 100)]})
    sink.received.clear()

    payment = company.receive_payment(invoice["Id"], 100)

    [payload] = sink.payloads()
    [notification] = payload["eventNotifications"]
    assert notification["realmId"] == REALM
    entities = notification["dataChangeEvent"]["entities"]
    assert [(e["name"], e["id"], e["operation"]) for e in entities] == [
        ("Payment", payment["Id"], "Create"),
        ("Invoice", invoice["Id"], "Update"),
    ]
    stamp = entities[1]["lastUpdated"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}", stamp)  # 2015-10-05T14:42:19-0700
    assert sink.received[0][2]["intuit-signature"] == expected_signature(sink.received[0][1])


def line_for(item, amount) -> dict:
    return {
        "Amount": amount,
        "DetailType": "SalesItemLineDetail",
        "SalesItemLineDetail": {"ItemRef": {"value": item["Id"]}},
    }


def test_queued_webhooks_wait_for_deliver_and_go_in_one_notification(fake, company, customer, item, sink):
    fake.webhook_delivery = "queued"
    invoice = company.write(
        "Invoice", {"CustomerRef": {"value": customer["Id"]}, "Line": [line_for(item, 100)]}, mode="create"
    )
    company.void("Invoice", invoice["Id"])
    assert sink.received == []

    fake.deliver_webhooks()

    [events] = sink.payloads()
    assert [e["type"] for e in events] == ["qbo.invoice.created.v1", "qbo.invoice.voided.v1"]
    assert fake.deliver_webhooks() == []  # nothing left


def test_disabled_webhooks_are_dropped_and_counted(fake, company, customer, item, sink):
    fake.webhooks_enabled = False
    invoice = company.write(
        "Invoice", {"CustomerRef": {"value": customer["Id"]}, "Line": [line_for(item, 100)]}, mode="create"
    )
    company.delete("Invoice", invoice["Id"])

    assert sink.received == [] and fake.webhooks_dropped == 2
    assert [c["operation"] for c in company.changes[-2:]] == ["Create", "Delete"]  # CDC still sees them


def test_webhooks_are_posted_over_http_by_default(fake, company, customer, item):
    received = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, body, self.headers["intuit-signature"]))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        fake.webhook_url = f"http://127.0.0.1:{server.server_address[1]}/quickbooks/webhooks"
        fake.webhook_verifier = "verifier-token"
        company.add_vendor(DisplayName="Paper Supply")
    finally:
        server.shutdown()
        server.server_close()

    [(path, body, signature)] = received
    assert path == "/quickbooks/webhooks" and signature == expected_signature(body)
    assert json.loads(body)[0]["type"] == "qbo.vendor.created.v1"
    assert fake.webhook_deliveries[-1].status == 200


# --- Load: rate limits, latency, chaos ------------------------------------------------------------


@pytest.fixture
def tokens(fake):
    return fake.issue_tokens(REALM)


def api(fake, tokens, method, rest, body=None, realm=REALM, timeout=5, **params):
    """One API call with plain requests: what the limits and faults do is visible as is."""
    return requests.request(
        method,
        f"{fake.api_base}/company/{realm}{rest}",
        params={"minorversion": "75", **params},
        json=body,
        headers={"Authorization": f"Bearer {tokens['access_token']}", "Accept": "application/json"},
        timeout=timeout,
    )


def in_parallel(calls) -> list:
    """Run the calls at the same moment, each on its own thread; their results (or exceptions) in order."""
    results = [None] * len(calls)
    start = threading.Barrier(len(calls))

    def run(index, call):
        start.wait()
        try:
            results[index] = call()
        except Exception as exc:  # noqa: BLE001 - handed back to the test
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    return results


def post_customer(fake, tokens, name, **params):
    return api(fake, tokens, "POST", "/customer", {"DisplayName": name}, **params)


def is_throttle(response) -> bool:
    return response.status_code == 429 and 'code="3001"' in response.text and "ThrottleExceeded" in response.text


def test_limits_are_off_by_default_and_requests_overlap(fake, tokens):
    fake.max_in_flight = 1
    fake.latency = 0.3
    started = time.monotonic()
    responses = in_parallel([lambda: api(fake, tokens, "GET", "/preferences") for _ in range(4)])
    assert [r.status_code for r in responses] == [200] * 4
    assert time.monotonic() - started < 1.0  # one at a time would take 1.2 s
    assert fake.peak_in_flight[REALM] == 4 and fake.in_flight(REALM) == 0
    assert not fake.rate_limited and not fake.injected


def test_in_flight_limit_refuses_with_the_throttle_fault_and_performs_nothing(fake, company, tokens):
    fake.enforce_rate_limits = True
    fake.max_in_flight = 2
    fake.latency = 0.3
    responses = in_parallel([lambda i=i: post_customer(fake, tokens, f"Parallel {i}") for i in range(4)])
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 200, 429, 429]
    assert all(is_throttle(r) and "Retry-After" not in r.headers for r in responses if r.status_code == 429)
    assert fake.rate_limited == {"in_flight": 2} and not fake.injected
    assert len([c for c in company.all("Customer") if c["DisplayName"].startswith("Parallel")]) == 2
    assert len(fake.requests_to("POST", "/customer")) == 4  # refused requests are recorded too
    assert fake.in_flight(REALM) == 0
    assert post_customer(fake, tokens, "After").status_code == 200  # the slots were given back


def test_concurrency_within_the_in_flight_limit_is_real():
    with FakeQuickBooks(rate_limits=True, latency=0.3) as fake:
        fake.add_company(REALM)
        tokens = fake.issue_tokens(REALM)
        started = time.monotonic()
        responses = in_parallel([lambda: api(fake, tokens, "GET", "/preferences") for _ in range(4)])
        elapsed = time.monotonic() - started
    assert [r.status_code for r in responses] == [200] * 4
    assert elapsed < 1.0 and fake.peak_in_flight[REALM] == 4 and not fake.rate_limited


def test_requests_per_minute_is_a_sliding_window_per_realm(fake, tokens):
    other = fake.add_company("9130350000000002")
    other_tokens = fake.issue_tokens(other.realm_id)
    fake.enforce_rate_limits = True
    fake.requests_per_minute = 5
    fake.rate_window_seconds = 0.5
    assert [api(fake, tokens, "GET", "/preferences").status_code for _ in range(5)] == [200] * 5
    refused = api(fake, tokens, "GET", "/preferences")
    assert is_throttle(refused)
    assert api(fake, other_tokens, "GET", "/preferences", realm=other.realm_id).status_code == 200
    fake.rate_limit_retry_after = True
    assert api(fake, tokens, "GET", "/preferences").headers["Retry-After"] == "1"
    assert fake.rate_limited == {"per_minute": 2}
    time.sleep(0.55)  # the first five leave the window (refused requests never entered it)
    assert api(fake, tokens, "GET", "/preferences").status_code == 200


def test_batches_have_their_own_limit_and_count_as_requests(fake, tokens):
    fake.enforce_rate_limits = True
    fake.batches_per_minute = 2
    fake.requests_per_minute = 4
    batch = {"BatchItemRequest": [{"bId": "q", "Query": "SELECT * FROM Item"}]}
    assert [api(fake, tokens, "POST", "/batch", batch).status_code for _ in range(2)] == [200, 200]
    assert is_throttle(api(fake, tokens, "POST", "/batch", batch))
    assert fake.rate_limited == {"batch_per_minute": 1}
    assert api(fake, tokens, "GET", "/preferences").status_code == 200  # not a batch: 3 of 4
    assert api(fake, tokens, "GET", "/preferences").status_code == 200
    assert is_throttle(api(fake, tokens, "GET", "/preferences"))
    assert fake.rate_limited == {"batch_per_minute": 1, "per_minute": 1}


def test_latency_with_jitter(fake, tokens):
    fake.latency, fake.latency_jitter = 0.2, 0.1
    started = time.monotonic()
    assert api(fake, tokens, "GET", "/preferences").status_code == 200
    assert 0.1 <= time.monotonic() - started < 0.6


def test_chaos_5xx_is_an_html_page_and_performs_nothing(fake, company, tokens):
    fake.enforce_rate_limits = True
    fake.chaos(1.0, kinds=["5xx"], seed=1)
    response = post_customer(fake, tokens, "Never")
    assert response.status_code in (500, 502, 503) and response.text.startswith("<!DOCTYPE html>")
    assert company.find("Customer", DisplayName="Never") is None
    assert fake.injected == {"5xx": 1} and not fake.rate_limited


def test_chaos_429_is_the_throttle_fault_and_not_a_rate_limit(fake, company, tokens):
    fake.enforce_rate_limits = True
    fake.chaos(1.0, kinds=("429",))
    response = post_customer(fake, tokens, "Never")
    assert is_throttle(response) and response.headers["Retry-After"] == "1"
    assert company.find("Customer", DisplayName="Never") is None
    assert fake.injected == {"429": 1} and not fake.rate_limited


def test_chaos_timeout_answers_only_after_the_client_gave_up(fake, company, tokens):
    fake.chaos(1.0, kinds=["timeout"], timeout_seconds=0.3)
    with pytest.raises(requests.ReadTimeout):
        post_customer(fake, tokens, "Never", timeout=0.1)
    started = time.monotonic()
    late = post_customer(fake, tokens, "Never either")
    assert late.status_code == 504 and time.monotonic() - started >= 0.3
    assert company.find("Customer", DisplayName="Never") is None
    assert company.find("Customer", DisplayName="Never either") is None
    assert fake.injected == {"timeout": 2}


def test_chaos_lost_response_commits_and_the_requestid_replay_returns_it(fake, company, tokens):
    fake.chaos(1.0, kinds=["lost"])
    request_id = str(uuid.uuid4())
    lost = post_customer(fake, tokens, "Lost Answer", requestid=request_id)
    assert lost.status_code == 502 and "<html>" in lost.text
    stored = company.find("Customer", DisplayName="Lost Answer")
    assert stored is not None and fake.injected == {"lost": 1}

    fake.calm()
    replay = post_customer(fake, tokens, "Lost Answer", requestid=request_id)
    assert replay.status_code == 200 and replay.json()["Customer"]["Id"] == stored["Id"]
    assert len([c for c in company.all("Customer") if c["DisplayName"] == "Lost Answer"]) == 1
    assert fake.documents_by_request_id() == {request_id: [("Customer", stored["Id"])]}
    assert fake.injected == {"lost": 1}  # calm: the replay was not touched


def test_chaos_leaves_oauth_alone_and_calm_stops_it(fake, tokens, auth_client):
    fake.chaos(1.0, kinds=["5xx"])
    auth_client.refresh()  # the token endpoint is not an API request
    assert api(fake, tokens, "GET", "/preferences").status_code >= 500
    fake.calm()
    assert api(fake, tokens, "GET", "/preferences").status_code == 200
    assert fake.injected == {"5xx": 1}


def test_chaos_draws_are_counted_under_concurrency_and_reset(fake, tokens):
    fake.chaos(0.5, kinds=["5xx", "429"], seed=7)
    responses = in_parallel([lambda: api(fake, tokens, "GET", "/preferences") for _ in range(24)])
    failed = [r.status_code for r in responses if r.status_code != 200]
    assert 0 < len(failed) < 24 and sum(fake.injected.values()) == len(failed)
    assert fake.injected["429"] == failed.count(429)
    fake.reset_counters()
    assert not fake.injected and not fake.rate_limited and not fake.peak_in_flight


def test_chaos_refuses_unknown_kinds_and_probabilities(fake):
    with pytest.raises(ValueError):
        fake.chaos(1.0, kinds=["slow"])
    with pytest.raises(ValueError):
        fake.chaos(1.5)


def test_documents_by_execution_and_request_id(fake, company, customer, item, tokens):
    def invoice(note, request_id):
        body = {
            "CustomerRef": {"value": customer["Id"]},
            "PrivateNote": note,
            "Line": [
                {
                    "Amount": 10,
                    "DetailType": "SalesItemLineDetail",
                    "SalesItemLineDetail": {"ItemRef": {"value": item["Id"]}},
                }
            ],
        }
        return api(fake, tokens, "POST", "/invoice", body, requestid=request_id).json()["Invoice"]["Id"]

    note = "Created by qbo-actions from HubSpot deal 7 (execution ap-101-5-1-0)."
    first, second = invoice(note, "r-1"), invoice(note, "r-2")
    other = invoice("Created by qbo-actions from HubSpot deal 8 (execution ap-101-6-1-0).", "r-3")
    invoice(note, "r-1")  # a replay creates nothing
    company.add_customer(DisplayName="Not ours")

    assert fake.documents_by_execution() == {
        "ap-101-5-1-0": [("Invoice", first), ("Invoice", second)],
        "ap-101-6-1-0": [("Invoice", other)],
    }
    assert fake.documents_by_execution(REALM, entities=["SalesReceipt"]) == {}
    assert fake.documents_by_request_id(REALM) == {
        "r-1": [("Invoice", first)],
        "r-2": [("Invoice", second)],
        "r-3": [("Invoice", other)],
    }
    assert [i["Id"] for i in fake.entities(REALM, "Invoice")] == [first, second, other]
