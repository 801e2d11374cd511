"""Who is billed and as which QuickBooks customer, end to end through the signed endpoint against the fakes.

Customer input modes, legacy and email matching, several matches, remembered mappings, display names.
"""

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest

from actions.errors import QuickBooksFault
from actions.steps.customers import Lookup, create_customer, display_name_candidates
from actions.steps.source import Party, Record
from app.extensions import db
from app.storage.connections import MappingStore
from tests.conftest import REALM_ID
from tests.scenarios import add_contact, configure, quickbooks_calls, seed_deal, seed_quote, stored_executions

PATH = "/hubspot/actions/create_invoice"


def billed(books, fields) -> dict:
    assert fields["hs_execution_state"] == "SUCCESS", fields
    invoice = books.get("Invoice", fields["quickbooks_document_id"])
    assert invoice["CustomerRef"]["value"] == fields["quickbooks_customer_id"]
    return books.get("Customer", fields["quickbooks_customer_id"])


def failed(fields, code) -> str:
    assert (fields["hs_execution_state"], fields["error_code"]) == ("FAIL_CONTINUE", code), fields
    return fields["error_message"]


# -- which contact ---------------------------------------------------------------------------------------


def test_first_associated_contact_is_the_lowest_contact_id(portal, fake_quickbooks, books, invoice_for):
    deal = seed_deal(portal, fake_quickbooks)  # its contact is 101
    for contact_id, name in ((300, "Cy"), (5, "Eve"), (200, "Bo")):  # the fake lists newest first: 200, 5, 300, 101
        portal.add(
            "contacts", {"email": f"{name.lower()}@acme.test", "firstname": name, "lastname": "Lee"}, id=contact_id
        )
        portal.associate("deals", deal.deal_id, "contacts", contact_id)

    customer = billed(books, invoice_for(deal.deal_id))

    assert customer["DisplayName"] == "Eve Lee"
    assert customer["PrimaryEmailAddr"]["Address"] == "eve@acme.test"


def test_primary_company_is_billed_with_the_contact_email(portal, fake_quickbooks, books, invoice_for):
    deal = seed_deal(portal, fake_quickbooks)
    other = portal.add("companies", {"name": "Not Primary Inc"})
    portal.associate("deals", deal.deal_id, "companies", other)  # lower id, but not the primary
    acme = portal.add("companies", {"name": "Acme Corp", "domain": "acme.test"})
    portal.associate("deals", deal.deal_id, "companies", acme, label="Primary")

    fields = invoice_for(deal.deal_id, customer="primary_company")

    customer = billed(books, fields)
    assert (customer["DisplayName"], customer["CompanyName"]) == ("Acme Corp", "Acme Corp")
    assert customer["PrimaryEmailAddr"]["Address"] == "ann.lee@acme.test"
    assert books.get("Invoice", fields["quickbooks_document_id"])["BillEmail"]["Address"] == "ann.lee@acme.test"
    assert "GivenName" not in customer


def test_primary_company_matches_the_existing_company_customer(portal, fake_quickbooks, books, invoice_for):
    deal = seed_deal(portal, fake_quickbooks)
    acme = portal.add("companies", {"name": "Acme Corp"})
    portal.associate("deals", deal.deal_id, "companies", acme, label="Primary")
    existing = books.add_customer(DisplayName="ACME CORP", CompanyName="Acme Corp")

    customer = billed(books, invoice_for(deal.deal_id, customer="primary_company"))

    assert customer["Id"] == existing["Id"]
    assert len(books.all("Customer")) == 1


def test_primary_company_missing_is_contact_missing(portal, fake_quickbooks, invoice_for):
    deal = seed_deal(portal, fake_quickbooks)
    unlabeled = portal.add("companies", {"name": "Some Partner"})
    portal.associate("deals", deal.deal_id, "companies", unlabeled)

    message = failed(invoice_for(deal.deal_id, customer="primary_company"), "CONTACT_MISSING")

    assert f"deal {deal.deal_id} has no primary company" in message


