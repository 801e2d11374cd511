"""Service dates under revenue recognition, QuickBooks preferences caching, and document numbers."""

from datetime import date

import pytest

from actions.errors import ActionError, QuickBooksFault
from actions.steps.documents import create_document
from app.quickbooks import client as quickbooks_client
from tests.conftest import invoice_of
from tests.scenarios import add_contact, configure, quickbooks_calls, seed_deal, seed_quote, stored_executions

PATH = "/hubspot/actions/create_invoice"
CALLBACK = "ap-62515-1001-1-0"  # the first run of invoice_for


def service_dates(invoice) -> list:
    return [
        line["SalesItemLineDetail"].get("ServiceDate")
        for line in invoice["Line"]
        if line["DetailType"] == "SalesItemLineDetail"
    ]


def dated_deal(portal, fake_quickbooks, closedate="2026-11-30"):
    deal = seed_deal(
        portal,
        fake_quickbooks,
        lines=[
            {
                "name": "Widget",
                "hs_sku": "W-1",
                "quantity": "2",
                "price": "100",
                "amount": "200",
                "hs_recurring_billing_start_date": "2027-01-15",
            },
            {"name": "Setup service", "quantity": "1", "price": "250", "amount": "250"},
        ],
    )
    portal.update("deals", deal.deal_id, {"closedate": closedate})
    return deal


# -- service dates -----------------------------------------------------------------------------------------


def test_revenue_recognition_gets_a_service_date_on_every_line(portal, fake_quickbooks, books, invoice_for):
    books.set_pref("ProductAndServicesPrefs.RevenueRecognition", True)
    deal = dated_deal(portal, fake_quickbooks, closedate="2026-11-30T00:00:00Z")

    invoice = invoice_of(books, invoice_for(deal.deal_id))

    assert service_dates(invoice) == ["2027-01-15", "2026-11-30"]  # billing start date, else close date


def test_without_a_close_date_the_service_date_is_today(portal, fake_quickbooks, books, invoice_for):
    books.set_pref("ProductAndServicesPrefs.RevenueRecognition", True)
    deal = dated_deal(portal, fake_quickbooks, closedate="")

    invoice = invoice_of(books, invoice_for(deal.deal_id))

    assert service_dates(invoice) == ["2027-01-15", date.today().isoformat()]


def test_close_date_as_epoch_milliseconds(portal, fake_quickbooks, books, invoice_for):
    books.set_pref("ProductAndServicesPrefs.RevenueRecognition", True)
    deal = dated_deal(portal, fake_quickbooks, closedate="1796083200000")  # 2026-12-01T00:00:00Z

    assert service_dates(invoice_of(books, invoice_for(deal.deal_id))) == ["2027-01-15", "2026-12-01"]


def test_auto_without_revenue_recognition_sets_no_service_dates(portal, fake_quickbooks, books, invoice_for):
    deal = dated_deal(portal, fake_quickbooks)
    assert service_dates(invoice_of(books, invoice_for(deal.deal_id))) == [None, None]


def test_always_sets_service_dates_without_revenue_recognition(app, portal, fake_quickbooks, books, invoice_for):
    configure(app, service_dates="always")
    deal = dated_deal(portal, fake_quickbooks)

    assert service_dates(invoice_of(books, invoice_for(deal.deal_id))) == ["2027-01-15", "2026-11-30"]


def test_never_under_revenue_recognition_is_service_date_required(app, portal, fake_quickbooks, books, invoice_for):
    configure(app, service_dates="never")
    books.set_pref("ProductAndServicesPrefs.RevenueRecognition", True)
    deal = dated_deal(portal, fake_quickbooks)

    fields = invoice_for(deal.deal_id)

    assert (fields["hs_execution_state"], fields["error_code"]) == ("FAIL_CONTINUE", "SERVICE_DATE_REQUIRED")
    assert "revenue recognition needs a service date on every line" in fields["error_message"]
    assert "set service_dates to 'always', or turn off revenue recognition in QuickBooks" in fields["error_message"]
    [write] = fake_quickbooks.requests_to("POST", "/invoice")
    assert "ServiceDate" not in str(write.json)
    assert books.all("Invoice") == []


def preferences_reads(fake_quickbooks) -> list[str]:
    """The requests that read the company's preferences: alone, or in a /batch with a document's other reads."""
    calls = quickbooks_calls(fake_quickbooks)
    asked = [r for r in fake_quickbooks.requests if r.path.startswith("/v3/company/")]
    return [call for call, r in zip(calls, asked, strict=True) if "from preferences" in f"{r.path} {r.body}".lower()]


