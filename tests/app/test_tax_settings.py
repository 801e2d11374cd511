"""Tax settings (issue 14): `flask settings set|tax-codes` for tax codes, the tax_code dropdown, the tax_code input.

tax_codes and default_tax_code belong to a QuickBooks company and are checked with QuickBooks when set (only
active TaxCodes); prices_include_tax belongs to the portal. Against the fakes, on a UK company unless said.
"""

import json
from decimal import Decimal

import pytest

from app.quickbooks.options import US_NEEDS_NO_TAX_CODE
from tests.conftest import PORTAL_ID, REALM_ID
from tests.scenarios import configure, map_standard_tax_codes, quickbooks_calls, seed_deal

IN_GB = pytest.mark.parametrize("country", ["GB"], indirect=True)
IN_US = pytest.mark.parametrize("country", ["US"], indirect=True)
INVOICE_OPTIONS = "/hubspot/actions/create_invoice/options"
# The fake UK company's tax codes and their sales rates (percent); "No VAT" has no rate.
GB_RATES = {"20.0% S": 20, "5.0% R": 5, "0.0% Z": 0, "Exempt": 0, "No VAT": 0}
NOTHING_STORED = {"income_account": "", "product_type": "Service", "tax_codes": {}, "default_tax_code": ""}


# -- helpers -----------------------------------------------------------------------------------------------


def code_id(books, name: str) -> str:
    return str(books.tax_code_named(name)["Id"])


def settings_set(runner, *assignments, realm=REALM_ID):
    args = ["settings", "set", str(PORTAL_ID), *assignments]
    return runner.invoke(args=args + (["--realm", realm] if realm else []))


def show(runner) -> dict:
    result = runner.invoke(args=["settings", "show", str(PORTAL_ID)])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def one_line(output: str) -> str:
    """Click wraps long error messages; compare them with single spaces."""
    return " ".join(output.split())


def active_codes(books) -> list[str]:
    """How a refusal lists the company's active codes: 'Name = id'."""
    return [f"{code['Name']} = {code['Id']}" for code in books.all("TaxCode") if code.get("Active", True)]


def tax_codes_of_lines(books, fields) -> list[str]:
    assert fields["hs_execution_state"] == "SUCCESS", fields
    invoice = books.get("Invoice", fields["quickbooks_document_id"])
    return [
        line["SalesItemLineDetail"]["TaxCodeRef"]["value"]
        for line in invoice["Line"]
        if line["DetailType"] == "SalesItemLineDetail"
    ]


def percent(text: str) -> Decimal:
    assert text.endswith("%"), text
    return Decimal(text[:-1])


# -- flask settings set: tax_codes and default_tax_code ----------------------------------------------------


@IN_GB
def test_tax_codes_and_default_are_stored_on_the_company(runner, connection, books):
    standard, no_vat = code_id(books, "20.0% S"), code_id(books, "No VAT")

    result = settings_set(runner, f'tax_codes={{"20": "{standard}"}}', f"default_tax_code={no_vat}")

    assert result.exit_code == 0, result.output
    company = show(runner)["companies"][REALM_ID]
    assert company["tax_codes"] == {"20": standard}
    assert company["default_tax_code"] == no_vat
    assert "tax_codes" not in show(runner)["settings"]


@IN_GB
def test_setting_tax_codes_checks_the_ids_with_quickbooks(runner, connection, books, fake_quickbooks):
    fake_quickbooks.reset_requests()

    result = settings_set(runner, f'tax_codes={{"20": "{code_id(books, "20.0% S")}"}}')

    assert result.exit_code == 0, result.output
    assert any("TaxCode" in (request.body or "") for request in fake_quickbooks.requests_to("POST", "/batch"))


@IN_GB
@pytest.mark.parametrize("setting", ["tax_codes", "default_tax_code"])
def test_unknown_tax_code_id_is_refused_naming_it_and_listing_the_active_codes(runner, connection, books, setting):
    assignment = 'tax_codes={"20": "99999"}' if setting == "tax_codes" else "default_tax_code=99999"

    result = settings_set(runner, assignment)

    assert result.exit_code != 0
    message = one_line(result.output)
    assert "99999" in message
    assert all(code in message for code in active_codes(books)), message
    assert show(runner)["companies"][REALM_ID] == NOTHING_STORED


