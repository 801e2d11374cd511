"""Create a QuickBooks invoice from a deal or quote, with payment terms."""

from actions.context import ActionContext, ActionResult
from actions.steps.documents import create_document
from actions.steps.sales import prepare_sales_document

ENTITY = "Invoice"


def run(ctx: ActionContext) -> ActionResult:
    document = prepare_sales_document(ctx)
    if ctx.input("payment_terms"):
        document.body["SalesTermRef"] = {"value": ctx.input("payment_terms")}
    invoice = create_document(ctx, ENTITY, document.body, step="invoice")
    return ActionResult(document=invoice, entity=ENTITY, customer_id=str(document.customer["Id"]))
