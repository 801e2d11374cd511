"""once_per_payment: a HubSpot payment gets one QuickBooks document per action, however often it is enrolled.

Payment workflows re-enroll payments (a status change, a workflow turned off and on); each enrollment is a
new callbackId, so the per-execution request ids alone would write a second document. Deals and quotes are
left alone: enrolling a deal again is how admins ask for another invoice.
"""

from actions.context import EarlierResult
from actions.errors import TransientError

ONCE_PER_RECORD = ("COMMERCE_PAYMENT",)


def once_per_payment(ctx, run):
    """Run the action unless this payment already has its document from an earlier execution."""
    if ctx.object_type not in ONCE_PER_RECORD or ctx.claims is None:
        return run(ctx)
    claim = ctx.claims.claim(ctx.action, ctx.object_type, ctx.object_id)
    if claim.outputs is not None:
        ctx.journal.note(
            f"This payment already has its QuickBooks document from execution {claim.owner} "
            f"({claim.outputs.get('quickbooks_document_url', '')}); answering with it, nothing written."
        )
        return EarlierResult(claim.outputs)
    if claim.busy:
        raise TransientError(
            f"execution {claim.owner or 'of another enrollment'} is creating this payment's document right now",
            service="qbo-actions",
        )
    if claim.owner:
        taken = f", resuming after its writes ({', '.join(claim.inherited)})" if claim.inherited else ""
        ctx.journal.note(f"An earlier execution ({claim.owner}) for this payment failed; this one takes over{taken}.")
    return run(ctx)
