"""create_document: every QuickBooks document write goes through here, each with its own request id."""

from collections.abc import Callable

from actions.errors import ActionError, QuickBooksFault, refused_references
from actions.steps.query import literal

DUPLICATE_DOCUMENT_NUMBER = 6140


def create_document(ctx, entity: str, body: dict, *, step: str, again: Callable | None = None) -> dict:
    """Create once per execution step: a retry replays QuickBooks' stored answer instead of writing again.

    `again(refused)`: when QuickBooks refuses the write because a reference is gone or inactive (the document was
    written with references remembered from earlier executions), the body to write once more, with those
    references resolved again; None to give up. The second write has its own request id (the first one's answer
    is stored under the first), derived from the step, so a retry of the whole execution replays both answers.
    """
    earlier = written_earlier(ctx, entity, step) or sent_in_unanswered_batch(ctx, entity, body, step)
    if earlier is not None:
        return earlier
    try:
        record = write(ctx, entity, body, step=step, request_step=step)
    except QuickBooksFault as fault:
        refused = refused_references(fault)
        rewritten = again(refused) if again is not None and refused is not None else None
        if rewritten is None:
            raise
        record = write(ctx, entity, rewritten, step=step, request_step=again_step(step))
    ctx.journal.wrote(step, entity, record)
    return record


def again_step(step: str) -> str:
    """The request id's step for the one write made again after QuickBooks refused a remembered reference."""
    return f"{step}:again"


def write(ctx, entity: str, body: dict, *, step: str, request_step: str) -> dict:
    try:
        return ctx.books.create(
            entity,
            body,
            request_id=ctx.request_id(request_step),
            before_batch=lambda: ctx.journal.sending_in_batch(step, entity),
        )
    except QuickBooksFault as fault:
        if fault.code != DUPLICATE_DOCUMENT_NUMBER or not body.get("DocNumber"):
            raise
        return our_document_holding(ctx, entity, body["DocNumber"], step, fault)


def sent_in_unanswered_batch(ctx, entity: str, body: dict, step: str) -> dict | None:
    """The document a /batch may have written for this step when its answer never reached us: a batch has no
    request id per write, so QuickBooks is asked for ours (its tracking note) before writing again."""
    sent = ctx.journal.written(step)
    if not sent or not sent.get("sent_in_batch") or sent.get("id"):
        return None
    conditions = []
    if body.get("TxnDate"):
        conditions.append(f"TxnDate = {literal(body['TxnDate'])}")
    customer = (body.get("CustomerRef") or {}).get("value")
    if customer:
        conditions.append(f"CustomerRef = {literal(customer)}")
    where = f" where {' and '.join(conditions)}" if conditions else ""
    for record in ctx.books.query(f"select * from {entity}{where} MAXRESULTS 1000"):
        if tracking_key(ctx) in (record.get("PrivateNote") or ""):
            ctx.journal.wrote(step, entity, record)
            ctx.journal.note(f"QuickBooks {entity} {record['Id']} was written by a batch whose answer was lost.")
            return record
    return None


def written_earlier(ctx, entity: str, step: str) -> dict | None:
    """The document this step already wrote (this execution, or a failed one it took over), if it still exists.

    The request id would replay the same answer anyway; the journal also covers an inherited step, whose
    request id was another execution's, and a QuickBooks that forgot a request id.
    """
    written = ctx.journal.written(step)
    if not written or written.get("entity") != entity or not written.get("id"):
        return None
    document = ctx.books.read(entity, written["id"])
    if document is None:
        ctx.journal.note(
            f"QuickBooks {entity} {written['id']}, written earlier for this step, is gone; writing it again."
        )
        return None
    ctx.journal.note(f"QuickBooks {entity} {written['id']} was already written for this step; kept, not written again.")
    return document


def our_document_holding(ctx, entity: str, number: str, step: str, fault: QuickBooksFault) -> dict:
    """The number is taken: fine if this execution took it earlier, otherwise name the document that did."""
    holders = ctx.books.query(f"SELECT * FROM {entity} WHERE DocNumber = {literal(number)}")
    written = ctx.journal.written(step) or {}
    for holder in holders:
        if str(holder["Id"]) == written.get("id") or tracking_key(ctx) in (holder.get("PrivateNote") or ""):
            ctx.journal.note(
                f"QuickBooks {entity.lower()} {holder['Id']} already holds number {number}; it is the "
                "one this execution created earlier, so it is kept."
            )
            return holder
    raise ActionError("DUPLICATE_DOCUMENT_NUMBER", number=number, holder=describe_holders(entity, holders, fault))


def describe_holders(entity: str, holders: list[dict], fault: QuickBooksFault) -> str:
    if not holders:  # another kind of document in the same number sequence, such as a credit memo
        where = fault.detail.rpartition("already been used.")[2].strip() or fault.detail.strip()
        return f" ({where or 'held by another kind of document, such as a credit memo'})"
    holder = holders[0]
    customer = (holder.get("CustomerRef") or {}).get("name") or (holder.get("CustomerRef") or {}).get("value", "?")
    return (
        f": QuickBooks {entity.lower()} {holder.get('DocNumber', '')} (id {holder['Id']}) for customer "
        f"{customer}, dated {holder.get('TxnDate', '?')}"
    )


def tracking_note(ctx, source_label: str) -> str:
    """PrivateNote on every document: where it came from, and the key that tells us it is ours."""
    return f"Created by qbo-actions from HubSpot {source_label} {tracking_key(ctx)}."


def tracking_key(ctx) -> str:
    # With its parentheses, so callback "...-1-0" never matches a note about "...-1-01".
    return f"(execution {ctx.callback_id})"
