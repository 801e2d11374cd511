"""Who is signed in: the HubSpot portal the browser's session is bound to, set by HubSpot's OAuth flow."""

from functools import wraps

from flask import abort, g, redirect, session, url_for

from app.console import bp
from app.extensions import db
from app.storage.connections import get_portal


def current_portal():
    """The signed-in portal, or None (never signed in, signed out, or the app was uninstalled since)."""
    if "portal" not in g:
        portal_id = session.get("portal_id")
        g.portal = get_portal(db.session, int(portal_id)) if portal_id else None
    return g.portal


def portal_required(view):
    """Pages that show a portal's data: signed out, go to the home page that explains how to sign in."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        if current_portal() is None:
            return redirect(url_for("console.home"))
        return view(*args, **kwargs)

    return wrapped


def owned_or_404(record):
    """A record of another portal is as good as absent: never say it exists."""
    portal = current_portal()
    if record is None or portal is None or int(record.portal_id) != int(portal.id):
        abort(404)
    return record


@bp.get("/sign-in")
def sign_in():
    """HubSpot's install flow doubles as sign-in: authorizing again proves the person administers the portal."""
    return redirect(url_for("oauth.hubspot_install"))


@bp.post("/sign-out")
def sign_out():
    session.clear()
    return redirect(url_for("console.home"))


@bp.app_context_processor
def signed_in():
    return {"portal": current_portal()}
