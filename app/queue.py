"""The job queue: Huey on SQLite by default, on Redis when REDIS_URL is set.

Web and worker processes each build the same Huey from the config and register the same tasks, so a
job enqueued by one is understood by the other. `flask worker` runs the consumer.
"""

from dataclasses import dataclass

from flask import current_app
from huey import RedisHuey, SqliteHuey, crontab


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
        return RedisHuey(name, url=config["REDIS_URL"], immediate=immediate, utc=True)
    return SqliteHuey(name, filename=config["QUEUE_SQLITE_PATH"], immediate=immediate, utc=True)


def init_app(app) -> None:
    from app import worker  # the tasks call into the worker, which imports this module

    huey = build_huey(app.config)

    def in_app_context(function):
        def task(*args):
            with app.app_context():
                return function(*args)

        task.__name__ = function.__name__
        return task

    app.extensions["queue"] = Queue(
        huey=huey,
        run_execution=huey.task(name="run_execution")(in_app_context(worker.run_execution)),
        complete_callback=huey.task(name="complete_callback")(in_app_context(worker.complete_callback)),
        write_back=huey.task(name="write_back")(in_app_context(worker.write_back)),
        process_webhook=huey.task(name="process_webhook")(in_app_context(worker.process_webhook)),
    )
    huey.periodic_task(crontab(minute="*"), name="requeue_stale")(in_app_context(worker.requeue_stale))
    huey.periodic_task(crontab(minute="*"), name="reconcile")(in_app_context(worker.reconcile_due))


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


def _schedule(task, execution_id, delay):
    # In immediate mode (tests) a delayed job waits in Huey's schedule until the test lets time pass.
    if delay:
        task.schedule(args=(execution_id,), delay=delay)
    else:
        task(execution_id)
