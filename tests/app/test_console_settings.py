"""The console's settings page and the disconnect button: against the fakes, through the Flask test client.

Forms are filled the way a browser would: read every control the page rendered (with its CSRF token), change
a few, post them all.
"""

import html
import json
from html.parser import HTMLParser

import pytest
import requests
from sqlalchemy import func, select

from actions.settings import CHOICES, COMPANY_SETTINGS, DEFAULT_SETTINGS
from app.console.settings import SETTINGS
from app.extensions import db
from app.quickbooks import oauth as quickbooks_oauth
from app.storage.connections import get_connection, get_or_create_portal, get_portal
from app.storage.models import Execution, Mapping, QuickBooksConnection, utcnow
from tests.conftest import PORTAL_ID, REALM_ID, connect_company
from tests.fakes.quickbooks import REVOKE_PATH

IN_GB = pytest.mark.parametrize("country", ["GB"], indirect=True)
BOTH_BACKENDS = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
OTHER_PORTAL = 77001
OTHER_REALM = "9130350000000002"


# -- reading pages ---------------------------------------------------------------------------------------


class Page(HTMLParser):
    """The controls of a rendered page: name → value (as a browser would submit them), and every element's
    attributes by id."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.values: dict[str, str] = {}
        self.options: dict[str, list[tuple[str, str]]] = {}  # select name → [(value, label)]
        self.by_id: dict[str, dict] = {}
        self.tags: dict[str, str] = {}  # id → tag
        self.labels_for: set[str] = set()
        self._select = self._option = self._textarea = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = {name: value or "" for name, value in attrs}
        if "id" in attrs:
            assert attrs["id"] not in self.by_id, f"duplicate id {attrs['id']}"
            self.by_id[attrs["id"]], self.tags[attrs["id"]] = attrs, tag
        if tag == "label" and attrs.get("for"):
            self.labels_for.add(attrs["for"])
        elif tag == "input" and attrs.get("name"):
            self.values[attrs["name"]] = attrs.get("value", "")
        elif tag == "select":
            self._select = attrs["name"]
            self.options[self._select] = []
        elif tag == "option" and self._select:
            self._option = [attrs.get("value", ""), ""]
            if "selected" in attrs or self._select not in self.values:
                self.values[self._select] = self._option[0]
        elif tag == "textarea":
            self._textarea = attrs["name"]
            self.values[self._textarea] = ""

    def handle_endtag(self, tag):
        if tag == "option" and self._option is not None:
            self.options[self._select].append((self._option[0], self._option[1].strip()))
            self._option = None
        elif tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None

    def handle_data(self, data):
        if self._option is not None:
            self._option[1] += data
        elif self._textarea:
            self.values[self._textarea] += data


def text_of(response) -> str:
    """The page's text in one line, entities decoded: what a reader sees."""
    return " ".join(html.unescape(response.text).split())


def portal_field(key: str) -> str:
    return f"portal:{key}"


def company_field(key: str, realm: str = REALM_ID) -> str:
    return f"company:{realm}:{key}"


def field_id(name: str) -> str:
    return name.replace(":", "-")


# -- fixtures and helpers --------------------------------------------------------------------------------


@pytest.fixture
def signed_in(client, portal):
    with client.session_transaction() as session:
        session["portal_id"] = PORTAL_ID
    return client


def submit(client, changes: dict, *, without: tuple = ()):
    """Post the settings form as rendered, with `changes` typed in and `without` left out."""
    form = Page(client.get("/settings").text).values
    form.update(changes)
    for name in without:
        form.pop(name, None)
    return client.post("/settings", data=form)


def stored(app) -> tuple[dict, dict]:
    """(the portal's stored settings, the connection's stored settings)."""
    with app.app_context():
        connection = get_connection(db.session, portal_id=PORTAL_ID, realm_id=REALM_ID)
        return get_portal(db.session, PORTAL_ID).settings, connection.settings


def show(runner) -> dict:
    result = runner.invoke(args=["settings", "show", str(PORTAL_ID)])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def code_id(books, name: str) -> str:
    return str(books.tax_code_named(name)["Id"])


def connect_other_portal(app, fake_quickbooks) -> int:
    fake_quickbooks.add_company(OTHER_REALM, name="Other Portal Ltd", country="US")
    with app.app_context():
        get_or_create_portal(db.session, OTHER_PORTAL)
        db.session.commit()
    return connect_company(app, fake_quickbooks, OTHER_REALM, portal_id=OTHER_PORTAL)


