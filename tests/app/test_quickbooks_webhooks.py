"""Status from QuickBooks: Intuit's webhooks (both formats) and ChangeDataCapture reconciliation keep the
documents executions created (and so HubSpot's records) in step with what users do in QuickBooks."""

import base64
import hashlib
import hmac
import json
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from app.extensions import db
from app.quickbooks.reconcile import reconcile_due_connections
from app.storage.models import QuickBooksConnection, QuickBooksDocument, QuickBooksEvent, QuickBooksReconciliation
from tests.conftest import PORTAL_ID, PUBLIC_URL, REALM_ID
from tests.scenarios import DEFAULT_LINES, add_line_items, quickbooks_calls, seed_deal

PATH = "/quickbooks/webhooks"
VERIFIER = "qbo-webhook-verifier"
UNPAID = ("open", "overdue")  # which one depends on today's date against the invoice's due date


@pytest.fixture
def app_config(app_config):
    return {**app_config, "QBO_WEBHOOK_VERIFIER_TOKEN": VERIFIER, "RECONCILE_INTERVAL_SECONDS": "0"}


@pytest.fixture(params=["cloudevents", "legacy"])
def webhook_format(request):
    return request.param


@pytest.fixture
def webhooks(app, fake_quickbooks, webhook_format):
    """The fake QuickBooks notifies the app of every write, signed, in the format under test."""

    def send(url, body, headers):  # the app is not listening on a port: hand the POST to its test client
        return app.test_client().post(urlsplit(url).path, data=body, headers=headers).status_code

    fake_quickbooks.webhook_url = PUBLIC_URL + PATH
    fake_quickbooks.webhook_verifier = VERIFIER
    fake_quickbooks.webhook_sender = send
    fake_quickbooks.webhook_format = webhook_format
    return fake_quickbooks


@pytest.fixture
def invoice(portal, fake_quickbooks, books, invoice_for):
    """An invoice create_invoice wrote for a deal: (deal id, QuickBooks invoice)."""
    deal = seed_deal(portal, fake_quickbooks)
    fields = invoice_for(deal.deal_id)
    assert fields["hs_execution_state"] == "SUCCESS", fields
    return deal.deal_id, books.get("Invoice", fields["quickbooks_document_id"])


def signed(body: bytes, token: str = VERIFIER) -> dict:
    signature = base64.b64encode(hmac.new(token.encode(), body, hashlib.sha256).digest()).decode()
    return {"intuit-signature": signature, "Content-Type": "application/json"}


def post(client, payload, headers=None):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return client.post(PATH, data=body, headers=signed(body) if headers is None else headers)


def cloud_event(entity_id, *, entity="invoice", operation="updated", realm=REALM_ID, event_id=None, time=None):
    return {
        "specversion": "1.0",
        "id": event_id or f"evt-{entity}-{entity_id}-{operation}",
        "source": "intuit.qbo",
        "type": f"qbo.{entity}.{operation}.v1",
        "datacontenttype": "application/json",
        "time": time or "2026-12-06T10:00:00.000Z",
        "intuitentityid": str(entity_id),
        "intuitaccountid": realm,
        "data": {},
    }


def document(app, invoice_id) -> QuickBooksDocument:
    with app.app_context():
        db.session.expire_all()
        query = select(QuickBooksDocument).filter_by(realm_id=REALM_ID, entity="Invoice", quickbooks_id=invoice_id)
        return db.session.scalars(query).one()


_HUBSPOT = {}


@pytest.fixture(autouse=True)
def hubspot_of_this_test(fake_hubspot):
    """state() checks the HubSpot record too: what QuickBooks says must reach the deal, not just our table."""
    _HUBSPOT["fake"] = fake_hubspot
    yield
    _HUBSPOT.clear()


def state(app, invoice_id) -> tuple:
    """The document's status and balance, after checking its HubSpot record shows the same."""
    row = document(app, invoice_id)
    shown = _HUBSPOT["fake"].portal(PORTAL_ID).get("deals", row.object_id)["properties"]
    assert (shown.get("quickbooks_invoice_status"), shown.get("quickbooks_invoice_balance")) == (
        row.status,
        row.balance,
    ), "the HubSpot record follows the QuickBooks document"
    return row.status, row.balance


def stored_events(app) -> list[QuickBooksEvent]:
    with app.app_context():
        db.session.expire_all()
        return list(db.session.scalars(select(QuickBooksEvent).order_by(QuickBooksEvent.id)))


