"""Oversized bodies: over MAX_CONTENT_LENGTH (1 MiB) a request is refused with 413 before its body is read, so
before its signature is checked or anything is parsed or recorded; a body just under the limit is handled."""

import io
import json

import pytest
from sqlalchemy import func, select

from app.config import ConfigError, finish_config, load_config
from app.extensions import db
from app.hubspot.signature import sign_request
from app.quickbooks import webhooks
from app.storage.models import Execution, QuickBooksEvent
from tests.conftest import HUBSPOT_SECRET, PUBLIC_URL, REALM_ID, execution_body

ACTION = "/hubspot/actions/create_invoice"
OPTIONS = ACTION + "/options"
WEBHOOK = "/quickbooks/webhooks"
VERIFIER = "qbo-webhook-verifier"
MiB = 1024 * 1024


@pytest.fixture
def app_config(app_config):
    return {**app_config, "QBO_WEBHOOK_VERIFIER_TOKEN": VERIFIER}


def padded(body: dict, size: int) -> bytes:
    """The execution request as JSON bytes of exactly `size`, the padding in `context` (which HubSpot may fill)."""
    body = {**body, "context": {**body.get("context", {}), "padding": ""}}
    room = size - len(json.dumps(body).encode())
    assert room >= 0
    body["context"]["padding"] = "x" * room
    raw = json.dumps(body).encode()
    assert len(raw) == size
    return raw


def count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def assert_too_large(response):
    assert response.status_code == 413, response.get_data(as_text=True)[:300]
    assert response.json["error"] == "request_entity_too_large"
    assert str(MiB) in response.json["reason"] and "MAX_CONTENT_LENGTH" in response.json["reason"]


def test_the_default_limit_is_one_mebibyte(app):
    assert app.config["MAX_CONTENT_LENGTH"] == MiB


def test_a_validly_signed_1_5_mb_execution_is_refused_and_not_recorded(signed_post, app):
    response = signed_post(ACTION, padded(execution_body(), 3 * MiB // 2))
    assert_too_large(response)
    assert count(app, Execution) == 0


def test_a_validly_signed_900_kb_execution_is_still_handled(signed_post, app):
    response = signed_post(ACTION, padded(execution_body(), 900 * 1024))
    assert response.status_code == 200, response.json
    assert response.json["outputFields"]["hs_execution_state"]  # answered (this portal never installed: FAIL)
    assert count(app, Execution) == 1


def test_a_body_of_exactly_the_limit_is_handled_and_one_byte_more_is_not(signed_post, app):
    assert signed_post(ACTION, padded(execution_body(callback_id="at-limit"), MiB)).status_code == 200
    assert_too_large(signed_post(ACTION, padded(execution_body(callback_id="over-limit"), MiB + 1)))
    assert count(app, Execution) == 1


def test_the_size_is_refused_before_the_signature_is_checked(client, app):
    """An unsigned (or forged) oversized body is a 413 too: the body is never read, so never hashed."""
    response = client.post(ACTION, data=padded(execution_body(), 2 * MiB), content_type="application/json")
    assert_too_large(response)
    assert count(app, Execution) == 0


def test_a_validly_signed_oversized_options_request_is_refused(signed_post):
    body = {"origin": {"portalId": 62515}, "inputFieldName": "products", "inputFields": {"pad": "x" * (2 * MiB)}}
    assert_too_large(signed_post(OPTIONS, body))


def test_a_validly_signed_oversized_webhook_is_refused_and_nothing_is_stored(client, app):
    event = {
        "specversion": "1.0",
        "id": "e-1",
        "type": "qbo.invoice.updated.v1",
        "intuitaccountid": REALM_ID,
        "intuitentityid": "1",
        "data": {"pad": "x" * (3 * MiB // 2)},
    }
    body = json.dumps([event]).encode()
    headers = {webhooks.SIGNATURE_HEADER: webhooks.sign(body, VERIFIER), "Content-Type": "application/json"}
    assert_too_large(client.post(WEBHOOK, data=body, headers=headers))
    assert count(app, QuickBooksEvent) == 0


def test_an_oversized_card_request_is_refused(client):
    body = b"x" * (MiB + 1)
    query = "objectType=DEAL&objectId=1&portalId=62515"
    headers = sign_request("GET", f"{PUBLIC_URL}/hubspot/cards/documents?{query}", body, secret=HUBSPOT_SECRET)
    assert_too_large(client.get(f"/hubspot/cards/documents?{query}", data=body, headers=headers))


def post_chunked(client, raw: bytes):
    """As gunicorn hands the app a chunked body: no Content-Length, a stream the server ends (input_terminated)."""
    headers = sign_request("POST", PUBLIC_URL + ACTION, raw, secret=HUBSPOT_SECRET)
    return client.post(
        ACTION,
        input_stream=io.BytesIO(raw),
        headers={**headers, "Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )


def test_a_chunked_oversized_body_is_refused_and_not_recorded(client, app):
    """No Content-Length to refuse up front: at most MAX_CONTENT_LENGTH bytes are read, and the signature, which
    covers the whole body, does not match what was read."""
    response = post_chunked(client, padded(execution_body(), 2 * MiB))
    assert response.status_code in (401, 413), response.json
    assert count(app, Execution) == 0


def test_a_chunked_oversized_body_is_a_413(client):
    assert_too_large(post_chunked(client, padded(execution_body(), 2 * MiB)))


def test_the_limit_comes_from_max_content_length(app_config, tmp_path, monkeypatch):
    from app import create_app

    monkeypatch.setenv("INSTANCE_PATH", str(tmp_path / "small"))
    small = create_app({**app_config, "MAX_CONTENT_LENGTH": "4096"})
    assert small.config["MAX_CONTENT_LENGTH"] == 4096
    response = small.test_client().post(ACTION, data=b"{" + b" " * 5000 + b"}", content_type="application/json")
    assert response.status_code == 413
    assert "4096 bytes" in response.json["reason"]


def test_max_content_length_is_read_from_the_environment(tmp_path):
    config = load_config(str(tmp_path), environ={"MAX_CONTENT_LENGTH": "2048", "TOKEN_ENCRYPTION_KEY": ""})
    finish_config(config, str(tmp_path))
    assert config["MAX_CONTENT_LENGTH"] == 2048
    default = load_config(str(tmp_path), environ={})
    finish_config(default, str(tmp_path))
    assert default["MAX_CONTENT_LENGTH"] == MiB


@pytest.mark.parametrize("value", ["", "0", "-1", "1MB", "lots"])
def test_a_max_content_length_that_is_no_positive_number_of_bytes_stops_start_up(tmp_path, value):
    config = load_config(str(tmp_path), environ={"MAX_CONTENT_LENGTH": value})
    with pytest.raises(ConfigError, match="MAX_CONTENT_LENGTH"):
        finish_config(config, str(tmp_path))
