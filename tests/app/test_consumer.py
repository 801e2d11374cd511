"""The real queue and the real consumer (`flask worker` in a subprocess): SQLite + Huey-on-SQLite, and
PostgreSQL + Redis. Duplicates and lost work hide in the queue, so these run the real thing."""

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from app import create_app, queue
from app.extensions import db
from app.storage.models import Execution, QuickBooksDocument, QuickBooksEvent, utcnow
from app.worker import requeue_stale
from tests.conftest import PORTAL_ID, REALM_ID, execution_body, wait_for
from tests.scenarios import seed_deal

PATH = "/hubspot/actions/create_invoice"
BOTH_BACKENDS = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)


@pytest.fixture
def app_config(app_config):
    return {**app_config, "QUEUE_IMMEDIATE": False}


def execution_states(app):
    with app.app_context():
        db.session.expire_all()
        return [(e.status, e.outcome) for e in db.session.scalars(select(Execution))]


@BOTH_BACKENDS
def test_consumer_runs_concurrent_deliveries_once(
    app, signed_post, portal, connection, fake_quickbooks, fake_hubspot, start_worker
):
    deal = seed_deal(portal, fake_quickbooks)
    start_worker()
    body = json.dumps(execution_body(object_id=deal.deal_id)).encode()

    with ThreadPoolExecutor(max_workers=5) as pool:
        answers = list(pool.map(lambda _: signed_post(PATH, body), range(5)))

    assert {a.json["outputFields"]["hs_execution_state"] for a in answers} == {"BLOCK"}
    assert wait_for(lambda: len(fake_hubspot.completions) == 1)
    time.sleep(0.5)  # a duplicate would show up now
    assert len(fake_hubspot.completions) == 1
    assert len(fake_quickbooks.company(REALM_ID).all("Invoice")) == 1
    assert execution_states(app) == [("completed", "SUCCESS")]
    # A late repeat delivery is answered from the stored outcome.
    replay = signed_post(PATH, body).json["outputFields"]
    assert replay["hs_execution_state"] == "SUCCESS"
    assert replay["quickbooks_document_id"] == fake_quickbooks.company(REALM_ID).all("Invoice")[0]["Id"]


@BOTH_BACKENDS
def test_execution_whose_job_was_lost_still_runs(
    app, signed_post, portal, connection, fake_quickbooks, fake_hubspot, start_worker, monkeypatch
):
    deal = seed_deal(portal, fake_quickbooks)
    # Crash between commit and enqueue: the execution is saved, its job never reaches the queue.
    monkeypatch.setattr("app.queue.enqueue_execution", lambda *args, **kwargs: None)
    assert signed_post(PATH, execution_body(object_id=deal.deal_id)).status_code == 200
    monkeypatch.undo()
    assert execution_states(app) == [("pending", None)]

    # HubSpot's retry of the same delivery re-enqueues the pending execution.
    start_worker()
    signed_post(PATH, execution_body(object_id=deal.deal_id))
    assert wait_for(lambda: len(fake_hubspot.completions) == 1)
    assert len(fake_quickbooks.company(REALM_ID).all("Invoice")) == 1


def test_worker_sweeps_up_lost_jobs_at_start(
    app, signed_post, portal, connection, fake_quickbooks, fake_hubspot, start_worker, monkeypatch
):
    deal = seed_deal(portal, fake_quickbooks)
    monkeypatch.setattr("app.queue.enqueue_execution", lambda *args, **kwargs: None)
    signed_post(PATH, execution_body(object_id=deal.deal_id))
    monkeypatch.undo()

    start_worker(STALE_AFTER_SECONDS="0")
    assert wait_for(lambda: len(fake_hubspot.completions) == 1)
    assert len(fake_quickbooks.company(REALM_ID).all("Invoice")) == 1


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_an_emptied_redis_gets_every_waiting_job_back(app, signed_post, portal, connection, monkeypatch):
    """Redis restarted without persistence: the sweep sees its marker gone and queues every waiting execution
    again, a scheduled retry at its remaining delay."""
    monkeypatch.setattr("app.queue.enqueue_execution", lambda *args, **kwargs: None)
    for n in range(3):
        signed_post(PATH, execution_body(callback_id=f"ap-1-{n}", object_id=str(100 + n)))
    monkeypatch.undo()
    with app.app_context():
        later = db.session.scalars(select(Execution).order_by(Execution.id)).first()
        later.next_run_at = utcnow() + timedelta(seconds=40)  # a retry scheduled for later
        db.session.commit()
        huey = app.extensions["queue"].huey
        huey.storage.conn.set(queue.QUEUE_MARKER, "1")
        assert requeue_stale() == 0  # nothing lost: the marker is there and nothing is stale yet

        huey.storage.conn.flushdb()  # what a restart without persistence leaves
        assert requeue_stale() == 3
        now = datetime.now(UTC).replace(tzinfo=None)
        waits = sorted(round((task.eta - now).total_seconds()) if task.eta else 0 for task in huey.pending())
        assert waits[:2] == [0, 0] and 30 < waits[2] <= 40  # Huey keeps a job's eta; the consumer holds it back
        assert requeue_stale() == 0  # the marker is back: asked once


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_an_emptied_redis_gets_write_backs_and_webhooks_back(app, portal, connection):
    def document(quickbooks_id, **fields):
        return QuickBooksDocument(
            portal_id=PORTAL_ID,
            realm_id=REALM_ID,
            entity="Invoice",
            kind="invoice",
            quickbooks_id=quickbooks_id,
            object_type="DEAL",
            object_id=quickbooks_id,
            **fields,
        )

    with app.app_context():
        event = QuickBooksEvent(event_key="e1", realm_id=REALM_ID, entity="Invoice", entity_id="1", operation="Update")
        db.session.add_all([document("1"), document("2", write_back_error="Missing scopes"), event])
        db.session.commit()
        huey = app.extensions["queue"].huey
        huey.storage.conn.flushdb()
        requeue_stale()
        names = sorted(task.name for task in huey.pending())
        assert names == ["process_webhook", "write_back"]  # not the document refused for good


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_many_worker_threads_share_the_redis_clients(app_config):
    """Each queue worker thread holds a Redis connection while it waits for a job (BRPOP) and the rate limiter
    takes another: redis-py's default cap of 100 per client ran out with 128 threads (MaxConnectionsError)."""
    threads = 150
    app = create_app({**app_config, "RATE_LIMITS": "on"})
    huey = app.extensions["queue"].huey
    limiter_redis = app.extensions["limiter"].store.client
    gate = threading.Barrier(threads)

    def wait_like_a_worker(_):
        gate.wait()
        huey.storage.conn.brpop(["qbo-actions:test-nothing-here"], timeout=1)
        return limiter_redis.ping()

    with ThreadPoolExecutor(max_workers=threads) as pool:
        assert all(pool.map(wait_like_a_worker, range(threads)))
