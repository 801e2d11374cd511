"""create_document: every QuickBooks document write goes through here, each with its own request id."""


def create_document(ctx, entity: str, body: dict, *, step: str) -> dict:
    """Create once per execution step: a retry replays QuickBooks' stored answer instead of writing again."""
    record = ctx.books.create(entity, body, request_id=ctx.request_id(step))
    ctx.journal.wrote(step, entity, record)
    return record