@IN_GB
def test_inactive_tax_code_is_refused_and_not_listed_as_active(runner, connection, books):
    reduced = code_id(books, "5.0% R")
    books.patch("TaxCode", reduced, Active=False)

    result = settings_set(runner, f'tax_codes={{"5": "{reduced}"}}')

    assert result.exit_code != 0
    message = one_line(result.output)
    assert f"TaxCode {reduced}" in message
    assert f"5.0% R = {reduced}" not in message
    assert f"20.0% S = {code_id(books, '20.0% S')}" in message
    assert show(runner)["companies"][REALM_ID] == NOTHING_STORED


@IN_GB
def test_one_bad_tax_code_id_stores_none_of_the_assignments(runner, connection, books, app):
    standard = code_id(books, "20.0% S")

    result = settings_set(runner, f'tax_codes={{"20": "{standard}"}}', "default_tax_code=99999", "service_dates=never")

    assert result.exit_code != 0
    shown = show(runner)
    assert shown["companies"][REALM_ID] == NOTHING_STORED
    assert shown["settings"]["service_dates"] == "auto"


@IN_GB
@pytest.mark.parametrize(
    "assignment, message",
    [
        ('tax_codes={"20": "7"', "tax_codes must be a JSON object"),
        ('tax_codes=["20", "7"]', "tax_codes must be a JSON object"),
        ('tax_codes={"20": "S20"}', "'20' must map to a QuickBooks TaxCode id (digits), not 'S20'"),
        ('tax_codes={"20": ""}', "'20' must map to a QuickBooks TaxCode id (digits)"),
        ("default_tax_code=No VAT", "default_tax_code must be a QuickBooks TaxCode id (digits)"),
    ],
)
def test_malformed_tax_settings_are_refused_before_asking_quickbooks(
    runner, connection, fake_quickbooks, assignment, message
):
    fake_quickbooks.reset_requests()

    result = settings_set(runner, assignment)

    assert result.exit_code != 0
    assert message in one_line(result.output)
    assert quickbooks_calls(fake_quickbooks) == []
    assert show(runner)["companies"][REALM_ID] == NOTHING_STORED


@IN_GB
@pytest.mark.parametrize("rate", ["20", "20.0", "20.00"])
def test_rate_spellings_are_one_key(runner, connection, books, rate):
    standard = code_id(books, "20.0% S")

    result = settings_set(runner, f'tax_codes={{"{rate}": "{standard}"}}')

    assert result.exit_code == 0, result.output
    assert show(runner)["companies"][REALM_ID]["tax_codes"] == {"20": standard}


@IN_GB
def test_rate_mapped_as_20_0_taxes_a_line_at_20(runner, connection, books, portal, fake_quickbooks, invoice_for):
    standard, no_vat = code_id(books, "20.0% S"), code_id(books, "No VAT")
    assert settings_set(runner, f'tax_codes={{"20.0": "{standard}"}}', f"default_tax_code={no_vat}").exit_code == 0
    lines = [{"name": "Widget", "hs_sku": "W-1", "quantity": "2", "price": "100", "amount": "200", "hs_tax_rate": "20"}]
    deal = seed_deal(portal, fake_quickbooks, lines=lines)

    fields = invoice_for(deal.deal_id)

    assert tax_codes_of_lines(books, fields) == [standard]


# -- flask settings set: prices_include_tax ----------------------------------------------------------------


@IN_GB
@pytest.mark.parametrize("typed, stored", [("on", "on"), ("off", "off"), ("true", "on"), ("false", "off")])
def test_prices_include_tax_takes_on_off_true_false_on_the_portal(runner, connection, typed, stored):
    result = settings_set(runner, f"prices_include_tax={typed}", realm=None)

    assert result.exit_code == 0, result.output
    shown = show(runner)
    assert shown["settings"]["prices_include_tax"] == stored
    assert "prices_include_tax" not in shown["companies"][REALM_ID]


