"""write_back_document: the enrolled record shows its QuickBooks document (id, number, link, status, balance).

Runs as its own job after the callback is completed, so it never delays the workflow. Off with the portal
setting write_back=off. A portal that did not grant the scopes gets its documents anyway: the execution says
so and the console warns. Transient HubSpot failures are retried with the callback's delays.
"""

import logging

from flask import current_app

from actions.errors import TransientError
from actions.settings import setting_on
from app import metrics, queue
from app.backoff import write_back_backoff
from app.extensions import db
from app.hubspot.client import HubSpotError, hubspot_client
from app.hubspot.oauth import HubSpotAuthError
from app.hubspot.properties import OBJECT_TYPES, ensure_properties, missing_scopes, record_values
from app.settings import effective_settings
from app.storage.connections import get_connection, get_portal
from app.storage.models import Execution, QuickBooksDocument, utcnow

log = logging.getLogger(__name__)

# Nobody waits for a write-back: while others are under way (month-end), one waits up to this long for company, so
# a batch update carries up to a hundred records instead of the few that happen to coincide.
GATHER_SECONDS = 1.0


def write_back_document(document_id: int) -> None:
    with db.new_session() as session:
        document = session.get(QuickBooksDocument, document_id)
        portal = get_portal(session, document.portal_id) if document else None
        if document is None or portal is None:
            return
        connection = get_connection(session, portal_id=portal.id, realm_id=document.realm_id)
        settings = effective_settings(portal, connection) if connection else dict(portal.settings or {})
        if not setting_on(settings.get("write_back", "on")):
            return
        object_type = OBJECT_TYPES[document.object_type]
        missing = missing_scopes(portal.scopes, object_type)
        if missing:
            refuse(
                session,
                document,
                f"HubSpot account {portal.id} did not grant {', '.join(missing)}, so the "
                f"{object_type[:-1].replace('_', ' ')} does not show its QuickBooks {document.kind.replace('_', ' ')}. "
                "Reinstall the app and accept the optional scopes to turn this on.",
            )
            return
        try:
            crm = hubspot_client(portal, current_app.config)
            ensure_properties(crm, portal.id, object_type)
            crm.update_object(object_type, document.object_id, record_values(document), window=GATHER_SECONDS)
        except (TransientError, OSError) as problem:
            postpone(session, document, str(problem))
            return
        except (HubSpotError, HubSpotAuthError) as problem:
            if isinstance(problem, HubSpotError) and (problem.status >= 500 or problem.status == 429):
                postpone(session, document, str(problem))
                return
            refuse(session, document, f"HubSpot refused the QuickBooks properties on the record: {problem}")
            return
        document.written_back_at, document.write_back_error, document.write_back_attempts = utcnow(), None, 0
        session.commit()


def refuse(session, document: QuickBooksDocument, reason: str) -> None:
    """Not written, for a reason retrying cannot fix: say so on the execution and in the console."""
    if document.write_back_error != reason:
        document.write_back_error = reason
        execution = session.get(Execution, document.execution_id) if document.execution_id else None
        if execution is not None:
            execution.notes = [*(execution.notes or []), reason]
    session.commit()
    log.warning("document %s: write-back refused: %s", document.id, reason)


def postpone(session, document: QuickBooksDocument, reason: str) -> None:
    """Try again later, like a callback completion; the document itself is never written again."""
    document.write_back_attempts = (document.write_back_attempts or 0) + 1
    document.write_back_error = f"Waiting to retry: {reason[:500]}"
    session.commit()
    delay = write_back_backoff().delay(document.write_back_attempts)
    if delay is None:
        log.error(
            "document %s: write-back gave up after %s tries: %s", document.id, document.write_back_attempts, reason
        )
        return
    metrics.retry_scheduled("write_back")
    log.warning("document %s: write-back failed (%s); trying again in %.0fs", document.id, reason, delay)
    queue.enqueue_write_back(document.id, delay=delay)


def create_properties_at_install(portal) -> None:
    """At install, the QuickBooks group and properties on every object type the portal lets us change.

    Best effort: a refusal or an outage here only means they are created on first use instead.
    """
    crm = hubspot_client(portal, current_app.config)
    for object_type in OBJECT_TYPES.values():
        if missing_scopes(portal.scopes, object_type):
            continue
        try:
            ensure_properties(crm, portal.id, object_type)
        except (HubSpotError, HubSpotAuthError, TransientError, OSError) as problem:
            log.warning(
                "portal %s: QuickBooks properties on %s not created at install (%s); first use will try",
                portal.id,
                object_type,
                problem,
            )
