"""The home page: what this server is (signed out), or the portal's install state, QuickBooks connections
and a banner when something needs the operator (signed in)."""

from flask import render_template

from app.console import bp, service
from app.console.auth import current_portal
from app.extensions import db
from app.storage.models import QuickBooksConnection


@bp.get("/")
def home():
    portal = current_portal()
    if portal is None:
        return render_template("console/welcome.html")
    connections = service.connection_health(db.session, portal_id=portal.id)
    return render_template(
        "console/home.html",
        connections=connections,
        failures=sum(service.failure_counts(db.session, portal_id=portal.id).values()),
        write_back_problems=service.write_back_problems(db.session, portal_id=portal.id),
        reconnect=[
            c["connection"] for c in connections if c["connection"].state == QuickBooksConnection.RECONNECT_NEEDED
        ],
    )
