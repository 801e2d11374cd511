"""GET /openapi.json describes the machine endpoints, and schemathesis holds the app to it.

Generated requests run against the app in-process (schemathesis's WSGI transport; the HubSpot and QuickBooks
fakes listen on loopback only): no answer is a 5xx, and every answer's status, content type, headers and body
are as described. Unsigned requests must get the described 401; signed ones reach the handlers, so the
validation and storage behind them are fuzzed too. A request cannot be signed before schemathesis has
serialized it, so the test sends a placeholder signature and `SignAsTheSenders` (WSGI middleware) replaces
it with the real one over the bytes that arrived, as HubSpot or Intuit would have signed them.
"""

import io
import os

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import func, select
from werkzeug.wrappers import Request

from app.extensions import db
from app.hubspot.signature import TIMESTAMP_HEADER, V2_HEADER, V3_HEADER, public_uri, sign_request
from app.quickbooks import webhooks
from app.storage.models import Execution
from tests.conftest import HUBSPOT_SECRET, PORTAL_ID, PUBLIC_URL, REALM_ID, execution_body
from tests.scenarios import seed_deal, seed_products

VERIFIER = "qbo-webhook-verifier"
SIGN_ME = "sign-me"
WEBHOOK_PATH = "/quickbooks/webhooks"
ACTION_PATH = "/hubspot/actions/create_invoice"
DESCRIBED = {
    ("POST", "/hubspot/actions/{action}"),
    ("POST", "/hubspot/actions/{action}/options"),
    ("GET", "/hubspot/cards/documents"),
    ("POST", "/quickbooks/webhooks"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
}
# Blueprints whose pages are for a person's browser (session, CSRF forms, OAuth redirects): left out on purpose.
BROWSER_BLUEPRINTS = {"console", "oauth", "static"}
CHECKS = (
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    ignored_auth,
)
# Bounded so the whole module runs in well under a minute on the 2-core CI machine; FUZZ_EXAMPLES=500 digs deeper.
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "25")),
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture
def app_config(app_config):
    return {**app_config, "QBO_WEBHOOK_VERIFIER_TOKEN": VERIFIER}


# The headers as WSGI names them.
HUBSPOT_V3, HUBSPOT_TIMESTAMP, HUBSPOT_V2 = (
    "HTTP_X_HUBSPOT_SIGNATURE_V3",
    "HTTP_X_HUBSPOT_REQUEST_TIMESTAMP",
    "HTTP_X_HUBSPOT_SIGNATURE",
)
INTUIT = "HTTP_INTUIT_SIGNATURE"
SIGNATURES = (V3_HEADER, V2_HEADER, webhooks.SIGNATURE_HEADER)


class SignAsTheSenders:
    """A signature header that says SIGN_ME becomes the real signature over what was sent; anything else is left
    as it came (v3 needs its timestamp header too: without one it stays unsigned, as HubSpot never sends it)."""

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        if SIGN_ME in (environ.get(HUBSPOT_V3), environ.get(HUBSPOT_V2), environ.get(INTUIT)):
            request = Request(environ, populate_request=False)
            body = request.get_data()
            environ["wsgi.input"], environ["CONTENT_LENGTH"] = io.BytesIO(body), str(len(body))
            uri = public_uri(PUBLIC_URL, request.path, request.query_string.decode("latin-1"))
            if environ.get(INTUIT) == SIGN_ME:
                environ[INTUIT] = webhooks.sign(body, VERIFIER)
            if environ.get(HUBSPOT_V3) == SIGN_ME and HUBSPOT_TIMESTAMP in environ:
                headers = sign_request(request.method, uri, body, secret=HUBSPOT_SECRET)
                environ[HUBSPOT_V3], environ[HUBSPOT_TIMESTAMP] = headers[V3_HEADER], headers[TIMESTAMP_HEADER]
            if environ.get(HUBSPOT_V2) == SIGN_ME:
                environ[HUBSPOT_V2] = sign_request(request.method, uri, body, secret=HUBSPOT_SECRET, version="v2")[
                    V2_HEADER
                ]
        return self.wsgi_app(environ, start_response)


