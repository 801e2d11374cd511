"""Fixtures: loopback fakes of HubSpot and QuickBooks, an app wired to them, and signed requests.

Back ends: SQLite + embedded queue always; PostgreSQL and Redis when TEST_DATABASE_URL / TEST_REDIS_URL
are set (CI sets both, and there a skipped back-end test is a failure).
"""

import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, text

from app import create_app
from app.extensions import db
from app.hubspot import oauth as hubspot_oauth
from app.hubspot.signature import sign_request
from app.quickbooks import oauth as quickbooks_oauth
from app.storage.connections import get_or_create_connection, get_or_create_portal
from app.storage.migrate import upgrade
from tests.fakes.hubspot import DEFAULT_SCOPES, FakeHubSpot
from tests.fakes.quickbooks import FakeQuickBooks

PUBLIC_URL = "https://qbo-actions.test"
PORTAL_ID = 62515
REALM_ID = "9130350000000001"
HUBSPOT_SECRET = "hs-client-secret"
TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "")
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "")
HOW_TO_RUN = (
    "set TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test and "
    "TEST_REDIS_URL=redis://127.0.0.1:6379/15 (or run .ci/run) to test the PostgreSQL and Redis back ends"
)


def skip_or_fail(reason: str):
    if os.environ.get("CI"):
        pytest.fail(f"CI must not skip back-end tests: {reason}")
    pytest.skip(reason)


def pytest_collection_modifyitems(config, items):
    """The fault suite restarts PostgreSQL and Redis: it goes after every other test."""
    items.sort(key=lambda item: item.get_closest_marker("faults") is not None)


@pytest.fixture(autouse=True)
def fresh_preferences_cache():
    """QuickBooks preferences are cached per process and realm; every test starts from its own fake company."""
    from app.hubspot import properties
    from app.quickbooks import client

    client._company_cache.clear()
    properties.forget_known()
    yield
    client._company_cache.clear()


@pytest.fixture(autouse=True)
def quick_inline_retries(monkeypatch):
    """The HTTP client's inline waits (0.5 s, 1 s) are real time; tests need their order, not their length."""
    from app import http

    monkeypatch.setattr(http, "INLINE_BACKOFF", 0.01)


@pytest.fixture
def fake_hubspot():
    fake = FakeHubSpot(client_id="hs-client-id", client_secret=HUBSPOT_SECRET).start()
    yield fake
    fake.stop()


@pytest.fixture(params=["US"])
def country(request):
    """The country of the fake QuickBooks company (US, GB, CA, AU): parametrize it indirectly to change it."""
    return request.param


@pytest.fixture
def fake_quickbooks(country):
    fake = FakeQuickBooks(client_id="qbo-client-id", client_secret="qbo-client-secret").start()
    fake.add_company(REALM_ID, name="Sandbox Company", country=country)
    yield fake
    fake.stop()


