"""Create a QuickBooks expense for the processing fee of a HubSpot payment."""

from actions.context import ActionContext, ActionResult
from actions.errors import ActionError, Refused
from actions.steps.accounts import ask_funding_account, chosen_account_id, funding_account, purchase_payment_type
from actions.steps.company import CompanyProfile
from actions.steps.currency import answered_currency, ask_currency, check_account_currency
from actions.steps.documents import create_document, tracking_note
from actions.steps.memory import TRUSTED, Memory, after_refusal
from actions.steps.payments import payment_fee
from actions.steps.query import Questions
from actions.steps.source import Source, as_date, load_source
from actions.steps.vendors import ask_payments_vendor, foresee_payments_vendor, payments_vendor

ENTITY = "Purchase"
PAID_FROM = ("payment_account", "Paid from")


def run(ctx: ActionContext) -> ActionResult:
    source = load_source(ctx, with_line_items=False)
    fee = payment_fee(source)
    chosen_account_id(ctx, *PAID_FROM)  # the action's own fields first, before QuickBooks is asked anything
    if not ctx.input("expense_account"):
        raise ActionError(
            "INVALID_INPUT",
            reason="The 'Expense account' field is empty: choose the QuickBooks "
            "expense account for payment fees, for example Bank charges.",
        )
    payee = Payee(source)
    payee.resolve(ctx, TRUSTED)
    company, currency = payee.company, payee.currency
    line = {
        "DetailType": "AccountBasedExpenseLineDetail",
        "Amount": float(fee),
        "Description": f"HubSpot payment fee, {describe(source)}",
        "AccountBasedExpenseLineDetail": {"AccountRef": {"value": ctx.input("expense_account")}},
    }
    if not company.in_us and ctx.settings.get("default_tax_code"):  # outside the US every line names a tax code
        line["AccountBasedExpenseLineDetail"]["TaxCodeRef"] = {"value": str(ctx.settings["default_tax_code"])}
    body = payee.fields() | {
        "Line": [line],
        "PrivateNote": f"Fee for HubSpot {describe(source)}. {tracking_note(ctx, source.label)}",
    }
    if currency:
        body["CurrencyRef"] = {"value": currency}
    date = as_date(source.record.get("hs_payout_date")) or source.date
    if date:
        body["TxnDate"] = date
    document = create_document(ctx, ENTITY, body, step="expense", again=lambda refused: payee.again(ctx, body, refused))
    return ActionResult(document=document, entity=ENTITY)


class Payee:
    """The account the fee was paid from and the vendor it was paid to, in the fee's currency: remembered, or read
    in one request (with the company's preferences, unless the client keeps them)."""

    def __init__(self, source: Source):
        self.source = source
        self.company: CompanyProfile | None = None
        self.currency = ""  # the fee's, "" when the company keeps one currency (see document_currency)
        self.paid_from: dict = {}
        self.vendor_id = ""
        self.vendor_chosen = False  # in the action's 'Vendor' field: not ours to resolve
        self.from_memory: set[str] = set()  # "account", "vendor": written with as remembered, unchecked

    def resolve(self, ctx, memory: Memory) -> None:
        """Both, from memory as far as `memory` allows (the vendor again only when a refusal may be about it)."""
        questions = Questions(ctx.books)
        asked_currency = ask_currency(ctx, self.source, questions)
        asked_account = ask_funding_account(ctx, *PAID_FROM, questions, memory)
        resolving_vendor = not self.vendor_id or not memory.trusts("vendor")
        if resolving_vendor:
            foresee_payments_vendor(ctx, questions, asked_currency.possible, memory)
        questions.send()  # one QuickBooks request, or none when everything is remembered and kept
        self.company, self.currency = answered_currency(ctx, asked_currency)  # checked before anything is written
        asked_vendor = None
        if resolving_vendor:
            asked_vendor = ask_payments_vendor(ctx, questions, self.currency, self.company.home_currency, memory)
            questions.send()  # foreseen above: answered without a request
        self.paid_from = funding_account(ctx, asked_account)
        check_account_currency(self.paid_from, self.currency, self.company, PAID_FROM[1])
        self.from_memory.discard("account")
        if asked_account.remembered:
            self.from_memory.add("account")
        if asked_vendor is not None:
            self.vendor_id = payments_vendor(ctx, asked_vendor)
            self.vendor_chosen = bool(asked_vendor.chosen)
            self.from_memory.discard("vendor")
            if asked_vendor.remembered:
                self.from_memory.add("vendor")

    def fields(self) -> dict:
        return {
            "PaymentType": purchase_payment_type(self.paid_from),
            "AccountRef": {"value": str(self.paid_from["Id"])},
            "EntityRef": {"value": self.vendor_id, "type": "Vendor"},
        }

    def again(self, ctx, body: dict, refused: Refused) -> dict | None:
        """QuickBooks refused the expense naming a gone or inactive account or vendor: the body once more, or None."""
        resolved = {"account"} if self.vendor_chosen else {"account", "vendor"}
        memory = after_refusal(ctx, ENTITY, refused, from_memory=self.from_memory, resolved=resolved)
        if memory is None:
            return None
        if not memory.resend:
            self.resolve(ctx, memory)
            body |= self.fields()
        return body


def describe(source: Source) -> str:
    reference = source.record.get("hs_reference_number")
    return f"payment {reference}" if reference else source.label
