"""Documents of executions running at once in one worker go to QuickBooks as one /batch of creates, each still
written exactly once: when a batch's answer is lost, every execution finds its own document (by the tracking
note) before writing again."""

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select

from actions.errors import QuickBooksFault
from actions.steps.customers import name_queries
from app.coalesce import Coalescer
from app.extensions import db
from app.quickbooks.client import BooksClient
from app.storage.models import Execution
from tests.conftest import REALM_ID, FixedTokens, execution_body, wait_for
from tests.scenarios import DEFAULT_LINES, add_line_items, seed_products

AT_ONCE = 4


@pytest.fixture
def app_config(app_config):
    # The real consumer in a subprocess, its threads running executions at once, as in production.
    return {**app_config, "COALESCE_WINDOW_SECONDS": "1.5", "QUEUE_IMMEDIATE": False}


class Buyers:
    """AT_ONCE contacts; each round gives every one a new deal and queues its invoice, all at once."""

    def __init__(self, portal, fake_quickbooks, signed_post):
        seed_products(fake_quickbooks)
        self.portal, self.signed_post, self.rounds = portal, signed_post, 0
        self.contacts = [
            portal.add("contacts", {"email": f"buyer{n}@acme.test", "firstname": "Buyer", "lastname": str(n)})
            for n in range(AT_ONCE)
        ]

    def invoice_each(self) -> None:
        self.rounds += 1
        for n, contact in enumerate(self.contacts):
            deal = self.portal.add("deals", {"dealname": f"Deal {n}", "amount": "450", "closedate": "2026-11-30"})
            self.portal.associate("deals", deal, "contacts", contact)
            add_line_items(self.portal, "deals", deal, DEFAULT_LINES)
            body = execution_body(callback_id=f"ap-62515-1001-{self.rounds}{n}-0", object_id=str(deal))
            assert self.signed_post("/hubspot/actions/create_invoice", body).status_code == 200


def created_invoices(fake_quickbooks) -> list[dict]:
    return fake_quickbooks.company(REALM_ID).all("Invoice")


def batched_creates(fake_quickbooks) -> list:
    return [r for r in fake_quickbooks.requests_to("POST", "/batch") if '"operation": "create"' in (r.body or "")]


def outcomes(fake_hubspot) -> list[str]:
    return sorted(c.output_fields["hs_execution_state"] for c in fake_hubspot.completions)


def test_documents_written_at_once_share_one_batch(
    app, portal, connection, fake_quickbooks, fake_hubspot, signed_post, start_worker
):
    buyers = Buyers(portal, fake_quickbooks, signed_post)
    buyers.invoice_each()
    start_worker(WORKER_THREADS=str(AT_ONCE))
    assert wait_for(lambda: len(fake_hubspot.completions) == AT_ONCE)

    assert outcomes(fake_hubspot) == ["SUCCESS"] * AT_ONCE
    assert len(created_invoices(fake_quickbooks)) == AT_ONCE
    assert batched_creates(fake_quickbooks)  # the first went alone; those meanwhile went together


def test_a_batch_whose_answer_is_lost_writes_nothing_twice(
    app, portal, connection, fake_quickbooks, fake_hubspot, signed_post, start_worker
):
    buyers = Buyers(portal, fake_quickbooks, signed_post)
    buyers.invoice_each()  # the customers are found and remembered: next time an invoice is its only request
    start_worker(WORKER_THREADS=str(AT_ONCE))
    assert wait_for(lambda: len(fake_hubspot.completions) == AT_ONCE)
    before = len(batched_creates(fake_quickbooks))

    # The next batch of invoices is written, its answer lost; the two resends (same request id) find QuickBooks
    # down, so each execution of the batch is tried again later, not knowing whether its invoice exists.
    fake_quickbooks.fail_next("POST /batch", 502, commit=True)
    fake_quickbooks.fail_next("POST /batch", 503, times=2)
    buyers.invoice_each()
    assert wait_for(lambda: len(fake_hubspot.completions) == 2 * AT_ONCE)

    assert len(batched_creates(fake_quickbooks)) > before
    assert outcomes(fake_hubspot) == ["SUCCESS"] * 2 * AT_ONCE
    assert len(created_invoices(fake_quickbooks)) == 2 * AT_ONCE  # found by the tracking note, not written again
    with app.app_context():
        notes = [n for e in db.session.scalars(select(Execution)) for n in e.notes or []]
    assert any("written by a batch whose answer was lost" in n for n in notes)


