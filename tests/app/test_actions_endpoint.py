"""The execution endpoint end to end (embedded queue in immediate mode): signed request → invoice → callback."""

import json

import pytest
from sqlalchemy import func, select, text

from app.extensions import db
from app.storage.models import Execution, QuickBooksConnection
from tests.conftest import PORTAL_ID, REALM_ID, execution_body
from tests.scenarios import deliver_at_once, seed_deal

PATH = "/hubspot/actions/create_invoice"


def executions(app):
    with app.app_context():
        return list(db.session.scalars(select(Execution).order_by(Execution.id)))


def invoices(fake_quickbooks):
    return fake_quickbooks.company(REALM_ID).all("Invoice")


@pytest.fixture
def deal(portal, connection, fake_quickbooks):
    return seed_deal(portal, fake_quickbooks)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
def test_signed_request_creates_one_invoice_and_completes_the_callback(
    signed_post, deal, fake_quickbooks, fake_hubspot, app
):
    net_30 = next(t["Id"] for t in fake_quickbooks.company(REALM_ID).all("Term") if t["Name"] == "Net 30")
    response = signed_post(PATH, execution_body(object_id=deal.deal_id, inputs={"payment_terms": net_30}))

    assert response.status_code == 200
    assert response.json == {"outputFields": {"hs_execution_state": "BLOCK", "hs_expiration_duration": "P6D"}}
    [invoice] = invoices(fake_quickbooks)
    assert float(invoice["TotalAmt"]) == 450.0
    assert invoice["SalesTermRef"]["value"] == net_30
    [customer] = fake_quickbooks.company(REALM_ID).all("Customer")
    assert customer["DisplayName"] == "Ann Lee"
    assert customer["PrimaryEmailAddr"]["Address"] == "ann.lee@acme.test"
    assert invoice["CustomerRef"]["value"] == customer["Id"]
    assert [
        line["SalesItemLineDetail"]["ItemRef"]["value"]
        for line in invoice["Line"]
        if line.get("DetailType") == "SalesItemLineDetail"
    ] == [deal.widget_id, deal.service_id]
    [completion] = fake_hubspot.completions
    assert completion.callback_id == "ap-62515-1001-1-0"
    assert completion.output_fields == {
        "hs_execution_state": "SUCCESS",
        "quickbooks_document_id": invoice["Id"],
        "quickbooks_document_number": invoice["DocNumber"],
        "quickbooks_document_url": f"https://app.sandbox.qbo.intuit.com/app/invoice?txnId={invoice['Id']}",
        "quickbooks_customer_id": customer["Id"],
        "error_code": "",
        "error_message": "",
    }
    [execution] = executions(app)
    assert (execution.status, execution.outcome, execution.realm_id) == ("completed", "SUCCESS", REALM_ID)
    assert execution.quickbooks_writes["invoice"]["id"] == invoice["Id"]


def test_invoice_write_carries_a_request_id_derived_from_the_execution(signed_post, deal, fake_quickbooks):
    signed_post(PATH, execution_body(object_id=deal.deal_id))
    [write] = fake_quickbooks.requests_to("POST", "/invoice")
    from actions.context import ActionContext

    expected = ActionContext.request_id(
        type("C", (), {"portal_id": PORTAL_ID, "callback_id": "ap-62515-1001-1-0"}), "invoice"
    )
    assert write.query["requestid"] == expected
    assert len(expected) == 36


def test_v2_signature_and_the_observed_body_shape_work(signed_post, deal, fake_quickbooks, fake_hubspot):
    response = signed_post(PATH, execution_body(object_id=deal.deal_id, style="observed"), version="v2")
    assert response.status_code == 200
    assert len(invoices(fake_quickbooks)) == 1
    assert fake_hubspot.completions[0].output_fields["hs_execution_state"] == "SUCCESS"