# -- the page --------------------------------------------------------------------------------------------


def test_signed_out_settings_go_to_the_home_page(client, connection):
    response = client.get("/settings")

    assert response.status_code == 302
    assert response.headers["Location"] == "/"


def test_every_setting_has_a_place_label_and_help():
    assert set(SETTINGS) == set(DEFAULT_SETTINGS)
    for key, setting in SETTINGS.items():
        assert setting.label and setting.help.endswith("."), key
        assert set(setting.words) <= set(CHOICES.get(key, ("on", "off"))), key


def test_page_lists_every_setting_with_its_help_and_accessible_inputs(signed_in, connection):
    response = signed_in.get("/settings")

    assert response.status_code == 200
    page, text = Page(response.text), text_of(response)
    for heading in ("Customers", "Products and lines", "Document numbers and dates", "Payments", "Tax"):
        assert f">{heading}</h2>" in response.text
    for key, setting in SETTINGS.items():
        assert f"setting-{key}" in page.by_id, key
        assert setting.label in text and setting.help in text, key
        # US company: its tax settings say they do not apply instead of offering an input
        name = company_field(key) if key in COMPANY_SETTINGS else portal_field(key)
        if key in ("tax_codes", "default_tax_code"):
            assert name not in page.values
            continue
        control = page.by_id[field_id(name)]
        assert field_id(name) in page.labels_for, key
        assert f"help-{key}" in control["aria-describedby"].split(), key
        assert all(described in page.by_id for described in control["aria-describedby"].split()), key
    assert "Does not apply to US companies" in text
    assert "Sandbox Company" in text  # company settings are labelled with the company's name


def test_company_settings_wait_for_a_connected_company(signed_in, fake_quickbooks):
    response = signed_in.get("/settings")

    assert response.status_code == 200
    page = Page(response.text)
    for key in COMPANY_SETTINGS:
        assert f"setting-{key}" in page.by_id
    assert not any(name.startswith("company:") for name in page.values)
    assert text_of(response).count("No QuickBooks company is connected yet") == len(COMPANY_SETTINGS)
    assert fake_quickbooks.requests == []


def test_inputs_fit_each_kind_and_show_the_stored_values(signed_in, connection):
    page = Page(signed_in.get("/settings").text)

    assert page.tags[field_id(portal_field("contact_matching"))] == "select"
    assert [value for value, _ in page.options[portal_field("contact_matching")]] == ["sync_filters", "legacy"]
    assert page.options[portal_field("allow_invoice_payments")] == [
        ("on", "On: make documents for them too"),
        ("off", "Off: fail them with PAYMENT_FROM_INVOICE (default)"),
    ]
    assert page.values[portal_field("allow_invoice_payments")] == "off"
    assert page.tags[field_id(portal_field("contact_sync_filters"))] == "textarea"
    assert json.loads(page.values[portal_field("contact_sync_filters")]) == DEFAULT_SETTINGS["contact_sync_filters"]
    assert page.tags[field_id(portal_field("document_number_property"))] == "input"
    assert page.tags[field_id(company_field("product_type"))] == "select"
    assert page.tags[field_id(company_field("income_account"))] == "select"


def test_income_account_dropdown_lists_the_companys_active_income_accounts(signed_in, connection, books):
    retired = books.add_account("Old Sales", "Income", Active=False)

    page = Page(signed_in.get("/settings").text)

    income = [a for a in books.all("Account") if a["AccountType"] == "Income" and a.get("Active", True)]
    assert len(income) >= 2
    options = page.options[company_field("income_account")]
    assert options[0] == ("", "The company's first Income account")
    assert sorted(value for value, _ in options[1:]) == sorted(str(a["Id"]) for a in income)
    assert {label for _, label in options[1:]} == {a["Name"] for a in income}
    assert str(retired["Id"]) not in {value for value, _ in options}
    checking = books.find("Account", Name="Checking")
    assert str(checking["Id"]) not in {value for value, _ in options}


