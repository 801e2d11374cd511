"""hubspot-app.json: the real file loads, matches the action registry, and bad variants are refused."""

import copy
import json

import pytest

from actions import ACTION_NAMES
from app.hubspot.app_definition import (
    DEFAULT_PATH,
    AppDefinitionError,
    action_definition_payload,
    load_app_definition,
    parse_app_definition,
)

PUBLIC_URL = "https://qbo.example.test"
ERROR_CODES = {
    "ACTION_NOT_AVAILABLE",
    "QUICKBOOKS_NOT_CONNECTED",
    "QUICKBOOKS_AUTH_EXPIRED",
    "QUICKBOOKS_UNAVAILABLE",
    "QUICKBOOKS_VALIDATION",
    "CONTACT_MISSING",
    "CONTACT_NOT_ELIGIBLE",
    "CUSTOMER_NOT_FOUND",
    "DUPLICATE_DISPLAY_NAME",
    "NO_LINE_ITEMS",
    "PRODUCT_NOT_FOUND",
    "INVALID_INPUT",
    "SERVICE_DATE_REQUIRED",
    "DUPLICATE_DOCUMENT_NUMBER",
    "QUICKBOOKS_DOCUMENT_CHANGED",
    "QUICKBOOKS_PERIOD_CLOSED",
    "TAXABLE_LINES_NOT_ALLOWED",
    "NOT_FULLY_REFUNDED",
    "PAYMENT_FROM_INVOICE",
    "INTERNAL_ERROR",
    "PAYMENT_AMOUNT_MISMATCH",
    "NO_PAYMENT_FEE",
    "TAX_CODE_MISSING",
    "CURRENCY_MISMATCH",
    "CURRENCY_NOT_ENABLED",
    "HUBSPOT_REFUSED",
}
OUTPUTS = [
    "quickbooks_document_id",
    "quickbooks_document_number",
    "quickbooks_document_url",
    "quickbooks_customer_id",
    "error_code",
    "error_message",
]


@pytest.fixture(scope="module")
def definition():
    return load_app_definition()


@pytest.fixture
def raw():
    return json.loads(DEFAULT_PATH.read_text())


def payloads(definition):
    return {name: action_definition_payload(action, PUBLIC_URL) for name, action in definition.actions.items()}


def input_field(payload, name):
    return next(f for f in payload["inputFields"] if f["typeDefinition"]["name"] == name)


def test_every_action_has_a_definition_and_every_definition_an_action(definition):
    assert set(definition.action_names) == set(ACTION_NAMES)


def test_environment_variable_points_at_another_file(tmp_path, monkeypatch, raw):
    raw["app"]["name"] = "Elsewhere"
    other = tmp_path / "other.json"
    other.write_text(json.dumps(raw))
    monkeypatch.setenv("HUBSPOT_APP_FILE", str(other))
    assert load_app_definition().app["name"] == "Elsewhere"


def test_app_section(definition):
    app = definition.app
    assert app["name"] == "QuickBooks Actions (qbo-actions)"
    assert app["requiredScopes"] == [
        "oauth",
        "automation",
        "crm.objects.contacts.read",
        "crm.objects.deals.read",
        "crm.objects.companies.read",
        "crm.objects.line_items.read",
        "crm.objects.quotes.read",
    ]
    assert app["optionalScopes"][:2] == ["crm.objects.commercepayments.read", "crm.objects.invoices.read"]
    # The write-back's scopes are optional: a portal that does not grant them still gets its documents.
    from app.hubspot.properties import WRITE_SCOPES

    assert {scope for scopes in WRITE_SCOPES.values() for scope in scopes} <= set(app["optionalScopes"])
    assert app["redirectPaths"] == ["/oauth/hubspot/callback"]


