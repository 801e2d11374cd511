"""GET /hubspot/cards/documents: signed like hubspot.fetch, one portal's record, its documents and last failure."""

from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest

from actions.errors import CATALOGUE
from app.extensions import db
from app.hubspot.signature import sign_request
from app.storage.models import Execution, QuickBooksDocument
from tests.conftest import HUBSPOT_SECRET, PORTAL_ID, PUBLIC_URL, REALM_ID
from tests.scenarios import seed_deal

PATH = "/hubspot/cards/documents"
BOTH_BACKENDS = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
OTHER_PORTAL = 99001
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
# What hubspot.fetch adds besides portalId (the @ travels as %40, which v3 decodes before signing).
HUBSPOT_ADDS = [("userId", "7"), ("userEmail", "ann@acme.test"), ("appId", "4242")]


@pytest.fixture
def card_get(client):
    """GET like hubspot.fetch: HubSpot's portalId (and user, app) in the query, the whole URI signed with v3."""

    def get(object_type="DEAL", object_id="101", *, portal_id=PORTAL_ID, query=None, version="v3", **options):
        params = (
            query
            if query is not None
            else [("objectType", object_type), ("objectId", object_id), *HUBSPOT_ADDS, ("portalId", portal_id)]
        )
        path = f"{PATH}?{urlencode(params)}"
        headers = sign_request(
            "GET",
            PUBLIC_URL + path,
            b"",
            secret=options.get("secret", HUBSPOT_SECRET),
            version=version,
            timestamp_ms=options.get("timestamp_ms"),
        )
        return client.get(options.get("sent_path", path), headers=headers)

    return get


def add_document(app, *, portal_id=PORTAL_ID, object_type="DEAL", object_id="101", number="1001", **fields):
    values = {
        "realm_id": REALM_ID,
        "entity": "Invoice",
        "kind": "invoice",
        "quickbooks_id": f"{portal_id}-{object_type}-{object_id}-{number}",
        "url": f"https://app.sandbox.qbo.intuit.com/app/invoice?txnId={number}",
        "status": "open",
        "amount": "450.00",
        "balance": "450.00",
        "currency": "USD",
        "txn_date": "2026-03-01",
        **fields,
    }
    with app.app_context():
        document = QuickBooksDocument(
            portal_id=portal_id, object_type=object_type, object_id=object_id, number=number, **values
        )
        db.session.add(document)
        db.session.commit()
        return document.id


def add_execution(app, *, outcome, at, portal_id=PORTAL_ID, object_type="DEAL", object_id="101", **fields):
    code = fields.pop("error_code", "NO_LINE_ITEMS" if outcome == "FAIL_CONTINUE" else None)
    message = fields.pop(
        "error_message",
        f"The deal has no line items. {CATALOGUE['NO_LINE_ITEMS'].fix}" if outcome == "FAIL_CONTINUE" else None,
    )
    with app.app_context():
        execution = Execution(
            portal_id=portal_id,
            callback_id=f"cb-{portal_id}-{object_id}-{at.timestamp()}-{outcome}",
            action="create_invoice",
            object_type=object_type,
            object_id=object_id,
            status=Execution.COMPLETED,
            outcome=outcome,
            error_code=code,
            error_message=message,
            expires_at=at + timedelta(days=7),
            created_at=at,
            finished_at=at + timedelta(seconds=5),
            **fields,
        )
        db.session.add(execution)
        db.session.commit()
        return execution.id


# -- the signature -----------------------------------------------------------------------------------------


def test_unsigned_request_is_refused(app, client):
    add_document(app)
    response = client.get(f"{PATH}?objectType=DEAL&objectId=101&portalId={PORTAL_ID}")
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_signature"
    assert "documents" not in response.get_json()


@pytest.mark.parametrize(
    "options, reason",
    [
        ({"secret": "not-our-secret"}, "does not match"),
        ({"timestamp_ms": int((datetime.now(UTC) - timedelta(minutes=10)).timestamp() * 1000)}, "too old"),
        ({"version": "v2"}, "signed with v3"),  # v2 has no timestamp: a captured request could be replayed
    ],
)
def test_a_bad_or_old_signature_is_refused(app, card_get, options, reason):
    add_document(app)
    response = card_get(**options)
    assert response.status_code == 401
    assert reason in response.get_json()["reason"]


