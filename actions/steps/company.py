"""company_profile: what a QuickBooks company's country, currency and tax set-up mean for the documents.

Read from CompanyInfo and Preferences, which the client keeps per company for a few minutes.
"""

from dataclasses import dataclass, field

US_COUNTRIES = ("US", "USA", "UNITED STATES")  # CompanyInfo.Country; QuickBooks moved addresses to ISO-3 in 2025


@dataclass(frozen=True)
class CompanyProfile:
    name: str
    country: str
    home_currency: str
    multicurrency: bool
    preferences: dict = field(default_factory=dict, compare=False)

    @property
    def in_us(self) -> bool:
        """US companies mark lines TAX or NON and let QuickBooks work the tax out; others need tax codes."""
        return self.country.upper() in US_COUNTRIES


def company_profile(ctx) -> CompanyProfile:
    preferences = ctx.books.preferences()
    currency = preferences.get("CurrencyPrefs") or {}
    return CompanyProfile(
        name=ctx.books.company_name,
        country=company_country(ctx),
        home_currency=str((currency.get("HomeCurrency") or {}).get("value") or "USD").upper(),
        multicurrency=bool(currency.get("MultiCurrencyEnabled")),
        preferences=preferences,
    )


def company_country(ctx) -> str:
    """Read from CompanyInfo when the company was connected; asked again (and kept) only if it was not."""
    return str(getattr(ctx.books, "country", "") or ctx.books.company_info().get("Country") or "US")


def in_us(ctx) -> bool:
    return company_country(ctx).upper() in US_COUNTRIES
