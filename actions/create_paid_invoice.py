"""Create a paid QuickBooks invoice from a HubSpot payment: the invoice, then a payment applied to it.

Both writes have their own step, so a retry after either one resumes at the next: never a second invoice,
never a second payment.
"""

from actions.context import ActionContext, ActionResult
from actions.steps.documents import create_document, tracking_note
from actions.steps.payments import (
    amount_of,
    check_not_invoice_payment,
    check_total_is_paid,
    check_untaxed_lines,
    money_movement,
)
from actions.steps.sales import lines_total, load_sales_source, prepare_sales_document
from actions.steps.source import Source

ENTITY = "Invoice"


def run(ctx: ActionContext) -> ActionResult:
    source = load_sales_source(ctx)
    check_not_invoice_payment(ctx, source)
    check_untaxed_lines(source)
    check_total_is_paid(source, lines_total(ctx, source))
    document = prepare_sales_document(ctx, source)
    movement = money_movement(ctx, source, account_input="deposit_account")  # looked up before the invoice exists
    invoice = create_document(ctx, ENTITY, document.body, step="invoice")
    payment = create_document(ctx, "Payment", payment_body(ctx, source, invoice) | movement, step="payment")
    return ActionResult(
        document=invoice,
        entity=ENTITY,
        customer_id=str(document.customer["Id"]),
        extra_outputs={"quickbooks_payment_id": str(payment["Id"])},
    )


def payment_body(ctx: ActionContext, source: Source, invoice: dict) -> dict:
    amount = float(amount_of(source, "hs_initial_amount"))
    body = {
        "CustomerRef": {"value": str(invoice["CustomerRef"]["value"])},
        "TotalAmt": amount,
        "Line": [{"Amount": amount, "LinkedTxn": [{"TxnId": str(invoice["Id"]), "TxnType": "Invoice"}]}],
        "PrivateNote": tracking_note(ctx, source.label),
    }
    if source.date:
        body["TxnDate"] = source.date
    return body
