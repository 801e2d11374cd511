"""document_currency: the currency a document is written in, checked against what the company can hold.

A record's currency comes from HubSpot (deal_currency_code, hs_currency, hs_currency_code); without one
it is the company's home currency. Multicurrency off: only the home currency. On: the home currency or
one the company enabled (CompanyCurrency), and the document names it (CurrencyRef).

The company's preferences travel in the document's one /batch of reads (ask_currency); until they are answered the
home currency is unknown, so the steps whose queries depend on the currency ask along for every currency the
document may turn out to be in (`possible`), and once it is decided ask again: answered without a request.
"""

from dataclasses import dataclass

from actions.errors import ActionError
from actions.steps.company import CompanyProfile, CompanyQuestions, ask_company, company_profile
from actions.steps.query import Questions
from actions.steps.source import Source

CURRENCY_PROPERTIES = {"DEAL": "deal_currency_code", "QUOTE": "hs_currency", "COMMERCE_PAYMENT": "hs_currency_code"}
ENABLED_CURRENCIES = ["SELECT * FROM CompanyCurrency WHERE Active = true MAXRESULTS 1000"]


@dataclass
class CurrencyQuestions:
    """What deciding the document's currency needs: the company's preferences, and its enabled currencies when
    the document may be in a foreign one; asked with the document's other reads unless the client keeps them."""

    source: Source
    company: CompanyQuestions
    # (document currency, home currency) pairs the document may turn out to be in: the steps whose queries depend
    # on it (a customer's or vendor's display names, what it is remembered by) ask along for each of them.
    possible: list[tuple[str, str]]


def ask_currency(ctx, source: Source, questions: Questions) -> CurrencyQuestions:
    company = ask_company(ctx, questions)
    possible = possible_currencies(source, company_profile(ctx, company))
    if any(currency and currency != home for currency, home in possible):
        questions.ask(ENABLED_CURRENCIES, kept=True)  # document_currency then finds them kept
    return CurrencyQuestions(source, company, possible)


def answered_currency(ctx, asked: CurrencyQuestions) -> tuple[CompanyProfile, str]:
    """The company's profile and the document's currency (see document_currency), once the questions were sent."""
    company = company_profile(ctx, asked.company)
    return company, document_currency(ctx, company, asked.source)


def possible_currencies(source: Source, company: CompanyProfile | None) -> list[tuple[str, str]]:
    """(document currency, home currency) as document_currency will decide them, its checks aside; before the
    company is known, the record's currency may be its home currency or a foreign one ("": not known yet)."""
    if company is None:
        named = source.record.get(CURRENCY_PROPERTIES[source.object_type]).upper()
        return [("", "")] + ([(named, "")] if named else [])
    currency = record_currency(source, company)
    return [(currency if company.multicurrency else "", company.home_currency)]


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
