"""The rules of documents made from a HubSpot payment: which payments qualify, and how the money moved.

Every check here only reads, so a payment that fails one leaves nothing behind in QuickBooks.
"""

from decimal import Decimal

from actions.errors import ActionError, QuickBooksFault
from actions.settings import setting_on
from actions.steps.lines import decimal_of, money
from actions.steps.query import literal
from actions.steps.source import Record, Source, as_date
from actions.steps.taxes import is_taxed

PAYMENT = "COMMERCE_PAYMENT"
DUPLICATE_NAME = 6240
REFERENCE_LENGTH = 21  # QuickBooks' PaymentRefNum
METHOD_NAME_LENGTH = 31  # QuickBooks' PaymentMethod.Name
# hs_payment_method_type → the QuickBooks payment method's name (QuickBooks companies start with the first three).
METHOD_NAMES = {
    "cash": "Cash",
    "check": "Check",
    "card": "Credit Card",
    "ach": "ACH",
    "wire_transfer": "Wire transfer",
    "sepa": "SEPA Direct Debit",
    "bacs": "Bacs Direct Debit",
    "pads": "Pre-authorized debit",
    "other": "Other",
}


def amount_of(source: Source, name: str) -> Decimal:
    return money(decimal_of(source.record.get(name)))


# -- which payments qualify ------------------------------------------------------------------------------


def check_not_invoice_payment(ctx, source: Source) -> None:
    """A payment of a HubSpot invoice: the invoice sync already put it in QuickBooks (seed 004)."""
    if source.object_type != PAYMENT or source.record.get("hs_payment_source_app").upper() != "INVOICE":
        return
    if setting_on(ctx.settings.get("allow_invoice_payments")):
        ctx.journal.note(
            f"The {source.label} pays a HubSpot invoice; allow_invoice_payments is on, so it is recorded anyway."
        )
        return
    raise ActionError("PAYMENT_FROM_INVOICE", object_label=source.label)


def check_untaxed_lines(line_items: list[Record]) -> None:
    """A paid invoice holds non-taxable lines only (like HubSpot's own action): name every taxed one."""
    taxed = [line for line in line_items if is_taxed(line)]
    if taxed:
        raise ActionError("TAXABLE_LINES_NOT_ALLOWED", lines=", ".join(describe_tax(line) for line in taxed))


def describe_tax(line: Record) -> str:
    what = [
        f"{label} {line.get(name)}"
        for name, label in (
            ("hs_tax_rate_group_id", "tax rate group"),
            ("hs_tax_rate", "tax rate"),
            ("hs_tax_amount", "tax amount"),
        )
        if line.get(name)
    ]
    return f"'{line.get('name') or line.id}' ({', '.join(what)})"


def check_total_is_paid(source: Source, total: Decimal, *, taxed: bool = False) -> None:
    """The payment must cover the document; with tax, QuickBooks' rounding may land a cent away (noted later)."""
    paid = amount_of(source, "hs_initial_amount")
    tolerance = Decimal("0.01") if taxed else Decimal(0)
    if abs(total - paid) > tolerance:
        raise ActionError("PAYMENT_AMOUNT_MISMATCH", object_label=source.label, paid=paid, total=total)


def check_fully_refunded(source: Source) -> None:
    status = source.record.get("hs_latest_status") or "unknown"
    paid, refunded = amount_of(source, "hs_initial_amount"), amount_of(source, "hs_refunds_amount")
    if status.lower() != "refunded" or refunded != paid:
        raise ActionError("NOT_FULLY_REFUNDED", object_label=source.label, status=status, paid=paid, refunded=refunded)


def payment_fee(source: Source) -> Decimal:
    fee = amount_of(source, "hs_fees_amount")
    if fee <= 0:
        raise ActionError("NO_PAYMENT_FEE", object_label=source.label)
    return fee


def refund_date(source: Source) -> str:
    """A refund is dated when the payment last changed (it became refunded then), not when it was paid."""
    return as_date(source.record.get("hs_lastmodifieddate")) or source.date


# -- how the money moved ---------------------------------------------------------------------------------


def money_movement(ctx, source: Source, *, account_input: str) -> dict:
    """Account, payment method and reference shared by sales receipts, refund receipts and payments."""
    fields = {}
    if ctx.input(account_input):
        fields["DepositToAccountRef"] = {"value": ctx.input(account_input)}
    if source.object_type != PAYMENT:
        return fields
    method = payment_method(ctx, source.record.get("hs_payment_method_type"))
    if method:
        fields["PaymentMethodRef"] = {"value": str(method["Id"])}
    reference = source.record.get("hs_reference_number")
    if reference:
        fields["PaymentRefNum"] = reference[:REFERENCE_LENGTH]
        if len(reference) > REFERENCE_LENGTH:
            ctx.journal.note(
                f"The payment reference '{reference}' is longer than QuickBooks' {REFERENCE_LENGTH} "
                "characters; the reference field holds its start, the memo holds all of it."
            )
    return fields


def payment_method(ctx, method_type: str) -> dict | None:
    """The QuickBooks payment method named for HubSpot's method type: found by name, or created once."""
    if not method_type:
        return None
    name = METHOD_NAMES.get(method_type.lower(), method_type.replace("_", " ").capitalize())[:METHOD_NAME_LENGTH]
    found = methods_named(ctx, name)
    if found is None:
        try:
            found = ctx.books.create(
                "PaymentMethod",
                {"Name": name, "Type": method_kind(method_type)},
                request_id=ctx.request_id(f"payment_method:{name}"),
            )
        except QuickBooksFault as fault:
            if fault.code != DUPLICATE_NAME:
                raise
            found = methods_named(ctx, name)  # another execution created it a moment ago
        else:
            ctx.journal.wrote(f"payment_method:{name}", "PaymentMethod", found)
    if found and not found.get("Active", True):
        ctx.journal.note(
            f"The QuickBooks payment method '{found.get('Name')}' is inactive; the document is "
            "recorded without a payment method. Make it active in QuickBooks to have it set."
        )
        return None
    return found


def methods_named(ctx, name: str) -> dict | None:
    found = ctx.books.query(f"SELECT * FROM PaymentMethod WHERE Name = {literal(name)} AND Active IN (true, false)")
    return min(found, key=lambda m: (not m.get("Active", True), int(m["Id"]))) if found else None


def method_kind(method_type: str) -> str:
    return "CREDIT_CARD" if method_type.lower() == "card" else "NON_CREDIT_CARD"
