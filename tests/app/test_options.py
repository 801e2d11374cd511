"""Dynamic dropdowns: POST /hubspot/actions/<action>/options, signed, against the fakes."""

import pytest

from app.extensions import db
from app.quickbooks.options import CONNECT_FIRST, NOT_ANSWERING, PICK_ACCOUNT_FIRST, OptionsCache, Page
from app.storage.connections import get_connection
from app.storage.models import QuickBooksConnection
from tests.conftest import PORTAL_ID, REALM_ID, connect_company

SECOND_REALM = "9130350000000002"
INVOICE_OPTIONS = "/hubspot/actions/create_invoice/options"
EXPENSE_OPTIONS = "/hubspot/actions/create_expense/options"


def options_body(field, *, q=None, after=None, inputs=None, portal_id=PORTAL_ID):
    fetch = {key: value for key, value in (("q", q), ("after", after)) if value is not None}
    return {
        "origin": {"portalId": portal_id, "actionDefinitionId": 2, "actionDefinitionVersion": 3},
        "objectTypeId": "0-3",
        "inputFieldName": field,
        "inputFields": inputs or {},
        "fetchOptions": fetch,
    }


def static(value):
    return {"type": "STATIC_VALUE", "value": value}


def queries(fake_quickbooks):
    return [r.body for r in fake_quickbooks.requests_to("POST", "/query")]


@pytest.fixture
def company(fake_quickbooks, connection):
    fake_quickbooks.reset_requests()
    return fake_quickbooks.company(REALM_ID)


@pytest.fixture
def ask(signed_post):
    """POST an options request for `field` and return the JSON answer (asserting a 200)."""

    def post(field, path=INVOICE_OPTIONS, **kwargs):
        response = signed_post(path, options_body(field, **kwargs))
        assert response.status_code == 200, response.json
        return response.json

    return post


def values(answer):
    return [option["value"] for option in answer["options"]]


def labels(answer):
    return [option["label"] for option in answer["options"]]


def notice(label, searchable=False):
    return {"options": [{"label": label, "value": ""}], "searchable": searchable}


def set_state(app, realm_id, state):
    with app.app_context():
        get_connection(db.session, portal_id=PORTAL_ID, realm_id=realm_id).state = state
        db.session.commit()


# -- each field ------------------------------------------------------------------------------------------


def test_quickbooks_account_lists_the_portal_companies_without_asking_quickbooks(app, ask, company, fake_quickbooks):
    fake_quickbooks.add_company(SECOND_REALM, name="Second Company")
    connect_company(app, fake_quickbooks, SECOND_REALM)
    set_state(app, SECOND_REALM, QuickBooksConnection.RECONNECT_NEEDED)
    fake_quickbooks.reset_requests()

    answer = ask("quickbooks_account")

    assert answer == {
        "options": [
            {"label": "Sandbox Company", "value": REALM_ID, "description": f"Realm ID {REALM_ID}"},
            {
                "label": "Second Company",
                "value": SECOND_REALM,
                "description": f"Realm ID {SECOND_REALM} · reconnect needed",
            },
        ],
        "searchable": False,
    }
    assert fake_quickbooks.requests == []


def test_payment_terms_are_the_active_terms_with_their_due_days(ask, company):
    company.add_term("Net 60 (old)", 60, Active=False)

    answer = ask("payment_terms")

    assert [(o["label"], o["description"]) for o in answer["options"]] == [
        ("Due on receipt", "due on receipt"),
        ("Net 15", "due in 15 days"),
        ("Net 30", "due in 30 days"),
    ]
    assert values(answer)[2] == company.find("Term", Name="Net 30")["Id"]
    assert answer["searchable"] is False and "after" not in answer


def test_products_offer_the_line_items_then_active_quickbooks_items(ask, company):
    widget = company.add_item(Name="Widget", Sku="WID-1", UnitPrice=25, Type="NonInventory")
    consulting = company.add_item(Name="Consulting", UnitPrice=150.5)
    company.add_item(Name="Retired gadget", Active=False)

    answer = ask("products")

    assert answer == {
        "options": [
            {
                "label": "Use the record's line items",
                "value": "line_items",
                "description": "Match each line item to a QuickBooks product by SKU, then by name",
            },
            {"label": "Consulting", "value": consulting["Id"], "description": "unit price 150.50"},
            {"label": "Widget", "value": widget["Id"], "description": "SKU WID-1 · unit price 25.00"},
        ],
        "searchable": True,
    }


