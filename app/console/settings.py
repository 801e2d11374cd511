"""The settings page: every portal setting and each QuickBooks company's, what it does, one save for all.

Values go through actions.settings.parse_setting and tax codes through the CLI's check_tax_codes_exist, so
the page and `flask settings set` accept exactly the same things. A form with any refused value saves nothing.
Field names say whose setting it is: `portal:<key>`, or `company:<realm id>:<key>` for a company setting.
"""

import json
import logging
from dataclasses import dataclass, field

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from actions.errors import QuickBooksAuthExpired, QuickBooksFault, TransientError
from actions.settings import BOOLEANS, CHOICES, COMPANY_SETTINGS, DEFAULT_SETTINGS, SettingError, parse_setting
from actions.steps.company import US_COUNTRIES
from app.console import bp
from app.console.auth import current_portal, portal_required
from app.extensions import db
from app.quickbooks import options as dropdowns
from app.quickbooks.client import books_client
from app.settings import check_tax_codes_exist, effective_settings
from app.storage.connections import list_connections
from app.storage.models import Portal, QuickBooksConnection

log = logging.getLogger(__name__)

JSON_SETTINGS = {"contact_sync_filters", "tax_codes"}
TAX_SETTINGS = {"tax_codes", "default_tax_code"}  # only for companies outside the US
US_TAX = "Does not apply to US companies: QuickBooks works out their sales tax from the customer's address."


@dataclass(frozen=True)
class Setting:
    key: str
    label: str
    help: str
    words: dict[str, str] = field(default_factory=dict)  # a choice's stored value → what the page says


SECTIONS = (
    (
        "Customers",
        (
            Setting(
                "contact_matching",
                "How contacts are matched",
                "How a HubSpot contact finds its QuickBooks customer: by email once it passes the contact sync "
                "filters, or the older way, by first name, last name and email together.",
                {
                    "sync_filters": "By email, for contacts that pass the sync filters",
                    "legacy": "By first name, last name and email together (legacy)",
                },
            ),
            Setting(
                "contact_sync_filters",
                "Contact sync filters",
                "Conditions a contact must meet before a document is made for it (when matching by email), as a "
                'JSON list such as [{"property": "lifecyclestage", "operator": "eq", "value": "customer"}]; '
                "operators: eq, neq, in, not_in, contains, known, unknown.",
            ),
            Setting(
                "display_name_conflicts",
                "When a customer's name is taken",
                "QuickBooks wants display names unique across customers, vendors and employees: either make a new "
                "customer's name unique, or stop the action so someone can decide.",
                {
                    "disambiguate": "Make the name unique: add the email, then a number",
                    "fail": "Fail the action with DUPLICATE_DISPLAY_NAME",
                },
            ),
        ),
    ),
    (
        "Products and lines",
        (
            Setting(
                "product_type",
                "Type of new products",
                'The QuickBooks product type given to products the actions create when "Create product if '
                'missing" is on.',
                {"Service": "Service", "NonInventory": "Non-inventory"},
            ),
            Setting(
                "income_account",
                "Income account of new products",
                "The QuickBooks income account that products the actions create record their sales in; empty "
                "means the company's first Income account.",
            ),
        ),
    ),
    (
        "Document numbers and dates",
        (
            Setting(
                "document_numbers",
                "Document numbers",
                "Who numbers the QuickBooks documents: QuickBooks, or HubSpot (a HubSpot number longer than 21 "
                "characters fails the action rather than being cut).",
                {
                    "quickbooks": "QuickBooks numbers them",
                    "hubspot": "HubSpot's number: the quote number, or the property below",
                },
            ),
            Setting(
                "document_number_property",
                "HubSpot property with the document number",
                "With HubSpot numbers, the internal name of the deal or payment property holding the number "
                "(such as invoice_number); quotes always use their quote number.",
            ),
            Setting(
                "service_dates",
                "Service dates on lines",
                "Whether each line gets a service date (the line item's billing start date, else the record's "
                "date), which QuickBooks revenue recognition needs.",
                {
                    "auto": "When QuickBooks revenue recognition is on",
                    "always": "Always",
                    "never": "Never",
                },
            ),
        ),
    ),
    (
        "In HubSpot",
        (
            Setting(
                "write_back",
                "Show documents on the HubSpot record",
                "Writes each QuickBooks document's id, number, link, status and balance onto the deal, quote or "
                "payment it was made from (properties in the QuickBooks group), kept current from QuickBooks.",
                {"on": "On: the record shows its QuickBooks documents", "off": "Off: only the workflow's outputs"},
            ),
        ),
    ),
    (
        "Payments",
        (
            Setting(
                "allow_invoice_payments",
                "Payments of HubSpot invoices",
                "Whether the paid-invoice and sales-receipt actions take payments of HubSpot invoices; turn it on "
                "only if HubSpot's own invoice sync does not already send those to QuickBooks.",
                {"on": "On: make documents for them too", "off": "Off: fail them with PAYMENT_FROM_INVOICE"},
            ),
        ),
    ),
    (
        "Tax",
        (
            Setting(
                "prices_include_tax",
                "HubSpot prices include tax",
                "Turn on when HubSpot amounts already include tax, so QuickBooks takes the tax out of each line "
                "instead of adding it on top (companies outside the US).",
                {"on": "On: amounts include tax", "off": "Off: tax is added to the amounts"},
            ),
            Setting(
                "tax_codes",
                "Tax codes for HubSpot tax rates",
                "Which QuickBooks tax code each HubSpot tax rate (in percent) or tax rate group id uses, as JSON "
                'such as {"20": "7", "5": "8"}; a taxed line without one fails with TAX_CODE_MISSING.',
            ),
            Setting(
                "default_tax_code",
                "Tax code for untaxed lines",
                "The QuickBooks tax code for lines HubSpot did not tax, unless the action names one; without it "
                "such lines fail with TAX_CODE_MISSING.",
            ),
        ),
    ),
)
SETTINGS = {setting.key: setting for _, settings in SECTIONS for setting in settings}


