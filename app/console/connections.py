"""Disconnecting a QuickBooks company: revoke its authorization at Intuit, then forget it here.

The connection's remembered mappings go with it (ON DELETE CASCADE); executions keep their history, since
they name the company by realm id only.
"""

from flask import abort, current_app, flash, redirect, url_for
from intuitlib.exceptions import AuthClientError

from actions.errors import TransientError
from app.console import bp
from app.console.auth import current_portal, portal_required
from app.extensions import db
from app.quickbooks import oauth as quickbooks_oauth
from app.storage.connections import get_connection
from app.storage.models import QuickBooksConnection


@bp.post("/connections/<realm_id>/disconnect")
@portal_required
def disconnect(realm_id):
    connection = get_connection(db.session, portal_id=current_portal().id, realm_id=realm_id)
    if connection is None:
        abort(404)  # another portal's company is as good as absent
    company = connection.company_name or connection.realm_id
    problem = revoke(connection)
    forget(connection.id)
    if problem:
        flash(
            f"Disconnected {company} here, but Intuit could not revoke its authorization ({problem}). "
            "To be sure, disconnect qbo-actions from the company in QuickBooks too, on its Apps page.",
            "warning",
        )
    else:
        flash(f"Disconnected {company}", "success")
    return redirect(url_for("console.home"))


def revoke(connection) -> str | None:
    """Why Intuit did not revoke the connection's tokens, or None when it did (or there was nothing to revoke)."""
    token = connection.refresh_token or connection.access_token
    if not token:
        return None
    try:
        quickbooks_oauth.revoke_token(current_app.config, token)
    except AuthClientError as refused:
        current_app.logger.warning("revoke for realm %s refused: HTTP %s", connection.realm_id, refused.status_code)
        return f"Intuit answered HTTP {refused.status_code}"
    except TransientError as down:
        current_app.logger.warning("revoke for realm %s failed: %s", connection.realm_id, down.reason)
        return down.reason
    return None


def forget(connection_id: int) -> None:
    """Delete the connection in a write transaction of its own: the revoke may have taken a while."""
    with db.write_session() as session:
        stored = session.get(QuickBooksConnection, connection_id)
        if stored is not None:  # a second click on a slow page: already gone, nothing to do
            session.delete(stored)
            session.commit()
