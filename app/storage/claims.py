"""DocumentClaims: one QuickBooks document per (record, action, company), whichever execution gets there first.

A claim row names the execution that owns the document. Another execution for the same record and action
(HubSpot enrolled the payment again, with a new callbackId) reads the owner's outcome: a success is
answered with its document; a failure hands the claim over, together with what the owner already wrote,
so the new execution resumes instead of writing a second invoice; an owner still at work means "later".
"""

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from actions.context import Claim
from app.storage.models import DocumentClaim, Execution

MAX_RACES = 5


class DocumentClaims:
    def __init__(self, database, *, execution_id: int, portal_id: int, realm_id: str):
        self.database = database
        self.execution_id = execution_id
        self.portal_id = portal_id
        self.realm_id = realm_id

    def claim(self, action: str, object_type: str, object_id: str) -> Claim:
        key = {
            "portal_id": self.portal_id,
            "realm_id": self.realm_id,
            "action": action,
            "object_type": object_type,
            "object_id": str(object_id),
        }
        for _ in range(MAX_RACES):  # each lap loses at most one race to another execution
            claim = self._try_claim(key)
            if claim is not None:
                return claim
        return Claim(busy=True)

    def _try_claim(self, key: dict) -> Claim | None:
        with self.database.write_session() as session:
            row = session.scalars(select(DocumentClaim).filter_by(**key)).first()
            if row is None:
                session.add(DocumentClaim(**key, execution_id=self.execution_id))
                try:
                    session.commit()
                except IntegrityError:
                    return None
                return Claim()
            if row.execution_id == self.execution_id:
                return Claim()
            owner = session.get(Execution, row.execution_id)
            if owner is not None and owner.outcome == "SUCCESS":
                return Claim(outputs=dict(owner.outputs or {}), owner=owner.callback_id)
            if owner is not None and owner.outcome is None:
                return Claim(busy=True, owner=owner.callback_id)
            return self._take_over(session, row, owner)

    def _take_over(self, session, row: DocumentClaim, owner: Execution | None) -> Claim | None:
        """The owner failed (or is gone): the claim and the owner's QuickBooks writes become ours."""
        taken = session.execute(
            update(DocumentClaim)
            .where(DocumentClaim.id == row.id, DocumentClaim.execution_id == row.execution_id)
            .values(execution_id=self.execution_id)
        )
        if taken.rowcount != 1:
            session.rollback()
            return None
        inherited = dict((owner.quickbooks_writes if owner else None) or {})
        mine = session.get(Execution, self.execution_id)
        mine.quickbooks_writes = {**inherited, **(mine.quickbooks_writes or {})}
        session.commit()
        return Claim(owner=owner.callback_id if owner else "", inherited=sorted(inherited))
