"""POST /quickbooks/webhooks: Intuit says what changed; keep each event once, answer at once, follow later."""

from flask import Blueprint, current_app, jsonify, request

from app import queue
from app.extensions import db
from app.quickbooks import webhooks

bp = Blueprint("quickbooks_webhooks", __name__, url_prefix="/quickbooks")


@bp.post("/webhooks")
def receive():
    body = request.get_data(cache=True)  # the raw bytes Intuit signed; any Content-Type (CloudEvents' too)
    webhooks.verify_signature(
        body, request.headers.get(webhooks.SIGNATURE_HEADER), current_app.config["QBO_WEBHOOK_VERIFIER_TOKEN"]
    )
    events, problems = webhooks.read_notification(body)
    if problems and not events:
        return jsonify({"error": "invalid_request", "reasons": problems}), 400
    # Events that can be read are kept even when others cannot: a 4xx would make Intuit send them all again.
    new = webhooks.record_events(db.session, events)
    # Payments first: their job re-reads the invoices they moved, which answers those invoices' events too.
    for event in sorted(new, key=lambda event: event.entity != "Payment"):
        queue.enqueue_webhook(event.id)
    return jsonify({"received": len(events), "new": len(new), "skipped": problems})
