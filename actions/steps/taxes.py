"""plan_taxes: the QuickBooks tax code of every sales line, decided before anything is written.

US companies (automated sales tax) mark each line TAX or NON and QuickBooks works the tax out. Everywhere
else each line names one of the company's TaxCodes, through the company setting `tax_codes` (HubSpot tax
rate group id, or rate in percent → TaxCode id) and `default_tax_code` for untaxed lines; a rate without a
mapping, or a mapping to an inactive code, fails with TAX_CODE_MISSING.
"""

from collections import defaultdict
from decimal import Decimal

from actions.errors import ActionError
from actions.settings import rate_key, setting_on
from actions.steps.company import CompanyProfile, CompanyQuestions
from actions.steps.lines import LineTax, decimal_of, money, rounded_amounts
from actions.steps.query import Questions
from actions.steps.source import Record

TAX_TABLES = [
    "SELECT * FROM TaxCode WHERE Active IN (true, false) MAXRESULTS 1000",
    "SELECT * FROM TaxRate WHERE Active IN (true, false) MAXRESULTS 1000",
]


def is_taxed(line: Record) -> bool:
    """HubSpot put tax on the line: a tax rate group, a rate or a tax amount."""
    return bool(line.get("hs_tax_rate_group_id")) or any(
        decimal_of(line.get(name)) != 0 for name in ("hs_tax_rate", "hs_tax_amount")
    )


def ask_tax_tables(company: CompanyQuestions, questions: Questions) -> None:
    """Outside the US (or while the company's country is not known yet) the tax codes and rates travel with the
    document's other reads, unless the client keeps them; plan_taxes then finds them kept."""
    if company.may_be_outside_us():
        questions.ask(TAX_TABLES, kept=True)


def plan_taxes(ctx, company: CompanyProfile, line_items: list[Record], items: dict[str, dict]) -> dict[str, LineTax]:
    """Line id → its tax; `items` are the QuickBooks Items matched so far (new ones are not taxable)."""
    if company.in_us:
        return {line.id: LineTax(us_code(line, items.get(line.id) or {})) for line in line_items}
    codes, rates = tax_tables(ctx)
    inclusive = setting_on(ctx.settings.get("prices_include_tax"))
    return {line.id: LineTax(*mapped_code(ctx, line, codes, rates), inclusive=inclusive) for line in line_items}


def global_tax_calculation(ctx, company: CompanyProfile) -> str | None:
    """How QuickBooks reads the document's amounts outside the US; automated US sales tax ignores it."""
    if company.in_us:
        return None
    return "TaxInclusive" if setting_on(ctx.settings.get("prices_include_tax")) else "TaxExcluded"


def us_code(line: Record, item: dict) -> str:
    return "TAX" if is_taxed(line) or item.get("Taxable") else "NON"


def tax_tables(ctx) -> tuple[dict[str, dict], dict[str, dict]]:
    """The company's TaxCodes and TaxRates by id (kept by the client; asked with the reads by ask_tax_tables)."""
    return by_id(*ctx.books.query_batch_cached(TAX_TABLES))


def by_id(codes: list[dict], rates: list[dict]) -> tuple[dict[str, dict], dict[str, dict]]:
    """The answers to TAX_TABLES, each keyed by its id."""
    return {str(c["Id"]): c for c in codes}, {str(r["Id"]): r for r in rates}


def mapped_code(ctx, line: Record, codes: dict[str, dict], rates: dict[str, dict]) -> tuple[str, Decimal]:
    """(TaxCode id, its rate in percent) for one line, from the company's tax_codes / default_tax_code."""
    keys = hubspot_rate_keys(line)
    mapping = ctx.settings.get("tax_codes") or {}
    key = next((key for key in keys if key in mapping), None)
    if key is not None:
        code_id = str(mapping[key])
        setting = f'tax_codes ("{key}")'
        what = f"HubSpot tax {describe_key(line, key)}"
    elif is_taxed(line):
        code_id = ""
        setting = "tax_codes (add " + " or ".join(f'"{k}"' for k in keys) + ": the QuickBooks TaxCode id)"
        what = "HubSpot tax " + " and ".join(describe_key(line, k) for k in keys)
    else:
        code_id = ctx.input("tax_code") or str(ctx.settings.get("default_tax_code") or "")
        setting = "default_tax_code (the QuickBooks TaxCode id for untaxed lines), or the action's tax code field"
        what = "no HubSpot tax (an untaxed line)"
    code = codes.get(code_id)
    if not code_id or code is None or not code.get("Active", True):
        problem = "has no QuickBooks tax code" if not code_id else f"maps to QuickBooks TaxCode {code_id}, which is "
        problem += "" if not code_id else ("inactive" if code else "not in this company")
        raise ActionError(
            "TAX_CODE_MISSING",
            line=describe_line(line),
            what=what,
            problem=problem,
            setting=setting,
            active=describe_codes(codes),
        )
    return code_id, code_rate(code, rates)