@pytest.mark.parametrize(
    "action, object_types",
    [
        ("create_invoice", ["DEAL", "QUOTE"]),
        ("create_estimate", ["DEAL", "QUOTE"]),
        ("create_sales_receipt", ["DEAL", "QUOTE", "COMMERCE_PAYMENT"]),
        ("create_paid_invoice", ["COMMERCE_PAYMENT"]),
        ("create_expense", ["COMMERCE_PAYMENT"]),
        ("create_refund_receipt", ["COMMERCE_PAYMENT"]),
    ],
)
def test_payload_shape_and_urls(definition, action, object_types):
    payload = action_definition_payload(definition.actions[action], PUBLIC_URL)
    assert payload["actionUrl"] == f"{PUBLIC_URL}/hubspot/actions/{action}"
    assert payload["objectTypes"] == object_types
    assert payload["published"] is True and payload["functions"] == []
    for key in ("actionUrl", "functions", "inputFields", "labels", "objectTypes", "published"):
        assert key in payload  # required by HubSpot's PublicActionDefinitionEgg
    for item in payload["inputFields"]:
        type_definition = item["typeDefinition"]
        assert {"name", "type", "options"} <= set(type_definition)
        assert item["supportedValueTypes"] == ["STATIC_VALUE"]
        assert isinstance(item["isRequired"], bool)
        if "optionsUrl" in type_definition:
            assert type_definition["optionsUrl"] == f"{PUBLIC_URL}/hubspot/actions/{action}/options"
    assert payload["objectRequestOptions"]["properties"]
    assert payload["labels"]["en"]["actionName"]
    # the file holds paths; rendering must not change the loaded definition
    assert definition.actions[action]["actionUrl"] == f"/hubspot/actions/{action}"


def test_public_url_with_a_path_prefix_keeps_it(definition):
    payload = action_definition_payload(definition.actions["create_invoice"], "https://example.test/qbo/")
    assert payload["actionUrl"] == "https://example.test/qbo/hubspot/actions/create_invoice"
    with pytest.raises(ValueError):
        action_definition_payload(definition.actions["create_invoice"], "example.test")


def test_action_names(definition):
    names = {name: p["labels"]["en"]["actionName"] for name, p in payloads(definition).items()}
    assert names == {
        "create_invoice": "Create a QuickBooks invoice",
        "create_estimate": "Create a QuickBooks estimate",
        "create_sales_receipt": "Create a QuickBooks sales receipt",
        "create_paid_invoice": "Create a paid invoice in QuickBooks",
        "create_expense": "Create a QuickBooks expense",
        "create_refund_receipt": "Create a QuickBooks refund receipt",
    }


def test_input_fields_per_action(definition):
    fields = {name: [f["typeDefinition"]["name"] for f in p["inputFields"]] for name, p in payloads(definition).items()}
    assert fields["create_invoice"] == [
        "quickbooks_account",
        "payment_terms",
        "customer",
        "products",
        "create_missing_products",
        "tax_code",
    ]
    assert "payment_terms" not in fields["create_estimate"]
    for action in (
        "create_invoice",
        "create_estimate",
        "create_sales_receipt",
        "create_paid_invoice",
        "create_refund_receipt",
    ):
        assert "tax_code" in fields[action]
    for action in ("create_invoice", "create_estimate", "create_sales_receipt", "create_paid_invoice"):
        assert {"quickbooks_account", "customer", "products", "create_missing_products"} <= set(fields[action])
    assert "deposit_account" in fields["create_sales_receipt"] and "deposit_account" in fields["create_paid_invoice"]
    assert {"expense_account", "payment_account", "vendor"} <= set(fields["create_expense"])
    assert "payment_account" in fields["create_refund_receipt"]


def test_every_label_and_field_is_defined(definition):
    for name, payload in payloads(definition).items():
        en = payload["labels"]["en"]
        field_names = [f["typeDefinition"]["name"] for f in payload["inputFields"]]
        assert set(en["inputFieldLabels"]) == set(field_names), name
        assert set(en["inputFieldDescriptions"]) == set(field_names), name
        assert set(en["outputFieldLabels"]) == {f["typeDefinition"]["name"] for f in payload["outputFields"]}, name
        for rule in payload["executionRules"]:
            assert rule["labelName"] in en["executionRules"], (name, rule["labelName"])
            assert "{{error_message}}" in en["executionRules"][rule["labelName"]]
        for item in payload["inputFields"]:
            for option in item["typeDefinition"]["options"]:
                assert en["inputFieldOptionLabels"][item["typeDefinition"]["name"]][option["value"]] == option["label"]
        for dependency in payload["inputFieldDependencies"]:
            assert dependency["controllingFieldName"] in field_names
            assert set(dependency["dependentFieldNames"]) <= set(field_names)
        assert en["appDisplayName"]


