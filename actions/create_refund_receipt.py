"""Create a QuickBooks refund receipt for a fully refunded HubSpot payment."""

from actions.context import ActionContext, ActionResult
from actions.errors import ActionError
from actions.steps.payments import check_fully_refunded, refund_date
from actions.steps.sales import load_sales_source, prepare_sales_document

ENTITY = "RefundReceipt"


def run(ctx: ActionContext) -> ActionResult:
    source = load_sales_source(ctx)
    check_fully_refunded(source)
    if not ctx.input("payment_account"):
        raise ActionError(
            "INVALID_INPUT",
            reason="The 'Refund from' field is empty: QuickBooks needs the bank or "
            "credit card account the refund was paid from.",
        )
    document = prepare_sales_document(ctx, source, money_account="payment_account")
    document.body["TxnDate"] = refund_date(source)
    return document.create(ctx, ENTITY, step="refund_receipt")