def test_quote_signer_is_billed_and_the_quote_line_items_used(portal, fake_quickbooks, books, invoice_for):
    quote = seed_quote(portal, fake_quickbooks)
    add_contact(portal, quote.deal_id, object_type="quotes", email="buyer@acme.test", firstname="Bea", lastname="Buyer")
    add_contact(
        portal,
        quote.deal_id,
        object_type="quotes",
        type_id=702,
        label="Signer",
        email="signer@acme.test",
        firstname="Sid",
        lastname="Signer",
    )

    fields = invoice_for(quote.deal_id, object_type="QUOTE", customer="quote_signer")

    customer = billed(books, fields)
    assert customer["DisplayName"] == "Sid Signer"
    invoice = books.get("Invoice", fields["quickbooks_document_id"])
    assert float(invoice["TotalAmt"]) == 450.0
    assert [
        line["SalesItemLineDetail"]["ItemRef"]["value"]
        for line in invoice["Line"]
        if line["DetailType"] == "SalesItemLineDetail"
    ] == [quote.widget_id, quote.service_id]
    assert f"HubSpot quote {quote.deal_id}" in invoice["PrivateNote"]


def test_quote_without_signer_bills_its_first_contact_and_says_so(app, portal, fake_quickbooks, books, invoice_for):
    quote = seed_quote(portal, fake_quickbooks)
    second = portal.add("contacts", {"email": "late@acme.test", "firstname": "Lou", "lastname": "Late"}, id=900)
    first = portal.add("contacts", {"email": "first@acme.test", "firstname": "Fay", "lastname": "First"}, id=50)
    portal.associate("quotes", quote.deal_id, "contacts", first)
    portal.associate("quotes", quote.deal_id, "contacts", second)

    customer = billed(books, invoice_for(quote.deal_id, object_type="QUOTE", customer="quote_signer"))

    assert customer["DisplayName"] == "Fay First"
    [execution] = stored_executions(app)
    assert any("has no signer; billing its first contact" in note for note in execution.notes)


@pytest.mark.parametrize(
    "customer_input, object_type",
    [
        ("first_associated_contact", "DEAL"),
        ("quote_signer", "QUOTE"),
    ],
)
def test_record_without_contacts_is_contact_missing(portal, fake_quickbooks, invoice_for, customer_input, object_type):
    if object_type == "QUOTE":
        record_id = seed_quote(portal, fake_quickbooks).deal_id
    else:
        record_id = portal.add("deals", {"dealname": "Nobody", "amount": "10"})

    message = failed(invoice_for(record_id, object_type=object_type, customer=customer_input), "CONTACT_MISSING")

    assert f"{object_type.lower()} {record_id} has no associated contact to bill" in message
    assert "Associate a contact" in message
    assert fake_quickbooks.company(REALM_ID).all("Invoice") == []


# -- legacy matching ---------------------------------------------------------------------------------------


def test_legacy_matches_first_name_last_name_and_email(app, portal, fake_quickbooks, books, invoice_for):
    configure(app, contact_matching="legacy")
    deal = seed_deal(portal, fake_quickbooks, email="ann.lee@acme.test")
    existing = books.add_customer(
        DisplayName="Lee, Ann", GivenName="ann", FamilyName="LEE", PrimaryEmailAddr="Ann.Lee@acme.test"
    )

    customer = billed(books, invoice_for(deal.deal_id))

    assert customer["Id"] == existing["Id"]
    assert len(books.all("Customer")) == 1


def test_legacy_same_email_different_name_creates_a_new_customer(app, portal, fake_quickbooks, books, invoice_for):
    configure(app, contact_matching="legacy")
    deal = seed_deal(portal, fake_quickbooks, email="ann.lee@acme.test", firstname="Anna", lastname="Lee")
    existing = books.add_customer(
        DisplayName="Ann Lee", GivenName="Ann", FamilyName="Lee", PrimaryEmailAddr="ann.lee@acme.test"
    )

    customer = billed(books, invoice_for(deal.deal_id))

    assert customer["Id"] != existing["Id"]
    assert (customer["DisplayName"], customer["PrimaryEmailAddr"]["Address"]) == ("Anna Lee", "ann.lee@acme.test")
    assert len(books.all("Customer")) == 2


