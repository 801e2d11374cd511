"""The business logic of the six QuickBooks actions; knows nothing of Flask or HTTP."""

from actions import create_invoice
from actions.errors import ActionError

ACTION_NAMES = (
    "create_invoice",
    "create_estimate",
    "create_sales_receipt",
    "create_paid_invoice",
    "create_expense",
    "create_refund_receipt",
)

# Actions whose logic has landed; the others answer ACTION_NOT_AVAILABLE until their issue does.
ACTIONS = {
    "create_invoice": create_invoice.run,
}


def run_action(ctx):
    """Run the named action; raises ActionError, QuickBooksFault or TransientError on failure."""
    if ctx.action not in ACTIONS:
        raise ActionError("ACTION_NOT_AVAILABLE", action=ctx.action)
    return ACTIONS[ctx.action](ctx)
