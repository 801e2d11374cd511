"""The worker's bookkeeping: leases, expiry, and what a crashed run leaves for the next one."""

from datetime import timedelta

from sqlalchemy import select

from app import worker
from app.extensions import db
from app.storage import executions as execution_service
from app.storage.models import Execution, utcnow
from tests.conftest import PORTAL_ID, REALM_ID, execution_body
from tests.scenarios import seed_deal

PATH = "/hubspot/actions/create_invoice"


def only_execution():
    db.session.expire_all()  # the worker wrote through its own session
    return db.session.scalars(select(Execution)).one()


def record_without_running(signed_post, monkeypatch, body):
    monkeypatch.setattr("app.queue.enqueue_execution", lambda *args, **kwargs: None)
    signed_post(PATH, body)
    monkeypatch.undo()


def test_a_run_whose_worker_died_is_taken_over_after_its_lease(
    app, signed_post, portal, connection, fake_quickbooks, fake_hubspot, monkeypatch
):
    deal = seed_deal(portal, fake_quickbooks)
    record_without_running(signed_post, monkeypatch, execution_body(object_id=deal.deal_id))
    with app.app_context():
        execution = only_execution()
        assert execution_service.claim_for_run(db.session, execution.id)  # a worker took it, then died
        assert not execution_service.claim_for_run(db.session, execution.id)  # the lease keeps others out
        execution.lease_until = utcnow() - timedelta(seconds=1)
        db.session.commit()
        assert [e.id for e in execution_service.stale_executions(db.session, older_than=timedelta(minutes=3))] == [
            execution.id
        ]
        worker.run_execution(execution.id)
        assert only_execution().status == "completed"
    assert len(fake_quickbooks.company(REALM_ID).all("Invoice")) == 1
    assert len(fake_hubspot.completions) == 1


def test_a_completion_after_hubspot_stopped_waiting_marks_the_execution_expired(
    app, signed_post, portal, connection, fake_quickbooks, fake_hubspot, caplog
):
    deal = seed_deal(portal, fake_quickbooks)
    fake_hubspot.fail_next("POST /automation/actions/callbacks", status=503, times=100)
    signed_post(PATH, execution_body(object_id=deal.deal_id))
    with app.app_context():
        execution = only_execution()
        assert execution.status == "finished"  # outcome stored, completion still owed
        assert "503" in execution.last_callback_error
        execution.expires_at = utcnow() - timedelta(seconds=1)
        execution.next_run_at = None
        db.session.commit()
        worker.complete_callback(execution.id)
        execution = only_execution()
        assert execution.status == "expired"
        assert execution.outputs["quickbooks_document_id"]  # the document is kept and visible
    assert "expired before it could be completed" in caplog.text
    assert app.extensions["queue"].huey.scheduled()  # the retry was scheduled, not dropped
    assert fake_hubspot.completions == []


def test_repeat_delivery_after_the_outcome_answers_it_directly(
    app, signed_post, portal, connection, fake_quickbooks, fake_hubspot
):
    """HubSpot retrying after our BLOCK got lost: the stored outcome is the answer, and a completion
    HubSpot then refuses as already settled counts as done."""
    deal = seed_deal(portal, fake_quickbooks)
    fake_hubspot.fail_next("POST /automation/actions/callbacks", status=503, times=100)
    body = execution_body(object_id=deal.deal_id)
    signed_post(PATH, body)
    fields = signed_post(PATH, body).json["outputFields"]
    assert fields["hs_execution_state"] == "SUCCESS"
    assert fields["quickbooks_document_id"] == fake_quickbooks.company(REALM_ID).all("Invoice")[0]["Id"]


def test_execution_expiry_duration_parsing():
    assert worker.parse_duration("P6D") == timedelta(days=6)
    assert worker.parse_duration("P1DT2H30M") == timedelta(days=1, hours=2, minutes=30)
    assert worker.parse_duration("PT45S") == timedelta(seconds=45)


def test_requeue_sweep_finds_pending_and_unfinished_completions(
    app, signed_post, portal, connection, fake_quickbooks, fake_hubspot, monkeypatch
):
    deal = seed_deal(portal, fake_quickbooks)
    record_without_running(signed_post, monkeypatch, execution_body(object_id=deal.deal_id))
    app.config["STALE_AFTER_SECONDS"] = 0
    with app.app_context():
        assert worker.requeue_stale() == 1
        assert only_execution().status == "completed"
        assert worker.requeue_stale() == 0
    assert len(fake_hubspot.completions) == 1
    assert fake_hubspot.completions[0].callback_id.startswith(f"ap-{PORTAL_ID}")


