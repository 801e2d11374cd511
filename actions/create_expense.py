"""Create a QuickBooks expense for the processing fee of a HubSpot payment."""

from actions.context import ActionContext, ActionResult
from actions.errors import ActionError
from actions.steps.accounts import funding_account, purchase_payment_type
from actions.steps.company import company_profile
from actions.steps.currency import check_account_currency, document_currency
from actions.steps.documents import create_document, tracking_note
from actions.steps.payments import payment_fee
from actions.steps.source import Source, as_date, load_source
from actions.steps.vendors import payments_vendor

ENTITY = "Purchase"


def run(ctx: ActionContext) -> ActionResult:
    source = load_source(ctx, with_line_items=False)
    fee = payment_fee(source)
    paid_from = funding_account(ctx, "payment_account", "Paid from")
    company = company_profile(ctx)
    currency = document_currency(ctx, company, source)
    check_account_currency(paid_from, currency, company, "Paid from")
    if not ctx.input("expense_account"):
        raise ActionError(
            "INVALID_INPUT",
            reason="The 'Expense account' field is empty: choose the QuickBooks "
            "expense account for payment fees, for example Bank charges.",
        )
    line = {
        "DetailType": "AccountBasedExpenseLineDetail",
        "Amount": float(fee),
        "Description": f"HubSpot payment fee, {describe(source)}",
        "AccountBasedExpenseLineDetail": {"AccountRef": {"value": ctx.input("expense_account")}},
    }
    if not company.in_us and ctx.settings.get("default_tax_code"):  # outside the US every line names a tax code
        line["AccountBasedExpenseLineDetail"]["TaxCodeRef"] = {"value": str(ctx.settings["default_tax_code"])}
    body = {
        "PaymentType": purchase_payment_type(paid_from),
        "AccountRef": {"value": str(paid_from["Id"])},
        "EntityRef": {"value": payments_vendor(ctx, currency, company.home_currency), "type": "Vendor"},
        "Line": [line],
        "PrivateNote": f"Fee for HubSpot {describe(source)}. {tracking_note(ctx, source.label)}",
    }
    if currency:
        body["CurrencyRef"] = {"value": currency}
    date = as_date(source.record.get("hs_payout_date")) or source.date
    if date:
        body["TxnDate"] = date
    return ActionResult(document=create_document(ctx, ENTITY, body, step="expense"), entity=ENTITY)


def describe(source: Source) -> str:
    reference = source.record.get("hs_reference_number")
    return f"payment {reference}" if reference else source.label
