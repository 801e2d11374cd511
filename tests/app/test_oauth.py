"""Installing in HubSpot, connecting QuickBooks, and keeping both kinds of token fresh."""

import threading
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlparse

import pytest
import requests
from sqlalchemy import select

from app.extensions import db
from app.hubspot.client import hubspot_client
from app.quickbooks.client import books_client
from app.storage.models import Portal, QuickBooksConnection
from tests.conftest import PORTAL_ID, PUBLIC_URL, REALM_ID, execution_body
from tests.scenarios import seed_deal


def follow(location: str) -> dict:
    """Play the provider's consent page: its redirect back to us carries code, state (and realmId)."""
    response = requests.get(location, allow_redirects=False)
    assert response.status_code == 302, response.text
    return {k: v[0] for k, v in parse_qs(urlparse(response.headers["Location"]).query).items()}


def install(client, fake_hubspot, portal_id=PORTAL_ID):
    fake_hubspot.next_install_portal = portal_id
    start = client.get("/oauth/hubspot/install")
    assert start.status_code == 302
    query = parse_qs(urlparse(start.headers["Location"]).query)
    assert query["redirect_uri"] == [PUBLIC_URL + "/oauth/hubspot/callback"]
    assert "automation" in query["scope"][0].split()
    back = follow(start.headers["Location"])
    return client.get("/oauth/hubspot/callback", query_string=back)


def test_hubspot_install_stores_the_portal_and_signs_the_browser_in(client, app, fake_hubspot):
    response = install(client, fake_hubspot)
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert "Connect a QuickBooks company" in client.get("/").text
    with app.app_context():
        portal = db.session.get(Portal, PORTAL_ID)
        assert portal.access_token and portal.refresh_token
        assert portal.access_expires_at > datetime.now(UTC)
        assert "automation" in portal.scopes
    with client.session_transaction() as session:
        assert session["portal_id"] == PORTAL_ID


def test_hubspot_callback_with_a_forged_state_is_refused(client, fake_hubspot, app):
    client.get("/oauth/hubspot/install")
    response = client.get("/oauth/hubspot/callback", query_string={"code": "x", "state": "forged"})
    assert response.status_code == 400
    assert "state" in response.json["reason"]
    with app.app_context():
        assert db.session.scalars(select(Portal)).all() == []


def test_quickbooks_connect_stores_the_company_with_name_and_country(client, app, fake_hubspot, fake_quickbooks):
    install(client, fake_hubspot)
    start = client.get("/oauth/quickbooks/connect")
    assert start.status_code == 302
    back = follow(start.headers["Location"])
    assert back["realmId"] == REALM_ID
    response = client.get("/oauth/quickbooks/callback", query_string=back)
    assert response.status_code == 302 and response.headers["Location"] == "/", response.text
    assert "Sandbox Company is connected" in client.get("/").text
    with app.app_context():
        connection = db.session.scalars(select(QuickBooksConnection)).one()
        assert (connection.portal_id, connection.realm_id) == (PORTAL_ID, REALM_ID)
        assert (connection.company_name, connection.country, connection.state) == ("Sandbox Company", "US", "active")
        assert connection.refresh_token


def test_quickbooks_connect_needs_a_signed_in_portal(client):
    response = client.get("/oauth/quickbooks/connect")
    assert response.status_code == 401
    assert "Install qbo-actions from HubSpot first" in response.json["reason"]


def test_hubspot_token_rejected_before_its_expiry_is_refreshed_once(app, portal, fake_hubspot):
    with app.app_context():
        stored = db.session.get(Portal, PORTAL_ID)
        fake_hubspot.expire_access_token(stored.access_token)
        deal_id = portal.add("deals", {"dealname": "X"})
        body = hubspot_client(stored, app.config).get_object("deals", deal_id, ["dealname"])
    assert body["properties"]["dealname"] == "X"
    assert fake_hubspot.refresh_count == 1


def test_expiring_quickbooks_token_is_refreshed_once_across_threads(app, connection, fake_quickbooks):
    with app.app_context():
        stored = db.session.get(QuickBooksConnection, connection)
        stored.access_expires_at = datetime.now(UTC) + timedelta(seconds=30)  # inside the margin
        db.session.commit()
    errors = []

    def read_company():
        with app.app_context():
            try:
                books_client(db.session.get(QuickBooksConnection, connection), app.config).company_info()
            except Exception as exc:  # collected, then asserted empty
                errors.append(exc)

    threads = [threading.Thread(target=read_company) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert fake_quickbooks.refresh_count == 1


def test_hubspot_throttling_is_retried_after_retry_after(
    signed_post, portal, connection, fake_quickbooks, fake_hubspot
):
    deal = seed_deal(portal, fake_quickbooks)
    fake_hubspot.fail_next(
        "GET /crm/objects/2026-03/deals",
        status=429,
        headers={"Retry-After": "0"},
        body='{"status":"error","message":"You have reached your secondly limit.","category":"RATE_LIMITS"}',
    )
    signed_post("/hubspot/actions/create_invoice", execution_body(object_id=deal.deal_id))
    assert fake_hubspot.completions[0].output_fields["hs_execution_state"] == "SUCCESS"
    deal_reads = [
        r
        for r in fake_hubspot.requests_to("GET", "/crm/objects/2026-03/deals/")
        if r.path == f"/crm/objects/2026-03/deals/{deal.deal_id}"
    ]
    assert [r.status for r in deal_reads] == [429, 200]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
def test_callback_completion_falls_back_to_v4_when_the_dated_path_is_missing(
    signed_post, portal, connection, fake_quickbooks, fake_hubspot
):
    deal = seed_deal(portal, fake_quickbooks)
    fake_hubspot.fail_next(
        "POST /automation/actions/callbacks/2026-03",
        status=404,
        body='{"status":"error","message":"Not found","category":"OBJECT_NOT_FOUND"}',
    )
    signed_post("/hubspot/actions/create_invoice", execution_body(object_id=deal.deal_id))
    [completion] = fake_hubspot.completions
    assert completion.api_version == "v4"
