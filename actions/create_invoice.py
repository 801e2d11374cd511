"""Create a QuickBooks invoice from a deal or quote, with payment terms."""

from actions.context import ActionContext, ActionResult
from actions.steps.sales import load_sales_source, prepare_sales_document

ENTITY = "Invoice"


def run(ctx: ActionContext) -> ActionResult:
    document = prepare_sales_document(ctx, load_sales_source(ctx))
    if ctx.input("payment_terms"):
        document.body["SalesTermRef"] = {"value": ctx.input("payment_terms")}
    return document.create(ctx, ENTITY, step="invoice")