def hubspot_rate_keys(line: Record) -> list[str]:
    """The keys a line's tax may be mapped by, most specific first: its HubSpot tax rate group, then its rate
    in percent ("20", "7.5"; worked out from its tax amount when HubSpot gives no rate; "0" when it says 0)."""
    keys = [line.get("hs_tax_rate_group_id")] if line.get("hs_tax_rate_group_id") else []
    rate = decimal_of(line.get("hs_tax_rate")) if line.get("hs_tax_rate") else None
    if rate is None and decimal_of(line.get("hs_tax_amount")) and decimal_of(line.get("amount")):
        rate = (decimal_of(line.get("hs_tax_amount")) * 100 / decimal_of(line.get("amount"))).quantize(Decimal("0.01"))
    if rate is not None:
        keys.append(rate_key(str(rate)))  # spelled like the keys of tax_codes
    return keys


def code_rate(code: dict, rates: dict[str, dict]) -> Decimal:
    details = ((code.get("SalesTaxRateList") or {}).get("TaxRateDetail")) or []
    return sum(
        (
            decimal_of(str((rates.get(str(d.get("TaxRateRef", {}).get("value"))) or {}).get("RateValue", 0)))
            for d in details
        ),
        Decimal(0),
    )


def rate_text(code: dict, rates: dict[str, dict]) -> str:
    """A code's sales rate as people read it ("20%"), or that it has none ("No VAT", "Out of Scope")."""
    has_rates = ((code.get("SalesTaxRateList") or {}).get("TaxRateDetail")) or []
    return f"{code_rate(code, rates)}%" if has_rates else "no sales rate"


def describe_key(line: Record, key: str) -> str:
    return f"rate group {key}" if key == line.get("hs_tax_rate_group_id") else f"rate {key}%"


def describe_line(line: Record) -> str:
    return f"'{line.get('name') or line.id}'"


def describe_codes(codes: dict[str, dict]) -> str:
    active = [f"{code.get('Name')} = {code_id}" for code_id, code in sorted(codes.items()) if code.get("Active", True)]
    return "; ".join(active) or "none"


# -- totals --------------------------------------------------------------------------------------------


def quickbooks_total(line_items: list[Record], taxes: dict[str, LineTax]) -> Decimal:
    """The total with tax QuickBooks will store: net lines, plus per rate the tax on their sum, in cents.

    Automated US sales tax depends on addresses QuickBooks holds: it is not foreseen here (rate 0).
    """
    nets, taxed = Decimal(0), defaultdict(Decimal)
    for line, amount in zip(line_items, rounded_amounts(line_items), strict=True):
        tax = taxes.get(line.id)
        net = tax.net(amount) if tax else amount
        nets += net
        if tax and tax.rate:
            taxed[tax.rate] += net
    return nets + sum((money(net * rate / 100) for rate, net in taxed.items()), Decimal(0))


def hubspot_total_with_tax(line_items: list[Record], taxes: dict[str, LineTax]) -> Decimal | None:
    """HubSpot's own total with tax, when HubSpot computed the tax (its lines carry tax amounts)."""
    if not any(line.get("hs_tax_amount") for line in line_items):
        return None
    amounts = sum(rounded_amounts(line_items), Decimal(0))
    if any(tax.inclusive for tax in taxes.values()):
        return amounts
    return amounts + sum((money(decimal_of(line.get("hs_tax_amount"))) for line in line_items), Decimal(0))


def note_total_difference(ctx, document: dict, expected: Decimal | None, entity: str) -> None:
    """QuickBooks works the tax out itself; where its rounding lands elsewhere, say so rather than fail."""
    if expected is None or "TotalAmt" not in document:
        return
    actual = money(decimal_of(str(document["TotalAmt"])))
    if actual != expected:
        ctx.journal.note(
            f"The QuickBooks {entity.lower()} total with tax is {actual}; HubSpot's is {expected} "
            f"({actual - expected:+}). QuickBooks rounds tax per rate on the whole document, HubSpot per "
            "line; the QuickBooks document stands as QuickBooks computed it."
        )