def signature_for(path: str) -> dict:
    """What HubSpot or Intuit would send (as placeholders SignAsTheSenders fills in)."""
    if path == WEBHOOK_PATH:
        return {webhooks.SIGNATURE_HEADER: SIGN_ME}
    if path.startswith("/hubspot/"):
        return {V3_HEADER: SIGN_ME, TIMESTAMP_HEADER: "0"}
    return {}


def signature_headers(case, mode: GenerationMode) -> dict:
    """A valid request is signed; an invalid one keeps the signature headers it has (made real) and lacks the ones
    it lacks, so a request without a signature still gets its 401. They are taken off the generated case and
    given to the call, so schemathesis knows them as the credentials (its ignored_auth check probes without them)."""
    generated = case.headers or {}
    present = {name: SIGN_ME for name in list(generated) if name.lower() in {s.lower() for s in SIGNATURES}}
    if present.keys() & {V3_HEADER} and TIMESTAMP_HEADER in generated:
        present[TIMESTAMP_HEADER] = "0"
    for name in (*present, TIMESTAMP_HEADER):
        generated.pop(name, None)
    if mode == GenerationMode.POSITIVE and not present:
        return signature_for(case.path)
    return present


@pytest.fixture
def described_app(app):
    app.wsgi_app = SignAsTheSenders(app.wsgi_app)
    return schemathesis.openapi.from_wsgi("/openapi.json", app)


# Both back ends: PostgreSQL refuses what SQLite stores (NUL in text, over-long strings, too-large integers).
@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
# schemathesis's pytest plugin (schema.parametrize) trips on pytest 9.2's node internals; its Python API does not:
# one hypothesis run per operation and generation mode, each bounded by FUZZ.
@pytest.mark.parametrize(
    "method, path, mode",
    [(method, path, GenerationMode.POSITIVE) for method, path in sorted(DESCRIBED)]
    # Negative cases need something to get wrong: a body or parameters.
    + [
        (method, path, GenerationMode.NEGATIVE)
        for method, path in sorted(DESCRIBED)
        if method == "POST" or "cards" in path
    ],
    ids=str,
)
def test_signed_requests_are_answered_as_described(described_app, method, path, mode):
    @FUZZ
    @given(case=described_app[path][method].as_strategy(generation_mode=mode))
    def signed(case):
        case.call_and_validate(headers=signature_headers(case, mode), checks=checks(case.path))

    signed()


