"""Leases: who holds an execution, renewed while the work goes on, and taken back at once from a dead worker.

In-process for the storage rules and the start-up resume; the real consumer (`flask worker` subprocesses,
SIGKILLed mid-job) on SQLite + Huey-on-SQLite and on PostgreSQL + Redis.
"""

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from app import worker
from app.extensions import db
from app.storage import executions as execution_service
from app.storage.executions import host_key, is_orphaned, parse_owner, worker_identity
from app.storage.models import Execution, utcnow
from tests.conftest import REALM_ID, execution_body
from tests.scenarios import seed_deal

PATH = "/hubspot/actions/create_invoice"
BOTH_BACKENDS = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)


def only_execution() -> Execution:
    db.session.expire_all()  # the worker wrote through its own session
    return db.session.scalars(select(Execution)).one()


def record_without_running(signed_post, monkeypatch, callback_id="ap-62515-1001-1-0", object_id="101") -> None:
    monkeypatch.setattr("app.queue.enqueue_execution", lambda *args, **kwargs: None)
    signed_post(PATH, execution_body(callback_id=callback_id, object_id=object_id))
    monkeypatch.undo()


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.fixture
def live_process():
    process = subprocess.Popen(["sleep", "60"])
    yield process
    process.kill()
    process.wait()


def claim_as(owner: str, lease=timedelta(minutes=10)) -> int:
    """A worker `owner` claimed the only execution (a run) and has been working on it since."""
    execution = only_execution()
    assert execution_service.claim_for_run(db.session, execution.id, owner=owner, lease=lease)
    return execution.id


def seconds_left(execution: Execution) -> float:
    return (execution.lease_until - utcnow()).total_seconds()


# -- who holds a lease -----------------------------------------------------------------------------------


def test_a_claim_records_its_owner_and_a_short_lease(
    app, signed_post, portal, connection, fake_quickbooks, monkeypatch
):
    deal = seed_deal(portal, fake_quickbooks)
    record_without_running(signed_post, monkeypatch, object_id=deal.deal_id)
    with app.app_context():
        execution = only_execution()
        assert execution_service.claim_for_run(db.session, execution.id, lease=worker.lease_duration())
        execution = only_execution()
        assert execution.lease_owner == worker_identity()
        host, pid, boot = parse_owner(execution.lease_owner)
        assert (host, pid) == (host_key(), os.getpid()) and boot
        assert 40 < seconds_left(execution) <= 45  # LEASE_SECONDS, not ten minutes
        assert not execution_service.claim_for_run(db.session, execution.id, owner="elsewhere:1:b")


def test_the_identity_tells_a_restarted_worker_from_its_predecessor():
    me = worker_identity()
    host, pid, boot = parse_owner(me)
    assert worker_identity() == me  # chosen once per process
    assert is_orphaned(f"{host}:{pid}:{'0' * 12}")  # this pid, another boot: an earlier life of this worker
    assert is_orphaned(f"{host}:{dead_pid()}:abc")
    assert not is_orphaned(me)
    assert not is_orphaned(f"{host}:{os.getppid()}:abc")  # alive
    assert not is_orphaned(f"another-host:{dead_pid()}:abc")  # another host's pids are not ours to judge
    if "/" in host:  # the same host name in another pid namespace (containers sharing it): not ours to judge
        assert not is_orphaned(f"{host.rsplit('/', 1)[0]}/1:{dead_pid()}:abc")
    assert not is_orphaned(None) and not is_orphaned("garbage")


