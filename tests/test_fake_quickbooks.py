"""Tests of the fake QuickBooks server, driven by the real python-quickbooks and intuit-oauth clients.

If the unmodified libraries work against the fake, the app's code (built on them) can trust it; and
every rule asserted here is one QBO enforces, so the app's tests see the failures production would.
"""

import json
import uuid
from datetime import date
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
from quickbooks.objects.vendor import Vendor

from tests.fakes.quickbooks import FakeQuickBooks, QueryParser

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