def reads_of(fake_quickbooks, entity, entity_id) -> int:
    return quickbooks_calls(fake_quickbooks).count(f"GET /{entity.lower()}/{entity_id}")


def reconcile(app) -> int:
    with app.app_context():
        return reconcile_due_connections()


def total_of(record) -> float:
    return float(record["TotalAmt"])


# -- the endpoint ----------------------------------------------------------------------------------------


def test_forged_signature_is_refused_and_nothing_is_stored(app, client, connection):
    body = json.dumps([cloud_event("42")]).encode()

    response = client.post(PATH, data=body, headers=signed(body, token="someone-else"))

    assert response.status_code == 401
    assert response.json == {"error": "invalid_signature", "reason": "intuit-signature does not match the body"}
    assert stored_events(app) == []


def test_tampered_body_is_refused(app, client, connection):
    body = json.dumps([cloud_event("42")]).encode()

    response = client.post(PATH, data=body.replace(b"42", b"43"), headers=signed(body))

    assert response.status_code == 401
    assert stored_events(app) == []


def test_missing_signature_is_refused(app, client, connection):
    response = client.post(PATH, json=[cloud_event("42")])

    assert response.status_code == 401
    assert response.json["reason"] == "missing intuit-signature header"
    assert stored_events(app) == []


def test_without_a_verifier_token_every_webhook_is_refused(app, client, connection):
    app.config["QBO_WEBHOOK_VERIFIER_TOKEN"] = ""
    body = json.dumps([cloud_event("42")]).encode()

    response = client.post(PATH, data=body, headers=signed(body, token=""))

    assert response.status_code == 401
    assert "no QBO_WEBHOOK_VERIFIER_TOKEN configured" in response.json["reason"]
    assert stored_events(app) == []


def test_a_rotated_verifier_token_overlaps_with_the_old_one(app, client, connection):
    app.config["QBO_WEBHOOK_VERIFIER_TOKEN"] = f"new-token, {VERIFIER}"

    assert post(client, [cloud_event("42")]).status_code == 200
    body = json.dumps([cloud_event("43")]).encode()
    assert client.post(PATH, data=body, headers=signed(body, token="new-token")).status_code == 200


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"not json", "The body is not JSON."),
        ({"hello": "world"}, "Expected a JSON array of CloudEvents or an object with eventNotifications."),
        (
            [{"specversion": "1.0", "type": "qbo.invoice.updated.v1"}],
            "Event 1 has no id, intuitaccountid, intuitentityid.",
        ),
        (
            [{**cloud_event("42"), "type": "invoice-changed"}],
            "Event 1 has type 'invoice-changed', not qbo.<entity>.<operation>.v<n>.",
        ),
        (
            {"eventNotifications": [{"realmId": REALM_ID}]},
            "Notification 1 has no realmId or no dataChangeEvent.entities list.",
        ),
        (
            {"eventNotifications": [{"realmId": REALM_ID, "dataChangeEvent": {"entities": [{"name": "Invoice"}]}}]},
            "Notification 1, entity 1 has no id, operation.",
        ),
    ],
)
def test_a_malformed_notification_is_400_with_reasons(app, client, connection, payload, reason):
    response = post(client, payload)

    assert response.status_code == 400
    assert response.json == {"error": "invalid_request", "reasons": [reason]}
    assert stored_events(app) == []


def test_readable_events_are_kept_beside_unreadable_ones(app, client, connection):
    response = post(client, [cloud_event("42"), {"specversion": "1.0"}])

    assert response.status_code == 200
    assert response.json["new"] == 1 and response.json["skipped"] == [
        "Event 2 has no id, type, intuitaccountid, intuitentityid."
    ]