def test_renewal_extends_only_ones_own_lease(app, signed_post, portal, connection, fake_quickbooks, monkeypatch):
    deal = seed_deal(portal, fake_quickbooks)
    record_without_running(signed_post, monkeypatch, callback_id="ap-62515-1001-1-0", object_id=deal.deal_id)
    record_without_running(signed_post, monkeypatch, callback_id="ap-62515-1001-1-1", object_id=deal.deal_id)
    with app.app_context():
        mine, theirs = (e.id for e in db.session.scalars(select(Execution).order_by(Execution.id)))
        short = timedelta(seconds=5)
        assert execution_service.claim_for_run(db.session, mine, lease=short)
        assert execution_service.claim_for_run(db.session, theirs, owner="elsewhere:7:b", lease=short)

        assert execution_service.renew_leases(db.session, [mine, theirs], lease=timedelta(seconds=60)) == {mine}
        db.session.expire_all()
        assert seconds_left(db.session.get(Execution, mine)) > 50
        assert seconds_left(db.session.get(Execution, theirs)) <= 5  # untouched
        assert db.session.get(Execution, theirs).lease_owner == "elsewhere:7:b"

        # A lease that ran out and was taken over is not renewed by its former holder.
        row = db.session.get(Execution, mine)
        row.lease_until = utcnow() - timedelta(seconds=1)
        db.session.commit()
        assert execution_service.claim_for_run(db.session, mine, owner="elsewhere:7:b")
        assert execution_service.renew_leases(db.session, [mine]) == set()
        db.session.expire_all()
        assert db.session.get(Execution, mine).lease_owner == "elsewhere:7:b"


def test_the_lease_is_renewed_while_the_action_runs(
    app, signed_post, portal, connection, fake_quickbooks, fake_hubspot, monkeypatch
):
    """A run that takes longer than its lease keeps it: nobody else may claim it meanwhile."""
    deal = seed_deal(portal, fake_quickbooks)
    app.config["LEASE_SECONDS"] = "0.6"  # renewed every 0.2 s
    real_run_action = worker.run_action
    seen = {}

    def slow_action(ctx):
        time.sleep(1.5)  # two and a half leases
        with db.new_session() as session:
            execution = session.get(Execution, only_id())
            seen["left"] = seconds_left(execution)
            seen["stolen"] = execution_service.claim_for_run(session, execution.id, owner="elsewhere:7:b")
        return real_run_action(ctx)

    def only_id():
        with db.new_session() as session:
            return session.scalars(select(Execution.id)).one()

    monkeypatch.setattr(worker, "run_action", slow_action)
    signed_post(PATH, execution_body(object_id=deal.deal_id))
    assert seen["left"] > 0 and seen["stolen"] is False
    assert len(fake_hubspot.completions) == 1
    assert len(fake_quickbooks.company(REALM_ID).all("Invoice")) == 1
    with app.app_context():
        execution = only_execution()
        assert (execution.status, execution.lease_owner, execution.lease_until) == ("completed", None, None)
        keeper = worker.lease_keeper()
    deadline = time.monotonic() + 2
    while keeper.thread is not None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert keeper.thread is None  # the renewing thread stops when nothing is held


# -- taking back a dead worker's work ----------------------------------------------------------------------


def test_a_run_held_by_a_dead_worker_of_this_host_is_resumed_at_start_up(
    app, signed_post, portal, connection, fake_quickbooks, fake_hubspot, monkeypatch
):
    deal = seed_deal(portal, fake_quickbooks)
    record_without_running(signed_post, monkeypatch, object_id=deal.deal_id)
    with app.app_context():
        claim_as(f"{host_key()}:{dead_pid()}:5e1f0c2b9a77")  # SIGKILLed: its lease still runs ten minutes
        assert execution_service.stale_executions(db.session, older_than=timedelta(minutes=3)) == []
        assert worker.requeue_stale() == 1  # what `flask worker` does first
        execution = only_execution()
        assert (execution.status, execution.outcome, execution.attempts) == ("completed", "SUCCESS", 2)
    assert len(fake_quickbooks.company(REALM_ID).all("Invoice")) == 1
    assert len(fake_hubspot.completions) == 1


def test_a_restarted_worker_with_its_predecessors_pid_resumes_its_work(
    app, signed_post, portal, connection, fake_quickbooks, fake_hubspot, monkeypatch
):
    """pid 1 in a restarted container: the same pid, another boot id."""
    deal = seed_deal(portal, fake_quickbooks)
    record_without_running(signed_post, monkeypatch, object_id=deal.deal_id)
    with app.app_context():
        claim_as(f"{host_key()}:{os.getpid()}:0123456789ab")
        assert worker.resume_orphans() == [only_execution().id]
        assert only_execution().status == "completed"
    assert len(fake_quickbooks.company(REALM_ID).all("Invoice")) == 1


