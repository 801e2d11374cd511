"""Documents of executions running at once in one worker go to QuickBooks as one /batch of creates, each still
written exactly once: when a batch's answer is lost, every execution finds its own document (by the tracking
note) before writing again."""

import pytest
from sqlalchemy import select

from app.extensions import db
from app.storage.models import Execution
from tests.conftest import REALM_ID, execution_body, wait_for
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
