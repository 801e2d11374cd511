"""Create a QuickBooks sales receipt (a sale paid on the spot) from a deal, a quote or a HubSpot payment."""

from actions.context import ActionContext, ActionResult
from actions.steps.payments import check_not_invoice_payment
from actions.steps.sales import load_sales_source, prepare_sales_document

ENTITY = "SalesReceipt"


def run(ctx: ActionContext) -> ActionResult:
    source = load_sales_source(ctx)
    check_not_invoice_payment(ctx, source)
    document = prepare_sales_document(ctx, source, money_account="deposit_account")
    return document.create(ctx, ENTITY, step="sales_receipt")
