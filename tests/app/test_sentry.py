"""Sentry: a bug of ours reaches it once, tagged, and nothing secret or personal ever does; logs neither.

Events go to a local transport that records envelopes, through the app's own `init_sentry` (SENTRY_DSN set).
"""

import json
import logging
import uuid

import pytest
import sentry_sdk
from sentry_sdk.transport import Transport
from sqlalchemy import select

import actions
from app import observability
from app.extensions import db
from app.hubspot.signature import sign_request
from app.storage.models import Execution, Portal, QuickBooksConnection
from tests.conftest import HUBSPOT_SECRET, PORTAL_ID, PUBLIC_URL, execution_body
from tests.scenarios import seed_deal

PATH = "/hubspot/actions/create_invoice"
EMAIL = "ann.lee@acme.test"


class RecordingTransport(Transport):
    """Keeps every envelope the SDK would send to sentry.example."""

    def __init__(self, options=None):
        super().__init__(options)
        self.envelopes = []

    def capture_envelope(self, envelope):
        self.envelopes.append(envelope)

    @property
    def events(self) -> list[dict]:
        return [event for event in (e.get_event() for e in self.envelopes) if event is not None]

    def raw(self) -> str:
        return "\n".join(envelope.serialize().decode("utf-8", "replace") for envelope in self.envelopes)


def with_sentry(app_config: dict, transport: RecordingTransport) -> dict:
    return {**app_config, "SENTRY_DSN": "https://public@sentry.example/1", "SENTRY_TRANSPORT": transport}


def forget_sentry():
    sentry_sdk.get_client().close()
    sentry_sdk.get_global_scope().set_client(None)


@pytest.fixture
def transport():
    recording = RecordingTransport()
    yield recording
    forget_sentry()


@pytest.fixture
def app_config(app_config, transport):
    return with_sentry(app_config, transport)


def stored_secrets(app) -> list[str]:
    """Every OAuth token the server holds, and its own secrets."""
    with app.app_context():
        values = [
            token
            for model in (Portal, QuickBooksConnection)
            for row in db.session.scalars(select(model))
            for token in (row.access_token, row.refresh_token)
        ]
    values += [HUBSPOT_SECRET, app.config["QBO_CLIENT_SECRET"], app.config["SECRET_KEY"]]
    values += app.config["TOKEN_ENCRYPTION_KEYS"]
    assert all(values)
    return values


def post_signed(client, body: dict):
    """As HubSpot: the signature is returned so the test can look for it."""
    raw = json.dumps(body).encode()
    headers = sign_request("POST", PUBLIC_URL + PATH, raw, secret=HUBSPOT_SECRET)
    response = client.post(PATH, data=raw, headers={**headers, "Content-Type": "application/json"})
    assert response.status_code == 200, response.data
    return headers["X-HubSpot-Signature-v3"]


def test_an_internal_error_reaches_sentry_once_tagged_and_without_secrets_or_emails(
    app, client, portal, connection, fake_quickbooks, fake_hubspot, transport, monkeypatch
):
    deal = seed_deal(portal, fake_quickbooks, email=EMAIL)
    code = f"oauth-{uuid.uuid4().hex[:12]}"  # an OAuth code, made at run time (source lines are sent too)

    def broken_invoice(ctx):
        """A bug holding everything that must not leak: in its locals, its message and a log line."""
        contact = ctx.crm.get_object("contacts", deal.contact_id, ["email"])
        email = contact["properties"]["email"]
        token = ctx.crm.tokens.access_token()
        headers = {"Authorization": f"Bearer {token}", "X-HubSpot-Signature-v3": "sig", "intuit-signature": "sig"}
        form = {"client_secret": HUBSPOT_SECRET, "refresh_token": "r", "code": code, "state": "xyz"}
        logging.getLogger("actions.test").warning("billing %s with %s", email, headers["Authorization"])
        raise RuntimeError(f"cannot bill {email}: Bearer {token} refused ({len(form)} fields)")

    monkeypatch.setitem(actions.ACTIONS, "create_invoice", broken_invoice)
    signature = post_signed(client, execution_body(object_id=deal.deal_id))

    fields = fake_hubspot.completions[0].output_fields
    assert (fields["hs_execution_state"], fields["error_code"]) == ("FAIL_CONTINUE", "INTERNAL_ERROR")
    assert "RuntimeError" in fields["error_message"] and EMAIL not in fields["error_message"]
    with app.app_context():
        execution_id = db.session.scalars(select(Execution.id)).one()

    assert len(transport.events) == 1, [e.get("message") or e.get("exception") for e in transport.events]
    event = transport.events[0]
    assert (
        event["tags"]
        | {
            "portal": str(PORTAL_ID),
            "action": "create_invoice",
            "error_code": "INTERNAL_ERROR",
            "execution_id": str(execution_id),
        }
        == event["tags"]
    )
    assert event["exception"]["values"][-1]["type"] == "RuntimeError"
    assert "[email]" in event["exception"]["values"][-1]["value"]  # masked, not dropped: still readable

    sent = transport.raw()
    for secret in [*stored_secrets(app), EMAIL, EMAIL.replace("@", "%40"), signature, code]:
        assert secret not in sent, secret
    frames = event["exception"]["values"][-1]["stacktrace"]["frames"]
    local_vars = frames[-1]["vars"]
    assert local_vars["token"] == observability.FILTERED
    assert set(local_vars["headers"].values()) == set(local_vars["form"].values()) == {observability.FILTERED}
    request = event.get("request") or {}
    assert not request.get("data") or request["data"] == observability.FILTERED  # no request bodies
    assert all(
        value == observability.FILTERED
        for name, value in (request.get("headers") or {}).items()
        if "signature" in name.lower() or name.lower() == "authorization"
    )


