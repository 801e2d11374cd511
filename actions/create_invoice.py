"""Create a QuickBooks invoice from a deal or quote, with payment terms."""

from actions.context import ActionContext, ActionResult
from actions.steps.customers import resolve_customer
from actions.steps.documents import create_document
from actions.steps.lines import build_sales_lines
from actions.steps.products import resolve_items
from actions.steps.source import load_first_contact, load_source
from actions.errors import ActionError

ENTITY = "Invoice"


def run(ctx: ActionContext) -> ActionResult:
    source = load_source(ctx)
    contact = load_first_contact(ctx, source)
    customer = resolve_customer(ctx, contact)
    if not source.line_items:
        raise ActionError("NO_LINE_ITEMS", object_label=source.label)
    items = resolve_items(ctx, source.line_items)
    body = {"CustomerRef": {"value": str(customer["Id"])}, "Line": build_sales_lines(source.line_items, items)}
    if ctx.input("payment_terms"):
        body["SalesTermRef"] = {"value": ctx.input("payment_terms")}
    if contact.get("email"):
        body["BillEmail"] = {"Address": contact.get("email")}
    invoice = create_document(ctx, ENTITY, body, step="invoice")
    return ActionResult(document=invoice, entity=ENTITY, customer_id=str(customer["Id"]))
