"""The job queue: Huey on SQLite by default, on Redis when REDIS_URL is set.

Web and worker processes each build the same Huey from the config and register the same tasks, so a
job enqueued by one is understood by the other. `flask worker` runs the consumer.
"""

import logging
import sqlite3
from dataclasses import dataclass

import redis
from flask import current_app
from huey import RedisHuey, SqliteHuey, crontab
from huey.exceptions import RetryTask
from sqlalchemy.exc import InterfaceError, OperationalError

from app.extensions import REDIS_MAX_CONNECTIONS

log = logging.getLogger(__name__)

# The database or the queue's store went away for a moment (a restart, a failover, a network blip): nothing
# is wrong with the work itself, so a job that meets one is tried again, never failed.
INFRASTRUCTURE_ERRORS = (
    OperationalError,
    InterfaceError,
    sqlite3.OperationalError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)
# Seconds before a job cut short by one of those runs again (it resumes from its journal and request ids).
INFRASTRUCTURE_RETRY_SECONDS = 5
# Kept in the queue's store; when it is gone, the store lost its jobs (Redis restarted without persistence).
QUEUE_MARKER = "qbo-actions:queue-alive"


@dataclass
class Queue:
    huey: object
    run_execution: object
    complete_callback: object
    write_back: object
    process_webhook: object


def build_huey(config):
    name = config.get("QUEUE_NAME", "qbo-actions")
    immediate = bool(config.get("QUEUE_IMMEDIATE"))
    if config["REDIS_URL"]:
        pool = redis.ConnectionPool.from_url(config["REDIS_URL"], max_connections=REDIS_MAX_CONNECTIONS)
        return RedisHuey(name, connection_pool=pool, immediate=immediate, utc=True)
    return SqliteHuey(name, filename=config["QUEUE_SQLITE_PATH"], immediate=immediate, utc=True)


def init_app(app) -> None:
    from app import worker  # the tasks call into the worker, which imports this module

    huey = build_huey(app.config)

    def in_app_context(function, retry_outages: bool = True):
        def task(*args):
            with app.app_context():
                try:
                    return function(*args)
                except INFRASTRUCTURE_ERRORS as exc:
                    if not retry_outages:  # a periodic task: it runs again within the minute
                        raise
                    delay = INFRASTRUCTURE_RETRY_SECONDS
                    log.warning("%s%s: %s; trying again in %ss", function.__name__, args, exc, delay)
                    raise RetryTask(delay=delay) from exc

        task.__name__ = function.__name__
        return task

    app.extensions["queue"] = Queue(
        huey=huey,
        run_execution=huey.task(name="run_execution")(in_app_context(worker.run_execution)),
        complete_callback=huey.task(name="complete_callback")(in_app_context(worker.complete_callback)),
        write_back=huey.task(name="write_back")(in_app_context(worker.write_back)),
        process_webhook=huey.task(name="process_webhook")(in_app_context(worker.process_webhook)),
    )
    huey.periodic_task(crontab(minute="*"), name="requeue_stale")(in_app_context(worker.requeue_stale, False))
    huey.periodic_task(crontab(minute="*"), name="reconcile")(in_app_context(worker.reconcile_due, False))


def _queue() -> Queue:
    return current_app.extensions["queue"]


def enqueue_execution(execution_id: int, delay: float | None = None) -> None:
    _schedule(_queue().run_execution, execution_id, delay)


def enqueue_completion(execution_id: int, delay: float | None = None) -> None:
    _schedule(_queue().complete_callback, execution_id, delay)


def enqueue_write_back(document_id: int, delay: float | None = None) -> None:
    """Write a document's id, number, link, status and amounts onto its HubSpot record."""
    _schedule(_queue().write_back, document_id, delay)


def enqueue_webhook(event_id: int, delay: float | None = None) -> None:
    """Read what an Intuit webhook says changed, and follow it on the records."""
    _schedule(_queue().process_webhook, event_id, delay)


def _schedule(task, execution_id, delay) -> bool:
    """Enqueue; False when the queue's store cannot be reached. The work is in the database already, so it
    is not lost: the sweep enqueues it again (at once when the store was restarted empty, see store_was_emptied)."""
    try:
        # In immediate mode (tests) a delayed job waits in Huey's schedule until the test lets time pass.
        if delay:
            task.schedule(args=(execution_id,), delay=delay)
        else:
            task(execution_id)
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, sqlite3.OperationalError) as exc:
        log.warning("%s(%s) not queued (%s): the sweep will queue it again", task.name, execution_id, exc)
        return False
    return True


def store_was_emptied() -> bool:
    """Whether the queue's store lost every job since this was last asked: Redis restarted without
    persistence. A marker key that vanished says so; it is set again at once. SQLite's queue keeps its jobs."""
    store = getattr(_queue().huey.storage, "conn", None)  # Redis' client; SQLite's and immediate mode's have none
    if not isinstance(store, redis.Redis):
        return False
    return bool(store.set(QUEUE_MARKER, "1", nx=True))