@pytest.mark.parametrize("trouble", ["quickbooks_down", "reconnect_needed"])
def test_when_quickbooks_cannot_list_the_page_offers_a_text_input_with_a_note(
    signed_in, connection, app, fake_quickbooks, trouble
):
    if trouble == "quickbooks_down":
        fake_quickbooks.fail_next("", 503, times=20)
        note = "QuickBooks is not answering"
    else:
        with app.app_context():
            db.session.get(QuickBooksConnection, connection).state = QuickBooksConnection.RECONNECT_NEEDED
            db.session.commit()
        note = "reconnect it to pick from its lists"

    response = signed_in.get("/settings")

    assert response.status_code == 200
    page = Page(response.text)
    control_id = field_id(company_field("income_account"))
    assert page.tags[control_id] == "input"
    assert f"note-{control_id}" in page.by_id[control_id]["aria-describedby"].split()
    assert note in text_of(response)


# -- saving ----------------------------------------------------------------------------------------------


def test_saving_valid_values_stores_them(signed_in, connection, app, runner, books):
    filters = [{"property": "lifecyclestage", "operator": "in", "values": ["customer", "opportunity"]}]
    services = str(books.find("Account", Name="Services")["Id"])

    response = submit(
        signed_in,
        {
            portal_field("contact_matching"): "legacy",
            portal_field("contact_sync_filters"): json.dumps(filters),
            portal_field("document_numbers"): "hubspot",
            portal_field("document_number_property"): " invoice_number ",
            portal_field("allow_invoice_payments"): "on",
            company_field("income_account"): services,
            company_field("product_type"): "NonInventory",
        },
    )

    assert response.status_code == 302
    assert response.headers["Location"] == "/settings"
    assert "Settings saved" in text_of(signed_in.get("/settings"))
    shown = show(runner)
    assert shown["settings"] == {
        **{k: v for k, v in DEFAULT_SETTINGS.items() if k not in COMPANY_SETTINGS},
        "contact_matching": "legacy",
        "contact_sync_filters": filters,
        "document_numbers": "hubspot",
        "document_number_property": "invoice_number",
        "allow_invoice_payments": "on",
    }
    assert shown["companies"][REALM_ID] == {
        "income_account": services,
        "product_type": "NonInventory",
        "tax_codes": {},
        "default_tax_code": "",
    }
    portal_settings, company_settings = stored(app)
    assert "income_account" not in portal_settings  # a company's setting lives on its connection
    assert company_settings == {"income_account": services, "product_type": "NonInventory"}
    page = Page(signed_in.get("/settings").text)  # the page shows what was saved
    assert page.values[company_field("income_account")] == services
    assert json.loads(page.values[portal_field("contact_sync_filters")]) == filters


def test_each_company_has_its_own_values(signed_in, connection, app, fake_quickbooks, runner):
    fake_quickbooks.add_company(OTHER_REALM, name="Second Company", country="US")
    connect_company(app, fake_quickbooks, OTHER_REALM)
    page = Page(signed_in.get("/settings").text)
    assert "setting-product_type-" + OTHER_REALM in page.by_id

    response = submit(signed_in, {company_field("product_type", OTHER_REALM): "NonInventory"})

    assert response.status_code == 302
    companies = show(runner)["companies"]
    assert companies[OTHER_REALM]["product_type"] == "NonInventory"
    assert companies[REALM_ID]["product_type"] == "Service"


@pytest.mark.parametrize(
    "name, typed, reason",
    [
        (portal_field("contact_sync_filters"), '[{"property": "email"', "contact_sync_filters must be a JSON list"),
        (
            portal_field("contact_sync_filters"),
            '[{"property": "email", "operator": "like"}]',
            "operator must be one of eq, neq, in, not_in, contains, known, unknown",
        ),
        (portal_field("contact_matching"), "fuzzy", "contact_matching must be one of sync_filters, legacy"),
        (portal_field("allow_invoice_payments"), "maybe", "allow_invoice_payments must be on or off"),
        (portal_field("document_number_property"), "invoice number!", "must be a HubSpot property name"),
        (company_field("product_type"), "Inventory", "product_type must be one of Service, NonInventory"),
        (company_field("income_account"), "Sales", "income_account must be a QuickBooks Account id"),
    ],
)
def test_a_refused_value_is_shown_with_its_reason_and_nothing_is_saved(signed_in, connection, app, name, typed, reason):
    valid = {portal_field("service_dates"): "never", company_field("product_type"): "NonInventory"}

    response = submit(signed_in, {**valid, name: typed})  # valid changes beside it are not saved either

    assert response.status_code == 400
    page = Page(response.text)
    control = page.by_id[field_id(name)]
    assert control["aria-invalid"] == "true"
    error_id = f"error-{field_id(name)}"
    assert error_id in control["aria-describedby"].split()
    assert reason in " ".join(html.unescape(response.text).split())
    summary = page.by_id["error-summary"]
    assert summary["role"] == "alert"
    assert "Nothing was saved" in text_of(response)
    if page.tags[field_id(name)] != "select":
        assert page.values[name] == typed  # what was typed is shown again, to correct it
    assert page.values[portal_field("service_dates")] == "never"
    assert stored(app) == ({}, {})


