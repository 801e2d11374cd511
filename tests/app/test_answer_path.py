"""The answer path of POST /hubspot/actions/<action>: as few database round trips as the work allows.

A new delivery is one statement (INSERT ... ON CONFLICT DO NOTHING RETURNING), a duplicate two (the insert that
inserts nothing, then the read of the known execution), and neither pings the database first. Concurrent
duplicates record one execution; a connection that died in the pool costs a retry, not the delivery.
"""

import json
import logging
import time
from datetime import timedelta

import pytest
from sqlalchemy import create_engine, delete, event, select, text, update

from app import extensions, queue
from app.extensions import db
from app.storage import connections
from app.storage import executions as execution_service
from app.storage.connections import get_or_create_portal
from app.storage.models import Execution, Portal, utcnow
from tests.conftest import PORTAL_ID, TEST_DATABASE_URL, execution_body
from tests.scenarios import deliver_at_once

BOTH_BACKENDS = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
PATH = "/hubspot/actions/create_invoice"


class DatabaseCalls:
    """What the app asks of the database from now on: the first word of each statement, and its pings."""

    def __init__(self):
        self.statements = []
        self.pings = 0

    def clear(self):
        self.statements, self.pings = [], 0

    def saw(self, _connection, _cursor, statement, *_args):
        self.statements.append(statement.split(None, 1)[0].upper())


@pytest.fixture
def database_calls(app, monkeypatch):
    calls = DatabaseCalls()
    event.listen(db.engine, "before_cursor_execute", calls.saw)
    real_ping = db.engine.dialect.do_ping

    def ping(dbapi_connection):
        calls.pings += 1
        return real_ping(dbapi_connection)

    monkeypatch.setattr(db.engine.dialect, "do_ping", ping)
    yield calls
    event.remove(db.engine, "before_cursor_execute", calls.saw)


@pytest.fixture
def enqueued(monkeypatch):
    """The execution ids the answer path queues a run for, instead of running them."""
    ids = []
    monkeypatch.setattr(queue, "enqueue_execution", lambda execution_id, delay=None: ids.append(execution_id))
    return ids


def execution_of(app, callback_id) -> Execution | None:
    with app.app_context():
        return db.session.scalars(select(Execution).where(Execution.callback_id == callback_id)).first()


def count_executions(app) -> int:
    with app.app_context():
        return len(db.session.scalars(select(Execution.id)).all())


def deliver(signed_post, callback_id):
    response = signed_post(PATH, execution_body(callback_id=callback_id))
    assert response.status_code == 200, response.json
    return response.json["outputFields"]


# -- round trips ------------------------------------------------------------------------------------------


@BOTH_BACKENDS
def test_a_new_delivery_is_one_statement(app, signed_post, portal, enqueued, database_calls):
    deliver(signed_post, "ap-1")  # the portal's installation is read once, then remembered
    database_calls.clear()

    fields = deliver(signed_post, "ap-2")

    assert fields["hs_execution_state"] == "BLOCK"
    assert database_calls.statements == ["INSERT"]
    assert database_calls.pings == 0
    assert enqueued == [execution_of(app, "ap-1").id, execution_of(app, "ap-2").id]


@BOTH_BACKENDS
def test_a_portals_installation_is_read_once_then_remembered(signed_post, portal, enqueued, database_calls):
    deliver(signed_post, "ap-1")
    deliver(signed_post, "ap-2")
    assert database_calls.statements == ["INSERT", "SELECT", "INSERT"]


@BOTH_BACKENDS
def test_a_duplicate_delivery_is_two_statements_and_records_nothing_new(
    app, signed_post, portal, enqueued, database_calls
):
    deliver(signed_post, "ap-1")
    database_calls.clear()

    fields = deliver(signed_post, "ap-1")

    assert fields["hs_execution_state"] == "BLOCK"
    assert database_calls.statements == ["INSERT", "SELECT"]  # inserted nothing, then read the known one
    assert database_calls.pings == 0
    assert count_executions(app) == 1


def set_state(app, callback_id, **values):
    with app.app_context():
        db.session.execute(update(Execution).where(Execution.callback_id == callback_id).values(**values))
        db.session.commit()


@BOTH_BACKENDS
@pytest.mark.parametrize(
    "state, queued_again",
    [
        ({}, True),  # still pending and due: its job may have been lost between the commit and the enqueue
        ({"next_run_at": utcnow() + timedelta(minutes=5)}, False),  # a retry is scheduled already
        ({"status": Execution.RUNNING}, False),
        ({"status": Execution.COMPLETED, "outcome": "SUCCESS", "outputs": {"quickbooks_document_id": "7"}}, False),
    ],
)
def test_a_duplicate_queues_a_run_again_only_while_its_execution_is_pending_and_due(
    app, signed_post, portal, enqueued, state, queued_again
):
    deliver(signed_post, "ap-1")
    set_state(app, "ap-1", **state)

    fields = deliver(signed_post, "ap-1")

    execution = execution_of(app, "ap-1")
    assert enqueued == [execution.id] * (2 if queued_again else 1)
    assert fields["hs_execution_state"] == (state.get("outcome") or "BLOCK")  # a stored outcome is replayed


# -- the portal's installation ----------------------------------------------------------------------------


