"""What executions remember of QuickBooks records, and when a write may go by it.

The first execution for a contact, a product or a payment method finds (or creates) its QuickBooks record and
remembers it with the facts a document needs (MappingStore): a customer's currency and display name, an item's
taxability, a vendor's currency, an account's type. Later executions write with them directly, without asking
QuickBooks whether they still hold: QuickBooks checks every reference of a write anyway. When it refuses one as
gone or inactive (`refused_references` in actions/errors.py), the document resolves what it took from memory
again: the reference the fault names is forgotten and matched from scratch, the others are checked in QuickBooks
the way a match remembered without facts is; then it is written once more, under a request id of its own.
"""

from dataclasses import dataclass

from actions.errors import Refused, in_words

# A reference's kind (as refused_references names it) in an admin's words.
KIND_WORDS = {
    "customer": "customer",
    "item": "products",
    "payment_method": "payment method",
    "vendor": "vendor",
    "account": "account",
}


@dataclass(frozen=True)
class Memory:
    """How far the steps resolving a document's references may go by what was remembered."""

    refused: Refused | None = None  # the fault that made the document resolve its references again
    resend: bool = False  # nothing to resolve again: write the same body once more

    def trusts(self, kind: str) -> bool:
        """Write with the remembered reference as it is: nothing refused it."""
        return self.refused is None or not self.refused.about(kind)

    def forgets(self, kind: str) -> bool:
        """The refusal names this (one) reference: forget it and match from scratch, no need to check it."""
        return self.refused is not None and self.refused.named and kind in self.refused.kinds


TRUSTED = Memory()


def recall(ctx, kind: str, key: str, needs: tuple[str, ...]) -> tuple[str, dict | None] | None:
    """(QuickBooks id, facts) remembered for `key`, or None; facts are None when one the warm path needs is
    missing (a match remembered before facts were), so the caller checks the record in QuickBooks instead."""
    recalled = ctx.mappings.recall(kind, key)
    if not recalled:
        return None
    quickbooks_id, facts = recalled
    return quickbooks_id, (facts if all(name in facts for name in needs) else None)


def after_refusal(ctx, entity: str, refused: Refused, *, from_memory: set[str], resolved: set[str]) -> Memory | None:
    """QuickBooks refused a write naming a reference as gone or inactive: how to write it once more, or None.

    `from_memory`: the kinds of reference the write took from memory, unchecked; `resolved`: every kind this
    document resolved itself (not chosen in the action). A Memory to resolve the references again with; one that
    says `resend` when the refused reference was checked in QuickBooks moments ago (the refusal may be QuickBooks
    answering an earlier attempt of this execution under the same request id); None when the fault is about a
    reference qbo-actions did not resolve (one chosen in the action, say): the normal error explanation applies.
    """
    stale = [kind for kind in from_memory if refused.about(kind)]
    what = in_words(entity) or "document"
    if stale:
        ctx.journal.note(
            f"QuickBooks refused the {what} ({refused.describe()}): a reference remembered from an earlier "
            f"execution is gone or inactive. Resolving the remembered {words(stale)} again, then writing the "
            f"{what} once more."
        )
        return Memory(refused)
    if refused.named and refused.kinds & resolved:
        ctx.journal.note(
            f"QuickBooks refused the {what} ({refused.describe()}) naming a {words(refused.kinds & resolved)} "
            f"found active moments ago; writing the {what} once more."
        )
        return Memory(resend=True)
    return None


def words(kinds) -> str:
    return " and ".join(KIND_WORDS.get(kind, kind) for kind in sorted(kinds))