def test_preferences_are_read_once_per_connection_within_the_ttl(
    portal, fake_quickbooks, books, invoice_for, monkeypatch
):
    deal = dated_deal(portal, fake_quickbooks)
    invoice_of(books, invoice_for(deal.deal_id, callback_id="ap-62515-3003-1-1"))
    invoice_of(books, invoice_for(deal.deal_id, callback_id="ap-62515-3003-1-2"))
    assert preferences_reads(fake_quickbooks) == ["POST /batch"]  # with the first invoice's other reads

    monkeypatch.setattr(quickbooks_client, "PREFERENCES_TTL", 0.0)  # the TTL ran out
    fake_quickbooks.reset_requests()
    invoice_of(books, invoice_for(deal.deal_id, callback_id="ap-62515-3003-1-3"))
    # Read again with the line items' lookup (lines without a HubSpot product are matched every time): one request.
    assert quickbooks_calls(fake_quickbooks) == ["POST /batch", "POST /invoice"]
    assert preferences_reads(fake_quickbooks) == ["POST /batch"]


# -- document numbers --------------------------------------------------------------------------------------


def hubspot_numbers(app, portal, deal, number="HS-2026-0042"):
    configure(app, document_numbers="hubspot", document_number_property="invoice_number")
    portal.update("deals", deal.deal_id, {"invoice_number": number})


def test_hubspot_number_from_the_deal_property(app, portal, fake_quickbooks, books, invoice_for):
    deal = seed_deal(portal, fake_quickbooks)
    hubspot_numbers(app, portal, deal)

    fields = invoice_for(deal.deal_id)

    assert invoice_of(books, fields)["DocNumber"] == "HS-2026-0042"
    assert fields["quickbooks_document_number"] == "HS-2026-0042"


def test_hubspot_number_on_a_quote_is_the_quote_number(app, portal, fake_quickbooks, books, invoice_for):
    configure(app, document_numbers="hubspot", document_number_property="invoice_number")
    quote = seed_quote(portal, fake_quickbooks, quote_properties={"hs_quote_number": "Q-2026-17"})
    add_contact(portal, quote.deal_id, object_type="quotes", email="ann@acme.test", firstname="Ann", lastname="Lee")

    fields = invoice_for(quote.deal_id, object_type="QUOTE")

    assert invoice_of(books, fields)["DocNumber"] == "Q-2026-17"


def test_hubspot_numbers_without_the_property_let_quickbooks_number_it(
    app, portal, fake_quickbooks, books, invoice_for
):
    configure(app, document_numbers="hubspot", document_number_property="invoice_number")
    deal = seed_deal(portal, fake_quickbooks)

    invoice = invoice_of(books, invoice_for(deal.deal_id))

    assert invoice["DocNumber"] == "1001"
    assert any(
        "has no invoice_number; QuickBooks numbers the document" in note for note in stored_executions(app)[0].notes
    )


def test_a_number_held_by_another_invoice_is_duplicate_document_number(
    app, portal, fake_quickbooks, books, invoice_for
):
    deal = seed_deal(portal, fake_quickbooks)
    hubspot_numbers(app, portal, deal)
    bob = books.add_customer(DisplayName="Bob Stone")
    holder = books.write(
        "Invoice",
        {
            "CustomerRef": {"value": bob["Id"]},
            "DocNumber": "HS-2026-0042",
            "TxnDate": "2026-10-01",
            "Line": [
                {
                    "DetailType": "SalesItemLineDetail",
                    "Amount": 100,
                    "SalesItemLineDetail": {"ItemRef": {"value": deal.widget_id}},
                }
            ],
            "PrivateNote": "Created by qbo-actions (execution ap-62515-3003-1-01).",
        },
    )

    fields = invoice_for(deal.deal_id)

    assert (fields["hs_execution_state"], fields["error_code"]) == ("FAIL_CONTINUE", "DUPLICATE_DOCUMENT_NUMBER")
    assert (
        f"QuickBooks already has a document numbered 'HS-2026-0042': QuickBooks invoice HS-2026-0042 "
        f"(id {holder['Id']}) for customer Bob Stone, dated 2026-10-01."
    ) in fields["error_message"]
    assert "Renumber the conflicting QuickBooks document" in fields["error_message"]
    assert [i["Id"] for i in books.all("Invoice")] == [holder["Id"]]


def test_a_number_held_by_a_credit_memo_names_it(app, portal, fake_quickbooks, books, invoice_for):
    deal = seed_deal(portal, fake_quickbooks)
    hubspot_numbers(app, portal, deal)
    bob = books.add_customer(DisplayName="Bob Stone")
    memo = books.write(
        "CreditMemo",
        {
            "CustomerRef": {"value": bob["Id"]},
            "DocNumber": "HS-2026-0042",
            "Line": [
                {
                    "DetailType": "SalesItemLineDetail",
                    "Amount": 5,
                    "SalesItemLineDetail": {"ItemRef": {"value": deal.widget_id}},
                }
            ],
        },
    )

    fields = invoice_for(deal.deal_id)

    assert fields["error_code"] == "DUPLICATE_DOCUMENT_NUMBER"
    assert (
        f"DocNumber=HS-2026-0042 is assigned to TxnType=CreditMemo with TxnId={memo['Id']}" in fields["error_message"]
    )