def test_both_formats_are_stored_one_row_per_entity_change(app, client, connection):
    legacy = {
        "eventNotifications": [
            {
                "realmId": REALM_ID,
                "dataChangeEvent": {
                    "entities": [
                        {
                            "name": "Invoice",
                            "id": "7",
                            "operation": "Update",
                            "lastUpdated": "2026-12-06T02:00:00-0800",
                        },
                        {
                            "name": "Payment",
                            "id": "8",
                            "operation": "Delete",
                            "lastUpdated": "2026-12-06T02:00:01-0800",
                        },
                    ]
                },
            }
        ]
    }
    cloud = [cloud_event("9", entity="salesreceipt", operation="voided", time="2026-12-06T10:00:02.000Z")]

    assert post(client, legacy).json == {"received": 2, "new": 2, "skipped": []}
    assert post(client, cloud).json == {"received": 1, "new": 1, "skipped": []}

    rows = [(e.realm_id, e.entity, e.entity_id, e.operation, e.occurred_at) for e in stored_events(app)]
    assert rows == [
        (REALM_ID, "Invoice", "7", "Update", "2026-12-06T02:00:00-0800"),
        (REALM_ID, "Payment", "8", "Delete", "2026-12-06T02:00:01-0800"),
        (REALM_ID, "SalesReceipt", "9", "Void", "2026-12-06T10:00:02.000Z"),
    ]
    assert all(e.processed_at is not None and e.outcome == "ignored" for e in stored_events(app))  # none of ours


def test_cloud_events_may_come_as_application_cloudevents_json(app, client, connection):
    body = json.dumps([cloud_event("42")]).encode()

    response = client.post(PATH, data=body, headers={**signed(body), "Content-Type": "application/cloudevents+json"})

    assert response.status_code == 200 and response.json["new"] == 1


def test_a_replayed_delivery_stores_nothing_new(app, client, connection):
    legacy_entity = {"name": "Invoice", "id": "7", "operation": "Update", "lastUpdated": "2026-12-06T02:00:00-0800"}
    legacy = {"eventNotifications": [{"realmId": REALM_ID, "dataChangeEvent": {"entities": [legacy_entity]}}]}
    for payload in ([cloud_event("42")], legacy):
        assert post(client, payload).json["new"] == 1
        assert post(client, payload).json == {"received": 1, "new": 0, "skipped": []}

    assert len(stored_events(app)) == 2


# -- status follows QuickBooks through webhooks ----------------------------------------------------------


def test_an_invoice_paid_in_full_in_quickbooks_shows_paid(app, webhooks, books, invoice):
    _, record = invoice
    assert state(app, record["Id"]) in [(status, f"{total_of(record):.2f}") for status in UNPAID]

    books.receive_payment(record["Id"], total_of(record))

    assert state(app, record["Id"]) == ("paid", "0.00")
    assert webhooks.webhook_deliveries[-1].status == 200


def test_a_partly_paid_invoice_shows_its_balance(app, webhooks, books, invoice):
    _, record = invoice

    books.receive_payment(record["Id"], 100)

    assert state(app, record["Id"]) == ("partially_paid", f"{total_of(record) - 100:.2f}")


def test_a_voided_invoice_shows_voided(app, webhooks, books, invoice):
    _, record = invoice

    books.void("Invoice", record["Id"])

    assert state(app, record["Id"]) == ("voided", "0.00")


def test_a_deleted_invoice_shows_deleted_without_reading_it(app, webhooks, fake_quickbooks, books, invoice):
    _, record = invoice
    reads = reads_of(fake_quickbooks, "Invoice", record["Id"])

    books.delete("Invoice", record["Id"])

    assert state(app, record["Id"]) == ("deleted", "0.00")
    assert reads_of(fake_quickbooks, "Invoice", record["Id"]) == reads


def test_a_deleted_payment_opens_the_invoice_again(app, webhooks, books, invoice):
    _, record = invoice
    payment = books.receive_payment(record["Id"], total_of(record))
    assert state(app, record["Id"])[0] == "paid"

    books.delete("Payment", payment["Id"])

    assert state(app, record["Id"]) in [(status, f"{total_of(record):.2f}") for status in UNPAID]


def test_a_voided_payment_opens_the_invoice_again(app, webhooks, books, invoice):
    _, record = invoice
    payment = books.receive_payment(record["Id"], 100)

    books.void("Payment", payment["Id"])

    assert state(app, record["Id"]) in [(status, f"{total_of(record):.2f}") for status in UNPAID]


