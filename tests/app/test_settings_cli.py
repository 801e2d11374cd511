"""`flask settings show|set`: per-portal settings (and per-company ones with --realm) as JSON, bad input refused."""

import json

import pytest

from app.extensions import db
from app.storage.connections import get_connection, get_portal
from tests.conftest import PORTAL_ID, REALM_ID, connect_company

OTHER_REALM = "9130350000000002"


def show(runner):
    result = runner.invoke(args=["settings", "show", str(PORTAL_ID)])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_show_prints_the_defaults_as_json(runner, connection):
    shown = show(runner)
    assert shown["portal_id"] == PORTAL_ID
    assert shown["settings"] == {
        "contact_matching": "sync_filters",
        "contact_sync_filters": [{"property": "email", "operator": "known"}],
        "display_name_conflicts": "disambiguate",
        "service_dates": "auto",
        "document_numbers": "quickbooks",
        "document_number_property": "",
        "allow_invoice_payments": "off",
        "write_back": "on",
        "prices_include_tax": "off",
    }
    assert shown["companies"] == {
        REALM_ID: {"income_account": "", "product_type": "Service", "tax_codes": {}, "default_tax_code": ""}
    }


def test_set_stores_several_values_and_prints_the_result(runner, connection, app):
    filters = [
        {"property": "lifecyclestage", "operator": "in", "values": ["customer", "opportunity"]},
        {"property": "email", "operator": "known"},
    ]
    result = runner.invoke(
        args=[
            "settings",
            "set",
            str(PORTAL_ID),
            "contact_matching=legacy",
            "display_name_conflicts=fail",
            "document_numbers=hubspot",
            "document_number_property=invoice_number",
            f"contact_sync_filters={json.dumps(filters)}",
        ]
    )

    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)["settings"]
    assert printed["contact_matching"] == "legacy"
    assert printed["display_name_conflicts"] == "fail"
    assert printed["contact_sync_filters"] == filters
    with app.app_context():
        stored = get_portal(db.session, PORTAL_ID).settings
    assert stored == {
        "contact_matching": "legacy",
        "display_name_conflicts": "fail",
        "document_numbers": "hubspot",
        "document_number_property": "invoice_number",
        "contact_sync_filters": filters,
    }
    assert show(runner)["settings"]["document_number_property"] == "invoice_number"


@pytest.mark.parametrize(
    "assignment, message",
    [
        ("colour=blue", "unknown setting 'colour'"),
        ("contact_matching=fuzzy", "contact_matching must be one of sync_filters, legacy, not 'fuzzy'"),
        ("service_dates=sometimes", "service_dates must be one of auto, always, never"),
        ("display_name_conflicts=", "display_name_conflicts must be one of disambiguate, fail"),
        ('contact_sync_filters=[{"property": "email"', "contact_sync_filters must be a JSON list"),
        ('contact_sync_filters={"property": "email", "operator": "known"}', "must be a JSON list of conditions"),
        (
            'contact_sync_filters=[{"property": "email", "operator": "like", "value": "x"}]',
            "operator must be one of eq, neq, in, not_in, contains, known, unknown",
        ),
        (
            'contact_sync_filters=[{"property": "country", "operator": "in", "values": []}]',
            "needs a non-empty 'values'",
        ),
        ('contact_sync_filters=[{"property": "country", "operator": "eq"}]', "'eq' needs a 'value'"),
        ('contact_sync_filters=[{"operator": "known"}]', "needs a 'property' name"),
        ("income_account=Sales", "income_account must be a QuickBooks Account id"),
        ("product_type=Inventory", "product_type must be one of Service, NonInventory"),
        ("document_number_property=invoice number!", "must be a HubSpot property name"),
        ("contact_matching", "'contact_matching' is not KEY=VALUE"),
    ],
)
def test_bad_keys_and_values_are_refused_and_nothing_is_stored(runner, connection, app, assignment, message):
    result = runner.invoke(args=["settings", "set", str(PORTAL_ID), "service_dates=always", assignment])

    assert result.exit_code != 0
    assert message in " ".join(result.output.split())
    with app.app_context():
        assert get_portal(db.session, PORTAL_ID).settings == {}  # not even the good assignment before it


def test_unknown_portal_is_refused(runner, app):
    result = runner.invoke(args=["settings", "show", "424242"])
    assert result.exit_code == 1
    assert "424242 has not installed qbo-actions" in result.output


def test_company_settings_go_on_the_connection(runner, connection, app):
    result = runner.invoke(
        args=[
            "settings",
            "set",
            str(PORTAL_ID),
            "income_account=79",
            "product_type=NonInventory",
            "service_dates=never",
        ]
    )

    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    assert printed["companies"][REALM_ID] == {
        "income_account": "79",
        "product_type": "NonInventory",
        "tax_codes": {},
        "default_tax_code": "",
    }
    assert printed["settings"]["service_dates"] == "never"
    with app.app_context():
        assert get_connection(db.session, portal_id=PORTAL_ID, realm_id=REALM_ID).settings == {
            "income_account": "79",
            "product_type": "NonInventory",
        }
        assert get_portal(db.session, PORTAL_ID).settings == {"service_dates": "never"}


def test_realm_picks_the_company_when_several_are_connected(runner, connection, app, fake_quickbooks):
    fake_quickbooks.add_company(OTHER_REALM, name="Second Company", country="US")
    connect_company(app, fake_quickbooks, OTHER_REALM)

    ambiguous = runner.invoke(args=["settings", "set", str(PORTAL_ID), "income_account=79"])
    assert ambiguous.exit_code == 1
    assert "--realm" in ambiguous.output and "2 are connected" in ambiguous.output

    unknown = runner.invoke(args=["settings", "set", str(PORTAL_ID), "income_account=79", "--realm", "123"])
    assert unknown.exit_code == 1
    assert "QuickBooks company 123 is not connected" in unknown.output

    result = runner.invoke(args=["settings", "set", str(PORTAL_ID), "income_account=80", "--realm", OTHER_REALM])
    assert result.exit_code == 0, result.output
    companies = json.loads(result.output)["companies"]
    assert companies[OTHER_REALM]["income_account"] == "80"
    assert companies[REALM_ID]["income_account"] == ""


def test_company_setting_without_any_connection_says_so(runner, portal, app):
    result = runner.invoke(args=["settings", "set", str(PORTAL_ID), "income_account=79"])
    assert result.exit_code == 1
    assert "no QuickBooks company connected" in result.output