def reset_postgres(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(params=["sqlite"])
def backend(request):
    """Which database and queue back the app: sqlite (+ embedded Huey) or postgres (+ Redis)."""
    return request.param


def backend_config(backend: str, tmp_path) -> dict:
    if backend == "sqlite":
        return {
            "DATABASE_URL": f"sqlite:///{tmp_path / 'test.db'}",
            "REDIS_URL": "",
            "QUEUE_SQLITE_PATH": str(tmp_path / "queue.db"),
        }
    if not (TEST_DATABASE_URL and TEST_REDIS_URL):
        skip_or_fail("PostgreSQL + Redis back end not configured: " + HOW_TO_RUN)
    reset_postgres(TEST_DATABASE_URL)
    return {
        "DATABASE_URL": TEST_DATABASE_URL,
        "REDIS_URL": TEST_REDIS_URL,
        "QUEUE_NAME": f"qbo-test-{uuid.uuid4().hex[:8]}",
    }


@pytest.fixture
def app_config(backend, tmp_path, fake_hubspot, fake_quickbooks):
    return {
        "TESTING": True,
        "APP_ENV": "test",
        "SECRET_KEY": "test-secret-key",
        "TOKEN_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "PUBLIC_URL": PUBLIC_URL,
        "SESSION_COOKIE_SECURE": False,  # the test client talks plain http
        "HUBSPOT_APP_ID": "4242",
        "HUBSPOT_CLIENT_ID": "hs-client-id",
        "HUBSPOT_CLIENT_SECRET": HUBSPOT_SECRET,
        "HUBSPOT_DEVELOPER_API_KEY": "hs-dev-key",
        "HUBSPOT_API_BASE_URL": fake_hubspot.url,
        "HUBSPOT_AUTHORIZE_URL": fake_hubspot.url + "/oauth/authorize",
        "QBO_CLIENT_ID": "qbo-client-id",
        "QBO_CLIENT_SECRET": "qbo-client-secret",
        "QBO_ENVIRONMENT": fake_quickbooks.discovery_url,
        "QBO_API_BASE_URL": fake_quickbooks.api_base,
        "QBO_APP_URL": "https://app.sandbox.qbo.intuit.com",
        "QUEUE_IMMEDIATE": True,
        "RETRY_DELAYS": "0.2,0.2",
        "RETRY_FOR_SECONDS": "0.5",  # two retries, then QUICKBOOKS_UNAVAILABLE
        "CALLBACK_RETRY_DELAYS": "0.2,0.2,0.2",
        "WRITE_BACK_RETRY_DELAYS": "0.2,0.2,0.2",
        "WRITE_BACK_RETRY_FOR_SECONDS": "1.7",
        "HTTP_TIMEOUT": "5",
        # The fakes answer at once, so HubSpot's 10-a-second share would make the suite wait for nothing;
        # tests/app/test_limits.py and the fault suite (tests/test_faults.py) run with the limits on.
        "RATE_LIMITS": "off",
        "COALESCE_WINDOW_SECONDS": "0",  # every HubSpot call alone, as the call-cost tests count them
        **backend_config(backend, tmp_path),
    }


@pytest.fixture
def app(app_config, tmp_path):
    os.environ["INSTANCE_PATH"] = str(tmp_path / "instance")
    app = create_app(app_config)
    with app.app_context():
        upgrade()
    yield app
    db.session.remove()
    db.engine.dispose()
    huey = app.extensions["queue"].huey
    if app.config["REDIS_URL"]:
        huey.storage.flush_all()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def portal(app, fake_hubspot):
    """A HubSpot portal that installed the app, with live tokens in the fake."""
    tokens = fake_hubspot.issue_tokens(PORTAL_ID)
    with app.app_context():
        portal = get_or_create_portal(db.session, PORTAL_ID)
        hubspot_oauth.store_tokens(portal, tokens)
        portal.scopes = list(DEFAULT_SCOPES)  # what the install's token metadata says was granted
        db.session.commit()
    return fake_hubspot.portal(PORTAL_ID)


@pytest.fixture
def connection(app, portal, fake_quickbooks):
    """The portal's QuickBooks connection to the fake's company."""
    return connect_company(app, fake_quickbooks, REALM_ID)


def connect_company(app, fake_quickbooks, realm_id, portal_id=PORTAL_ID):
    tokens = fake_quickbooks.issue_tokens(realm_id)
    with app.app_context():
        connection = get_or_create_connection(db.session, portal_id=portal_id, realm_id=realm_id)
        connection.company_name = fake_quickbooks.company(realm_id).name
        connection.country = fake_quickbooks.company(realm_id).country  # as read from CompanyInfo at connect

        class Issued:  # what intuit-oauth's AuthClient holds after a token exchange
            access_token = tokens["access_token"]
            refresh_token = tokens["refresh_token"]
            expires_in = tokens.get("expires_in", 3600)
            x_refresh_token_expires_in = 8726400

        quickbooks_oauth.store_tokens(connection, Issued)
        db.session.commit()
        return connection.id


def execution_body(
    callback_id="ap-62515-1001-1-0",
    object_id="101",
    object_type="DEAL",
    inputs=None,
    portal_id=PORTAL_ID,
    style="documented",
) -> dict:
    inputs = {
        "customer": "first_associated_contact",
        "products": "line_items",
        "create_missing_products": "false",
        **(inputs or {}),
    }
    body = {
        "callbackId": callback_id,
        "origin": {"portalId": portal_id, "actionDefinitionId": 10646377, "actionDefinitionVersion": 1},
        "object": {"objectId": int(object_id), "objectType": object_type},
    }
    if style == "documented":
        body |= {"context": {"source": "WORKFLOWS", "workflowId": 192814114}, "inputFields": inputs}
    else:  # as observed live from a 2026.03 project
        body |= {
            "context": {"actionId": 1, "source": "WORKFLOWS"},
            "fields": inputs,
            "typedInputs": {k: {"value": v, "type": "STRING"} for k, v in inputs.items()},
        }
    return body


@pytest.fixture
def run_due_jobs(app):
    """Let time pass for the embedded queue: run every job scheduled for later, until none is left."""

    def run(rounds: int = 100) -> int:
        huey = app.extensions["queue"].huey
        far_future = datetime.now(UTC).replace(tzinfo=None) + timedelta(days=30)
        ran = 0
        for _ in range(rounds):
            due = huey.read_schedule(far_future)
            if not due:
                return ran
            for task in due:
                with app.app_context():
                    huey.execute(task, timestamp=far_future)
                ran += 1
        return ran

    return run


@pytest.fixture
def signed_post(client):
    """POST like HubSpot: raw JSON bytes, signed for PUBLIC_URL + path (v3 by default)."""

    def post(path, body, *, version="v3", secret=HUBSPOT_SECRET, timestamp_ms=None, tamper=None):
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = sign_request(
            "POST", PUBLIC_URL + path, raw, secret=secret, version=version, timestamp_ms=timestamp_ms
        )
        if tamper:
            raw = tamper(raw)
        return client.post(path, data=raw, headers={**headers, "Content-Type": "application/json"})

    return post


@pytest.fixture
def books(fake_quickbooks):
    """The fake QuickBooks company the portal is connected to."""
    return fake_quickbooks.company(REALM_ID)


@pytest.fixture
def action_for(signed_post, fake_hubspot, connection):
    """Run an action on a record with these inputs, as HubSpot would; answer its callback's output fields.

    action_for("create_estimate", quote_id, "QUOTE", products="line_items"). Each run is a new enrollment
    (a new callbackId) unless callback_id is given.
    """
    runs = []

    def run(action, object_id, object_type="DEAL", callback_id=None, **inputs):
        callback_id = callback_id or f"ap-{PORTAL_ID}-1001-1-{len(runs)}"
        runs.append(callback_id)
        signed_post(
            f"/hubspot/actions/{action}",
            execution_body(callback_id=callback_id, object_id=object_id, object_type=object_type, inputs=inputs),
        )
        completion = fake_hubspot.completion_for(callback_id)
        assert completion is not None, f"{action} on {object_type} {object_id}: no callback completed"
        return completion.output_fields

    return run


@pytest.fixture
def invoice_for(action_for):
    """Run create_invoice on a record with these inputs; answer its callback's output fields."""

    def run(object_id, object_type="DEAL", callback_id=None, **inputs):
        return action_for("create_invoice", object_id, object_type, callback_id, **inputs)

    return run


def invoice_of(books, fields) -> dict:
    """The invoice a successful run created."""
    assert fields["hs_execution_state"] == "SUCCESS", fields
    return books.get("Invoice", fields["quickbooks_document_id"])


@pytest.fixture
def start_worker(app, app_config, tmp_path):
    """Start the real consumer (`flask worker`) in a subprocess with the app's config; stopped after the test."""
    processes = []

    def start(**extra_env):
        env = {
            **os.environ,
            **{k: str(v) for k, v in app_config.items() if k not in ("TESTING", "QUEUE_IMMEDIATE")},
            "INSTANCE_PATH": str(tmp_path / "instance"),
            "WORKER_THREADS": "2",
            **extra_env,
        }
        log = open(tmp_path / f"worker-{len(processes)}.log", "w")
        process = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "app", "worker"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        processes.append((process, log))
        return process

    yield start
    for process, log in processes:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def wait_for(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


class FixedTokens:
    """A client's token source for a token the fake accepts: never refreshed."""

    def __init__(self, token):
        self.token = token

    def access_token(self):
        return self.token

    def refresh(self, rejected=None):
        raise AssertionError("the fake's token is valid")