@IN_GB
def test_unknown_tax_code_of_a_uk_company_is_refused_and_nothing_is_saved(signed_in, connection, app, books):
    standard = code_id(books, "20.0% S")

    response = submit(
        signed_in,
        {
            company_field("tax_codes"): json.dumps({"20": standard}),  # valid
            company_field("default_tax_code"): "999",  # no such TaxCode
            portal_field("prices_include_tax"): "on",  # valid
        },
    )

    assert response.status_code == 400
    page = Page(response.text)
    assert page.by_id[field_id(company_field("default_tax_code"))]["aria-invalid"] == "true"
    assert "aria-invalid" not in page.by_id[field_id(company_field("tax_codes"))]
    assert f"QuickBooks company {REALM_ID} has no active TaxCode 999" in text_of(response)
    assert f"20.0% S = {standard}" in text_of(response)  # the refusal lists the company's active codes
    assert stored(app) == ({}, {})


@IN_GB
def test_tax_codes_of_a_uk_company_are_checked_and_saved(signed_in, connection, app, books, fake_quickbooks, runner):
    standard, no_vat = code_id(books, "20.0% S"), code_id(books, "No VAT")
    page = Page(signed_in.get("/settings").text)
    listed = {value for value, _ in page.options[company_field("default_tax_code")]}
    assert {"", standard, no_vat} <= listed
    fake_quickbooks.reset_requests()

    response = submit(
        signed_in,
        {company_field("tax_codes"): json.dumps({"20.0": standard}), company_field("default_tax_code"): no_vat},
    )

    assert response.status_code == 302
    company = show(runner)["companies"][REALM_ID]
    assert (company["tax_codes"], company["default_tax_code"]) == ({"20": standard}, no_vat)
    assert fake_quickbooks.requests_to("POST", "/batch")  # asked QuickBooks before saving


@IN_GB
def test_unchanged_tax_codes_are_not_asked_of_quickbooks_again(signed_in, connection, app, books, fake_quickbooks):
    with app.app_context():
        db.session.get(QuickBooksConnection, connection).settings = {"default_tax_code": code_id(books, "No VAT")}
        db.session.commit()
    form = Page(signed_in.get("/settings").text).values
    fake_quickbooks.fail_next("", 503, times=20)  # QuickBooks down: settings unrelated to it still save

    response = signed_in.post("/settings", data={**form, portal_field("service_dates"): "always"})

    assert response.status_code == 302
    assert stored(app)[0] == {"service_dates": "always"}


def test_tax_settings_of_a_us_company_are_not_taken(signed_in, connection, app):
    response = submit(signed_in, {company_field("default_tax_code"): "7"})

    assert response.status_code == 302
    assert stored(app) == ({}, {})


def test_a_post_without_the_csrf_token_is_refused(signed_in, connection, app):
    form = Page(signed_in.get("/settings").text).values
    del form["csrf_token"]

    response = signed_in.post("/settings", data={**form, portal_field("service_dates"): "never"})

    assert response.status_code == 400
    assert "CSRF" in response.text
    assert stored(app) == ({}, {})


def test_another_portals_company_cannot_be_changed(signed_in, connection, app, fake_quickbooks):
    other = connect_other_portal(app, fake_quickbooks)

    response = submit(
        signed_in,
        {company_field("product_type", OTHER_REALM): "NonInventory", portal_field("service_dates"): "never"},
    )

    assert response.status_code == 404
    assert "NonInventory" not in response.text
    with app.app_context():
        assert db.session.get(QuickBooksConnection, other).settings == {}
    assert stored(app) == ({}, {})


# -- disconnecting ---------------------------------------------------------------------------------------


def home_form(client) -> dict:
    return Page(client.get("/").text).values