# -- what the page shows ----------------------------------------------------------------------------------


@dataclass
class Field:
    """One input: a portal setting's, or one company's value of a company setting."""

    name: str
    id: str
    label: str
    text: str = ""
    anchor: str = ""  # a company's value of a company setting: setting-<key>-<realm id>
    options: list[dict] | None = None  # a select's [{"value", "label"}]; None: a text input or textarea
    note: str = ""
    error: str = ""
    applies: bool = True


@dataclass
class Row:
    setting: Setting
    company: bool
    fields: list[Field]

    @property
    def multiline(self) -> bool:
        return self.setting.key in JSON_SETTINGS


@dataclass
class CompanyLists:
    """A company's lists the page offers to pick from; None where QuickBooks could not say, with why in note."""

    income_accounts: list[dict] | None = None
    tax_codes: list[dict] | None = None
    note: str = ""


def field_name(key: str, connection=None) -> str:
    return f"company:{connection.realm_id}:{key}" if connection else f"portal:{key}"


def field_id(key: str, connection=None) -> str:
    return f"company-{connection.realm_id}-{key}" if connection else f"portal-{key}"


def in_us(connection) -> bool:
    # As the tax code dropdown decides: a company whose country is unknown is taken for a US one.
    return (connection.country or "US").upper() in US_COUNTRIES


def value_text(key: str, value) -> str:
    if key in JSON_SETTINGS:
        return json.dumps(value, indent=2)
    return "" if value is None else str(value)


def current_values(portal, connection=None) -> dict:
    """What the actions run with: a company's values are its own, else the portal's, else the defaults."""
    if connection is None:
        return {**DEFAULT_SETTINGS, **(portal.settings or {})}
    return effective_settings(portal, connection)