def test_work_held_by_a_live_worker_or_another_host_is_left_alone(
    app, signed_post, portal, connection, fake_quickbooks, fake_hubspot, monkeypatch, live_process
):
    deal = seed_deal(portal, fake_quickbooks)
    record_without_running(signed_post, monkeypatch, object_id=deal.deal_id)
    with app.app_context():
        for owner in (f"{host_key()}:{live_process.pid}:5e1f0c2b9a77", f"other-host:{dead_pid()}:5e1f0c2b9a77"):
            execution = only_execution()
            execution.status, execution.lease_until, execution.lease_owner = "pending", None, None
            db.session.commit()
            claim_as(owner)
            assert worker.requeue_stale() == 0
            execution = only_execution()
            assert (execution.status, execution.lease_owner) == ("running", owner)
        assert fake_quickbooks.company(REALM_ID).all("Invoice") == []

        # Another host's dead worker stops renewing: its lease runs out and the sweep hands the work on.
        execution.lease_until = utcnow() - timedelta(seconds=1)
        db.session.commit()
        assert worker.requeue_stale() == 1
        assert only_execution().status == "completed"
    assert len(fake_quickbooks.company(REALM_ID).all("Invoice")) == 1


def test_at_start_up_a_job_lost_a_moment_ago_runs_too(
    app, signed_post, portal, connection, fake_quickbooks, fake_hubspot, monkeypatch
):
    """The minute's sweep waits STALE_AFTER_SECONDS for a pending execution (its job may still be on its way);
    a worker starting up enqueues it at once, since a second job for it is harmless."""
    deal = seed_deal(portal, fake_quickbooks)
    record_without_running(signed_post, monkeypatch, object_id=deal.deal_id)
    with app.app_context():
        assert worker.requeue_stale() == 0
        assert worker.requeue_stale(at_start=True) == 1
        assert only_execution().status == "completed"
        assert worker.requeue_stale(at_start=True) == 0
    assert len(fake_quickbooks.company(REALM_ID).all("Invoice")) == 1


def finish_without_completing(signed_post, monkeypatch, object_id) -> None:
    """Run the action and store its outcome; HubSpot's callback is still to be completed."""
    monkeypatch.setattr(worker, "complete_callback", lambda execution_id: None)
    signed_post(PATH, execution_body(object_id=object_id))
    monkeypatch.undo()


def test_a_callback_completion_held_by_a_dead_worker_is_resumed_at_start_up(
    app, signed_post, portal, connection, fake_quickbooks, fake_hubspot, monkeypatch
):
    deal = seed_deal(portal, fake_quickbooks)
    finish_without_completing(signed_post, monkeypatch, deal.deal_id)
    with app.app_context():
        execution = only_execution()
        assert execution.status == "finished"  # outcome stored, completion owed
        owner = f"{host_key()}:{dead_pid()}:5e1f0c2b9a77"
        assert execution_service.claim_for_callback(db.session, execution.id, owner=owner, lease=timedelta(minutes=10))
        assert only_execution().lease_owner == owner
        assert worker.requeue_stale() == 1
        execution = only_execution()
        assert (execution.status, execution.lease_owner) == ("completed", None)
    assert len(fake_hubspot.completions) == 1


def test_a_completion_whose_lease_ran_out_is_found_by_the_sweep(
    app, signed_post, portal, connection, fake_quickbooks, fake_hubspot, monkeypatch
):
    deal = seed_deal(portal, fake_quickbooks)
    finish_without_completing(signed_post, monkeypatch, deal.deal_id)
    with app.app_context():
        execution = only_execution()
        assert execution_service.claim_for_callback(db.session, execution.id, owner="other-host:9:b")
        execution = only_execution()
        execution.lease_until = utcnow() - timedelta(seconds=1)  # its worker died on another host
        db.session.commit()
        stale = execution_service.stale_executions(db.session, older_than=timedelta(minutes=3))
        assert [e.id for e in stale] == [execution.id]


# -- the real consumer, SIGKILLed mid-job ----------------------------------------------------------------