def test_repeated_delivery_creates_nothing_new_and_replays_the_outcome(
    signed_post, deal, fake_quickbooks, fake_hubspot
):
    body = execution_body(object_id=deal.deal_id)
    answers = [signed_post(PATH, body).json for _ in range(3)]

    assert len(invoices(fake_quickbooks)) == 1
    assert len(fake_hubspot.completions) == 1
    assert answers[0]["outputFields"]["hs_execution_state"] == "BLOCK"
    assert answers[2]["outputFields"]["hs_execution_state"] == "SUCCESS"
    assert answers[2]["outputFields"]["quickbooks_document_id"] == invoices(fake_quickbooks)[0]["Id"]


def test_concurrent_deliveries_create_one_invoice(app, deal, fake_quickbooks, fake_hubspot, signed_post):
    body = json.dumps(execution_body(object_id=deal.deal_id)).encode()

    assert deliver_at_once(signed_post, PATH, body, 6) == [200] * 6
    assert len(invoices(fake_quickbooks)) == 1
    assert len(fake_hubspot.completions) == 1
    assert len(executions(app)) == 1


def test_lost_quickbooks_response_yields_one_invoice(signed_post, deal, fake_quickbooks, fake_hubspot):
    fake_quickbooks.fail_next("POST /invoice", status=503, commit=True)

    signed_post(PATH, execution_body(object_id=deal.deal_id))

    assert len(invoices(fake_quickbooks)) == 1
    assert len(fake_quickbooks.requests_to("POST", "/invoice")) == 2  # the lost one, then the replayed one
    assert fake_hubspot.completions[0].output_fields["quickbooks_document_id"] == invoices(fake_quickbooks)[0]["Id"]


def tamper_body(raw: bytes) -> bytes:
    return raw.replace(b'"DEAL"', b'"QUOTE"')


@pytest.mark.parametrize(
    "variant",
    [
        {"secret": "not-the-secret"},
        {"tamper": tamper_body},
        {"timestamp_ms": 1_000_000_000_000},
        {"version": "v2", "secret": "not-the-secret"},
    ],
)
def test_forged_altered_or_stale_requests_get_401_and_record_nothing(variant, signed_post, deal, app, fake_quickbooks):
    response = signed_post(PATH, execution_body(object_id=deal.deal_id), **variant)
    assert response.status_code == 401
    assert response.json["error"] == "invalid_signature"
    assert response.json["reason"]
    assert executions(app) == []
    assert fake_quickbooks.requests == []


def test_unsigned_request_gets_401(client, deal):
    response = client.post(PATH, json=execution_body(object_id=deal.deal_id))
    assert response.status_code == 401
    assert "missing" in response.json["reason"].lower()


@pytest.mark.parametrize(
    "raw, reason",
    [
        (b"{not json", "JSON object"),
        (b"[1, 2]", "JSON object"),
        (json.dumps({"origin": {"portalId": 1}, "object": {"objectType": "DEAL"}}).encode(), "callbackId"),
        (
            json.dumps(
                {"callbackId": "x", "origin": {"portalId": "abc"}, "object": {"objectId": 1, "objectType": "DEAL"}}
            ).encode(),
            "origin.portalId",
        ),
        (  # found by schemathesis: int() would cut a fraction to 0 and accept it
            json.dumps(
                {
                    "callbackId": "x",
                    "origin": {"portalId": 62515, "actionDefinitionVersion": -1.07e-238},
                    "object": {"objectId": 1, "objectType": "DEAL"},
                }
            ).encode(),
            "origin.actionDefinitionVersion",
        ),
        (
            json.dumps(
                {"callbackId": "x", "origin": {"portalId": 62515.5}, "object": {"objectId": 1, "objectType": "DEAL"}}
            ).encode(),
            "origin.portalId",
        ),
    ],
)
def test_malformed_requests_get_400_with_reasons(raw, reason, signed_post, app):
    response = signed_post(PATH, raw)
    assert response.status_code == 400
    assert reason in json.dumps(response.json)
    assert executions(app) == []