@IN_GB
@pytest.mark.parametrize("typed", ["yes", "1", "", "inclusive"])
def test_prices_include_tax_refuses_anything_else(runner, connection, typed):
    result = settings_set(runner, f"prices_include_tax={typed}", realm=None)

    assert result.exit_code != 0
    assert "prices_include_tax must be on or off" in one_line(result.output)
    assert show(runner)["settings"]["prices_include_tax"] == "off"


# -- flask settings tax-codes ------------------------------------------------------------------------------


@IN_GB
def test_tax_codes_command_lists_id_name_and_rate_of_every_code(runner, connection, books):
    result = runner.invoke(args=["settings", "tax-codes", str(PORTAL_ID)])

    assert result.exit_code == 0, result.output
    rows = [line.split("\t") for line in result.output.splitlines()]
    assert all(len(row) == 3 for row in rows), rows
    assert {(listed_id, name) for listed_id, name, _ in rows} == {(code_id(books, name), name) for name in GB_RATES}
    assert {name: percent(rate) for _, name, rate in rows if name != "No VAT"} == {
        name: rate for name, rate in GB_RATES.items() if name != "No VAT"
    }


# -- the tax_code dropdown ---------------------------------------------------------------------------------


def options_body(field):
    return {
        "origin": {"portalId": PORTAL_ID, "actionDefinitionId": 2, "actionDefinitionVersion": 3},
        "objectTypeId": "0-3",
        "inputFieldName": field,
        "inputFields": {},
        "fetchOptions": {},
    }


def ask_tax_codes(signed_post) -> dict:
    response = signed_post(INVOICE_OPTIONS, options_body("tax_code"))
    assert response.status_code == 200, response.json
    return response.json


@IN_GB
def test_tax_code_dropdown_lists_the_active_codes_with_their_rates(signed_post, connection, books):
    books.patch("TaxCode", code_id(books, "5.0% R"), Active=False)

    answer = ask_tax_codes(signed_post)

    active = {name: rate for name, rate in GB_RATES.items() if name != "5.0% R"}
    assert sorted(option["label"] for option in answer["options"]) == sorted(active)
    for option in answer["options"]:
        assert option["value"] == code_id(books, option["label"])
        assert percent(option["description"]) == active[option["label"]], option


@IN_US
def test_tax_code_dropdown_of_a_us_company_is_one_notice(signed_post, connection):
    answer = ask_tax_codes(signed_post)

    assert answer == {"options": [{"label": US_NEEDS_NO_TAX_CODE, "value": ""}], "searchable": False}
    assert "US companies need no tax code" in answer["options"][0]["label"]


# -- the tax_code input ------------------------------------------------------------------------------------


@IN_GB
def test_tax_code_input_overrides_the_default_for_untaxed_lines(app, portal, fake_quickbooks, books, invoice_for):
    map_standard_tax_codes(app, books)  # 20 → "20.0% S", untaxed → "No VAT"
    taxed = {"name": "Widget", "hs_sku": "W-1", "quantity": "2", "price": "100", "amount": "200", "hs_tax_rate": "20"}
    untaxed = {"name": "setup SERVICE", "quantity": "1", "price": "250", "amount": "250"}
    deal = seed_deal(portal, fake_quickbooks, lines=[taxed, untaxed])
    zero_rated = code_id(books, "0.0% Z")

    fields = invoice_for(deal.deal_id, tax_code=zero_rated)

    assert tax_codes_of_lines(books, fields) == [code_id(books, "20.0% S"), zero_rated]


@IN_GB
def test_without_tax_code_input_untaxed_lines_take_the_default(app, portal, fake_quickbooks, books, invoice_for):
    configure(app, company={"default_tax_code": code_id(books, "Exempt")})
    deal = seed_deal(portal, fake_quickbooks)

    fields = invoice_for(deal.deal_id, tax_code="")

    assert tax_codes_of_lines(books, fields) == [code_id(books, "Exempt")] * 2
