"""CLI commands: `flask worker` runs the job consumer."""

import click
from flask import current_app


@click.command("worker")
@click.option("--threads", type=int, default=None, help="Worker threads (default: WORKER_THREADS).")
def worker_command(threads):
    """Run the job consumer: executions, callback completions, and the lost-job sweep."""
    from huey.consumer import Consumer

    from app.worker import requeue_stale

    requeue_stale()  # work left behind by a crash runs first
    queue = current_app.extensions["queue"]
    Consumer(queue.huey, workers=threads or current_app.config["WORKER_THREADS"], worker_type="thread",
             periodic=True, check_worker_health=True).run()


def init_app(app):
    app.cli.add_command(worker_command)
