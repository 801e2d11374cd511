"""GET /metrics: Prometheus's text format, the counters of app/metrics.py and the queue as the database has it.

With METRICS_TOKEN set, only `Authorization: Bearer <METRICS_TOKEN>` gets an answer (else 401). With
PROMETHEUS_MULTIPROC_DIR set, the counters of every process sharing that directory are added up; else the
answering process's own, with its process_* and python_* metrics.

The queue gauges are read from the database at each scrape and rendered from a registry of this request only,
never from a Gauge object: in multiprocess mode a Gauge lives in per-process files and the processes would
disagree. When the database does not answer, they are left out and qbo_actions_database_up is 0.
"""

import hmac
import logging
import os

from flask import Blueprint, Response, current_app, jsonify, request
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import func, select

from app.extensions import db
from app.metrics import MULTIPROC_ENV
from app.storage.models import Execution, QuickBooksConnection

log = logging.getLogger(__name__)

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics():
    token = current_app.config.get("METRICS_TOKEN") or ""
    if token and not bearer_matches(request.headers.get("Authorization", ""), token):
        response = jsonify({"error": "unauthorized", "reason": "GET /metrics needs Authorization: Bearer <token>."})
        response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response, 401
    body = generate_latest(process_registry()) + generate_latest(scrape_registry())
    return Response(body, content_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})


def bearer_matches(header: str, token: str) -> bool:
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def process_registry():
    """Every process's counters (multiprocess mode), or this process's own registry."""
    directory = os.environ.get(MULTIPROC_ENV)
    if not directory:
        return REGISTRY
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)
    return registry


class QueueSnapshot:
    """The queue gauges, read once for this scrape."""

    def __init__(self, depth: dict[str, int] | None, callbacks_waiting: int | None):
        self.depth, self.callbacks_waiting = depth, callbacks_waiting

    def collect(self):
        up = GaugeMetricFamily(
            "qbo_actions_database_up", "1 when the database answered the queue gauges' query at this scrape"
        )
        up.add_metric([], 0 if self.depth is None else 1)
        yield up
        if self.depth is None:
            return
        depth = GaugeMetricFamily(
            "qbo_actions_queue_depth",
            "Executions pending or running, per QuickBooks company (realm; '' before one is chosen)",
            labels=["realm"],
        )
        for realm, count in sorted(self.depth.items()):
            depth.add_metric([realm], count)
        yield depth
        waiting = GaugeMetricFamily(
            "qbo_actions_callbacks_waiting", "Executions finished whose HubSpot callback is not completed yet"
        )
        waiting.add_metric([], self.callbacks_waiting)
        yield waiting


def scrape_registry() -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    try:
        depth, waiting = queue_depth(db.session), callbacks_waiting(db.session)
    except Exception as exc:
        db.session.rollback()
        log.warning("metrics: the database did not answer the queue query: %s", exc)
        depth = waiting = None
    registry.register(QueueSnapshot(depth, waiting))
    return registry


def queue_depth(session) -> dict[str, int]:
    """Executions pending or running per realm; every connected company is listed, at 0 when idle."""
    counts = {realm or "": 0 for realm in session.scalars(select(QuickBooksConnection.realm_id).distinct())}
    rows = session.execute(
        select(Execution.realm_id, func.count())
        .where(Execution.status.in_([Execution.PENDING, Execution.RUNNING]))
        .group_by(Execution.realm_id)
    )
    for realm, count in rows:
        counts[realm or ""] = counts.get(realm or "", 0) + count
    return counts


def callbacks_waiting(session) -> int:
    return session.scalar(select(func.count()).select_from(Execution).where(Execution.status == Execution.FINISHED))
