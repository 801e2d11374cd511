"""document_currency: the currency a document is written in, checked against what the company can hold.

A record's currency comes from HubSpot (deal_currency_code, hs_currency, hs_currency_code); without one
it is the company's home currency. Multicurrency off: only the home currency. On: the home currency or
one the company enabled (CompanyCurrency), and the document names it (CurrencyRef).
"""

from actions.errors import ActionError
from actions.steps.company import CompanyProfile
from actions.steps.source import Source

CURRENCY_PROPERTIES = {"DEAL": "deal_currency_code", "QUOTE": "hs_currency", "COMMERCE_PAYMENT": "hs_currency_code"}
ENABLED_CURRENCIES = ["SELECT * FROM CompanyCurrency WHERE Active = true MAXRESULTS 1000"]


def record_currency(source: Source, company: CompanyProfile) -> str:
    return (source.record.get(CURRENCY_PROPERTIES[source.object_type]) or company.home_currency).upper()


def document_currency(ctx, company: CompanyProfile, source: Source) -> str:
    """The document's currency code; "" when the company keeps one currency (no CurrencyRef is sent)."""
    currency = record_currency(source, company)
    if not company.multicurrency:
        if currency != company.home_currency:
            raise ActionError(
                "CURRENCY_MISMATCH",
                reason=f"The {source.label} is in {currency}, but the QuickBooks company {company.name} works in "
                f"{company.home_currency} only (multicurrency is off); no document is written in the wrong "
                "currency.",
            )
        return ""
    if currency != company.home_currency and currency not in enabled_currencies(ctx):
        raise ActionError("CURRENCY_NOT_ENABLED", object_label=source.label, currency=currency, company=company.name)
    return currency


def enabled_currencies(ctx) -> set[str]:
    [currencies] = ctx.books.query_batch_cached(ENABLED_CURRENCIES)
    return {str(c.get("Code", "")).upper() for c in currencies if c.get("Active", True)}


def currency_of(record: dict, company: CompanyProfile) -> str:
    """A QuickBooks customer's, vendor's or account's currency (the home currency when it names none)."""
    return str((record.get("CurrencyRef") or {}).get("value") or company.home_currency).upper()


def check_account_currency(account: dict, currency: str, company: CompanyProfile, label: str) -> None:
    """Money leaves an account in the account's currency: a fee in EUR cannot be paid from a USD account."""
    if currency and currency_of(account, company) != currency:
        raise ActionError(
            "CURRENCY_MISMATCH",
            reason=f"The payment is in {currency}, but the QuickBooks account '{account.get('Name')}' chosen in the "
            f"'{label}' field is in {currency_of(account, company)}; choose an account in {currency}.",
        )