def company_lists(connection) -> CompanyLists:
    """The company's active Income accounts and (outside the US) tax codes, asked of QuickBooks."""
    company = connection.company_name or connection.realm_id
    try:
        books = books_client(connection, current_app.config)
        accounts = dropdowns.accounts(books, ("Income",)).options
        codes = None if in_us(connection) else dropdowns.tax_code(books).options
    except QuickBooksAuthExpired:
        return CompanyLists(
            note=f"QuickBooks no longer accepts {company}'s authorization: reconnect it to pick "
            "from its lists. Meanwhile, type the id."
        )
    except TransientError as down:
        log.warning("settings lists for realm %s: %s", connection.realm_id, down.reason)
        return CompanyLists(
            note="QuickBooks is not answering, so its list cannot be shown: type the id, or try again in a minute."
        )
    except QuickBooksFault as fault:
        log.warning("settings lists for realm %s: QuickBooks fault %s %s", connection.realm_id, fault.code, fault)
        return CompanyLists(note=f"QuickBooks refused to list them ({fault.message}): type the id.")
    return CompanyLists(income_accounts=accounts, tax_codes=codes)


def list_options(listed: list[dict] | None, current: str, *, empty: str, missing: str) -> list[dict] | None:
    """A select's options: the empty choice, QuickBooks' list, and the current value if QuickBooks no longer has it."""
    if listed is None:
        return None
    options = [{"value": "", "label": empty}] + [{"value": o["value"], "label": o["label"]} for o in listed]
    if current and current not in {option["value"] for option in options}:
        options.append({"value": current, "label": missing.format(current)})
    return options


def with_rates(codes: list[dict] | None) -> list[dict] | None:
    """Tax code options name their rate: "20.0% S" could be anything, "Exempt (0%)" cannot."""
    if codes is None:
        return None
    return [{"value": c["value"], "label": f"{c['label']} ({c['description']})"} for c in codes]


def company_field(setting: Setting, connection, lists: CompanyLists, text: str) -> Field:
    entry = Field(
        field_name(setting.key, connection),
        field_id(setting.key, connection),
        connection.company_name or f"Company {connection.realm_id}",
        text,
        anchor=f"setting-{setting.key}-{connection.realm_id}",
    )
    if setting.key in TAX_SETTINGS and in_us(connection):
        entry.applies, entry.note = False, US_TAX
    elif setting.key in CHOICES:
        entry.options = choice_options(setting)
    elif setting.key == "income_account":
        entry.options = list_options(
            lists.income_accounts,
            text,
            empty="The company's first Income account",
            missing="Account {} (not an active Income account)",
        )
        entry.note = lists.note
    elif setting.key == "default_tax_code":
        entry.options = list_options(
            with_rates(lists.tax_codes),
            text,
            empty="None: untaxed lines need the action's tax code",
            missing="Tax code {} (not an active tax code)",
        )
        entry.note = lists.note
    elif setting.key == "tax_codes" and lists.tax_codes:
        entry.note = "This company's tax codes (name = id): " + "; ".join(
            f"{code['label']} = {code['value']}" for code in lists.tax_codes
        )
    return entry


def choice_options(setting: Setting) -> list[dict]:
    values = ("on", "off") if setting.key in BOOLEANS else CHOICES[setting.key]
    default = DEFAULT_SETTINGS[setting.key]
    return [
        {"value": value, "label": setting.words.get(value, value) + (" (default)" if value == default else "")}
        for value in values
    ]


def page_sections(portal, connections, *, texts: dict | None = None, errors: dict | None = None) -> list:
    """[(heading, [Row])]; texts are what was typed (a refused form shows it again), else the stored values."""
    texts, errors = texts or {}, errors or {}
    values = {None: current_values(portal)} | {c.realm_id: current_values(portal, c) for c in connections}
    lists = {c.realm_id: company_lists(c) for c in connections}
    sections = []
    for heading, settings in SECTIONS:
        rows = []
        for setting in settings:
            key = setting.key
            if key in COMPANY_SETTINGS:
                fields = [
                    company_field(
                        setting,
                        c,
                        lists[c.realm_id],
                        texts.get(field_name(key, c), value_text(key, values[c.realm_id][key])),
                    )
                    for c in connections
                ]
            else:
                entry = Field(field_name(key), field_id(key), setting.label)
                entry.text = texts.get(entry.name, value_text(key, values[None][key]))
                if key in CHOICES or key in BOOLEANS:
                    entry.options = choice_options(setting)
                fields = [entry]
            for entry in fields:
                entry.error = errors.get(entry.name, "")
            rows.append(Row(setting, key in COMPANY_SETTINGS, fields))
        sections.append((heading, rows))
    return sections


