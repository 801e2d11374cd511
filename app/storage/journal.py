"""ExecutionJournal: what an action wrote to QuickBooks and decided, saved the moment it happens."""

from app.storage.models import Execution


class ExecutionJournal:
    def __init__(self, database, execution_id: int):
        self.database = database
        self.execution_id = execution_id

    def wrote(self, step: str, entity: str, record: dict) -> None:
        entry = {"entity": entity, "id": str(record.get("Id", "")), "number": str(record.get("DocNumber") or "")}
        self._update(lambda e: setattr(e, "quickbooks_writes", {**(e.quickbooks_writes or {}), step: entry}))

    def sending_in_batch(self, step: str, entity: str) -> None:
        """The step's write is about to travel in a /batch, without a request id of its own: if its answer never
        arrives, a retry must look for the document before writing it again. Replaced by `wrote`."""
        entry = {"entity": entity, "sent_in_batch": True}
        self._update(lambda e: setattr(e, "quickbooks_writes", {**(e.quickbooks_writes or {}), step: entry}))

    def written(self, step: str) -> dict | None:
        with self.database.new_session() as session:
            execution = session.get(Execution, self.execution_id)
            return (execution.quickbooks_writes or {}).get(step)

    def note(self, text: str) -> None:
        self._update(lambda e: setattr(e, "notes", [*(e.notes or []), text]))

    def _update(self, change) -> None:
        with self.database.write_session() as session:
            execution = session.get(Execution, self.execution_id)
            change(execution)
            session.commit()