def test_a_deleted_deal_fails_with_an_explanation_not_a_crash(signed_post, portal, connection, fake_hubspot):
    signed_post(PATH, execution_body(object_id="424242"))
    fields = fake_hubspot.completions[0].output_fields
    assert (fields["hs_execution_state"], fields["error_code"]) == ("FAIL_CONTINUE", "INVALID_INPUT")
    assert "may have been deleted" in fields["error_message"]


def test_the_token_in_hubspots_metadata_url_never_reaches_sentry():
    from app import redact_breadcrumb

    crumb = redact_breadcrumb({"data": {"url": "https://api.hubapi.com/oauth/v1/access-tokens/secret-token"}}, None)
    assert "secret-token" not in crumb["data"]["url"]


def test_empty_inputs_take_the_defaults_of_hubspot_app_json(app):
    execution = Execution(action="create_invoice", inputs={"customer": "", "payment_terms": "3"})
    with app.app_context():
        inputs = worker.inputs_with_defaults(execution)
    assert inputs == {"customer": "first_associated_contact", "create_missing_products": "false", "payment_terms": "3"}


def test_a_job_waiting_behind_a_backlog_is_queued_again_once_per_stale_period(
    app, signed_post, portal, connection, fake_quickbooks, monkeypatch
):
    """Month-end: thousands of jobs ahead, each waiting longer than STALE_AFTER_SECONDS for its turn. The sweep
    may take one for lost, but queues it again once per period, not at every minute's sweep."""
    deal = seed_deal(portal, fake_quickbooks)
    queued = []
    monkeypatch.setattr("app.queue.enqueue_execution", lambda execution_id, delay=None: queued.append(execution_id))
    signed_post("/hubspot/actions/create_invoice", execution_body(object_id=deal.deal_id))
    app.config["STALE_AFTER_SECONDS"] = 60
    with app.app_context():
        execution = only_execution()
        execution.updated_at = execution.updated_at - timedelta(seconds=120)  # waited two minutes in the queue
        db.session.commit()
        assert worker.requeue_stale() == 1
        assert worker.requeue_stale() == 0  # the next minute's sweep: it was queued again a moment ago
    assert queued == [execution.id, execution.id]  # the delivery's job, and the sweep's one


def test_one_completion_takes_along_the_portals_other_waiting_callbacks(
    app, signed_post, portal, connection, fake_quickbooks, fake_hubspot
):
    """Month-end: finished executions wait for their callbacks; the first completion to run completes every one
    of the portal's that is due in one request, and their own completions then find nothing left to do. One
    leased by another worker, or waiting for a later retry, is left alone."""
    fake_hubspot.fail_next("POST /automation/actions/callbacks", status=503, times=1000)
    deal = seed_deal(portal, fake_quickbooks)
    for n in range(5):  # the deal enrolled five times: five invoices, five callbacks
        signed_post(PATH, execution_body(callback_id=f"ap-62515-7-{n}-0", object_id=deal.deal_id))
    fake_hubspot._faults.clear()
    with app.app_context():
        first, *others, leased, later = db.session.scalars(select(Execution).order_by(Execution.id)).all()
        assert {e.status for e in (first, *others, leased, later)} == {"finished"}
        for execution in (first, *others, leased):
            execution.next_run_at = None  # due now
        later.next_run_at = utcnow() + timedelta(minutes=5)
        db.session.commit()
        assert execution_service.claim_for_callback(db.session, leased.id, owner="another-host:1:x")
        before = len(fake_hubspot.requests_to("POST", "/callbacks"))

        worker.complete_callback(first.id)
        for execution in others:
            worker.complete_callback(execution.id)  # their own jobs: already completed, nothing sent

        sent = fake_hubspot.requests_to("POST", "/callbacks")[before:]
        assert [r.path.rsplit("/", 1)[-1] for r in sent] == ["complete"]
        assert len(sent[0].json["inputs"]) == 1 + len(others)
        db.session.expire_all()
        states = {e.id: e.status for e in db.session.scalars(select(Execution))}
        assert [states[e.id] for e in (first, *others)] == ["completed"] * (1 + len(others))
        assert (states[leased.id], states[later.id]) == ("finished", "finished")
    assert set(fake_hubspot.completions_by_callback().values()) == {1}