@BOTH_BACKENDS
def test_a_portal_not_installed_is_not_remembered(app, signed_post, enqueued):
    fields = deliver(signed_post, "ap-1")
    assert (fields["hs_execution_state"], fields["error_code"]) == ("FAIL_CONTINUE", "QUICKBOOKS_NOT_CONNECTED")
    assert enqueued == []
    settled = execution_of(app, "ap-1")  # answered directly: the settled execution was written back
    assert (settled.status, settled.outcome) == (Execution.COMPLETED, "FAIL_CONTINUE")

    with app.app_context():
        get_or_create_portal(db.session, PORTAL_ID)
        db.session.commit()

    assert deliver(signed_post, "ap-2")["hs_execution_state"] == "BLOCK"  # the installation counts at once
    assert enqueued == [execution_of(app, "ap-2").id]


@BOTH_BACKENDS
def test_a_removed_installation_is_noticed_within_the_ttl(app, signed_post, portal, enqueued, monkeypatch):
    monkeypatch.setattr(connections, "INSTALLED_TTL", 0.3)
    deliver(signed_post, "ap-1")
    with app.app_context():
        db.session.execute(delete(Portal).where(Portal.id == PORTAL_ID))
        db.session.commit()

    assert deliver(signed_post, "ap-2")["hs_execution_state"] == "BLOCK"  # remembered for INSTALLED_TTL
    time.sleep(0.4)
    assert deliver(signed_post, "ap-3")["error_code"] == "QUICKBOOKS_NOT_CONNECTED"


# -- races and outages ------------------------------------------------------------------------------------


@BOTH_BACKENDS
def test_concurrent_duplicate_deliveries_record_one_execution_and_one_run(app, signed_post, portal, monkeypatch):
    """Every delivery that finds the execution still pending queues it again (its job may have been lost);
    one of them created it, and the claim lets one run through."""
    created, runs = [], []
    real = execution_service.get_or_create_execution

    def get_or_create_execution(*args, **kwargs):
        execution, was_created = real(*args, **kwargs)
        created.append(was_created)
        return execution, was_created

    def enqueue_and_claim(execution_id, delay=None):  # as a worker would take the job
        with db.new_session() as session:
            runs.append(execution_service.claim_for_run(session, execution_id))

    monkeypatch.setattr(execution_service, "get_or_create_execution", get_or_create_execution)
    monkeypatch.setattr(queue, "enqueue_execution", enqueue_and_claim)
    body = json.dumps(execution_body(callback_id="ap-race")).encode()

    assert deliver_at_once(signed_post, PATH, body, 8) == [200] * 8
    assert count_executions(app) == 1
    assert created.count(True) == 1
    assert runs.count(True) == 1


@BOTH_BACKENDS
def test_get_or_create_in_a_session_of_transactions_ends_its_transaction(app, portal):
    """Callers outside the answer path pass an ordinary session: the insert commits, a duplicate's read too
    (SQLite would hold its write lock until then)."""
    fields = {
        "portal_id": PORTAL_ID,
        "callback_id": "ap-1",
        "expires_in": timedelta(days=6),
        "action": "create_invoice",
        "object_type": "DEAL",
        "object_id": "1",
    }
    with app.app_context():
        session = db.session()
        first, created = execution_service.get_or_create_execution(session, **fields)
        assert created and not session.in_transaction()
        again, created_again = execution_service.get_or_create_execution(session, **fields)
        assert (again.id, created_again) == (first.id, False)
        assert not session.in_transaction()
        assert (first.status, first.action, first.expires_at > utcnow()) == (Execution.PENDING, "create_invoice", True)


@pytest.fixture
def drop_connections(app, backend):
    """What a database restart does to the connections the app holds: each dies, unnoticed until used.

    PostgreSQL: every backend of the app is terminated. SQLite has no server: the connection of the next
    statement is closed under it (sqlite3 then says what a lost connection says: it cannot operate)."""
    dropping = {"next": False}

    def close_before_statement(_connection, cursor, *_args):
        if dropping["next"]:
            dropping["next"] = False
            cursor.connection.close()

    event.listen(db.engine, "before_cursor_execute", close_before_statement)

    def drop():
        if backend == "sqlite":
            dropping["next"] = True
            return
        engine = create_engine(TEST_DATABASE_URL)
        with engine.connect() as connection:
            connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
        engine.dispose()

    yield drop
    event.remove(db.engine, "before_cursor_execute", close_before_statement)


@BOTH_BACKENDS
def test_a_delivery_after_the_database_connection_dropped_is_recorded(
    app, signed_post, portal, enqueued, drop_connections, caplog
):
    deliver(signed_post, "ap-1")
    drop_connections()

    with caplog.at_level(logging.WARNING, logger="app.blueprints.actions"):
        fields = deliver(signed_post, "ap-2")

    assert fields["hs_execution_state"] == "BLOCK"
    assert "trying once more" in caplog.text  # the first try met the dead connection
    assert enqueued == [execution_of(app, "ap-1").id, execution_of(app, "ap-2").id]
    assert count_executions(app) == 2


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_an_idle_connection_that_died_is_replaced_before_use(
    app, signed_post, portal, enqueued, drop_connections, database_calls, monkeypatch, caplog
):
    monkeypatch.setattr(extensions, "PING_IDLE_SECONDS", 0)  # every pooled connection counts as idle
    deliver(signed_post, "ap-1")
    drop_connections()
    database_calls.clear()

    with caplog.at_level(logging.WARNING, logger="app.blueprints.actions"):
        fields = deliver(signed_post, "ap-2")

    assert fields["hs_execution_state"] == "BLOCK"
    assert database_calls.pings >= 1
    assert "trying once more" not in caplog.text  # the ping found it dead: no statement failed
    assert count_executions(app) == 2