# `flask worker` whose action writes its QuickBooks invoice and then hangs before the outcome is stored:
# a worker killed in the middle of a job, deterministically.
HANGING_WORKER = """
import os, sys, time
from pathlib import Path
from app import worker
real_run_action = worker.run_action
def run_then_hang(ctx):
    result = real_run_action(ctx)
    Path(os.environ["HANG_MARKER"]).write_text(str(os.getpid()))
    time.sleep(3600)
    return result
worker.run_action = run_then_hang
from flask.cli import main
main()
"""


def wait_for(condition, timeout=30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def current(app) -> Execution:
    with app.app_context():
        execution = only_execution()
        db.session.remove()
        return execution


class TestTheRealConsumer:
    """`flask worker` subprocesses on the real queue (not the embedded immediate one)."""

    @pytest.fixture
    def app_config(self, app_config):
        return {**app_config, "QUEUE_IMMEDIATE": False}

    @pytest.fixture
    def start_worker(self, app, app_config, tmp_path):
        processes = []

        def start(*, hanging=False, **extra_env):
            env = {
                **os.environ,
                **{k: str(v) for k, v in app_config.items() if k not in ("TESTING", "QUEUE_IMMEDIATE")},
                "INSTANCE_PATH": str(tmp_path / "instance"),
                "WORKER_THREADS": "2",
                "HANG_MARKER": str(tmp_path / "hanging"),
                **extra_env,
            }
            program = ["-c", HANGING_WORKER] if hanging else ["-m", "flask"]
            log = open(tmp_path / f"worker-{len(processes)}.log", "w")
            process = subprocess.Popen(
                [sys.executable, *program, "--app", "app", "worker"], env=env, stdout=log, stderr=subprocess.STDOUT
            )
            processes.append((process, log))
            return process

        yield start
        for process, log in processes:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            log.close()

    @BOTH_BACKENDS
    def test_a_worker_killed_mid_job_is_resumed_by_the_next_one_within_seconds(
        self, app, signed_post, portal, connection, fake_quickbooks, fake_hubspot, start_worker, tmp_path
    ):
        deal = seed_deal(portal, fake_quickbooks)
        lease = {"LEASE_SECONDS": "600"}  # a lease that would keep the work for ten minutes: it must not matter
        first = start_worker(hanging=True, **lease)
        assert signed_post(PATH, execution_body(object_id=deal.deal_id)).json["outputFields"]["hs_execution_state"] == (
            "BLOCK"
        )
        assert wait_for(lambda: (tmp_path / "hanging").exists()), "the first worker never reached the middle of the job"
        held = current(app)
        assert held.status == "running" and parse_owner(held.lease_owner)[1] == first.pid
        assert len(fake_quickbooks.company(REALM_ID).all("Invoice")) == 1  # written; the outcome is not stored yet

        # A second worker on this host leaves a live worker's job alone.
        second = start_worker(**lease)
        assert wait_for(lambda: "Huey consumer started" in (tmp_path / "worker-1.log").read_text(), timeout=20)
        time.sleep(1)
        assert (current(app).status, current(app).lease_owner) == ("running", held.lease_owner)

        # Its sweep would find the orphan on the minute; stop it first, so the restart alone must be fast.
        second.terminate()
        second.wait(timeout=10)
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        killed_at = time.monotonic()
        start_worker(**lease)  # the restarted worker
        assert wait_for(lambda: len(fake_hubspot.completions) == 1, timeout=30)
        resumed_in = time.monotonic() - killed_at
        print(f"resumed and completed {resumed_in:.1f} s after the SIGKILL")
        assert resumed_in < 15, f"took {resumed_in:.1f} s"

        assert wait_for(lambda: current(app).status == "completed", timeout=10)  # stored after HubSpot answered
        execution = current(app)
        assert (execution.status, execution.outcome, execution.attempts) == ("completed", "SUCCESS", 2)
        assert len(fake_quickbooks.company(REALM_ID).all("Invoice")) == 1  # the same request id: no second invoice
        output = fake_hubspot.completions[0].output_fields
        assert output["quickbooks_document_id"] == fake_quickbooks.company(REALM_ID).all("Invoice")[0]["Id"]