def test_rerun_after_its_invoice_exists_is_a_success(app, portal, fake_quickbooks, books, invoice_for):
    deal = seed_deal(portal, fake_quickbooks)
    hubspot_numbers(app, portal, deal)
    ann = books.add_customer(DisplayName="Ann Lee", PrimaryEmailAddr="ann.lee@acme.test")
    # An earlier attempt of this very execution wrote the invoice; QuickBooks no longer replays its requestid.
    ours = books.write(
        "Invoice",
        {
            "CustomerRef": {"value": ann["Id"]},
            "DocNumber": "HS-2026-0042",
            "Line": [
                {
                    "DetailType": "SalesItemLineDetail",
                    "Amount": 450,
                    "SalesItemLineDetail": {"ItemRef": {"value": deal.widget_id}},
                }
            ],
            "PrivateNote": f"Created by qbo-actions from HubSpot deal {deal.deal_id} (execution {CALLBACK}).",
        },
    )

    fields = invoice_for(deal.deal_id)

    assert fields["hs_execution_state"] == "SUCCESS"
    assert (fields["quickbooks_document_id"], fields["quickbooks_document_number"]) == (ours["Id"], "HS-2026-0042")
    assert len(books.all("Invoice")) == 1
    [execution] = stored_executions(app)
    assert execution.quickbooks_writes["invoice"]["id"] == ours["Id"]
    assert any("it is the one this execution created earlier" in note for note in execution.notes)


def test_auto_generate_with_custom_transaction_numbers(portal, fake_quickbooks, books, invoice_for):
    books.set_pref("SalesFormsPrefs.CustomTxnNumbers", True)
    deal = seed_deal(portal, fake_quickbooks)

    invoice = invoice_of(books, invoice_for(deal.deal_id))

    [write] = fake_quickbooks.requests_to("POST", "/invoice")
    assert write.json["DocNumber"] == "AUTO_GENERATE"
    assert invoice["DocNumber"] == "1001"  # QuickBooks numbered it rather than leaving it blank


def test_without_custom_transaction_numbers_no_number_is_sent(portal, fake_quickbooks, books, invoice_for):
    deal = seed_deal(portal, fake_quickbooks)

    invoice = invoice_of(books, invoice_for(deal.deal_id))

    [write] = fake_quickbooks.requests_to("POST", "/invoice")
    assert "DocNumber" not in write.json
    assert invoice["DocNumber"] == "1001"


# -- "ours" by the journal (pure: stub QuickBooks and journal) ---------------------------------------------


class StubBooks:
    def __init__(self, holders):
        self.holders = holders
        self.queries = []

    def create(self, entity, body, *, request_id, before_batch=None):
        raise QuickBooksFault(
            6140,
            "Duplicate Document Number Error",
            "You must specify a different number. This number has already been used.",
        )

    def query(self, select):
        self.queries.append(select)
        return self.holders

    def read(self, entity, entity_id):
        return next((h for h in self.holders if h["Id"] == entity_id), None)


class StubJournal:
    def __init__(self, written=None):
        self.writes, self.notes, self._written = {}, [], written or {}

    def written(self, step):
        return self._written.get(step)

    def wrote(self, step, entity, record):
        self.writes[step] = record["Id"]

    def note(self, text):
        self.notes.append(text)


class StubCtx:
    callback_id = "ap-1-2-3-4"

    def __init__(self, books, journal):
        self.books, self.journal = books, journal

    def request_id(self, step):
        return f"rid-{step}"


def test_a_step_the_journal_says_is_written_is_read_back_not_written_again():
    holder = {"Id": "77", "DocNumber": "D-1", "PrivateNote": "edited in QuickBooks", "CustomerRef": {"value": "5"}}
    journal = StubJournal(written={"invoice": {"entity": "Invoice", "id": "77", "number": "D-1"}})
    ctx = StubCtx(StubBooks([holder]), journal)

    # StubBooks.create would fail with 6140: reaching it would mean a second write.
    assert create_document(ctx, "Invoice", {"DocNumber": "D-1"}, step="invoice") == holder
    assert ctx.books.queries == []
    assert "already written for this step" in journal.notes[0]


def test_a_holder_neither_in_the_journal_nor_noted_is_someone_elses():
    holder = {
        "Id": "78",
        "DocNumber": "D-1",
        "TxnDate": "2026-01-02",
        "CustomerRef": {"value": "5", "name": "Bob"},
        "PrivateNote": "Created by qbo-actions from HubSpot deal 9 (execution ap-1-2-3-45).",
    }
    ctx = StubCtx(StubBooks([holder]), StubJournal())

    with pytest.raises(ActionError) as caught:
        create_document(ctx, "Invoice", {"DocNumber": "D-1"}, step="invoice")
    assert caught.value.code == "DUPLICATE_DOCUMENT_NUMBER"
    assert "invoice D-1 (id 78) for customer Bob, dated 2026-01-02" in caught.value.message