def test_one_execution_rule_per_error_code_on_every_action(definition):
    assert set(definition.error_codes) == ERROR_CODES
    assert definition.error_codes[-1] == "INTERNAL_ERROR"  # the generic rule comes last
    for name, payload in payloads(definition).items():
        codes = [rule["conditions"]["error_code"] for rule in payload["executionRules"]]
        assert sorted(codes) == sorted(ERROR_CODES), name
        assert len({rule["labelName"] for rule in payload["executionRules"]}) == len(codes)


def test_output_fields(definition):
    for name, payload in payloads(definition).items():
        outputs = [f["typeDefinition"]["name"] for f in payload["outputFields"]]
        expected = OUTPUTS[:4] + ["quickbooks_payment_id"] + OUTPUTS[4:] if name == "create_paid_invoice" else OUTPUTS
        assert outputs == expected, name
        assert {f["typeDefinition"]["type"] for f in payload["outputFields"]} == {"string"}


def test_customer_options_depend_on_the_object_types(definition):
    invoice = input_field(action_definition_payload(definition.actions["create_invoice"], PUBLIC_URL), "customer")
    expense_like = input_field(
        action_definition_payload(definition.actions["create_paid_invoice"], PUBLIC_URL), "customer"
    )
    assert [o["value"] for o in invoice["typeDefinition"]["options"]] == [
        "first_associated_contact",
        "primary_company",
        "quote_signer",
    ]
    assert invoice["isRequired"] is True
    assert [o["value"] for o in expense_like["typeDefinition"]["options"]] == [
        "first_associated_contact",
        "primary_company",
    ]
    assert definition.actions["create_invoice"]["inputDefaults"]["customer"] == "first_associated_contact"


def test_dependencies(definition):
    payload = action_definition_payload(definition.actions["create_invoice"], PUBLIC_URL)
    assert payload["inputFieldDependencies"] == [
        {
            "dependencyType": "SINGLE_FIELD",
            "controllingFieldName": "quickbooks_account",
            "dependentFieldNames": ["payment_terms", "products", "tax_code"],
        },
        {
            "dependencyType": "CONDITIONAL_SINGLE_FIELD",
            "controllingFieldName": "products",
            "controllingFieldValue": "line_items",
            "dependentFieldNames": ["create_missing_products"],
        },
    ]
    create_missing = input_field(payload, "create_missing_products")["typeDefinition"]
    assert [(o["value"], o["label"]) for o in create_missing["options"]] == [("true", "Yes"), ("false", "No")]


def test_field_override_changes_only_that_action(definition):
    expense = action_definition_payload(definition.actions["create_expense"], PUBLIC_URL)
    refund = action_definition_payload(definition.actions["create_refund_receipt"], PUBLIC_URL)
    assert expense["labels"]["en"]["inputFieldLabels"]["payment_account"] == "Paid from"
    assert refund["labels"]["en"]["inputFieldLabels"]["payment_account"] == "Refund from"


def test_payment_properties_are_requested(definition):
    properties = action_definition_payload(definition.actions["create_expense"], PUBLIC_URL)["objectRequestOptions"][
        "properties"
    ]
    assert {
        "hs_initial_amount",
        "hs_fees_amount",
        "hs_latest_status",
        "hs_payment_source_app",
        "hs_currency_code",
        "hs_customer_email",
        "hs_initiated_date",
    } <= set(properties)


# --- invalid variants -------------------------------------------------------------------------------


def mutate_missing_action_name(raw):
    del raw["actions"]["create_invoice"]["labels"]["en"]["actionName"]


def mutate_unknown_object_type(raw):
    raw["actions"]["create_estimate"]["objectTypes"] = ["DEAL", "SPACESHIP"]


def mutate_dependency_on_unknown_field(raw):
    raw["fields"]["payment_terms"]["dependsOn"] = "quickbooks_company"


def mutate_conditional_on_unknown_field(raw):
    raw["fields"]["create_missing_products"]["showWhen"]["field"] = "product"


def mutate_unknown_input_field(raw):
    raw["actions"]["create_expense"]["inputFields"].append("memo")


def mutate_unknown_output_field(raw):
    raw["actions"]["create_expense"]["outputFields"].append("quickbooks_memo")