def test_a_successful_execution_sends_nothing_and_logs_no_token_or_email(
    app, client, portal, connection, fake_quickbooks, fake_hubspot, transport, caplog
):
    caplog.set_level(logging.DEBUG)  # urllib3 logs every URL it calls, QuickBooks queries with e-mails included
    deal = seed_deal(portal, fake_quickbooks, email=EMAIL)
    post_signed(client, execution_body(object_id=deal.deal_id))

    assert fake_hubspot.completions[0].output_fields["hs_execution_state"] == "SUCCESS"
    assert transport.events == []
    logged = caplog.text + "\n".join(record.getMessage() for record in caplog.records)
    assert "/v3/company/" in logged  # the HTTP calls were logged, masked
    for secret in [*stored_secrets(app), EMAIL, EMAIL.replace("@", "%40")]:
        assert secret not in logged, secret


def test_log_records_are_masked_for_every_logger(app, caplog):
    caplog.set_level(logging.INFO)
    logging.getLogger("werkzeug").info('"GET /oauth/hubspot/callback?code=abc123&state=s3cr3t HTTP/1.1" 302 -')
    logging.getLogger("app.anything").warning("contact %s: %s", "Ann <ann.lee@acme.test>", "Bearer hs-access-1")
    try:
        raise ValueError("no customer for ann.lee@acme.test")
    except ValueError:
        logging.getLogger("app.anything").exception("failed")
    text = caplog.text
    for secret in ("abc123", "s3cr3t", EMAIL, "hs-access-1"):
        assert secret not in text, secret
    assert "code=[Filtered]" in text and "Ann <[email]>" in text and "Bearer [Filtered]" in text
    assert "ValueError: no customer for [email]" in text


@pytest.mark.parametrize(
    "text, expected",
    [
        ("https://api.hubapi.com/oauth/v1/access-tokens/CJT2x-secret", "/access-tokens/[Filtered]"),
        ("grant_type=refresh_token&refresh_token=na1-abc&client_secret=xyz", "refresh_token=[Filtered]"),
        ('{"access_token": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig"}', '"access_token": "[Filtered]"'),
        ("query=select * from Customer where PrimaryEmailAddr = 'ann%40acme.test'", "= '[email]'"),
        ("postgresql://qbo:hunter2@db.internal/qbo", "postgresql://[Filtered]@db.internal/qbo"),
        ("QuickBooks fault code: 6240", "QuickBooks fault code: 6240"),  # not an OAuth code
        ("retrying with Bearer hs-access-62515-0f3c", "with Bearer [Filtered]"),
        ("/oauth/hubspot/callback?code=4f2c-9a&state=Zx1", "callback?code=[Filtered]&state=[Filtered]"),
    ],
)
def test_redact_text(text, expected):
    masked = observability.redact_text(text)
    assert expected in masked
    assert observability.redact_text(masked) == masked  # masking twice (log record, then Sentry) changes nothing


def test_before_send_masks_secrets_anywhere_in_an_event():
    event = {
        "message": "cannot bill ann.lee@acme.test",
        "request": {
            "url": "https://qbo.example/oauth/quickbooks/callback",
            "query_string": "code=AB11-code&state=st4te&realmId=1",
            "headers": {"X-Hubspot-Signature-V3": "c2ln", "Intuit-Signature": "c2ln", "Authorization": "Bearer x"},
            "data": {"callbackId": "ap-1"},
            "cookies": {"session": "s"},
        },
        "extra": {"portal": {"refresh_token": "na1-1234", "hub_domain": "acme.test"}},
        "breadcrumbs": {"values": [{"message": "GET https://api.hubapi.com/oauth/v1/access-tokens/tok", "data": {}}]},
        "exception": {
            "values": [
                {
                    "type": "RuntimeError",
                    "value": "token AB11" + "x9" * 30 + " refused",
                    "stacktrace": {"frames": [{"function": "run", "vars": {"client_secret": "'s'", "n": "3"}}]},
                }
            ]
        },
        "tags": {"portal": "62515"},
    }
    sent = json.dumps(observability.before_send(event, {}))
    for secret in ("ann.lee", "AB11-code", "st4te", "c2ln", "Bearer x", "ap-1", "na1-1234", "/tok", "x9x9", "'s'"):
        assert secret not in sent, secret
    assert "realmId=1" in sent and '"n": "3"' in sent and '"portal": "62515"' in sent and "acme.test" in sent
