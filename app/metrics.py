"""Prometheus metrics: what the server and its workers did, scraped at GET /metrics (app/blueprints/metrics.py).

Recorded where it happens, through these functions only (each is cheap and never raises into the caller):

- `execution_finished(action, outcome, error_code="")`: qbo_actions_executions_total{action,outcome,error_code}
- `request_done(service, method, status, seconds)`: qbo_actions_http_request_seconds{service,method} (histogram)
  and qbo_actions_http_requests_total{service,status}; status is the HTTP status, or "error" when no answer
  came (connection refused or reset, timeout)
- `retry_scheduled(kind)`: qbo_actions_retries_total{kind}, kind "execution", "callback" or "write_back"
- `limiter_waited(policy, seconds)`: qbo_actions_limiter_wait_seconds{policy} (histogram)

Computed when scraped, from the database (so every process answers the same): qbo_actions_queue_depth{realm}
(executions pending or running per QuickBooks company, realm "" before one is chosen) and
qbo_actions_callbacks_waiting (executions finished whose HubSpot callback is not completed yet).

Several processes (gunicorn's web workers, `flask worker`): with PROMETHEUS_MULTIPROC_DIR set in the environment
of every process *before it starts*, prometheus_client keeps each process's values in files there and /metrics
adds them all up (gunicorn.conf.py creates the directory and drops an exited web worker's live files). Processes
only share what they can see: web and worker processes of one host (or one pod, or one compose project through
a shared volume) use the same directory. Each process writes its own files, named by host name and pid (not the
pid alone: containers sharing a volume each have a pid 1). Unset, each process has its own registry (one
process: `make run`).
"""

import functools
import logging
import os
import socket

from prometheus_client import Counter, Histogram, values

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# HTTP calls to HubSpot and QuickBooks: tens of milliseconds when warm, HTTP_TIMEOUT (30 s) at worst.
HTTP_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# Waits for a rate limiter's permission: none most of the time, seconds when a company is busy at month end.
WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)

_HOST = socket.gethostname().replace("_", "-").replace("/", "-") or "host"


def process_id(pid: int | None = None) -> str:
    """The name of a process's files in PROMETHEUS_MULTIPROC_DIR: host name and pid (gunicorn.conf.py's child_exit
    names an exited web worker by it)."""
    return f"{_HOST}-{os.getpid() if pid is None else pid}"


if getattr(values.ValueClass, "_multiprocess", False):  # PROMETHEUS_MULTIPROC_DIR was set when the process started
    values.ValueClass = values.MultiProcessValue(process_identifier=process_id)

EXECUTIONS = Counter(
    "qbo_actions_executions",
    "Executions finished (outputs stored), by action, outcome (SUCCESS, FAIL_CONTINUE) and error code",
    ["action", "outcome", "error_code"],
)
HTTP_SECONDS = Histogram(
    "qbo_actions_http_request_seconds",
    "Time of HTTP calls to HubSpot and QuickBooks, until the answer or the failure",
    ["service", "method"],
    buckets=HTTP_BUCKETS,
)
HTTP_REQUESTS = Counter(
    "qbo_actions_http_requests",
    "HTTP calls to HubSpot and QuickBooks, by answer status ('error': no answer, such as a timeout)",
    ["service", "status"],
)
RETRIES = Counter(
    "qbo_actions_retries",
    "Tries scheduled again after a transient failure: execution, callback or write_back",
    ["kind"],
)
LIMITER_WAIT = Histogram(
    "qbo_actions_limiter_wait_seconds",
    "Time spent waiting for a rate limiter's permission before a call, by policy",
    ["policy"],
    buckets=WAIT_BUCKETS,
)


def _never_raises(function):
    """A metric that cannot be recorded (a full or missing PROMETHEUS_MULTIPROC_DIR) is logged, never the
    caller's failure: an invoice is not lost for a counter."""

    @functools.wraps(function)
    def record(*args, **kwargs):
        try:
            function(*args, **kwargs)
        except Exception:
            log.warning("metric not recorded: %s", function.__name__, exc_info=True)

    return record


@_never_raises
def execution_finished(action: str, outcome: str, error_code: str = "") -> None:
    EXECUTIONS.labels(action=action, outcome=outcome, error_code=error_code or "").inc()


@_never_raises
def request_done(service: str, method: str, status: int | str, seconds: float) -> None:
    HTTP_SECONDS.labels(service=service, method=str(method).upper()).observe(max(float(seconds), 0.0))
    HTTP_REQUESTS.labels(service=service, status=str(status)).inc()


@_never_raises
def retry_scheduled(kind: str) -> None:
    RETRIES.labels(kind=kind).inc()


@_never_raises
def limiter_waited(policy: str, seconds: float) -> None:
    LIMITER_WAIT.labels(policy=policy).observe(max(float(seconds), 0.0))


def init_app(app) -> None:
    """GET /metrics, and the multiprocess directory when one is configured (made here too for `flask worker`,
    which gunicorn.conf.py does not run for); the rate limiter's waits are observed."""
    from app import limits

    if limiter_waited not in limits.on_wait:
        limits.on_wait.append(limiter_waited)
    from app.blueprints import metrics as blueprint
    from app.extensions import csrf

    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        os.makedirs(directory, exist_ok=True)
    app.register_blueprint(csrf.exempt(blueprint.bp))