@pytest.mark.parametrize("method, path", sorted(DESCRIBED))
def test_unsigned_requests_are_answered_as_described(described_app, method, path):
    @settings(FUZZ, max_examples=max(10, FUZZ.max_examples // 3))
    @given(case=described_app[path][method].as_strategy())
    def unsigned(case):
        for name in (V3_HEADER, TIMESTAMP_HEADER, V2_HEADER, webhooks.SIGNATURE_HEADER):
            (case.headers or {}).pop(name, None)
        response = case.call_and_validate(checks=checks(case.path))
        if signature_for(path):
            assert response.status_code in (401, 404, 413), response.text

    unsigned()


def checks(path: str = "") -> list:
    if path == WEBHOOK_PATH:
        # By design the webhook keeps the events it can read and lists the rest in `skipped` (a 4xx would make
        # Intuit send them all again), so a notification with one bad event among good ones is a 200.
        return [check for check in CHECKS if check is not negative_data_rejection]
    return list(CHECKS)


# -- the document itself ---------------------------------------------------------------------------------


def test_the_document_describes_every_machine_endpoint(client, app):
    document = client.get("/openapi.json").get_json()
    assert document["openapi"].startswith("3.1")
    described = {(method.upper(), path) for path, item in document["paths"].items() for method in item}
    assert described == DESCRIBED
    routed = {
        (method, rule.rule.replace("<", "{").replace(">", "}"))
        for rule in app.url_map.iter_rules()
        if rule.endpoint.split(".")[0] not in BROWSER_BLUEPRINTS
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert routed == DESCRIBED, "a machine endpoint was added or removed: describe it in app/blueprints/openapi.py"
    assert document["servers"] == [{"url": PUBLIC_URL, "description": "PUBLIC_URL: what HubSpot and Intuit sign"}]


def test_the_signatures_are_described_as_api_key_headers(client):
    document = client.get("/openapi.json").get_json()
    schemes = document["components"]["securitySchemes"]
    assert {(s["type"], s["in"], s["name"]) for s in schemes.values()} == {
        ("apiKey", "header", "X-HubSpot-Signature-v3"),
        ("apiKey", "header", "X-HubSpot-Request-Timestamp"),
        ("apiKey", "header", "X-HubSpot-Signature"),
        ("apiKey", "header", "intuit-signature"),
    }
    paths = document["paths"]
    assert paths["/quickbooks/webhooks"]["post"]["security"] == [{"intuitSignature": []}]
    assert paths["/hubspot/cards/documents"]["get"]["security"] == [
        {"hubspotSignatureV3": [], "hubspotRequestTimestamp": []}
    ]
    for path in ("/hubspot/actions/{action}", "/hubspot/actions/{action}/options"):
        operation = paths[path]["post"]
        assert {"hubspotSignatureV2": []} in operation["security"]
        assert set(operation["responses"]) == {"200", "400", "401", "404", "413"}
    assert paths["/healthz"]["get"]["security"] == []


def test_the_request_bodies_are_the_schemas_the_endpoints_load_with(client):
    components = client.get("/openapi.json").get_json()["components"]["schemas"]
    execution = components["ExecutionRequest"]
    assert set(execution["required"]) == {"callbackId", "origin", "object"}
    assert execution["properties"]["fields"]  # data_key of fields_
    assert execution["properties"]["callbackId"]["maxLength"] == 255
    assert components["Origin"]["properties"]["portalId"]["type"] == "integer"
    assert set(components["OptionsRequest"]["required"]) == {"origin", "inputFieldName"}
    outputs = components["OutputFields"]
    assert outputs["properties"]["hs_execution_state"]["enum"] == ["BLOCK", "SUCCESS", "FAIL_CONTINUE"]
    assert outputs["additionalProperties"] == {"type": "string"}


# -- real answers, beyond what generated requests reach ----------------------------------------------------


@pytest.fixture
def operations(described_app):
    return described_app


def test_a_successful_execution_and_its_card_are_as_described(
    operations, signed_post, portal, connection, fake_quickbooks, fake_hubspot, client, app
):
    deal = seed_deal(portal, fake_quickbooks)
    body = execution_body(object_id=deal.deal_id)
    first = signed_post("/hubspot/actions/create_invoice", body)
    assert first.status_code == 200
    operations["/hubspot/actions/{action}"]["POST"].validate_response(first)
    repeat = signed_post("/hubspot/actions/create_invoice", body)  # the stored outcome now
    assert repeat.json["outputFields"]["hs_execution_state"] == "SUCCESS", repeat.json
    operations["/hubspot/actions/{action}"]["POST"].validate_response(repeat)

    query = f"objectType=0-3&objectId={deal.deal_id}&portalId={PORTAL_ID}"
    card = client.get(f"/hubspot/cards/documents?{query}", headers=signature_for("/hubspot/cards/documents"))
    assert card.status_code == 200, card.json
    assert card.json["documents"]
    operations["/hubspot/cards/documents"]["GET"].validate_response(card)


def test_options_and_webhook_answers_are_as_described(operations, signed_post, connection, fake_quickbooks, client):
    seed_products(fake_quickbooks)
    options = signed_post(
        "/hubspot/actions/create_invoice/options",
        {"origin": {"portalId": PORTAL_ID}, "inputFieldName": "products", "inputFields": {}, "fetchOptions": {}},
    )
    assert options.status_code == 200, options.json
    assert len(options.json["options"]) > 1
    operations["/hubspot/actions/{action}/options"]["POST"].validate_response(options)

    notification = (
        b'[{"specversion":"1.0","id":"e1","type":"qbo.invoice.updated.v1","intuitaccountid":"'
        + REALM_ID.encode()
        + b'","intuitentityid":"1"},{"id":"e2"}]'
    )
    answer = client.post(WEBHOOK_PATH, data=notification, headers={**signature_for(WEBHOOK_PATH)})
    assert answer.status_code == 200, answer.json
    assert (answer.json["received"], len(answer.json["skipped"])) == (1, 1)
    operations[WEBHOOK_PATH]["POST"].validate_response(answer)


def test_refusals_are_as_described(operations, signed_post, client, app):
    refusals = [
        (signed_post("/hubspot/actions/create_spaceship", execution_body()), 404),
        (signed_post(ACTION_PATH, b"[1]"), 400),
        (signed_post(ACTION_PATH, {"callbackId": ""}), 400),
        (client.post(ACTION_PATH, json=execution_body()), 401),
        (signed_post(ACTION_PATH, {**execution_body(), "context": {"pad": "x" * (3 * 1024 * 1024 // 2)}}), 413),
    ]
    for response, status in refusals:
        assert response.status_code == status, response.json
        operations["/hubspot/actions/{action}"]["POST"].validate_response(response)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Execution)) == 0


# -- 500s found while fuzzing (each needs a valid signature, so only HubSpot or Intuit could send it); fixed.


@pytest.mark.parametrize(
    "portal_id", ["\u00b2", "9" * 20, "9" * 5000], ids=["superscript-2", "20-digits", "5000-digits"]
)
def test_card_portal_id_that_is_digits_but_no_account_id_is_a_400(client, portal_id):
    """cards.signed_portal_id accepts what str.isdigit() accepts, then int() fails ("²", over 4300 digits) or the
    database cannot hold it (over 2^63-1): a 500. Fix: ASCII digits of at most 18 characters, else 400."""
    from urllib.parse import urlencode

    query = urlencode({"objectType": "DEAL", "objectId": "1", "portalId": portal_id})
    uri = f"{PUBLIC_URL}/hubspot/cards/documents?{query}"
    headers = sign_request("GET", uri, b"", secret=HUBSPOT_SECRET)
    response = client.get(f"/hubspot/cards/documents?{query}", headers=headers)
    assert response.status_code == 400


@pytest.mark.parametrize(
    "backend, text",
    [("postgres", "\\u0000"), ("sqlite", "\\ud800"), ("postgres", "\\ud800")],  # JSON escapes; SQLite stores NUL
    ids=["nul-postgres", "lone-surrogate-sqlite", "lone-surrogate-postgres"],
    indirect=["backend"],
)
def test_webhook_text_with_a_nul_or_a_lone_surrogate_is_skipped_not_a_500(client, text, backend):
    """webhooks.text() keeps any string: PostgreSQL refuses NUL in text and neither database can encode a lone
    surrogate ("\\ud800" is valid JSON), so storing the event is a 500. Fix: such an event is unreadable (skipped)."""
    body = (
        '[{"specversion":"1.0","id":"e' + text + '","type":"qbo.invoice.updated.v1",'
        '"intuitaccountid":"1","intuitentityid":"2"}]'
    ).encode()
    response = client.post(WEBHOOK_PATH, data=body, headers={webhooks.SIGNATURE_HEADER: webhooks.sign(body, VERIFIER)})
    assert response.status_code in (200, 400)


@pytest.mark.parametrize(
    "path", ["/hubspot/actions/create_invoice", "/hubspot/actions/create_invoice/options", WEBHOOK_PATH]
)
def test_deeply_nested_json_is_a_400(client, path):
    """10 KB of nested brackets: Python's JSON parser raises RecursionError, which request.get_json(silent=True)
    (actions.load_json_body, used by options too) and webhooks.read_notification do not catch (they catch
    ValueError): a 500. Fix: catch RecursionError there as "not JSON"."""
    body = b"[" * 5000 + b"]" * 5000
    if path == WEBHOOK_PATH:
        headers = {webhooks.SIGNATURE_HEADER: webhooks.sign(body, VERIFIER)}
    else:
        headers = sign_request("POST", PUBLIC_URL + path, body, secret=HUBSPOT_SECRET)
    response = client.post(path, data=body, headers={**headers, "Content-Type": "application/json"})
    assert response.status_code == 400


@pytest.mark.parametrize("method, path", sorted(DESCRIBED))
def test_a_method_that_is_not_described_is_a_405_naming_the_one_that_is(client, method, path):
    url = path.replace("{action}", "create_invoice")
    other = "PUT" if method == "POST" else "DELETE"
    response = client.open(url, method=other)
    assert response.status_code == 405
    assert method in response.headers["Allow"]
    assert response.json["error"] == "method_not_allowed"