def error_summary(errors: dict, sections) -> list[dict]:
    """Each refusal with the field it belongs to (a link) and its label; unknown field names are listed too."""
    labels = {}
    for _, rows in sections:
        for row in rows:
            for entry in row.fields:
                label = row.setting.label + (f" ({entry.label})" if row.company else "")
                labels[entry.name] = (entry.id, label)
    summary = []
    for name, message in errors.items():
        control_id, label = labels.get(name, ("", name))
        summary.append({"id": control_id, "label": label, "message": message})
    return summary


# -- reading a submitted form -----------------------------------------------------------------------------


@dataclass
class Submission:
    portal: dict = field(default_factory=dict)  # changed portal settings
    companies: dict = field(default_factory=dict)  # realm id → changed company settings
    errors: dict = field(default_factory=dict)  # field name → why it was refused
    texts: dict = field(default_factory=dict)  # field name → what was typed


def read_form(form, portal, connections) -> Submission:
    """Parse every submitted setting; keep those that change something. A realm not of this portal: 404."""
    by_realm = {c.realm_id: c for c in connections}
    submission = Submission(companies={realm: {} for realm in by_realm})
    for name, text in form.items():
        scope, _, rest = name.partition(":")
        if scope == "portal":
            connection, key = None, rest
        elif scope == "company":
            realm, _, key = rest.partition(":")
            connection = by_realm.get(realm)
            if connection is None:
                abort(404)  # another portal's company (or none at all): never say which
        else:
            continue  # csrf_token
        submission.texts[name] = text
        if connection is not None and key in TAX_SETTINGS and in_us(connection):
            continue  # not shown for US companies: nothing to change
        try:
            value = parse_setting(key, text.strip())
        except SettingError as refused:
            submission.errors[name] = str(refused)
            continue
        if (key in COMPANY_SETTINGS) != (connection is not None):
            whose = "a QuickBooks company's" if key in COMPANY_SETTINGS else "the HubSpot account's"
            submission.errors[name] = f"{key} is {whose} setting"
            continue
        if value != current_values(portal, connection)[key]:
            changes = submission.companies[connection.realm_id] if connection else submission.portal
            changes[key] = value
    check_tax_codes(submission, by_realm)
    return submission


def check_tax_codes(submission: Submission, by_realm: dict) -> None:
    """Changed tax codes must be active TaxCodes of their company: asked of QuickBooks, one setting at a time
    so a refusal lands next to its field."""
    for realm, changes in submission.companies.items():
        for key in sorted(TAX_SETTINGS & changes.keys()):
            try:
                check_tax_codes_exist(by_realm[realm], {key: changes[key]})
            except SettingError as refused:  # unknown codes, or QuickBooks could not list them
                submission.errors[field_name(key, by_realm[realm])] = str(refused)


def save(portal_id: int, submission: Submission) -> None:
    """Every change in one transaction, merged into the stored settings read again under the write lock."""
    with db.write_session() as session:
        portal = session.get(Portal, portal_id)
        portal.settings = {**(portal.settings or {}), **submission.portal}
        of_portal = select(QuickBooksConnection).where(QuickBooksConnection.portal_id == portal_id)
        for connection in session.scalars(of_portal):
            changes = submission.companies.get(connection.realm_id)
            if changes:
                connection.settings = {**(connection.settings or {}), **changes}
        session.commit()


# -- the page ---------------------------------------------------------------------------------------------


@bp.route("/settings", methods=["GET", "POST"])
@portal_required
def settings():
    portal = current_portal()
    connections = list_connections(db.session, portal.id)
    if request.method == "GET":
        return render_template("console/settings.html", sections=page_sections(portal, connections), errors=[])
    submission = read_form(request.form, portal, connections)
    if submission.errors:
        sections = page_sections(portal, connections, texts=submission.texts, errors=submission.errors)
        summary = error_summary(submission.errors, sections)
        return render_template("console/settings.html", sections=sections, errors=summary), 400
    save(portal.id, submission)
    flash("Settings saved", "success")
    return redirect(url_for("console.settings"))
