"""gunicorn's settings for the web processes: `gunicorn -c gunicorn.conf.py "app:create_app()"` (Procfile, Dockerfile).

Read from the environment, like the app's own settings:

- PORT (5000): listens on 0.0.0.0:PORT, plain HTTP; HTTPS ends at the proxy or load balancer in front.
- WEB_CONCURRENCY: web processes; default 2 x CPUs + 1, at most 8 (in a container the host's CPUs are counted:
  set it). WEB_THREADS (4): threads per process, each may hold a database connection while it answers.
- GUNICORN_TIMEOUT (30): a process silent this long is killed and replaced. GUNICORN_GRACEFUL_TIMEOUT (25): on
  SIGTERM, requests under way get this long to finish (keep it under the orchestrator's stop grace period).
- GUNICORN_KEEPALIVE (75): seconds an idle connection from the proxy stays open; above the proxy's own idle
  timeout (60 s on most load balancers) so it never sends a request on a connection gunicorn is closing.
- LOG_LEVEL (INFO); LOG_FORMAT=json: gunicorn's own lines and its access log are JSON objects too, one a line,
  through the app's formatter (app/observability.py: masked, with method, path, status, duration_ms, bytes).
- PROMETHEUS_MULTIPROC_DIR: when set, /metrics adds up the counters of every process writing there (every web
  process, and the workers sharing the directory); created here if missing. It must be set before the processes
  start (the Dockerfile sets it), and start empty with the set of processes (a tmpfs, as compose.yaml mounts).
- FORWARDED_ALLOW_IPS: read by gunicorn itself; the proxy's address, if X-Forwarded-* headers are to be trusted.

The app is loaded in each web process after the fork (no preload), so no database connection, Redis pool or
metrics file is ever shared between processes.
"""

import os


def _number(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the CPUs this process may use (cpusets, taskset)
    except AttributeError:  # macOS
        return os.cpu_count() or 1


MAX_DEFAULT_WORKERS = 8

bind = [f"0.0.0.0:{_number('PORT', 5000)}"]
workers = _number("WEB_CONCURRENCY", min(2 * _cpus() + 1, MAX_DEFAULT_WORKERS))
worker_class = "gthread"
threads = _number("WEB_THREADS", 4)
timeout = _number("GUNICORN_TIMEOUT", 30)
graceful_timeout = _number("GUNICORN_GRACEFUL_TIMEOUT", 25)
keepalive = _number("GUNICORN_KEEPALIVE", 75)
preload_app = False
# The workers' heartbeat files: on a disk-backed /tmp a slow disk can make gunicorn think a worker hung.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
proc_name = "qbo-actions"

loglevel = os.environ.get("LOG_LEVEL", "INFO").strip().lower() or "info"
errorlog = "-"  # stderr
accesslog = "-"  # stdout
LOG_FORMAT = os.environ.get("LOG_FORMAT", "text").strip().lower() or "text"

if LOG_FORMAT == "json":
    # The same formatter as the app's lines (app/observability.py), for gunicorn's error and access logs and the
    # root logger; the app finds these handlers and keeps them (configure_log_format).
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "app.observability.JsonFormatter"}},
        "filters": {"execution": {"()": "app.observability.ExecutionContextFilter"}},
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "filters": ["execution"],
                "stream": "ext://sys.stdout",
            },
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "filters": ["execution"],
                "stream": "ext://sys.stderr",
            },
        },
        "root": {"level": loglevel.upper(), "handlers": ["stderr"]},
        "loggers": {
            "gunicorn.error": {"level": loglevel.upper(), "handlers": ["stderr"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["stdout"], "propagate": False},
        },
    }

METRICS_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "").strip()
if METRICS_DIR:
    os.makedirs(METRICS_DIR, exist_ok=True)


def on_starting(server):
    if workers > 1 and not METRICS_DIR:
        server.log.warning(
            "PROMETHEUS_MULTIPROC_DIR is not set: each of the %s web processes answers /metrics with its own "
            "counters only; set it to a directory all of them (and the workers) share",
            workers,
        )


def child_exit(server, worker):
    """A web process exited: its live gauges go with it (its counters stay, so totals never go down)."""
    if METRICS_DIR:
        from prometheus_client import multiprocess

        from app.metrics import process_id

        multiprocess.mark_process_dead(process_id(worker.pid), METRICS_DIR)