def test_unknown_action_is_404(signed_post):
    response = signed_post("/hubspot/actions/create_spaceship", execution_body())
    assert response.status_code == 404
    assert "create_spaceship" in response.json["reason"]


@pytest.mark.parametrize(
    "action",
    [
        "create_invoice",
        "create_estimate",
        "create_sales_receipt",
        "create_paid_invoice",
        "create_expense",
        "create_refund_receipt",
    ],
)
def test_every_action_is_available_and_answers_block(action, signed_post, deal):
    response = signed_post(
        f"/hubspot/actions/{action}", execution_body(object_id=deal.deal_id, callback_id=f"ap-{action}")
    )
    assert response.json["outputFields"]["hs_execution_state"] == "BLOCK"


def test_portal_that_never_installed_fails_continue(signed_post, fake_quickbooks):
    response = signed_post(PATH, execution_body(portal_id=999))
    fields = response.json["outputFields"]
    assert (fields["hs_execution_state"], fields["error_code"]) == ("FAIL_CONTINUE", "QUICKBOOKS_NOT_CONNECTED")
    assert "999" in fields["error_message"]


def test_portal_without_quickbooks_fails_continue_through_the_callback(signed_post, portal, fake_hubspot):
    signed_post(PATH, execution_body())
    [completion] = fake_hubspot.completions
    assert completion.output_fields["hs_execution_state"] == "FAIL_CONTINUE"
    assert completion.output_fields["error_code"] == "QUICKBOOKS_NOT_CONNECTED"


def test_deal_without_contact_fails_with_contact_missing(signed_post, portal, connection, fake_hubspot):
    deal_id = portal.add("deals", {"dealname": "No contact", "amount": "10"})
    signed_post(PATH, execution_body(object_id=deal_id))
    fields = fake_hubspot.completions[0].output_fields
    assert (fields["hs_execution_state"], fields["error_code"]) == ("FAIL_CONTINUE", "CONTACT_MISSING")
    assert f"deal {deal_id}" in fields["error_message"]


def test_unmatched_products_are_named(signed_post, portal, connection, fake_quickbooks, fake_hubspot):
    deal = seed_deal(
        portal,
        fake_quickbooks,
        lines=[
            {"name": "Widget", "hs_sku": "W-1", "quantity": "1", "price": "100", "amount": "100"},
            {"name": "Gadget", "hs_sku": "G-9", "quantity": "1", "price": "5", "amount": "5"},
            {"name": "Gizmo", "quantity": "1", "price": "7", "amount": "7"},
        ],
    )
    signed_post(PATH, execution_body(object_id=deal.deal_id))
    fields = fake_hubspot.completions[0].output_fields
    assert fields["error_code"] == "PRODUCT_NOT_FOUND"
    assert "'Gadget' (SKU G-9)" in fields["error_message"] and "'Gizmo'" in fields["error_message"]
    assert "Widget" not in fields["error_message"].split("product:")[-1].split(".")[0]
    assert invoices(fake_quickbooks) == []


def test_missing_products_are_created_when_asked(signed_post, portal, connection, fake_quickbooks, fake_hubspot):
    deal = seed_deal(
        portal,
        fake_quickbooks,
        lines=[
            {"name": "Gadget", "hs_sku": "G-9", "quantity": "3", "price": "5", "amount": "15", "description": "Blue"},
        ],
    )
    signed_post(PATH, execution_body(object_id=deal.deal_id, inputs={"create_missing_products": "true"}))
    gadget = next(i for i in fake_quickbooks.company(REALM_ID).all("Item") if i["Name"] == "Gadget")
    assert (gadget["Sku"], gadget["Type"], float(gadget["UnitPrice"])) == ("G-9", "Service", 5.0)
    [invoice] = invoices(fake_quickbooks)
    assert float(invoice["TotalAmt"]) == 15.0
    assert fake_hubspot.completions[0].output_fields["hs_execution_state"] == "SUCCESS"