def test_legacy_ignores_the_sync_filters(app, portal, fake_quickbooks, books, invoice_for):
    configure(
        app,
        contact_matching="legacy",
        contact_sync_filters=[{"property": "lifecyclestage", "operator": "eq", "value": "customer"}],
    )
    deal = seed_deal(portal, fake_quickbooks)

    assert billed(books, invoice_for(deal.deal_id))["DisplayName"] == "Ann Lee"


# -- email matching ----------------------------------------------------------------------------------------


def test_email_matches_exactly_ignoring_case(portal, fake_quickbooks, books, invoice_for):
    deal = seed_deal(portal, fake_quickbooks, email="ann.lee@acme.test")
    existing = books.add_customer(DisplayName="A. Lee (Acme)", PrimaryEmailAddr="ANN.Lee@Acme.TEST")
    books.add_customer(DisplayName="Ann Lee old address", PrimaryEmailAddr="ann.lee@acme.io")

    customer = billed(books, invoice_for(deal.deal_id))

    assert customer["Id"] == existing["Id"]
    assert len(books.all("Customer")) == 2  # matched, nothing created


def test_a_different_address_is_no_match(portal, fake_quickbooks, books, invoice_for):
    deal = seed_deal(portal, fake_quickbooks, email="ann.lee@acme.test")
    books.add_customer(DisplayName="Someone", PrimaryEmailAddr="ann.lee@acme.testing")

    customer = billed(books, invoice_for(deal.deal_id))

    assert (customer["DisplayName"], customer["PrimaryEmailAddr"]["Address"]) == ("Ann Lee", "ann.lee@acme.test")


@pytest.mark.parametrize(
    "others, chosen, reason",
    [
        # (DisplayName, Active) in creation order (oldest first); `chosen` is an index into them.
        ([("Ann Lee", False), ("Lee Consulting", True)], 1, "the only active one"),
        ([("Lee Consulting", True), ("Ann Lee", True)], 1, "active and named like the HubSpot record"),
        ([("Lee Consulting", True), ("Acme AP", True)], 0, "the oldest of the equally good matches"),
    ],
)
def test_several_customers_with_the_email(app, portal, fake_quickbooks, books, invoice_for, others, chosen, reason):
    deal = seed_deal(portal, fake_quickbooks)
    created = [
        books.add_customer(DisplayName=name, Active=active, PrimaryEmailAddr="ann.lee@acme.test")
        for name, active in others
    ]

    customer = billed(books, invoice_for(deal.deal_id))

    assert customer["Id"] == created[chosen]["Id"]
    [execution] = stored_executions(app)
    [note] = [note for note in execution.notes if "QuickBooks customers match" in note]
    assert f"chose {created[chosen]['Id']} '{created[chosen]['DisplayName']}'" in note
    assert reason in note
    assert "Ann Lee <ann.lee@acme.test>" in note


def test_oldest_means_created_first_not_lowest_id(app, portal, fake_quickbooks, books, invoice_for):
    deal = seed_deal(portal, fake_quickbooks)
    newer = books.add_customer(DisplayName="Lee Consulting", PrimaryEmailAddr="ann.lee@acme.test")
    older = books.add_customer(DisplayName="Acme AP", PrimaryEmailAddr="ann.lee@acme.test")
    books.patch("Customer", older["Id"], MetaData={**older["MetaData"], "CreateTime": "2015-03-01T10:00:00.000-08:00"})

    assert billed(books, invoice_for(deal.deal_id))["Id"] == older["Id"] != newer["Id"]


