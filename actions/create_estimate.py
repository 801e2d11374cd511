"""Create a QuickBooks estimate from a deal or quote; a quote's expiration date becomes the estimate's."""

from actions.context import ActionContext, ActionResult
from actions.steps.sales import load_sales_source, prepare_sales_document
from actions.steps.source import as_date

ENTITY = "Estimate"


def run(ctx: ActionContext) -> ActionResult:
    source = load_sales_source(ctx)
    document = prepare_sales_document(ctx, source)
    expires = as_date(source.record.get("hs_expiration_date"))
    if expires:
        document.body["ExpirationDate"] = expires
    return document.create(ctx, ENTITY, step="estimate")