@pytest.mark.parametrize(
    ("field", "path", "expected"),
    [
        (
            "expense_account",
            EXPENSE_OPTIONS,
            [("Bank Charges", "Expense"), ("Cost of sales", "Cost of Goods Sold"), ("Interest paid", "Other Expense")],
        ),
        (
            "payment_account",
            EXPENSE_OPTIONS,
            [("Checking", "Bank"), ("Mastercard", "Credit Card"), ("Undeposited Funds", "Other Current Asset")],
        ),
        (
            "deposit_account",
            "/hubspot/actions/create_sales_receipt/options",
            [("Checking", "Bank"), ("Undeposited Funds", "Other Current Asset")],
        ),
    ],
)
def test_accounts_of_fitting_types_in_one_query(ask, company, fake_quickbooks, field, path, expected):
    company.add_account("Cost of sales", "Cost of Goods Sold")
    company.add_account("Interest paid", "Other Expense")
    company.add_account("Old checking", "Bank", Active=False)
    fake_quickbooks.reset_requests()

    answer = ask(field, path=path)

    assert [(o["label"], o["description"]) for o in answer["options"]] == expected
    [query] = queries(fake_quickbooks)
    assert "AccountType IN (" in query


def test_vendors_are_listed_and_searchable_by_display_name(ask, company):
    stripe = company.add_vendor(DisplayName="Stripe", CompanyName="Stripe, Inc.")
    hubspot = company.add_vendor(DisplayName="HubSpot Payments")
    company.add_vendor(DisplayName="Old processor", Active=False)

    everything = ask("vendor", path=EXPENSE_OPTIONS)
    found = ask("vendor", path=EXPENSE_OPTIONS, q="strip")

    assert everything == {
        "options": [
            {"label": "HubSpot Payments", "value": hubspot["Id"]},
            {"label": "Stripe", "value": stripe["Id"], "description": "Stripe, Inc."},
        ],
        "searchable": True,
    }
    assert values(found) == [stripe["Id"]]


# -- search and paging -----------------------------------------------------------------------------------


def test_search_quotes_an_apostrophe_and_matches(ask, company, fake_quickbooks):
    wanted = company.add_item(Name="O'Brien's Widget")
    company.add_item(Name="Other Widget")

    answer = ask("products", q="O'Brien's Widget")

    assert values(answer) == [wanted["Id"]]  # no "line items" option: the search does not match it
    assert answer["searchable"] is True
    [query] = queries(fake_quickbooks)
    assert "Name LIKE '%O\\'Brien\\'s Widget%'" in query


def test_search_for_the_line_items_option_keeps_it(ask, company):
    company.add_item(Name="Line marker")

    assert labels(ask("products", q="line")) == ["Use the record's line items", "Line marker"]


def test_products_page_through_more_than_a_hundred_items(ask, company, fake_quickbooks):
    ids = {company.add_item(Name=f"Item {n:03d}")["Id"] for n in range(150)}

    first = ask("products")
    second = ask("products", after=first["after"])

    assert len(first["options"]) == 101
    assert first["options"][0]["value"] == "line_items"
    assert first["after"]
    assert len(second["options"]) == 50 and "after" not in second
    listed = values(first)[1:] + values(second)
    assert len(listed) == len(set(listed)) == 150
    assert set(listed) == ids
    assert "line_items" not in values(second)
    assert len(queries(fake_quickbooks)) == 2


def test_a_cursor_we_did_not_hand_out_is_refused(signed_post, company):
    response = signed_post(INVOICE_OPTIONS, options_body("products", after="abc"))

    assert response.status_code == 400
    assert any(reason.startswith("fetchOptions.after:") for reason in response.json["reasons"])


# -- the cache -------------------------------------------------------------------------------------------


def test_a_repeated_request_is_answered_from_the_cache(ask, company, fake_quickbooks):
    company.add_item(Name="Widget")

    first = ask("products")
    assert len(fake_quickbooks.requests) == 1
    again = ask("products")
    assert again == first
    assert len(fake_quickbooks.requests) == 1  # no QuickBooks request the second time

    ask("products", q="wid")  # another search is another list
    assert len(fake_quickbooks.requests) == 2


def test_the_cache_can_be_turned_off(app, ask, company, fake_quickbooks):
    app.config["OPTIONS_CACHE_SECONDS"] = 0

    ask("payment_terms")
    ask("payment_terms")

    assert len(queries(fake_quickbooks)) == 2


def test_cached_lists_expire():
    now = [100.0]
    cache = OptionsCache(clock=lambda: now[0])
    page = Page([{"label": "Net 30", "value": "3"}])
    cache.put(("realm", "payment_terms", "", ""), page, 60)

    assert cache.get(("realm", "payment_terms", "", ""), 60) is page
    now[0] += 60
    assert cache.get(("realm", "payment_terms", "", ""), 60) is None


# -- which company ---------------------------------------------------------------------------------------


def test_a_portal_without_quickbooks_is_told_to_connect_it(ask, portal, fake_quickbooks):
    assert ask("payment_terms") == notice(CONNECT_FIRST)
    assert ask("quickbooks_account") == notice(CONNECT_FIRST)
    assert fake_quickbooks.requests == []


def test_a_portal_that_did_not_install_the_app_is_told_to_connect_quickbooks(ask, app):
    assert ask("products", portal_id=999) == notice(CONNECT_FIRST)


@pytest.fixture
def two_companies(app, company, fake_quickbooks):
    second = fake_quickbooks.add_company(SECOND_REALM, name="Second Company")
    connect_company(app, fake_quickbooks, SECOND_REALM)
    fake_quickbooks.reset_requests()
    return second


