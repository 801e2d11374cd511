"""GET /healthz (the process is alive) and GET /readyz (it can do its work: the database and the queue answer).

/healthz touches nothing: an orchestrator restarts a process whose /healthz fails, and a database outage is no
reason to restart every web process. /readyz runs `SELECT 1` and reaches the queue (Redis PING when REDIS_URL is
set, else Huey's SQLite file) and answers within about READY_TIMEOUT seconds whatever hangs: a load balancer
sends no traffic to a process whose /readyz fails. Neither needs a session, a signature or a CSRF token.
"""

import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from flask import Blueprint, current_app, jsonify
from marshmallow import Schema, fields, validate
from sqlalchemy import text

from app.extensions import db
from app.observability import redact_text

bp = Blueprint("health", __name__)

READY_TIMEOUT = 2.0  # seconds for all the checks together
CHECK_TIMEOUT = 1.5  # connect and read timeouts given to the clients themselves
OK, FAILED = "ok", "failed"


class ReadinessSchema(Schema):
    """GET /readyz's answer (described in /openapi.json)."""

    status = fields.String(required=True, validate=validate.OneOf(["ready", "unavailable"]))
    database = fields.String(required=True, validate=validate.OneOf([OK, FAILED]))
    queue = fields.String(required=True, validate=validate.OneOf([OK, FAILED]))
    reasons = fields.Dict(
        keys=fields.String(validate=validate.OneOf(["database", "queue"])),
        values=fields.String(),
        metadata={"description": "Why each failed part failed (unavailable only)."},
    )


@bp.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    huey = current_app.extensions["queue"].huey
    redis_url = current_app.config["REDIS_URL"]
    checks = {
        "database": lambda: check_database(db.engine),
        "queue": (lambda: check_redis(redis_url)) if redis_url else (lambda: check_huey(huey)),
    }
    results = run_checks(checks, READY_TIMEOUT)
    reasons = {part: reason for part, reason in results.items() if reason is not None}
    answer = {"status": "unavailable" if reasons else "ready"}
    answer |= {part: FAILED if part in reasons else OK for part in checks}
    if reasons:
        answer["reasons"] = reasons
    return jsonify(answer), 503 if reasons else 200


def check_database(engine) -> None:
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))


def check_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=CHECK_TIMEOUT, socket_timeout=CHECK_TIMEOUT)
    try:
        client.ping()
    finally:
        client.close()


def check_huey(huey) -> None:
    """The queue's own storage answers (len counts the waiting jobs); for Huey's SQLite file also a fresh
    connection, so a file that vanished or cannot be opened shows even while the held connection lives on."""
    len(huey)
    filename = getattr(huey.storage, "filename", None)
    if filename:
        connection = sqlite3.connect(f"file:{filename}?mode=rw", uri=True, timeout=CHECK_TIMEOUT)
        try:
            connection.execute("SELECT count(*) FROM task").fetchone()
        finally:
            connection.close()


# -- checks bounded in time --------------------------------------------------------------------------------

# A hung database or Redis (a black-holed host, a full connection pool) must not hold the probe: each check runs
# in this pool and the answer waits READY_TIMEOUT at most. A check still stuck from an earlier probe is not
# started again, so stuck threads never pile up.
_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="readyz")
_running: dict[str, tuple[object, float]] = {}
_lock = threading.Lock()


def run_checks(checks: dict, timeout: float) -> dict[str, str | None]:
    """Each check's failure reason, or None when it passed, all within `timeout` seconds."""
    started = time.monotonic()
    futures = {}
    results: dict[str, str | None] = {}
    with _lock:
        for part, check in checks.items():
            earlier = _running.get(part)
            if earlier is not None and not earlier[0].done():
                results[part] = f"an earlier check has not answered for {started - earlier[1]:.0f} s"
                continue
            futures[part] = _pool.submit(check)
            _running[part] = (futures[part], started)
    for part, future in futures.items():
        try:
            future.result(timeout=max(0.0, timeout - (time.monotonic() - started)))
            results[part] = None
        except FutureTimeout:
            results[part] = f"no answer within {timeout:g} s"
        except Exception as exc:
            results[part] = reason_for(exc)
    return {part: results[part] for part in checks}


def reason_for(exc: Exception) -> str:
    message = " ".join(str(exc).split())[:300]  # drivers' messages run over several lines
    return redact_text(f"{type(exc).__name__}: {message}" if message else type(exc).__name__)