def test_a_deleted_payment_rereads_our_paid_invoices_in_one_query(
    app, webhooks, fake_quickbooks, portal, books, invoice_for
):
    invoices = invoices_for_deals(portal, fake_quickbooks, books, invoice_for, 3)
    payments = [books.receive_payment(record["Id"], total_of(record)) for record in invoices]
    assert [state(app, record["Id"])[0] for record in invoices] == ["paid", "paid", "paid"]
    fake_quickbooks.reset_requests()

    books.delete("Payment", payments[1]["Id"])  # its links are gone with it: every paid invoice may have moved

    assert quickbooks_calls(fake_quickbooks) == ["POST /query"]  # one query for the three, no read of each
    statuses = [state(app, record["Id"])[0] for record in invoices]
    assert statuses[0] == statuses[2] == "paid" and statuses[1] in UNPAID
    assert all(e.processed_at is not None for e in stored_events(app))


def test_the_hubspot_record_follows_when_write_back_is_on(app, webhooks, books, invoice, fake_hubspot):
    deal_id, record = invoice

    books.receive_payment(record["Id"], total_of(record))

    deal = fake_hubspot.portal(PORTAL_ID).get("deals", deal_id)
    properties = deal.get("properties", deal)
    assert (properties["quickbooks_invoice_status"], properties["quickbooks_invoice_balance"]) == ("paid", "0.00")


def test_the_creation_webhook_of_our_own_invoice_needs_no_read(app, webhooks, fake_quickbooks, invoice):
    _, record = invoice
    # The Create event reached us while the execution was still running (before the document was
    # recorded): it was ignored; the execution recorded the state QuickBooks answered.
    created = [e for e in stored_events(app) if (e.entity, e.entity_id) == ("Invoice", record["Id"])]
    assert [(e.operation, e.outcome) for e in created] == [("Create", "ignored")]
    assert reads_of(fake_quickbooks, "Invoice", record["Id"]) == 0

    # Delivered again later (Intuit batches and retries), as a new event: still no read.
    event = cloud_event(record["Id"], operation="created", event_id="late-create", time="2020-01-01T00:00:00Z")
    assert post(app.test_client(), [event]).json["new"] == 1
    assert reads_of(fake_quickbooks, "Invoice", record["Id"]) == 0
    assert stored_events(app)[-1].outcome == "unchanged"


def test_events_in_quick_succession_read_the_document_once(
    app, webhooks, webhook_format, fake_quickbooks, books, invoice
):
    _, record = invoice
    webhooks.webhook_delivery = "queued"
    books.patch("Invoice", record["Id"], CustomerMemo={"value": "Thanks"})
    books.patch("Invoice", record["Id"], PrivateNote="Called the customer")
    books.receive_payment(record["Id"], 100)  # a Payment event, and the invoice's own Update
    fake_quickbooks.reset_requests()

    [delivery] = webhooks.deliver_webhooks()

    assert delivery.events == 4 and delivery.status == 200
    assert reads_of(fake_quickbooks, "Invoice", record["Id"]) == 1
    assert state(app, record["Id"])[0] == "partially_paid"
    ours = [e for e in stored_events(app) if e.entity_id == record["Id"] and e.operation == "Update"]
    assert all(e.processed_at is not None for e in ours)
    # Legacy events have no id: the same record, operation and lastUpdated second make one event.
    assert len(ours) == 3 if webhook_format == "cloudevents" else 1 <= len(ours) <= 3


def test_replayed_and_out_of_order_events_change_nothing_twice(app, client, fake_quickbooks, books, invoice):
    _, record = invoice
    collected = []
    fake_quickbooks.webhook_url = PUBLIC_URL + PATH
    fake_quickbooks.webhook_verifier = VERIFIER
    fake_quickbooks.webhook_sender = lambda url, body, headers: collected.append((body, headers)) or 200
    books.receive_payment(record["Id"], 100)  # older
    books.receive_payment(record["Id"], total_of(record) - 100)  # newer: paid in full
    older, newer = collected

    assert client.post(PATH, data=newer[0], headers=newer[1]).json["new"] == 2
    assert state(app, record["Id"]) == ("paid", "0.00")
    written = document(app, record["Id"]).quickbooks_updated_at

    assert client.post(PATH, data=older[0], headers=older[1]).json["new"] == 2  # late: still paid
    assert client.post(PATH, data=newer[0], headers=newer[1]).json["new"] == 0  # replayed: nothing stored
    assert client.post(PATH, data=older[0], headers=older[1]).json["new"] == 0

    assert state(app, record["Id"]) == ("paid", "0.00")
    assert document(app, record["Id"]).quickbooks_updated_at == written
    late = stored_events(app)[-2:]
    assert [e.outcome for e in late] == ["unchanged", "unchanged"]