def test_only_inactive_matches_is_customer_not_found(portal, fake_quickbooks, books, invoice_for):
    deal = seed_deal(portal, fake_quickbooks)
    inactive = books.add_customer(DisplayName="Ann Lee", Active=False, PrimaryEmailAddr="ann.lee@acme.test")

    message = failed(invoice_for(deal.deal_id), "CUSTOMER_NOT_FOUND")

    assert f"QuickBooks customer {inactive['Id']}" in message and "Make the customer active again" in message
    assert len(books.all("Customer")) == 1 and books.all("Invoice") == []


def test_a_company_refusing_the_email_filter_is_searched_page_by_page(portal, fake_quickbooks, books, invoice_for):
    deal = seed_deal(portal, fake_quickbooks)
    existing = books.add_customer(DisplayName="Lee, Ann", PrimaryEmailAddr="Ann.Lee@acme.test")
    books.add_customer(DisplayName="Someone else", PrimaryEmailAddr="bob@acme.test")
    fake_quickbooks.fail_next(
        "POST /batch",
        status=400,
        code="4001",
        message="Invalid query",
        detail="QueryValidationError: property 'PrimaryEmailAddr' is not queryable",
    )

    customer = billed(books, invoice_for(deal.deal_id, products=deal.widget_id))  # no line-item batch first

    assert customer["Id"] == existing["Id"]
    scans = [r for r in fake_quickbooks.requests_to("POST", "/query") if "STARTPOSITION 1 MAXRESULTS 1000" in r.body]
    assert len(scans) == 1


# -- remembered mappings -----------------------------------------------------------------------------------


def customer_lookups(fake_quickbooks) -> list:
    return [r for r in fake_quickbooks.requests if "from customer" in (r.body or "").lower()]


def test_second_execution_for_the_contact_makes_no_customer_query(app, portal, fake_quickbooks, books, invoice_for):
    deal = seed_deal(portal, fake_quickbooks)
    first = billed(books, invoice_for(deal.deal_id))
    assert customer_lookups(fake_quickbooks)
    fake_quickbooks.reset_requests()

    second = billed(books, invoice_for(deal.deal_id))

    assert second["Id"] == first["Id"]
    assert customer_lookups(fake_quickbooks) == []
    assert quickbooks_calls(fake_quickbooks) == ["POST /invoice"]  # written with the remembered customer and items
    assert len(books.all("Customer")) == 1 and len(books.all("Invoice")) == 2
    [_, execution] = stored_executions(app)
    assert f"Customer: QuickBooks customer {first['Id']} 'Ann Lee' for Ann Lee" in " ".join(execution.notes)
    assert any("remembered from an earlier execution" in note for note in execution.notes)


def test_remembered_customer_made_inactive_is_resolved_again(app, portal, fake_quickbooks, books, invoice_for):
    deal = seed_deal(portal, fake_quickbooks)
    first = billed(books, invoice_for(deal.deal_id))
    books.patch("Customer", first["Id"], Active=False)  # merged into a new record in QuickBooks, say
    replacement = books.add_customer(DisplayName="Ann Lee (Acme)", PrimaryEmailAddr="ann.lee@acme.test")

    second = billed(books, invoice_for(deal.deal_id))

    assert second["Id"] == replacement["Id"]
    assert any(
        f"QuickBooks customer {first['Id']}, remembered for Ann Lee" in note and "matching again" in note
        for note in stored_executions(app)[1].notes
    )
    fake_quickbooks.reset_requests()
    assert billed(books, invoice_for(deal.deal_id))["Id"] == replacement["Id"]  # the new match is remembered
    assert customer_lookups(fake_quickbooks) == []