def test_expired_quickbooks_token_is_refreshed_once_and_the_new_one_kept(signed_post, deal, app, fake_quickbooks):
    with app.app_context():
        connection = db.session.scalars(select(QuickBooksConnection)).one()
        old_access = connection.access_token
    fake_quickbooks.expire_access_token(old_access)

    signed_post(PATH, execution_body(object_id=deal.deal_id))

    assert len(invoices(fake_quickbooks)) == 1
    assert fake_quickbooks.refresh_count == 1
    with app.app_context():
        connection = db.session.scalars(select(QuickBooksConnection)).one()
        assert connection.access_token != old_access


def test_revoked_quickbooks_authorization_fails_with_auth_expired(
    signed_post, deal, app, fake_quickbooks, fake_hubspot
):
    with app.app_context():
        connection = db.session.scalars(select(QuickBooksConnection)).one()
        fake_quickbooks.expire_access_token(connection.access_token)
        fake_quickbooks.revoke_refresh_token(connection.refresh_token)

    signed_post(PATH, execution_body(object_id=deal.deal_id))

    fields = fake_hubspot.completions[0].output_fields
    assert (fields["hs_execution_state"], fields["error_code"]) == ("FAIL_CONTINUE", "QUICKBOOKS_AUTH_EXPIRED")
    assert "Reconnect QuickBooks" in fields["error_message"]
    with app.app_context():
        assert db.session.scalars(select(QuickBooksConnection)).one().state == "reconnect_needed"


def test_quickbooks_outage_ends_in_quickbooks_unavailable(
    signed_post, deal, fake_quickbooks, fake_hubspot, app, run_due_jobs
):
    fake_quickbooks.fail_next("POST /invoice", status=503, times=100)
    signed_post(PATH, execution_body(object_id=deal.deal_id))
    assert fake_hubspot.completions == [] and executions(app)[0].status == "pending"  # waiting for its retry
    run_due_jobs()
    fields = fake_hubspot.completions[0].output_fields
    assert fields["error_code"] == "QUICKBOOKS_UNAVAILABLE"
    assert invoices(fake_quickbooks) == []
    [execution] = executions(app)
    assert execution.attempts == 3  # the first try and the two configured retries


def test_quickbooks_throttling_is_retried(signed_post, deal, fake_quickbooks, fake_hubspot):
    fake_quickbooks.throttle_next("POST /invoice", retry_after=0)
    signed_post(PATH, execution_body(object_id=deal.deal_id))
    assert len(invoices(fake_quickbooks)) == 1
    assert fake_hubspot.completions[0].output_fields["hs_execution_state"] == "SUCCESS"


def test_failing_callback_completion_is_retried_not_dropped(signed_post, deal, fake_hubspot, app, run_due_jobs):
    fake_hubspot.fail_next("POST /automation/actions/callbacks", status=502, times=4)
    signed_post(PATH, execution_body(object_id=deal.deal_id))
    assert executions(app)[0].status == "finished"
    run_due_jobs()
    assert len(fake_hubspot.completions) == 1
    [execution] = executions(app)
    assert execution.status == "completed"
    assert execution.callback_attempts >= 2


def test_invalid_payment_terms_fail_with_invalid_input(signed_post, deal, fake_hubspot):
    signed_post(PATH, execution_body(object_id=deal.deal_id, inputs={"payment_terms": "999"}))
    fields = fake_hubspot.completions[0].output_fields
    assert (fields["hs_execution_state"], fields["error_code"]) == ("FAIL_CONTINUE", "INVALID_INPUT")
    assert "the payment terms chosen in the action" in fields["error_message"]


def test_tokens_are_encrypted_at_rest(app, connection):
    with app.app_context():
        raw = db.session.execute(text("SELECT access_token, refresh_token FROM quickbooks_connections")).one()
        plain = db.session.scalars(select(QuickBooksConnection)).one()
        assert plain.access_token not in raw.access_token
        assert raw.access_token.startswith("gAAAA")  # a Fernet token
        assert db.session.scalar(select(func.count()).select_from(QuickBooksConnection)) == 1
