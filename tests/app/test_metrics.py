"""GET /metrics: what app/metrics.py's functions recorded, the queue per QuickBooks company from the database,
METRICS_TOKEN, and several processes added up through PROMETHEUS_MULTIPROC_DIR."""

import subprocess
import sys
import textwrap
import uuid
from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine

from app import metrics
from app.blueprints import metrics as blueprint
from app.extensions import db
from app.observability import ExecutionContextFilter
from app.storage.models import Execution, utcnow
from tests.conftest import PORTAL_ID, REALM_ID
from tests.scenarios import seed_deal

OTHER_REALM = "9130350000000002"
BOTH_BACKENDS = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)


def scrape(client, **headers) -> dict[tuple, float]:
    """{(sample name, sorted labels): value} of one scrape."""
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.data
    assert response.content_type.startswith("text/plain")
    return samples_of(response.get_data(as_text=True))


def samples_of(text: str) -> dict[tuple, float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def add_executions(app, *rows: tuple[str, str | None]) -> None:
    """One execution per (status, realm_id)."""
    with app.app_context():
        for status, realm_id in rows:
            db.session.add(
                Execution(
                    portal_id=PORTAL_ID,
                    callback_id=f"ap-{uuid.uuid4().hex}",
                    action="create_invoice",
                    object_type="DEAL",
                    object_id="101",
                    status=status,
                    realm_id=realm_id,
                    expires_at=utcnow() + timedelta(days=6),
                )
            )
        db.session.commit()


def test_each_metric_appears_once_recorded(client):
    action = f"create_invoice_{uuid.uuid4().hex[:6]}"  # the registry is the process's: labels of this test only
    metrics.execution_finished(action, "SUCCESS")
    metrics.execution_finished(action, "FAIL_CONTINUE", "PRODUCT_NOT_FOUND")
    metrics.execution_finished(action, "FAIL_CONTINUE", "PRODUCT_NOT_FOUND")
    metrics.request_done(action, "post", 200, 0.2)
    metrics.request_done(action, "GET", 429, 0.03)
    metrics.request_done(action, "GET", "error", 30.0)
    metrics.retry_scheduled(f"execution-{action}")
    metrics.limiter_waited(action, 1.5)

    samples = scrape(client)
    executions = "qbo_actions_executions_total"
    assert value(samples, executions, action=action, outcome="SUCCESS", error_code="") == 1
    assert value(samples, executions, action=action, outcome="FAIL_CONTINUE", error_code="PRODUCT_NOT_FOUND") == 2
    assert value(samples, "qbo_actions_http_request_seconds_count", service=action, method="POST") == 1
    assert value(samples, "qbo_actions_http_request_seconds_count", service=action, method="GET") == 2
    assert value(samples, "qbo_actions_http_request_seconds_sum", service=action, method="GET") == pytest.approx(30.03)
    assert value(samples, "qbo_actions_http_request_seconds_bucket", service=action, method="GET", le="0.05") == 1
    for status in ("200", "429", "error"):
        assert value(samples, "qbo_actions_http_requests_total", service=action, status=status) == 1
    assert value(samples, "qbo_actions_retries_total", kind=f"execution-{action}") == 1
    assert value(samples, "qbo_actions_limiter_wait_seconds_count", policy=action) == 1
    assert value(samples, "qbo_actions_limiter_wait_seconds_bucket", policy=action, le="1.0") == 0
    assert value(samples, "qbo_actions_limiter_wait_seconds_bucket", policy=action, le="2.5") == 1


def test_a_metric_that_cannot_be_recorded_never_fails_the_caller(monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(metrics.EXECUTIONS, "labels", broken)
    metrics.execution_finished("create_invoice", "SUCCESS")  # no exception
    assert "metric not recorded: execution_finished" in caplog.text


@BOTH_BACKENDS
def test_queue_depth_per_company_and_callbacks_waiting(app, client, connection):
    add_executions(
        app,
        (Execution.PENDING, REALM_ID),
        (Execution.RUNNING, REALM_ID),
        (Execution.PENDING, REALM_ID),
        (Execution.PENDING, OTHER_REALM),
        (Execution.PENDING, None),  # the company is chosen when it runs
        (Execution.FINISHED, REALM_ID),  # outputs stored, callback not completed yet
        (Execution.FINISHED, OTHER_REALM),
        (Execution.COMPLETED, REALM_ID),
        (Execution.EXPIRED, REALM_ID),
    )
    samples = scrape(client)
    depth = {dict(labels)["realm"]: v for (name, labels), v in samples.items() if name == "qbo_actions_queue_depth"}
    assert depth == {REALM_ID: 3, OTHER_REALM: 1, "": 1}
    assert value(samples, "qbo_actions_callbacks_waiting") == 2
    assert value(samples, "qbo_actions_database_up") == 1


def test_a_connected_company_with_nothing_queued_reads_zero(client, connection):
    samples = scrape(client)
    assert value(samples, "qbo_actions_queue_depth", realm=REALM_ID) == 0
    assert value(samples, "qbo_actions_callbacks_waiting") == 0


def test_metrics_answer_without_the_queue_gauges_when_the_database_is_down(client, tmp_path, monkeypatch):
    metrics.retry_scheduled("callback")
    gone = create_engine(f"sqlite:///{tmp_path / 'gone' / 'x.db'}")
    monkeypatch.setattr(blueprint, "queue_depth", lambda session: gone.connect())
    samples = scrape(client)
    assert value(samples, "qbo_actions_database_up") == 0
    assert not [name for name, _ in samples if name.startswith(("qbo_actions_queue_depth", "qbo_actions_callbacks"))]
    assert value(samples, "qbo_actions_retries_total", kind="callback") >= 1


def test_metrics_token_is_required_when_set(app, client):
    token = "metrics-token-" + uuid.uuid4().hex
    app.config["METRICS_TOKEN"] = token
    refused = ({}, {"Authorization": "Bearer wrong"}, {"Authorization": token}, {"Authorization": f"Basic {token}"})
    for headers in refused:
        response = client.get("/metrics", headers=headers)
        assert response.status_code == 401, headers
        assert response.json["error"] == "unauthorized"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert value(scrape(client, Authorization=f"Bearer {token}"), "qbo_actions_database_up") == 1
    assert value(scrape(client, Authorization=f"bearer {token}"), "qbo_actions_database_up") == 1


def test_metrics_are_open_without_a_token(client):
    assert client.get("/metrics").status_code == 200


RECORD_IN_ANOTHER_PROCESS = textwrap.dedent(
    """
    from app import metrics
    metrics.execution_finished("create_invoice", "FAIL_CONTINUE", "PRODUCT_NOT_FOUND")
    metrics.request_done("quickbooks", "POST", 200, 0.4)
    metrics.retry_scheduled("write_back")
    print(metrics.process_id())
    """
)


def test_multiprocess_mode_adds_up_every_process(client, tmp_path, monkeypatch):
    directory = tmp_path / "prometheus"
    directory.mkdir()
    environment = {"PROMETHEUS_MULTIPROC_DIR": str(directory), "PATH": "/usr/bin:/bin"}
    names = set()
    for _ in range(2):  # two processes, as two gunicorn workers or a web process and a worker
        done = subprocess.run(
            [sys.executable, "-c", RECORD_IN_ANOTHER_PROCESS],
            env=environment,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        names.add(done.stdout.strip())
    assert len(names) == 2
    files = sorted(path.name for path in directory.iterdir())
    assert all(any(name in file for file in files) for name in names), files  # host name and pid, not pid alone

    metrics.execution_finished("create_invoice", "FAIL_CONTINUE", "PRODUCT_NOT_FOUND")  # this process: not shared
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))
    samples = scrape(client)
    executions = {"action": "create_invoice", "outcome": "FAIL_CONTINUE", "error_code": "PRODUCT_NOT_FOUND"}
    assert value(samples, "qbo_actions_executions_total", **executions) == 2
    assert value(samples, "qbo_actions_http_request_seconds_count", service="quickbooks", method="POST") == 2
    assert value(samples, "qbo_actions_http_requests_total", service="quickbooks", status="200") == 2
    assert value(samples, "qbo_actions_retries_total", kind="write_back") == 2
    assert value(samples, "qbo_actions_database_up") == 1  # computed at the scrape, beside the shared counters


def test_the_worker_counts_what_it_finished_and_logs_each_line_with_its_execution(
    client, portal, connection, fake_quickbooks, invoice_for, caplog
):
    deal = seed_deal(portal, fake_quickbooks)
    before = (
        value(scrape(client), "qbo_actions_executions_total", action="create_invoice", outcome="SUCCESS", error_code="")
        or 0
    )
    caplog.set_level("INFO", logger="app.worker")
    caplog.handler.addFilter(ExecutionContextFilter())  # what LOG_FORMAT's handlers carry
    assert invoice_for(deal.deal_id)["hs_execution_state"] == "SUCCESS"

    after = value(
        scrape(client), "qbo_actions_executions_total", action="create_invoice", outcome="SUCCESS", error_code=""
    )
    assert after == before + 1
    samples = scrape(client)
    sent = [v for (name, labels), v in samples.items() if name == "qbo_actions_http_requests_total"]
    assert {dict(labels)["service"] for (name, labels) in samples if name == "qbo_actions_http_requests_total"} >= {
        "QuickBooks",
        "HubSpot",
    } and sum(sent) > 0  # every request to QuickBooks and HubSpot is counted, with its latency
    finished = [r for r in caplog.records if "finished: SUCCESS" in r.getMessage()]
    assert finished and all(getattr(r, "execution_id", None) for r in finished)
