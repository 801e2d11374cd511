"""HubSpot refusing a read the action needs is explained (HUBSPOT_REFUSED), not a bug: no INTERNAL_ERROR and
nothing sent to Sentry."""

import pytest
from sqlalchemy import select

from actions.errors import CATALOGUE
from app.extensions import db
from app.hubspot import oauth as hubspot_oauth
from app.storage.connections import get_portal
from app.storage.models import Execution
from tests.app.test_sentry import RecordingTransport, forget_sentry, with_sentry
from tests.conftest import PORTAL_ID, execution_body
from tests.fakes.hubspot import DEFAULT_SCOPES
from tests.scenarios import seed_deal

PATH = "/hubspot/actions/create_invoice"
FIX = CATALOGUE["HUBSPOT_REFUSED"].fix


@pytest.fixture
def transport():
    recording = RecordingTransport()
    yield recording
    forget_sentry()


@pytest.fixture
def app_config(app_config, transport):
    return with_sentry(app_config, transport)


def run_invoice(signed_post, fake_hubspot, deal_id) -> dict:
    signed_post(PATH, execution_body(object_id=deal_id))
    fields = fake_hubspot.completions[0].output_fields
    assert (fields["hs_execution_state"], fields["error_code"]) == ("FAIL_CONTINUE", "HUBSPOT_REFUSED"), fields
    return fields


def test_a_400_on_a_crm_read_is_explained_with_hubspots_words_and_not_sent_to_sentry(
    app, signed_post, portal, connection, fake_quickbooks, fake_hubspot, books, transport
):
    deal = seed_deal(portal, fake_quickbooks)
    fake_hubspot.fail_next(
        "GET /crm/objects",
        status=400,
        body={"status": "error", "message": "Property values were not valid", "category": "VALIDATION_ERROR"},
    )
    fields = run_invoice(signed_post, fake_hubspot, deal.deal_id)

    message = fields["error_message"]
    assert message.startswith(f"HubSpot refused a request qbo-actions needs to read deal {deal.deal_id}:")
    assert '"Property values were not valid" (HTTP 400, VALIDATION_ERROR)' in message
    assert "property, record or association" in message and message.endswith(FIX)
    assert transport.events == []  # a refusal is not a bug
    assert books.all("Invoice") == []
    with app.app_context():
        execution = db.session.scalars(select(Execution)).one()
        assert (execution.error_code, execution.error_message) == ("HUBSPOT_REFUSED", message)


def test_a_missing_scope_says_to_reinstall(
    app, signed_post, portal, connection, fake_quickbooks, fake_hubspot, transport
):
    deal = seed_deal(portal, fake_quickbooks)
    scopes = [scope for scope in DEFAULT_SCOPES if scope != "crm.objects.deals.read"]
    with app.app_context():  # installed without the deals scope: HubSpot answers 403 MISSING_SCOPES
        hubspot_oauth.store_tokens(
            get_portal(db.session, PORTAL_ID), fake_hubspot.issue_tokens(PORTAL_ID, scopes=scopes)
        )
        db.session.commit()
    fields = run_invoice(signed_post, fake_hubspot, deal.deal_id)

    message = fields["error_message"]
    assert "hasn't been granted all required scopes" in message and "(HTTP 403, MISSING_SCOPES)" in message
    assert "lacks a permission (scope)" in message and "reinstall qbo-actions" in message
    assert transport.events == []


def test_a_refused_refresh_token_says_to_reinstall(
    app, signed_post, portal, connection, fake_quickbooks, fake_hubspot, transport
):
    deal = seed_deal(portal, fake_quickbooks)
    with app.app_context():
        stored = get_portal(db.session, PORTAL_ID)
        fake_hubspot.expire_access_token(stored.access_token)
        fake_hubspot.revoke_refresh_token(stored.refresh_token)
    signed_post(PATH, execution_body(object_id=deal.deal_id))  # HubSpot's callback cannot be completed either
    with app.app_context():
        execution = db.session.scalars(select(Execution)).one()
        assert (execution.outcome, execution.error_code) == ("FAIL_CONTINUE", "HUBSPOT_REFUSED")
        assert execution.error_message.startswith("HubSpot refused qbo-actions' access to this HubSpot account:")
        assert "uninstalled" in execution.error_message and "reinstall qbo-actions" in execution.error_message
    assert transport.events == []
