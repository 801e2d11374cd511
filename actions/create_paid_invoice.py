"""Create a paid QuickBooks invoice from a HubSpot payment: the invoice, then a payment applied to it.

Both writes have their own step, so a retry after either one resumes at the next: never a second invoice,
never a second payment.
"""

from actions.context import ActionContext, ActionResult
from actions.steps.company import in_us
from actions.steps.documents import create_document, tracking_note
from actions.steps.lines import decimal_of, money
from actions.steps.payments import (
    amount_of,
    check_not_invoice_payment,
    check_total_is_paid,
    check_untaxed_lines,
)
from actions.steps.sales import PendingLines, load_sales_source, prepare_sales_document
from actions.steps.source import Source

ENTITY = "Invoice"


def run(ctx: ActionContext) -> ActionResult:
    source = load_sales_source(ctx)
    check_not_invoice_payment(ctx, source)
    if in_us(ctx):  # like HubSpot's own action; elsewhere the lines' tax codes apply
        check_untaxed_lines(source.line_items)
    document = prepare_sales_document(
        ctx,
        source,
        check=lambda lines: check_payable(source, lines),
        money_account="deposit_account",  # looked up before the invoice exists
        money_on_document=False,  # on the payment
    )
    movement = document.movement
    invoice = document.write(ctx, ENTITY, step="invoice")
    body = payment_body(ctx, source, invoice)

    def again(refused):  # QuickBooks refused the remembered payment method: the body with it resolved again
        moved = movement.again(ctx, source, "Payment", refused)
        return None if moved is None else body | moved.fields

    payment = create_document(ctx, "Payment", body | movement.fields, step="payment", again=again)
    return ActionResult(
        document=invoice,
        entity=ENTITY,
        customer_id=str(document.customer["Id"]),
        extra_outputs={"quickbooks_payment_id": str(payment["Id"])},
    )


def check_payable(source: Source, lines: PendingLines) -> None:
    """Before anything is written: the payment covers the document's total (with tax, as QuickBooks will have it)."""
    check_total_is_paid(source, lines.quickbooks_total, taxed=any(tax.rate for tax in lines.taxes.values()))


def payment_body(ctx: ActionContext, source: Source, invoice: dict) -> dict:
    """The payment covers the invoice's total with tax, as QuickBooks worked it out."""
    total = money(decimal_of(str(invoice.get("TotalAmt", 0))))
    paid = amount_of(source, "hs_initial_amount")
    if total != paid:
        ctx.journal.note(
            f"The {source.label} is for {paid}; the QuickBooks invoice's total with tax is {total}, "
            "so the QuickBooks payment is for the total, leaving the invoice paid in full."
        )
    body = {
        "CustomerRef": {"value": str(invoice["CustomerRef"]["value"])},
        "TotalAmt": float(total),
        "Line": [{"Amount": float(total), "LinkedTxn": [{"TxnId": str(invoice["Id"]), "TxnType": "Invoice"}]}],
        "PrivateNote": tracking_note(ctx, source.label),
    }
    if invoice.get("CurrencyRef"):
        body["CurrencyRef"] = {"value": invoice["CurrencyRef"]["value"]}
    if source.date:
        body["TxnDate"] = source.date
    return body