def test_an_unknown_company_is_ignored_without_calling_quickbooks(app, client, fake_quickbooks, invoice):
    _, record = invoice
    fake_quickbooks.reset_requests()

    response = post(client, [cloud_event(record["Id"], realm="4620816365999999999")])

    assert response.status_code == 200
    [event] = stored_events(app)[-1:]
    assert (event.outcome, event.note) == ("ignored", "QuickBooks company 4620816365999999999 is not connected here")
    assert quickbooks_calls(fake_quickbooks) == []


def test_entities_we_do_not_follow_are_ignored(app, client, fake_quickbooks, invoice):
    fake_quickbooks.reset_requests()

    post(client, [cloud_event("12", entity="customer"), cloud_event("99", entity="invoice", event_id="not-ours")])

    assert [(e.entity, e.outcome) for e in stored_events(app)[-2:]] == [("customer", "ignored"), ("Invoice", "ignored")]
    assert quickbooks_calls(fake_quickbooks) == []


def test_quickbooks_down_retries_the_event_later(app, client, fake_quickbooks, books, invoice, run_due_jobs):
    _, record = invoice
    books.patch("Invoice", record["Id"], Balance=0)
    updated = books.get("Invoice", record["Id"])["MetaData"]["LastUpdatedTime"]
    fake_quickbooks.fail_next(f"GET /invoice/{record['Id']}", 503, times=3)  # the client's inline retries too

    post(client, [cloud_event(record["Id"], time=updated)])

    event = stored_events(app)[-1]
    assert (event.processed_at, event.attempts) == (None, 1)
    assert state(app, record["Id"])[0] in UNPAID
    run_due_jobs()
    assert state(app, record["Id"]) == ("paid", "0.00")
    assert stored_events(app)[-1].outcome == "applied"


# -- status follows QuickBooks through reconciliation alone ---------------------------------------------


@pytest.fixture
def dropped(webhooks):
    """Webhooks configured but lost on the way: only reconciliation can notice."""
    webhooks.webhooks_enabled = False
    return webhooks


def invoices_for_deals(portal, fake_quickbooks, books, invoice_for, count: int) -> list[dict]:
    """`count` deals of the same contact and products, each invoiced by create_invoice."""
    first = seed_deal(portal, fake_quickbooks)
    deal_ids = [first.deal_id]
    for n in range(1, count):
        deal_id = portal.add("deals", {"dealname": f"Acme phase {n + 1}", "amount": "450", "closedate": "2026-11-30"})
        portal.associate("deals", deal_id, "contacts", first.contact_id)
        add_line_items(portal, "deals", deal_id, DEFAULT_LINES)
        deal_ids.append(str(deal_id))
    return [books.get("Invoice", invoice_for(deal_id)["quickbooks_document_id"]) for deal_id in deal_ids]


def test_reconciliation_alone_follows_payments_voids_and_deletions(app, dropped, portal, books, invoice_for):
    paid, partly, voided, deleted = invoices_for_deals(portal, dropped, books, invoice_for, 4)
    assert len({paid["Id"], partly["Id"], voided["Id"], deleted["Id"]}) == 4
    assert reconcile(app) == 1  # nothing changed yet
    books.receive_payment(paid["Id"], total_of(paid))
    books.receive_payment(partly["Id"], 100)
    books.void("Invoice", voided["Id"])
    books.delete("Invoice", deleted["Id"])
    assert state(app, paid["Id"])[0] in UNPAID  # no webhook arrived

    assert reconcile(app) == 1

    assert state(app, paid["Id"]) == ("paid", "0.00")
    assert state(app, partly["Id"]) == ("partially_paid", f"{total_of(partly) - 100:.2f}")
    assert state(app, voided["Id"]) == ("voided", "0.00")
    assert state(app, deleted["Id"]) == ("deleted", "0.00")
    assert stored_events(app) == [] and dropped.webhook_deliveries == []


def test_reconciliation_alone_updates_the_hubspot_record(app, dropped, books, invoice, fake_hubspot):
    deal_id, record = invoice
    books.receive_payment(record["Id"], 100)

    reconcile(app)

    deal = fake_hubspot.portal(PORTAL_ID).get("deals", deal_id)
    properties = deal.get("properties", deal)
    balance = f"{total_of(record) - 100:.2f}"
    assert (properties["quickbooks_invoice_status"], properties["quickbooks_invoice_balance"]) == (
        "partially_paid",
        balance,
    )