def test_several_companies_and_none_chosen_asks_to_pick_one(ask, two_companies, fake_quickbooks):
    assert ask("payment_terms") == notice(PICK_ACCOUNT_FIRST)
    assert fake_quickbooks.requests == []


def test_the_chosen_company_is_the_one_listed(ask, two_companies, company):
    two_companies.add_term("Net 45", 45)

    answer = ask("payment_terms", inputs={"quickbooks_account": static(SECOND_REALM)})
    plain = ask("payment_terms", inputs={"quickbooks_account": REALM_ID})  # a plain value works too

    assert "Net 45" in labels(answer)
    assert "Net 45" not in labels(plain)


def test_a_chosen_company_the_portal_did_not_connect_is_refused(ask, company, fake_quickbooks):
    fake_quickbooks.add_company(SECOND_REALM, name="Someone else's company")
    fake_quickbooks.reset_requests()

    answer = ask("products", inputs={"quickbooks_account": static(SECOND_REALM)})

    [only] = answer["options"]
    assert only["value"] == ""
    assert SECOND_REALM in only["label"] and "not connected" in only["label"]
    assert fake_quickbooks.requests == []


def test_a_company_chosen_from_a_record_property_is_not_known_yet(ask, company):
    answer = ask(
        "payment_terms", inputs={"quickbooks_account": {"type": "OBJECT_PROPERTY", "propertyName": "qbo_realm"}}
    )

    assert "Net 30" in labels(answer)  # the portal's only company


# -- QuickBooks trouble ----------------------------------------------------------------------------------


def test_a_connection_needing_reconnection_says_so(app, ask, company, fake_quickbooks):
    set_state(app, REALM_ID, QuickBooksConnection.RECONNECT_NEEDED)

    [only] = ask("payment_terms")["options"]

    assert only["value"] == "" and only["label"].startswith("Reconnect QuickBooks (Sandbox Company)")
    assert fake_quickbooks.requests == []


def test_a_refused_refresh_token_says_to_reconnect(app, ask, company, fake_quickbooks):
    with app.app_context():
        connection = get_connection(db.session, portal_id=PORTAL_ID, realm_id=REALM_ID)
        fake_quickbooks.expire_access_token(connection.access_token)
        fake_quickbooks.revoke_refresh_token(connection.refresh_token)

    [only] = ask("payment_terms")["options"]

    assert only["value"] == "" and only["label"].startswith("Reconnect QuickBooks (Sandbox Company)")
    with app.app_context():
        connection = get_connection(db.session, portal_id=PORTAL_ID, realm_id=REALM_ID)
        assert connection.state == QuickBooksConnection.RECONNECT_NEEDED


def test_quickbooks_down_is_a_readable_option_and_is_not_cached(ask, company, fake_quickbooks):
    company.add_item(Name="Widget")
    fake_quickbooks.throttle_next("POST /query", retry_after=60)  # longer than we wait inline

    assert ask("products") == notice(NOT_ANSWERING)
    assert "Widget" in labels(ask("products"))


# -- refusals --------------------------------------------------------------------------------------------


def test_a_v2_signature_is_accepted(signed_post, company):
    response = signed_post(INVOICE_OPTIONS, options_body("payment_terms"), version="v2")

    assert response.status_code == 200
    assert "Net 30" in labels(response.json)


def test_an_unsigned_request_is_refused(client, company):
    response = client.post(INVOICE_OPTIONS, json=options_body("products"))

    assert response.status_code == 401
    assert response.json["error"] == "invalid_signature"


@pytest.mark.parametrize(
    ("path", "field"),
    [
        (INVOICE_OPTIONS, "no_such_field"),
        (INVOICE_OPTIONS, "customer"),  # static options, nothing to fetch
        (EXPENSE_OPTIONS, "payment_terms"),  # not an input of the expense action
    ],
)
def test_a_field_that_is_not_a_dropdown_of_the_action_is_a_400(signed_post, company, path, field):
    response = signed_post(path, options_body(field))

    assert response.status_code == 400
    [reason] = response.json["reasons"]
    assert reason.startswith(f"inputFieldName: '{field}' is not a dropdown of")


def test_a_malformed_body_is_a_400_with_reasons(signed_post, company):
    response = signed_post(INVOICE_OPTIONS, {"origin": {}, "inputFields": {"x": {"value": 1}}})

    assert response.status_code == 400
    reasons = response.json["reasons"]
    assert "origin.portalId: Missing data for required field." in reasons
    assert "inputFieldName: Missing data for required field." in reasons
    assert any(reason.startswith("inputFields: x: a typed input needs a 'type'") for reason in reasons)


def test_an_unknown_action_is_a_404(signed_post, company):
    response = signed_post("/hubspot/actions/create_nothing/options", options_body("products"))

    assert response.status_code == 404
    assert response.json["reason"] == "Unknown action 'create_nothing'."