def test_remembered_customer_made_inactive_refuses_the_write_once_then_it_is_matched_again(
    app, portal, connection, fake_quickbooks, books, invoice_for
):
    deal = seed_deal(portal, fake_quickbooks)
    first = billed(books, invoice_for(deal.deal_id))
    books.patch("Customer", first["Id"], Active=False)
    replacement = books.add_customer(DisplayName="Ann Lee (Acme)", PrimaryEmailAddr="ann.lee@acme.test")
    fake_quickbooks.reset_requests()

    fields = invoice_for(deal.deal_id)

    second = billed(books, fields)
    assert second["Id"] == replacement["Id"]
    # Written with the remembered customer, refused (2500 on CustomerRef), matched again, written once more.
    assert quickbooks_calls(fake_quickbooks) == ["POST /invoice", "POST /batch", "POST /invoice"]
    writes = fake_quickbooks.requests_to("POST", "/invoice")
    assert [w.json["CustomerRef"]["value"] for w in writes] == [first["Id"], replacement["Id"]]
    assert writes[0].query["requestid"] != writes[1].query["requestid"]
    invoices = [i for i in books.all("Invoice") if i["Id"] != books.all("Invoice")[0]["Id"]]
    assert [i["Id"] for i in invoices] == [fields["quickbooks_document_id"]]  # one document for the execution
    notes = stored_executions(app)[1].notes
    assert any("QuickBooks refused the invoice" in n and "Resolving the remembered customer again" in n for n in notes)
    assert any(f"QuickBooks customer {first['Id']}, remembered for Ann Lee" in n for n in notes)
    assert f"Customer: QuickBooks customer {replacement['Id']} 'Ann Lee (Acme)'" in " ".join(notes)
    assert "found by email" in " ".join(notes)
    with app.app_context():
        assert MappingStore(db, connection).get("contact", deal.contact_id) == replacement["Id"]


def test_remembered_customer_that_is_gone_is_resolved_again(
    app, portal, connection, fake_quickbooks, books, invoice_for
):
    deal = seed_deal(portal, fake_quickbooks)
    with app.app_context():
        MappingStore(db, connection).remember("contact", deal.contact_id, "99999")  # no such customer any more

    customer = billed(books, invoice_for(deal.deal_id))

    assert customer["DisplayName"] == "Ann Lee"
    # Remembered without its facts (currency, name): checked in QuickBooks first, along with the other reads.
    [batch] = fake_quickbooks.requests_to("POST", "/batch")
    assert "SELECT * FROM Customer WHERE Id = '99999'" in [q["Query"] for q in batch.json["BatchItemRequest"]]
    assert fake_quickbooks.requests_to("POST", "/invoice")[0].json["CustomerRef"]["value"] == customer["Id"]
    with app.app_context():
        assert MappingStore(db, connection).get("contact", deal.contact_id) == customer["Id"]


def test_remembered_customer_deleted_with_its_facts_refuses_the_write_once(
    app, portal, connection, fake_quickbooks, books, invoice_for
):
    deal = seed_deal(portal, fake_quickbooks)
    with app.app_context():  # remembered with its facts, then gone from QuickBooks (merged away, say)
        MappingStore(db, connection).remember(
            "contact", deal.contact_id, "99999", {"currency": "USD", "name": "Ann Lee"}
        )

    fields = invoice_for(deal.deal_id)

    customer = billed(books, fields)
    assert customer["DisplayName"] == "Ann Lee"  # created, the remembered one being gone
    writes = fake_quickbooks.requests_to("POST", "/invoice")
    assert [w.json["CustomerRef"]["value"] for w in writes] == ["99999", customer["Id"]]
    assert [i["Id"] for i in books.all("Invoice")] == [fields["quickbooks_document_id"]]
    assert any("QuickBooks customer 99999, remembered for Ann Lee" in n for n in stored_executions(app)[0].notes)
    with app.app_context():
        assert MappingStore(db, connection).get("contact", deal.contact_id) == customer["Id"]


def test_the_write_refused_again_after_resolving_is_explained(app, portal, fake_quickbooks, books, invoice_for):
    deal = seed_deal(portal, fake_quickbooks)
    first = billed(books, invoice_for(deal.deal_id))
    books.patch("Customer", first["Id"], Active=False)
    books.add_customer(DisplayName="Ann Lee (Acme)", PrimaryEmailAddr="ann.lee@acme.test")
    refusal = {
        "Message": "Invalid Reference Id",
        "Detail": "Invalid Reference Id",
        "code": "2500",
        "element": "CustomerRef",
    }
    fake_quickbooks.fail_next(
        "POST /invoice",
        status=400,
        body=json.dumps({"Fault": {"Error": [refusal], "type": "ValidationFault"}}),
        times=2,
    )
    fake_quickbooks.reset_requests()

    message = failed(invoice_for(deal.deal_id), "INVALID_INPUT")

    assert "QuickBooks cannot use the customer" in message
    assert len(fake_quickbooks.requests_to("POST", "/invoice")) == 2  # written once more, never a third time
    assert len(books.all("Invoice")) == 1