def test_the_signature_covers_the_portal(app, card_get):
    """Signed for one portal, sent for another: the URI no longer matches."""
    add_document(app, portal_id=OTHER_PORTAL)
    signed = f"{PATH}?{urlencode({'objectType': 'DEAL', 'objectId': '101', 'portalId': PORTAL_ID})}"
    sent = signed.replace(str(PORTAL_ID), str(OTHER_PORTAL))
    response = card_get(query=[("objectType", "DEAL"), ("objectId", "101"), ("portalId", PORTAL_ID)], sent_path=sent)
    assert response.status_code == 401


# -- what it answers ---------------------------------------------------------------------------------------


@BOTH_BACKENDS
def test_lists_the_records_documents_newest_first(app, card_get):
    add_document(app, number="1001", status="paid", amount="450.00", balance="0.00")
    add_document(
        app, number="", entity="Estimate", kind="estimate", status=None, amount=None, currency=None, txn_date=None
    )
    add_document(app, object_id="202", number="9999")  # another deal

    response = card_get("DEAL", "101")

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    estimate, invoice = body["documents"]
    assert invoice == {
        "kind": "invoice",
        "label": "Invoice 1001",
        "number": "1001",
        "amount": "450.00",
        "currency": "USD",
        "status": "paid",
        "date": "2026-03-01",
        "url": "https://app.sandbox.qbo.intuit.com/app/invoice?txnId=1001",
    }
    assert estimate["label"].startswith("Estimate (QuickBooks id ") and estimate["number"] is None
    assert estimate["status"] is None and estimate["amount"] is None
    assert estimate["date"] == datetime.now(UTC).date().isoformat()  # no TxnDate read yet: when it was recorded
    assert body["lastFailure"] is None
    assert body["consoleUrl"] == f"{PUBLIC_URL}/history?q=101"


@BOTH_BACKENDS
def test_another_portals_record_answers_nothing_of_it(app, card_get):
    add_document(app, portal_id=OTHER_PORTAL, number="5001")
    add_execution(app, portal_id=OTHER_PORTAL, outcome="FAIL_CONTINUE", at=T0)

    body = card_get("DEAL", "101", portal_id=PORTAL_ID).get_json()
    assert body["documents"] == [] and body["lastFailure"] is None

    theirs = card_get("DEAL", "101", portal_id=OTHER_PORTAL).get_json()  # HubSpot signed it for the other portal
    assert [d["number"] for d in theirs["documents"]] == ["5001"] and theirs["lastFailure"]


def test_a_portalid_of_the_cards_own_is_refused(app, card_get):
    """HubSpot adds portalId; a second one in the signed URI was put there by someone else."""
    add_document(app, portal_id=OTHER_PORTAL)
    query = [("objectType", "DEAL"), ("objectId", "101"), ("portalId", OTHER_PORTAL), ("portalId", PORTAL_ID)]
    response = card_get(query=query)
    assert response.status_code == 400
    assert "exactly once" in response.get_json()["reason"]


@BOTH_BACKENDS
def test_shows_a_failure_newer_than_the_last_success(app, card_get):
    add_document(app)
    add_execution(app, outcome="SUCCESS", at=T0)
    failure_id = add_execution(app, outcome="FAIL_CONTINUE", at=T0 + timedelta(hours=1))

    failure = card_get("DEAL", "101").get_json()["lastFailure"]

    assert failure == {
        "error_code": "NO_LINE_ITEMS",
        "explanation": "The deal has no line items.",
        "fix": CATALOGUE["NO_LINE_ITEMS"].fix,
        "when": (T0 + timedelta(hours=1, seconds=5)).isoformat(),
        "consoleUrl": f"{PUBLIC_URL}/executions/{failure_id}",
    }


@BOTH_BACKENDS
@pytest.mark.parametrize(
    "history",
    [
        [("FAIL_CONTINUE", 0), ("SUCCESS", 1)],  # fixed since: re-enrolled and succeeded
        [("FAIL_CONTINUE", 0, {"dismissed_at": T0 + timedelta(hours=2)})],  # dismissed in the console
        [("SUCCESS", 0)],
        [],
    ],
)
def test_no_failure_when_none_is_outstanding(app, card_get, history):
    for outcome, hours, *extra in history:
        add_execution(app, outcome=outcome, at=T0 + timedelta(hours=hours), **(extra[0] if extra else {}))
    assert card_get("DEAL", "101").get_json()["lastFailure"] is None


