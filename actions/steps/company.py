"""company_profile: what a QuickBooks company's country, currency and tax set-up mean for the documents.

Read from Preferences and (when the connection does not know the country) CompanyInfo, asked with a document's
other reads in its /batch; the client keeps the answers per company for a few minutes.
"""

from dataclasses import dataclass, field

from actions.steps.query import Question, Questions

US_COUNTRIES = ("US", "USA", "UNITED STATES")  # CompanyInfo.Country; QuickBooks moved addresses to ISO-3 in 2025
# Each a one-record query; the client keeps its answer, and reads it the same way when asked alone (GET).
PREFERENCES = "SELECT * FROM Preferences"
COMPANY_INFO = "SELECT * FROM CompanyInfo"


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
        return is_us(self.country)


@dataclass
class CompanyQuestions:
    """The company's preferences, and its CompanyInfo when the connection does not know its country."""

    preferences: Question
    country: str  # as the connection knows it; "" when CompanyInfo is asked
    info: Question | None = None

    @property
    def answered(self) -> bool:
        return self.preferences.answers is not None and (self.info is None or self.info.answers is not None)

    def known_country(self) -> str:
        """The company's country, "" until CompanyInfo is answered."""
        if self.country or self.info.answers is None:
            return self.country
        return country_of(company_record(self.info.answers))

    def may_be_outside_us(self) -> bool:
        country = self.known_country()
        return not country or not is_us(country)


def ask_company(ctx, questions: Questions) -> CompanyQuestions:
    """Answered at once when the client keeps them; otherwise asked with the document's other reads."""
    country = connection_country(ctx)
    info = None if country else questions.ask([COMPANY_INFO], kept=True)
    return CompanyQuestions(questions.ask([PREFERENCES], kept=True), country, info)


def company_profile(ctx, asked: CompanyQuestions) -> CompanyProfile | None:
    """The profile once its questions are answered (before anything is sent, when the client keeps them)."""
    if not asked.answered:
        return None
    preferences = company_record(asked.preferences.answers)
    currency = preferences.get("CurrencyPrefs") or {}
    return CompanyProfile(
        name=ctx.books.company_name,
        country=asked.known_country(),
        home_currency=str((currency.get("HomeCurrency") or {}).get("value") or "USD").upper(),
        multicurrency=bool(currency.get("MultiCurrencyEnabled")),
        preferences=preferences,
    )


def company_record(answers: list[list[dict]]) -> dict:
    """The one record a query about the company itself (Preferences, CompanyInfo) answers."""
    return next(iter(answers[0]), {})


def connection_country(ctx) -> str:
    """CompanyInfo.Country as read when the company was connected; "" for a connection made before it was kept."""
    return str(getattr(ctx.books, "country", "") or "")


def country_of(info: dict) -> str:
    return str(info.get("Country") or "US")


def is_us(country: str) -> bool:
    return country.upper() in US_COUNTRIES


def in_us(ctx) -> bool:
    """Before a document's reads: the connection's country, else CompanyInfo (kept for the document's reads)."""
    return is_us(connection_country(ctx) or country_of(ctx.books.company_info()))
