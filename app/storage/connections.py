"""Portals, QuickBooks connections and remembered mappings: small get/create services."""

import threading
import time
import weakref

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from app.storage.models import Mapping, Portal, QuickBooksConnection


def get_portal(session, portal_id: int) -> Portal | None:
    return session.get(Portal, portal_id)


# Portals seen installed lately, per connection pool (each app, so each test, has its own database): the answer
# path asks on every delivery, and an installation is rarely removed. Only "installed" is remembered, so an
# install counts at once; a removed installation (its portal row deleted) is noticed within INSTALLED_TTL.
INSTALLED_TTL = 30.0  # seconds
_installed: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # pool → {portal id: seen until}
_installed_lock = threading.Lock()


def portal_installed(session, portal_id: int) -> bool:
    """Whether the portal installed the app (has a row), as read within the last INSTALLED_TTL seconds."""
    pool = session.get_bind().pool
    now = time.monotonic()
    with _installed_lock:
        seen = _installed.setdefault(pool, {})
        if seen.get(portal_id, 0) > now:
            return True
    if session.scalar(select(Portal.id).where(Portal.id == portal_id)) is None:  # not its tokens: no decryption
        return False
    with _installed_lock:
        seen[portal_id] = now + INSTALLED_TTL
    return True


def get_or_create_portal(session, portal_id: int) -> Portal:
    portal = session.get(Portal, portal_id)
    if portal is None:
        portal = Portal(id=portal_id)
        session.add(portal)
    return portal


def get_connection(session, *, portal_id: int, realm_id: str) -> QuickBooksConnection | None:
    query = select(QuickBooksConnection).where(
        QuickBooksConnection.portal_id == portal_id, QuickBooksConnection.realm_id == str(realm_id)
    )
    return session.scalars(query).first()


def get_or_create_connection(session, *, portal_id: int, realm_id: str) -> QuickBooksConnection:
    connection = get_connection(session, portal_id=portal_id, realm_id=realm_id)
    if connection is None:
        connection = QuickBooksConnection(portal_id=portal_id, realm_id=str(realm_id))
        session.add(connection)
    return connection


def list_connections(session, portal_id: int) -> list[QuickBooksConnection]:
    query = select(QuickBooksConnection).where(QuickBooksConnection.portal_id == portal_id)
    return list(session.scalars(query.order_by(QuickBooksConnection.id)))


class MappingStore:
    """Remembered HubSpot → QuickBooks matches of one connection, each written at once in its own transaction.

    With the QuickBooks id go the facts a warm execution writes with instead of asking QuickBooks (a customer's
    currency and display name, an item's taxability): `recall` answers both, `get` the id alone.
    """

    def __init__(self, database, connection_id: int):
        self.database = database  # app.extensions.db: new_session() to read, write_session() to write
        self.connection_id = connection_id

    def _where(self, kind: str, hubspot_id: str):
        return (
            Mapping.connection_id == self.connection_id,
            Mapping.kind == kind,
            Mapping.hubspot_id == str(hubspot_id),
        )

    def get(self, kind: str, hubspot_id: str) -> str | None:
        recalled = self.recall(kind, hubspot_id)
        return recalled[0] if recalled else None

    def recall(self, kind: str, hubspot_id: str) -> tuple[str, dict] | None:
        """(QuickBooks id, its facts as remembered; {} for a match remembered without them), or None."""
        with self.database.new_session() as session:
            row = session.scalars(select(Mapping).where(*self._where(kind, hubspot_id))).first()
            return (row.quickbooks_id, dict(row.facts or {})) if row else None

    def remember(self, kind: str, hubspot_id: str, quickbooks_id: str, facts: dict | None = None) -> None:
        facts = dict(facts) if facts else None
        if self.recall(kind, hubspot_id) == (str(quickbooks_id), facts or {}):
            return  # a warm run confirms what we knew: no write lock, no write
        with self.database.write_session() as session:
            row = session.scalars(select(Mapping).where(*self._where(kind, hubspot_id))).first()
            if row is None:
                session.add(
                    Mapping(
                        connection_id=self.connection_id,
                        kind=kind,
                        hubspot_id=str(hubspot_id),
                        quickbooks_id=str(quickbooks_id),
                        facts=facts,
                    )
                )
            else:
                row.quickbooks_id, row.facts = str(quickbooks_id), facts
            try:
                session.commit()
            except IntegrityError:
                session.rollback()  # another execution remembered the same match at the same moment

    def forget(self, kind: str, hubspot_id: str) -> None:
        with self.database.write_session() as session:
            session.execute(delete(Mapping).where(*self._where(kind, hubspot_id)))
            session.commit()