def test_a_refused_customer_found_moments_ago_is_written_once_more(app, portal, fake_quickbooks, books, invoice_for):
    """Nothing remembered to resolve again: the refusal may be QuickBooks answering an earlier attempt of this
    execution (same request id), so the document is written once more, under the retry's own request id."""
    deal = seed_deal(portal, fake_quickbooks)
    refusal = {"Message": "Invalid Reference Id", "Detail": "", "code": "2500", "element": "CustomerRef"}
    fake_quickbooks.fail_next(
        "POST /invoice", status=400, body=json.dumps({"Fault": {"Error": [refusal], "type": "ValidationFault"}})
    )

    fields = invoice_for(deal.deal_id)

    customer = billed(books, fields)
    writes = fake_quickbooks.requests_to("POST", "/invoice")
    assert [w.json["CustomerRef"]["value"] for w in writes] == [customer["Id"], customer["Id"]]
    assert writes[0].query["requestid"] != writes[1].query["requestid"]
    assert [i["Id"] for i in books.all("Invoice")] == [fields["quickbooks_document_id"]]
    assert any("writing the invoice once more" in note for note in stored_executions(app)[0].notes)


def test_a_long_display_name_is_remembered_whole_beside_the_id(
    app, portal, connection, fake_quickbooks, books, invoice_for
):
    from sqlalchemy import select

    from app.storage.models import Mapping

    first, last = "Bartholomew Maximilian", "Featherstonehaugh-Worthington of Acme Holdings"
    deal = seed_deal(portal, fake_quickbooks, firstname=first, lastname=last)
    customer = billed(books, invoice_for(deal.deal_id))
    assert customer["DisplayName"] == f"{first} {last}"
    fake_quickbooks.reset_requests()

    again = billed(books, invoice_for(deal.deal_id))

    assert again["Id"] == customer["Id"]
    assert quickbooks_calls(fake_quickbooks) == ["POST /invoice"]
    with app.app_context():
        [row] = db.session.scalars(select(Mapping).where(Mapping.kind == "contact")).all()
        assert row.quickbooks_id == customer["Id"]  # the id alone; the facts have their own column
        customer_id, facts = MappingStore(db, connection).recall("contact", deal.contact_id)
    assert (customer_id, facts["currency"], facts["name"]) == (customer["Id"], "USD", customer["DisplayName"])
    assert f"QuickBooks customer {customer['Id']} '{facts['name']}'" in " ".join(stored_executions(app)[1].notes)


# -- display names -----------------------------------------------------------------------------------------


def test_name_taken_by_a_vendor_gets_the_email(portal, fake_quickbooks, books, invoice_for, app):
    deal = seed_deal(portal, fake_quickbooks)
    books.add_vendor(DisplayName="Ann Lee")

    customer = billed(books, invoice_for(deal.deal_id))

    assert customer["DisplayName"] == "Ann Lee (ann.lee@acme.test)"
    assert any(
        "'Ann Lee' is taken; using 'Ann Lee (ann.lee@acme.test)'" in note for note in stored_executions(app)[0].notes
    )


def test_name_and_email_variant_taken_get_a_number(portal, fake_quickbooks, books, invoice_for):
    deal = seed_deal(portal, fake_quickbooks)
    books.add_employee(DisplayName="ann lee", GivenName="Ann", FamilyName="Lee")
    books.add_vendor(DisplayName="Ann Lee (ann.lee@acme.test)")

    assert billed(books, invoice_for(deal.deal_id))["DisplayName"] == "Ann Lee (2)"
    assert len(fake_quickbooks.requests_to("POST", "/customer")) == 1  # checked first, one write


