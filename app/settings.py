"""The settings an execution runs with (defaults, then the portal's, then the QuickBooks company's own), and
the checks a setting needs QuickBooks for. The CLI and the console both save through these."""

from flask import current_app

from actions.errors import QuickBooksAuthExpired, QuickBooksFault, TransientError
from actions.settings import DEFAULT_SETTINGS, SettingError
from actions.steps.taxes import TAX_TABLES, by_id, describe_codes
from app.quickbooks.client import books_client


def effective_settings(portal, connection) -> dict:
    return {**DEFAULT_SETTINGS, **(portal.settings or {}), **(connection.settings or {})}


def company_tax_tables(connection) -> tuple[dict, dict]:
    """The company's TaxCodes and TaxRates by id, asked of QuickBooks; SettingError when it cannot answer."""
    try:
        codes, rates = books_client(connection, current_app.config).query_batch(TAX_TABLES)
    except (QuickBooksFault, QuickBooksAuthExpired, TransientError) as problem:
        raise SettingError(f"QuickBooks could not list the tax codes: {problem}") from None
    return by_id(codes, rates)


def check_tax_codes_exist(connection, changes: dict) -> None:
    """tax_codes and default_tax_code must name active TaxCodes of this company: checked with QuickBooks."""
    wanted = list((changes.get("tax_codes") or {}).values()) + [changes.get("default_tax_code") or ""]
    wanted = [code for code in wanted if code]
    if not wanted:
        return
    codes, _ = company_tax_tables(connection)
    unknown = sorted({code for code in wanted if not codes.get(code, {}).get("Active", False)})
    if unknown:
        raise SettingError(
            f"QuickBooks company {connection.realm_id} has no active TaxCode {', '.join(unknown)}; "
            f"its active tax codes: {describe_codes(codes)}"
        )