def remember_mappings(app, connection_id: int) -> None:
    with app.app_context():
        for kind, hubspot_id in (("contact", "501"), ("product", "77")):
            db.session.add(Mapping(connection_id=connection_id, kind=kind, hubspot_id=hubspot_id, quickbooks_id="1"))
        db.session.add(
            Execution(
                portal_id=PORTAL_ID,
                callback_id="ap-1",
                action="create_invoice",
                object_type="DEAL",
                object_id="101",
                realm_id=REALM_ID,
                status=Execution.COMPLETED,
                outcome="SUCCESS",
                expires_at=utcnow(),
                finished_at=utcnow(),
            )
        )
        db.session.commit()


def count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


@BOTH_BACKENDS
def test_disconnect_revokes_at_intuit_and_forgets_the_company_and_its_mappings(
    signed_in, connection, app, fake_quickbooks
):
    remember_mappings(app, connection)
    with app.app_context():
        tokens = db.session.get(QuickBooksConnection, connection)
        refresh_token, access_token = tokens.refresh_token, tokens.access_token

    response = signed_in.post(f"/connections/{REALM_ID}/disconnect", data=home_form(signed_in))

    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    [revoke] = fake_quickbooks.requests_to("POST", REVOKE_PATH)
    assert revoke.json == {"token": refresh_token}
    api = f"{fake_quickbooks.api_base}/company/{REALM_ID}/companyinfo/{REALM_ID}"
    refused = requests.get(api, headers={"Authorization": f"Bearer {access_token}"}, timeout=5)
    assert refused.status_code == 401  # Intuit ended the whole grant
    with app.app_context():
        assert db.session.get(QuickBooksConnection, connection) is None
    assert count(app, Mapping) == 0
    assert count(app, Execution) == 1  # history stays
    home = text_of(signed_in.get("/"))
    assert "Disconnected Sandbox Company" in home
    assert "No QuickBooks company is connected yet" in home


def test_disconnecting_another_portals_company_is_not_found(signed_in, connection, app, fake_quickbooks):
    other = connect_other_portal(app, fake_quickbooks)

    response = signed_in.post(f"/connections/{OTHER_REALM}/disconnect", data=home_form(signed_in))

    assert response.status_code == 404
    assert "Other Portal Ltd" not in response.text
    assert fake_quickbooks.requests_to("POST", REVOKE_PATH) == []
    with app.app_context():
        assert db.session.get(QuickBooksConnection, other) is not None


@pytest.mark.parametrize(
    "trouble, reason",
    [
        ("down", "Intuit answered HTTP 503"),
        ("token_already_invalid", "Intuit answered HTTP 400"),
        ("unreachable", "Intuit's revoke endpoint could not be reached (ConnectionError)"),
    ],
)
def test_a_failed_revoke_still_disconnects_with_a_warning(signed_in, connection, app, fake_quickbooks, trouble, reason):
    remember_mappings(app, connection)
    form = home_form(signed_in)
    if trouble == "down":
        fake_quickbooks.fail_next(f"POST {REVOKE_PATH}", 503)
    elif trouble == "token_already_invalid":
        fake_quickbooks.fail_next(f"POST {REVOKE_PATH}", 400, '{"error": "invalid_grant"}')
    else:
        with app.app_context():
            quickbooks_oauth.auth_client(app.config)  # Intuit's discovery document read while it was up
        fake_quickbooks.stop()

    response = signed_in.post(f"/connections/{REALM_ID}/disconnect", data=form)

    assert response.status_code == 302
    if trouble != "unreachable":
        assert len(fake_quickbooks.requests_to("POST", REVOKE_PATH)) == 1
    with app.app_context():
        assert db.session.get(QuickBooksConnection, connection) is None
    assert count(app, Mapping) == 0
    home = text_of(signed_in.get("/"))
    assert f"Disconnected Sandbox Company here, but Intuit could not revoke its authorization ({reason})" in home
    assert "disconnect qbo-actions from the company in QuickBooks too" in home


def test_disconnect_without_the_csrf_token_is_refused(signed_in, connection, app, fake_quickbooks):
    response = signed_in.post(f"/connections/{REALM_ID}/disconnect")

    assert response.status_code == 400
    assert fake_quickbooks.requests_to("POST", REVOKE_PATH) == []
    with app.app_context():
        assert db.session.get(QuickBooksConnection, connection) is not None
