"""Data-sync filters: every operator (pure), and CONTACT_NOT_ELIGIBLE end to end naming condition and contact."""

import pytest

from actions.errors import ActionError
from actions.settings import DEFAULT_SETTINGS
from actions.steps.eligibility import check_contact_eligible, describe, filter_properties, passes
from actions.steps.source import Record
from tests.conftest import REALM_ID, execution_body
from tests.scenarios import configure, quickbooks_calls, seed_deal

PATH = "/hubspot/actions/create_invoice"

CONTACT = Record(
    id="7",
    properties={
        "email": "ann@acme.test",
        "firstname": "Ann",
        "lastname": "Lee",
        "lifecyclestage": "customer",
        "country": "Norway",
        "hs_buying_role": "BUDGET_HOLDER;DECISION_MAKER",
        "phone": None,
    },
)


@pytest.mark.parametrize(
    "condition, expected",
    [
        ({"property": "lifecyclestage", "operator": "eq", "value": "customer"}, True),
        ({"property": "lifecyclestage", "operator": "eq", "value": "CUSTOMER"}, True),  # HubSpot values: any case
        ({"property": "lifecyclestage", "operator": "eq", "value": "lead"}, False),
        ({"property": "lifecyclestage", "operator": "neq", "value": "lead"}, True),
        ({"property": "lifecyclestage", "operator": "neq", "value": "customer"}, False),
        ({"property": "country", "operator": "in", "values": ["Sweden", "norway"]}, True),
        ({"property": "country", "operator": "in", "values": ["Sweden", "Denmark"]}, False),
        ({"property": "hs_buying_role", "operator": "in", "values": ["DECISION_MAKER"]}, True),  # multi-select
        ({"property": "country", "operator": "not_in", "values": ["Sweden", "Denmark"]}, True),
        ({"property": "country", "operator": "not_in", "values": ["Norway"]}, False),
        ({"property": "hs_buying_role", "operator": "not_in", "values": ["budget_holder"]}, False),
        ({"property": "email", "operator": "contains", "value": "@ACME."}, True),
        ({"property": "email", "operator": "contains", "value": "@example."}, False),
        ({"property": "email", "operator": "known"}, True),
        ({"property": "phone", "operator": "known"}, False),  # null
        ({"property": "jobtitle", "operator": "known"}, False),  # absent
        ({"property": "phone", "operator": "unknown"}, True),
        ({"property": "email", "operator": "unknown"}, False),
    ],
)
def test_each_operator(condition, expected):
    assert passes(CONTACT, condition) is expected


@pytest.mark.parametrize(
    "condition, words",
    [
        ({"property": "email", "operator": "known"}, "email is known"),
        ({"property": "phone", "operator": "unknown"}, "phone is unknown"),
        ({"property": "lifecyclestage", "operator": "eq", "value": "customer"}, "lifecyclestage is customer"),
        ({"property": "lifecyclestage", "operator": "neq", "value": "lead"}, "lifecyclestage is not lead"),
        ({"property": "country", "operator": "in", "values": ["Sweden", "Norway"]}, "country is any of Sweden, Norway"),
        ({"property": "country", "operator": "not_in", "values": ["Sweden"]}, "country is none of Sweden"),
        ({"property": "email", "operator": "contains", "value": "@acme"}, "email contains @acme"),
    ],
)
def test_conditions_read_as_words(condition, words):
    assert describe(condition) == words


class Ctx:
    def __init__(self, **settings):
        self.settings = {**DEFAULT_SETTINGS, **settings}


def test_every_filter_must_pass_and_the_first_failure_is_named():
    filters = [
        {"property": "email", "operator": "known"},
        {"property": "country", "operator": "eq", "value": "Sweden"},
        {"property": "phone", "operator": "known"},
    ]
    with pytest.raises(ActionError) as caught:
        check_contact_eligible(Ctx(contact_sync_filters=filters), CONTACT)
    assert caught.value.code == "CONTACT_NOT_ELIGIBLE"
    assert caught.value.message.startswith(
        "Contact Ann Lee <ann@acme.test> (HubSpot contact 7) does not meet the data-sync filter 'country is Sweden'."
    )


def test_legacy_mode_skips_the_filters_and_fetches_no_extra_properties():
    ctx = Ctx(contact_matching="legacy", contact_sync_filters=[{"property": "country", "operator": "unknown"}])
    assert check_contact_eligible(ctx, CONTACT) is None
    assert filter_properties(ctx.settings) == []
    assert filter_properties(Ctx().settings) == ["email"]


# -- end to end --------------------------------------------------------------------------------------------


def test_default_filter_email_is_known(portal, connection, fake_quickbooks, fake_hubspot, signed_post):
    deal = seed_deal(portal, fake_quickbooks, email="")

    signed_post(PATH, execution_body(object_id=deal.deal_id))

    fields = fake_hubspot.completions[0].output_fields
    assert (fields["hs_execution_state"], fields["error_code"]) == ("FAIL_CONTINUE", "CONTACT_NOT_ELIGIBLE")
    assert (
        f"Contact Ann Lee (HubSpot contact {deal.contact_id}) does not meet the data-sync filter 'email is known'"
        in fields["error_message"]
    )
    assert quickbooks_calls(fake_quickbooks) == []  # checked before anything is asked of QuickBooks


def test_configured_filters_decide(app, portal, connection, fake_quickbooks, fake_hubspot, signed_post):
    configure(
        app,
        contact_sync_filters=[
            {"property": "email", "operator": "known"},
            {"property": "lifecyclestage", "operator": "in", "values": ["customer", "opportunity"]},
        ],
    )
    lead = seed_deal(portal, fake_quickbooks)
    portal.update("contacts", lead.contact_id, {"lifecyclestage": "lead"})
    customer_deal = portal.add("deals", {"dealname": "Second", "amount": "200"})
    buyer = portal.add(
        "contacts", {"email": "bo@acme.test", "firstname": "Bo", "lastname": "Ek", "lifecyclestage": "opportunity"}
    )
    portal.associate("deals", customer_deal, "contacts", buyer)
    line = portal.add(
        "line_items", {"name": "Widget", "hs_sku": "W-1", "quantity": "2", "price": "100", "amount": "200"}
    )
    portal.associate("deals", customer_deal, "line_items", line)

    signed_post(PATH, execution_body(callback_id="ap-62515-1-1-1", object_id=lead.deal_id))
    signed_post(PATH, execution_body(callback_id="ap-62515-1-1-2", object_id=customer_deal))

    refused = fake_hubspot.completion_for("ap-62515-1-1-1").output_fields
    assert refused["error_code"] == "CONTACT_NOT_ELIGIBLE"
    assert "'lifecyclestage is any of customer, opportunity'" in refused["error_message"]
    assert "Ann Lee <ann.lee@acme.test>" in refused["error_message"]
    accepted = fake_hubspot.completion_for("ap-62515-1-1-2").output_fields
    assert accepted["hs_execution_state"] == "SUCCESS"
    [customer] = fake_quickbooks.company(REALM_ID).all("Customer")  # only the eligible contact became one
    assert customer["PrimaryEmailAddr"]["Address"] == "bo@acme.test"
    # The filter's property was read with the contact.
    contact_reads = [r for r in fake_hubspot.requests if "/contacts/" in r.path and r.method == "GET"]
    assert contact_reads and all("lifecyclestage" in str(r.query.get("properties")) for r in contact_reads)
