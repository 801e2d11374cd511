"""DocumentClaims: one document per (payment, action, company), on SQLite and on PostgreSQL, under races."""

import threading
from datetime import timedelta

import pytest

from app.extensions import db
from app.storage.claims import DocumentClaims
from app.storage.models import Execution, utcnow
from tests.conftest import PORTAL_ID, REALM_ID

BOTH_BACKENDS = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
KEY = ("create_paid_invoice", "COMMERCE_PAYMENT", "101")


def new_execution(app, callback_id: str, **fields) -> int:
    with app.app_context(), db.new_session() as session:
        execution = Execution(
            portal_id=PORTAL_ID,
            callback_id=callback_id,
            action=KEY[0],
            object_type=KEY[1],
            object_id=KEY[2],
            expires_at=utcnow() + timedelta(days=6),
            **fields,
        )
        session.add(execution)
        session.commit()
        return execution.id


def claims_for(app, execution_id: int, realm_id: str = REALM_ID) -> DocumentClaims:
    return DocumentClaims(db, execution_id=execution_id, portal_id=PORTAL_ID, realm_id=realm_id)


def finish(app, execution_id: int, **fields) -> None:
    with app.app_context(), db.new_session() as session:
        execution = session.get(Execution, execution_id)
        for name, value in fields.items():
            setattr(execution, name, value)
        session.commit()


@BOTH_BACKENDS
def test_the_first_execution_claims_and_a_second_waits_while_it_runs(app):
    first, second = new_execution(app, "ap-1"), new_execution(app, "ap-2")
    with app.app_context():
        assert claims_for(app, first).claim(*KEY).outputs is None
        assert not claims_for(app, first).claim(*KEY).busy  # claiming again is idempotent
        waiting = claims_for(app, second).claim(*KEY)
    assert waiting.busy and waiting.owner == "ap-1"


@BOTH_BACKENDS
def test_a_later_execution_gets_the_first_ones_outputs(app):
    first, second = new_execution(app, "ap-1"), new_execution(app, "ap-2")
    outputs = {"quickbooks_document_id": "17", "quickbooks_payment_id": "18", "error_code": ""}
    with app.app_context():
        claims_for(app, first).claim(*KEY)
        finish(app, first, outcome="SUCCESS", outputs=outputs, status=Execution.COMPLETED)
        answer = claims_for(app, second).claim(*KEY)
    assert (answer.outputs, answer.busy, answer.owner) == (outputs, False, "ap-1")


@BOTH_BACKENDS
def test_a_failed_owner_hands_over_its_claim_and_its_writes(app):
    written = {"invoice": {"entity": "Invoice", "id": "17", "number": "1001"}}
    first, second = new_execution(app, "ap-1"), new_execution(app, "ap-2")
    with app.app_context():
        claims_for(app, first).claim(*KEY)
        finish(app, first, outcome="FAIL_CONTINUE", quickbooks_writes=written, status=Execution.COMPLETED)
        taken = claims_for(app, second).claim(*KEY)
        with db.new_session() as session:
            assert session.get(Execution, second).quickbooks_writes == written
        assert claims_for(app, first).claim(*KEY).busy  # the first no longer owns it: the second runs
    assert (taken.outputs, taken.busy, taken.inherited) == (None, False, ["invoice"])


@BOTH_BACKENDS
def test_each_company_and_each_action_has_its_own_claim(app):
    first, second = new_execution(app, "ap-1"), new_execution(app, "ap-2")
    with app.app_context():
        claims_for(app, first).claim(*KEY)
        assert not claims_for(app, second, realm_id="other-realm").claim(*KEY).busy
        assert not claims_for(app, second).claim("create_expense", *KEY[1:]).busy


@BOTH_BACKENDS
def test_racing_executions_leave_exactly_one_owner(app):
    ids = [new_execution(app, f"ap-race-{n}") for n in range(8)]
    answers, start = {}, threading.Barrier(len(ids))

    def claim(execution_id):
        with app.app_context():
            start.wait()
            answers[execution_id] = claims_for(app, execution_id).claim(*KEY)

    threads = [threading.Thread(target=claim, args=(execution_id,)) for execution_id in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    owners = [execution_id for execution_id, answer in answers.items() if not answer.busy]
    assert len(answers) == len(ids) and len(owners) == 1
