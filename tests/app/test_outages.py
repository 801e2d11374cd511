"""Outages of what we run on: capped backoff, a database that goes away mid-run, a queue that loses its jobs.

The fault and load suite (tests/test_faults.py, `make soak`) restarts the real PostgreSQL and Redis under
load; these pin each mechanism on its own.
"""

import pytest
import redis
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from app.backoff import Backoff
from app.extensions import db
from app.storage.journal import ExecutionJournal
from app.storage.models import Execution
from tests.conftest import REALM_ID, execution_body
from tests.scenarios import seed_deal

PATH = "/hubspot/actions/create_invoice"


# -- the backoff ------------------------------------------------------------------------------------------


def test_delays_grow_to_a_cap_then_repeat_until_the_budget_is_spent():
    backoff = Backoff((5, 15, 30, 60), give_up_after=200)
    assert [backoff.delay(n) for n in range(1, 8)] == [5, 15, 30, 60, 60, None, None]  # 5+15+30+60+60+60 > 200
    assert backoff.waited(6) == 230


def test_a_service_asking_for_longer_is_heard():
    assert Backoff((5, 60)).delay(1, retry_after=90) == 90
    assert Backoff((5, 60)).delay(1, retry_after=1) == 5


def test_without_a_budget_the_cap_repeats_for_ever():
    assert Backoff((5, 60)).delay(10_000) == 60


def test_default_schedule_settles_within_two_minutes_of_recovery(app):
    """Once QuickBooks is back, no execution waits longer than the cap before its next try."""
    backoff = Backoff(tuple(app.config["RETRY_DELAYS"]))
    assert max(backoff.delay(n) for n in range(1, 50)) <= 60


# -- the database away in the middle of a run -------------------------------------------------------------


@pytest.fixture
def database_blip(monkeypatch):
    """The next journal write meets a dropped database connection, as during a PostgreSQL restart."""
    real = ExecutionJournal.wrote
    state = {"left": 1}

    def wrote(self, *args, **kwargs):
        if state["left"]:
            state["left"] -= 1
            raise OperationalError("UPDATE executions ...", {}, Exception("server closed the connection"))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(ExecutionJournal, "wrote", wrote)
    return state


def test_a_run_the_database_cut_short_is_retried_not_failed(
    app, signed_post, portal, connection, fake_quickbooks, fake_hubspot, run_due_jobs, database_blip
):
    deal = seed_deal(portal, fake_quickbooks)
    assert signed_post(PATH, execution_body(object_id=deal.deal_id)).status_code == 200
    assert database_blip["left"] == 0  # the invoice was written, then the journal write failed
    assert fake_hubspot.completions == []  # not INTERNAL_ERROR: nothing told to HubSpot yet

    run_due_jobs()  # the job again, 5 s later: it takes back its own lease and resumes with the same request id

    assert len(fake_quickbooks.company(REALM_ID).all("Invoice")) == 1
    assert [c.output_fields["hs_execution_state"] for c in fake_hubspot.completions] == ["SUCCESS"]


# -- the queue's store unreachable or emptied -------------------------------------------------------------


def test_delivery_is_answered_when_the_queue_is_unreachable(
    app, signed_post, portal, connection, fake_quickbooks, monkeypatch
):
    """Redis down for a moment: the delivery is recorded and answered BLOCK; the sweep queues it later."""
    deal = seed_deal(portal, fake_quickbooks)

    def refuse(*args, **kwargs):
        raise redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(app.extensions["queue"].huey, "enqueue", refuse)
    answer = signed_post(PATH, execution_body(object_id=deal.deal_id))

    assert answer.status_code == 200
    assert answer.json["outputFields"]["hs_execution_state"] == "BLOCK"
    with app.app_context():
        assert [e.status for e in db.session.scalars(select(Execution))] == ["pending"]