def test_display_name_conflicts_fail_answers_duplicate_display_name(app, portal, fake_quickbooks, books, invoice_for):
    configure(app, display_name_conflicts="fail")
    deal = seed_deal(portal, fake_quickbooks)
    books.add_employee(DisplayName="Ann Lee")

    message = failed(invoice_for(deal.deal_id), "DUPLICATE_DISPLAY_NAME")

    assert "QuickBooks already has a customer, vendor or employee named 'Ann Lee'" in message
    assert "Rename the existing QuickBooks record, or set display_name_conflicts to 'disambiguate'" in message
    assert fake_quickbooks.requests_to("POST", "/customer") == []
    assert books.all("Invoice") == [] and books.all("Customer") == []


def test_colons_are_removed_from_display_names(portal, fake_quickbooks, books, invoice_for):
    deal = seed_deal(portal, fake_quickbooks, firstname="Ann:", lastname="Lee:Smith")

    customer = billed(books, invoice_for(deal.deal_id))

    assert customer["DisplayName"] == "Ann Lee Smith"


def test_contact_without_name_is_named_by_email(portal, fake_quickbooks, books, invoice_for):
    deal = seed_deal(portal, fake_quickbooks, firstname="", lastname="")
    assert billed(books, invoice_for(deal.deal_id))["DisplayName"] == "ann.lee@acme.test"


def test_display_name_race_6240_takes_the_next_free_name(app, portal, fake_quickbooks, books, invoice_for):
    deal = seed_deal(portal, fake_quickbooks)
    fake_quickbooks.fail_next(
        "POST /customer",
        status=400,
        code="6240",
        message="Duplicate Name Exists Error",
        detail="The name supplied already exists. : Ann Lee",
    )

    customer = billed(books, invoice_for(deal.deal_id))

    assert customer["DisplayName"] == "Ann Lee (ann.lee@acme.test)"
    writes = fake_quickbooks.requests_to("POST", "/customer")
    assert [w.json["DisplayName"] for w in writes] == ["Ann Lee", "Ann Lee (ann.lee@acme.test)"]
    assert writes[0].query["requestid"] != writes[1].query["requestid"]


def test_display_name_race_6240_by_the_same_contacts_customer_uses_it(app, portal, fake_quickbooks, books, invoice_for):
    """Another process's execution of the same contact created its customer between our lookup and our write."""
    deal = seed_deal(portal, fake_quickbooks)
    fake_quickbooks.fail_next(
        "POST /customer", status=400, code="6240", message="Duplicate Name Exists Error", commit=True
    )

    customer = billed(books, invoice_for(deal.deal_id))

    assert [c["DisplayName"] for c in books.all("Customer")] == ["Ann Lee"] and customer["DisplayName"] == "Ann Lee"
    assert len(fake_quickbooks.requests_to("POST", "/customer")) == 1


def test_display_name_race_6240_with_fail_setting(app, portal, fake_quickbooks, books, invoice_for):
    configure(app, display_name_conflicts="fail")
    deal = seed_deal(portal, fake_quickbooks)
    fake_quickbooks.fail_next("POST /customer", status=400, code="6240", message="Duplicate Name Exists Error")

    message = failed(invoice_for(deal.deal_id), "DUPLICATE_DISPLAY_NAME")

    assert "named 'Ann Lee'" in message and "display_name_conflicts" in message
    assert books.all("Customer") == []