def test_reconciliation_remembers_where_it_left_off(app, dropped, fake_quickbooks, books, invoice):
    _, record = invoice
    reconcile(app)
    with app.app_context():
        first = db.session.scalars(select(QuickBooksReconciliation)).one().changed_since
    books.receive_payment(record["Id"], 100)

    reconcile(app)

    cdc = [r for r in fake_quickbooks.requests if r.path.endswith("/cdc")]
    assert cdc[-1].query["changedSince"] == first
    assert cdc[-1].query["entities"] == "Invoice,Payment,Estimate,SalesReceipt,RefundReceipt,Purchase"
    assert state(app, record["Id"])[0] == "partially_paid"
    with app.app_context():
        row = db.session.scalars(select(QuickBooksReconciliation)).one()
        assert row.changed_since >= first and row.last_error is None and row.succeeded_at is not None


def test_reconciliation_waits_for_its_interval(app, dropped, fake_quickbooks, invoice):
    app.config["RECONCILE_INTERVAL_SECONDS"] = "300"

    assert reconcile(app) == 1
    assert reconcile(app) == 0  # the next minute's tick: not due yet
    assert len([r for r in fake_quickbooks.requests if r.path.endswith("/cdc")]) == 1


def test_reconciliation_with_quickbooks_down_keeps_its_mark_and_tries_next_time(
    app, dropped, fake_quickbooks, books, invoice
):
    _, record = invoice
    reconcile(app)
    with app.app_context():
        before = db.session.scalars(select(QuickBooksReconciliation)).one().changed_since
    books.receive_payment(record["Id"], total_of(record))
    fake_quickbooks.fail_next("GET /cdc", 503, times=3)

    assert reconcile(app) == 1

    with app.app_context():
        row = db.session.scalars(select(QuickBooksReconciliation)).one()
        assert (row.changed_since, row.last_error) == (before, "QuickBooks answered HTTP 503")
    assert state(app, record["Id"])[0] in UNPAID
    reconcile(app)
    assert state(app, record["Id"]) == ("paid", "0.00")


def test_reconciliation_skips_connections_that_need_reconnecting(app, dropped, fake_quickbooks, invoice):
    with app.app_context():
        for connection in db.session.scalars(select(QuickBooksConnection)):
            connection.state = QuickBooksConnection.RECONNECT_NEEDED
        db.session.commit()
    fake_quickbooks.reset_requests()

    assert reconcile(app) == 0
    assert quickbooks_calls(fake_quickbooks) == []


def test_a_company_without_documents_is_not_asked(app, connection, fake_quickbooks):
    assert reconcile(app) == 1
    assert quickbooks_calls(fake_quickbooks) == []


def test_reconciliation_answers_events_it_covered(app, client, dropped, books, invoice):
    _, record = invoice
    books.receive_payment(record["Id"], total_of(record))
    dropped.fail_next(f"GET /invoice/{record['Id']}", 503, times=3)  # QuickBooks down: the event waits
    post(client, [cloud_event(record["Id"], time="2099-01-01T00:00:00Z")])
    assert stored_events(app)[-1].processed_at is None

    reconcile(app)

    assert stored_events(app)[-1].outcome == "reconciled"
    assert state(app, record["Id"]) == ("paid", "0.00")


@pytest.mark.parametrize(
    "txn_status, shown", [("Accepted", "accepted"), ("Rejected", "rejected"), ("Closed", "closed")]
)
def test_an_estimate_accepted_rejected_or_closed_reaches_its_deal(
    app, client, portal, fake_quickbooks, books, action_for, fake_hubspot, txn_status, shown
):
    deal = seed_deal(portal, fake_quickbooks)
    fields = action_for("create_estimate", deal.deal_id)
    assert record_property(fake_hubspot, deal.deal_id, "quickbooks_estimate_status") == "pending"

    books.patch("Estimate", fields["quickbooks_document_id"], TxnStatus=txn_status)  # done in QuickBooks
    post(client, [cloud_event(fields["quickbooks_document_id"], entity="estimate", time="2099-01-01T00:00:00Z")])

    assert record_property(fake_hubspot, deal.deal_id, "quickbooks_estimate_status") == shown


def record_property(fake_hubspot, deal_id, name):
    return fake_hubspot.portal(PORTAL_ID).get("deals", deal_id)["properties"].get(name)