def busy_books(fake_quickbooks) -> BooksClient:
    """A client of the test company whose reads were just asked (so the next ones wait for company)."""
    books = BooksClient(
        realm_id=REALM_ID,
        company_name="Sandbox Company",
        tokens=FixedTokens(fake_quickbooks.issue_tokens(REALM_ID)["access_token"]),
        api_base_url=fake_quickbooks.api_base,
        timeout=5,
        coalescer=Coalescer(window=0.3),
    )
    books.query_batch(["select * from Preferences", "select * from Item"])
    return books


def at_once(books: BooksClient, asks: list[list[str]]) -> list:
    """Each list of queries asked by its own thread, all at the same moment: the answers, or the fault."""
    barrier = threading.Barrier(len(asks))

    def ask(selects):
        barrier.wait()
        try:
            return books.query_batch(selects)
        except QuickBooksFault as fault:
            return fault

    with ThreadPoolExecutor(max_workers=len(asks)) as pool:
        return list(pool.map(ask, asks))


def test_queries_of_executions_asking_at_once_share_one_batch(fake_quickbooks):
    """Each execution's reads (its /batch of queries) join those of others asking the same company at the same
    time: one request, a query asked by several sent once, each asker its own answers, a refusal only its own."""
    seed_products(fake_quickbooks)
    books = busy_books(fake_quickbooks)
    before = len(fake_quickbooks.requests)
    asks = [
        ["select * from Item where Name = 'Widget'", "select * from Preferences"],
        ["select * from Item where Name = 'Gadget'", "select * from Preferences"],
        ["select * from Item where Name = 'Widget'"],
        ["select * from NoSuchThing"],
    ]
    widget_and_preferences, gadget_and_preferences, widget, refused = at_once(books, asks)

    sent = fake_quickbooks.requests[before:]
    assert [r.path.rsplit("/", 1)[-1] for r in sent] == ["batch"]
    assert len(json.loads(sent[0].body)["BatchItemRequest"]) == 4  # Widget, Preferences, Gadget, NoSuchThing
    assert [item["Name"] for item in widget_and_preferences[0]] == ["Widget"] and widget_and_preferences[1]
    assert widget == widget_and_preferences[:1] and gadget_and_preferences[1] == widget_and_preferences[1]
    assert isinstance(refused, QuickBooksFault)


def test_display_name_checks_of_executions_at_once_go_as_one_query_per_entity(fake_quickbooks):
    """New contacts each check their candidate names against customers, vendors and employees: asked together,
    one query per entity for all of them, each answered with the records holding its own names."""
    company = fake_quickbooks.company(REALM_ID)
    company.add_customer(DisplayName="Ann Lee", PrimaryEmailAddr={"Address": "ann@acme.test"})
    company.add_vendor(DisplayName="Bob O'Neil, Jr")
    books = busy_books(fake_quickbooks)
    before = len(fake_quickbooks.requests)
    ann, bob, cy = (
        name_queries(names) for names in (["Ann Lee", "Ann Lee (ann@acme.test)"], ["Bob O'Neil, Jr"], ["Cy"])
    )
    email = "SELECT * FROM Customer WHERE PrimaryEmailAddr = 'ann@acme.test' AND Active IN (true, false)"

    answers = at_once(books, [[email, *ann], bob, cy])

    sent = fake_quickbooks.requests[before:]
    assert [r.path.rsplit("/", 1)[-1] for r in sent] == ["batch"]
    queries = [item["Query"] for item in json.loads(sent[0].body)["BatchItemRequest"]]
    assert len(queries) == 4 and email in queries  # the email query, and one check per entity for all three
    literals = ("'Ann Lee'", "'Ann Lee (ann@acme.test)'", "'Bob O\\'Neil, Jr'", "'Cy'")  # in arrival order
    assert all(literal in query for query in queries if query != email for literal in literals)
    (by_email, *ann_checks), bob_checks, cy_checks = answers
    assert [c["DisplayName"] for c in by_email] == ["Ann Lee"]
    assert [[r["DisplayName"] for r in records] for records in ann_checks] == [["Ann Lee"], [], []]
    assert [[r["DisplayName"] for r in records] for records in bob_checks] == [[], ["Bob O'Neil, Jr"], []]
    assert cy_checks == [[], [], []]
