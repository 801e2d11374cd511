"""The business logic of the six QuickBooks actions; knows nothing of Flask or HTTP."""

from actions import (
    create_estimate,
    create_expense,
    create_invoice,
    create_paid_invoice,
    create_refund_receipt,
    create_sales_receipt,
)
from actions.errors import ActionError
from actions.steps.once import once_per_payment

ACTIONS = {
    "create_invoice": create_invoice.run,
    "create_estimate": create_estimate.run,
    "create_sales_receipt": create_sales_receipt.run,
    "create_paid_invoice": create_paid_invoice.run,
    "create_expense": create_expense.run,
    "create_refund_receipt": create_refund_receipt.run,
}
ACTION_NAMES = tuple(ACTIONS)
# The QuickBooks document each action makes: (entity, the kind named in HubSpot properties, decisions.md §6).
DOCUMENT_KINDS = {
    "create_invoice": ("Invoice", "invoice"),
    "create_estimate": ("Estimate", "estimate"),
    "create_sales_receipt": ("SalesReceipt", "sales_receipt"),
    "create_paid_invoice": ("Invoice", "invoice"),
    "create_expense": ("Purchase", "expense"),
    "create_refund_receipt": ("RefundReceipt", "refund_receipt"),
}


def run_action(ctx):
    """Run the named action; raises ActionError, QuickBooksFault or TransientError on failure."""
    if ctx.action not in ACTIONS:
        raise ActionError("ACTION_NOT_AVAILABLE", action=ctx.action)
    return once_per_payment(ctx, ACTIONS[ctx.action])