def test_every_contact_of_a_company_gets_a_customer(portal, fake_quickbooks, books, invoice_for):
    """HubSpot's integration names a company's first contact after the company, then fails on every later
    contact of that company ("The display name is a duplicate"). Here each contact is its own customer."""
    company = books
    income = min(company.all("Account"), key=lambda a: int(a["Id"]))["Id"]
    company.add_item(Name="Widget", Sku="W-1", Type="NonInventory", UnitPrice=100, IncomeAccountRef=income)
    hubspots_customer = company.add_customer(
        DisplayName="Acme Corp",
        CompanyName="Acme Corp",
        GivenName="Ann",
        FamilyName="Lee",
        PrimaryEmailAddr="ann@acme.test",
    )
    acme = portal.add("companies", {"name": "Acme Corp"})
    people = [("ann@acme.test", "Ann", "Lee"), ("bob@acme.test", "Bob", "Stone"), ("cara@acme.test", "Cara", "Diaz")]
    deals, results = [], []
    for email, first, last in people:
        contact = portal.add("contacts", {"email": email, "firstname": first, "lastname": last, "company": "Acme Corp"})
        portal.associate("contacts", contact, "companies", acme, label="Primary")
        deal = portal.add("deals", {"dealname": f"Acme - {first}", "amount": "100"})
        portal.associate("deals", deal, "contacts", contact)
        portal.associate("deals", deal, "companies", acme, label="Primary")
        line = portal.add(
            "line_items", {"name": "Widget", "hs_sku": "W-1", "quantity": "1", "price": "100", "amount": "100"}
        )
        portal.associate("deals", deal, "line_items", line)
        deals.append(deal)
        results.append(invoice_for(deal))

    customers = [billed(books, fields) for fields in results]
    assert [c["DisplayName"] for c in customers] == ["Acme Corp", "Bob Stone", "Cara Diaz"]
    assert customers[0]["Id"] == hubspots_customer["Id"]  # the first contact keeps HubSpot's customer (same email)

    # Billing the company instead lands every contact's deal on that one company customer.
    for deal in deals[1:]:
        assert billed(books, invoice_for(deal, customer="primary_company"))["Id"] == hubspots_customer["Id"]
    assert len(books.all("Customer")) == 3 and len(books.all("Invoice")) == 5


class SlowBooks:
    """A QuickBooks client whose customer creates take a while and refuse a display name already used (6240)."""

    realm_id = REALM_ID

    def __init__(self):
        self.created, self.lock = [], threading.Lock()

    def create(self, entity, body, *, request_id, before_batch=None):
        time.sleep(0.2)
        with self.lock:
            if any(c["DisplayName"] == body["DisplayName"] for c in self.created):
                raise QuickBooksFault(6240, "Duplicate Name Exists Error", "The name supplied already exists.")
            self.created.append(body | {"Id": str(100 + len(self.created)), "Active": True})
            return self.created[-1]

    def query(self, select):
        return []  # what another process's customer looks like to a query a moment before it commits


class Remembered:
    def __init__(self):
        self.kept = {}

    def recall(self, kind, key):
        return self.kept.get((kind, key))

    def remember(self, kind, key, quickbooks_id, facts=None):
        self.kept[(kind, key)] = (quickbooks_id, dict(facts or {}))


def test_executions_of_one_new_contact_at_once_create_one_customer():
    """A billing run enrols several deals of a contact QuickBooks does not know yet, run by threads of one worker at
    once: one creates the customer, the others use it (not a second customer under the next free name)."""
    books, mappings = SlowBooks(), Remembered()
    ctx = SimpleNamespace(
        books=books,
        mappings=mappings,
        settings={},
        journal=SimpleNamespace(note=lambda text: None, wrote=lambda *args: None),
        request_id=lambda step: step,
    )
    contact = Record("501", {"firstname": "New", "lastname": "Buyer", "email": "new@acme.test"})
    party = Party("contact", contact, contact)
    lookup = Lookup(matches=[], taken=set(), candidates=list(display_name_candidates(party)))

    with ThreadPoolExecutor(max_workers=4) as pool:
        customers = list(pool.map(lambda _: create_customer(ctx, party, lookup), range(4)))

    assert [c["DisplayName"] for c in books.created] == ["New Buyer"]
    assert {c["Id"] for c in customers} == {books.created[0]["Id"]}
    assert mappings.recall("contact", "501")[0] == books.created[0]["Id"]