def mutate_rule_without_label(raw):
    del raw["executionRules"][0]["labels"]["en"]


def mutate_duplicate_rule(raw):
    raw["executionRules"].append(copy.deepcopy(raw["executionRules"][0]))


def mutate_dependency_missing_from_action(raw):
    raw["actions"]["create_estimate"]["inputFields"].remove("quickbooks_account")


def mutate_option_without_label(raw):
    del raw["fields"]["customer"]["labels"]["en"]["options"]["quote_signer"]


def mutate_actionurl_not_a_path(raw):
    raw["actions"]["create_invoice"]["actionUrl"] = "https://elsewhere.test/invoice"


def mutate_typo_key(raw):
    raw["actions"]["create_invoice"]["objectType"] = ["DEAL"]


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (mutate_missing_action_name, "actions.create_invoice.labels.en.actionName"),
        (mutate_unknown_object_type, "unknown objectType 'SPACESHIP'"),
        (
            mutate_dependency_on_unknown_field,
            "fields.payment_terms.dependsOn names an unknown field 'quickbooks_company'",
        ),
        (
            mutate_conditional_on_unknown_field,
            "fields.create_missing_products.showWhen names an unknown field 'product'",
        ),
        (mutate_unknown_input_field, "actions.create_expense.inputFields: unknown field 'memo'"),
        (mutate_unknown_output_field, "actions.create_expense.outputFields: unknown output field 'quickbooks_memo'"),
        (mutate_rule_without_label, "labels.en (the message shown in the workflow history) is required"),
        (mutate_duplicate_rule, "labelName 'actionNotAvailable' is used twice"),
        (
            mutate_dependency_missing_from_action,
            "field 'products' depends on 'quickbooks_account', which the action does not use",
        ),
        (mutate_option_without_label, "labels.en.options has no label for quote_signer"),
        (mutate_actionurl_not_a_path, "actions.create_invoice.actionUrl: must be a path"),
        (mutate_typo_key, "actions.create_invoice.objectType: Unknown field."),
    ],
)
def test_invalid_variants_are_refused_with_the_reason(raw, mutate, expected):
    mutate(raw)
    with pytest.raises(AppDefinitionError) as caught:
        parse_app_definition(raw, path="hubspot-app.json")
    assert expected in str(caught.value), str(caught.value)


def test_every_problem_is_listed_at_once(raw):
    mutate_missing_action_name(raw)
    mutate_unknown_object_type(raw)
    with pytest.raises(AppDefinitionError) as caught:
        parse_app_definition(raw)
    assert len(caught.value.problems) == 2


def test_unreadable_files(tmp_path):
    with pytest.raises(AppDefinitionError, match="cannot read the file"):
        load_app_definition(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{"app": ')
    with pytest.raises(AppDefinitionError, match=r"not valid JSON: .*line 1"):
        load_app_definition(broken)


def test_a_second_language_is_rendered_beside_english(raw):
    raw["labels"]["de"] = {"appDisplayName": "QuickBooks-Aktionen"}
    raw["actions"]["create_invoice"]["labels"]["de"] = {"actionName": "QuickBooks-Rechnung erstellen"}
    raw["fields"]["customer"]["labels"]["de"] = {"label": "Kunde", "options": {"primary_company": "Hauptfirma"}}
    raw["outputFields"]["error_code"]["labels"]["de"] = "Fehlercode"
    raw["executionRules"][0]["labels"]["de"] = "Nicht verfügbar: {{error_message}}"

    definition = parse_app_definition(raw)

    de = action_definition_payload(definition.actions["create_invoice"], PUBLIC_URL)["labels"]["de"]
    assert de == {
        "actionName": "QuickBooks-Rechnung erstellen",
        "appDisplayName": "QuickBooks-Aktionen",
        "inputFieldLabels": {"customer": "Kunde"},
        "inputFieldOptionLabels": {"customer": {"primary_company": "Hauptfirma"}},
        "outputFieldLabels": {"error_code": "Fehlercode"},
        "executionRules": {"actionNotAvailable": "Nicht verfügbar: {{error_message}}"},
    }
    assert "de" not in action_definition_payload(definition.actions["create_estimate"], PUBLIC_URL)["labels"]