@BOTH_BACKENDS
def test_a_retried_failure_counts_from_when_it_failed_again(app, card_get):
    """Enrolled before the success, retried from the console after it and failed again: still failing."""
    failure_id = add_execution(app, outcome="FAIL_CONTINUE", at=T0)
    add_execution(app, outcome="SUCCESS", at=T0 + timedelta(hours=1))
    with app.app_context():
        db.session.get(Execution, failure_id).finished_at = T0 + timedelta(hours=2)
        db.session.commit()
    assert card_get("DEAL", "101").get_json()["lastFailure"]["consoleUrl"].endswith(f"/executions/{failure_id}")


@BOTH_BACKENDS
@pytest.mark.parametrize(
    "stored, asked",
    [
        ("DEAL", "0-3"),
        ("DEAL", "DEAL"),
        ("DEAL", "deal"),
        ("DEAL", "deals"),
        ("0-3", "DEAL"),  # an execution request that named the type by id
        ("QUOTE", "0-14"),
        ("QUOTE", "quotes"),
        ("COMMERCE_PAYMENT", "0-101"),
        ("COMMERCE_PAYMENT", "COMMERCE_PAYMENT"),
        ("COMMERCE_PAYMENT", "commerce_payments"),
    ],
)
def test_object_type_ids_and_names(app, card_get, stored, asked):
    add_document(app, object_type=stored)
    add_execution(app, object_type=stored, outcome="FAIL_CONTINUE", at=T0)
    body = card_get(asked, "101").get_json()
    assert [d["number"] for d in body["documents"]] == ["1001"]
    assert body["lastFailure"]["error_code"] == "NO_LINE_ITEMS"


def test_another_type_with_the_same_id_is_another_record(app, card_get):
    add_document(app, object_type="QUOTE")
    assert card_get("DEAL", "101").get_json()["documents"] == []


@pytest.mark.parametrize(
    "params, reason",
    [
        ({"objectId": "101"}, "objectType is required"),
        ({"objectType": "CONTACT", "objectId": "101"}, "'CONTACT' is not a record qbo-actions writes documents for"),
        ({"objectType": "0-1", "objectId": "101"}, "'0-1' is not a record"),
        ({"objectType": "DEAL"}, "objectId is required"),
        ({"objectType": "DEAL", "objectId": "1 OR 1=1"}, "objectId is required"),
    ],
)
def test_a_bad_request_says_why(card_get, params, reason):
    response = card_get(query=[*params.items(), ("portalId", PORTAL_ID)])
    assert response.status_code == 400
    assert reason in response.get_json()["reason"]


def test_without_hubspots_portalid_nothing_is_answered(card_get):
    response = card_get(query=[("objectType", "DEAL"), ("objectId", "101")])
    assert response.status_code == 400
    assert "portalId" in response.get_json()["reason"]


# -- end to end: real executions ----------------------------------------------------------------------------


def test_real_executions_show_on_the_card(app, portal, fake_quickbooks, books, invoice_for, card_get):
    deal = seed_deal(portal, fake_quickbooks)
    fields = invoice_for(deal.deal_id)
    assert fields["hs_execution_state"] == "SUCCESS", fields

    body = card_get("0-3", deal.deal_id).get_json()
    (document,) = body["documents"]
    invoice = books.get("Invoice", fields["quickbooks_document_id"])
    assert document["kind"] == "invoice" and document["number"] == invoice["DocNumber"]
    assert document["label"] == f"Invoice {invoice['DocNumber']}"
    assert document["url"] == fields["quickbooks_document_url"]
    assert body["lastFailure"] is None

    bare = portal.add("deals", {"dealname": "Nobody to bill", "amount": "0"})  # no contact: CONTACT_MISSING
    failed = invoice_for(str(bare))
    assert failed["error_code"] == "CONTACT_MISSING", failed
    body = card_get("DEAL", str(bare)).get_json()
    assert body["documents"] == []
    fix = CATALOGUE["CONTACT_MISSING"].fix
    assert body["lastFailure"]["error_code"] == "CONTACT_MISSING" and body["lastFailure"]["fix"] == fix
    assert body["lastFailure"]["explanation"] == failed["error_message"].removesuffix(fix).strip()
