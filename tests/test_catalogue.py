"""The one error catalogue: every code explained and wired into hubspot-app.json; QuickBooks faults mapped."""

import pytest

from actions.errors import CATALOGUE, FAULT_ADVICE, ActionError, QuickBooksFault, explain_fault
from app.hubspot.app_definition import load_app_definition
from tests.conftest import REALM_ID, execution_body
from tests.scenarios import configure, seed_deal, stored_executions

PATH = "/hubspot/actions/create_invoice"


# -- the catalogue itself ----------------------------------------------------------------------------------


@pytest.mark.parametrize("code", sorted(CATALOGUE))
def test_every_code_has_a_message_and_a_fix(code):
    entry = CATALOGUE[code]
    assert code.isupper() and " " not in code
    assert entry.message.strip()  # some are the reason itself: '{reason}'
    assert entry.message.rstrip().endswith((".", "}"))
    assert len(entry.fix) > 20 and entry.fix.endswith(".")


def test_every_code_has_an_execution_rule_and_every_rule_a_code():
    assert set(load_app_definition().error_codes) == set(CATALOGUE)


def test_only_quickbooks_unavailable_is_retryable():
    assert [code for code, entry in CATALOGUE.items() if entry.retryable] == ["QUICKBOOKS_UNAVAILABLE"]


def test_an_unknown_code_cannot_be_raised():
    with pytest.raises(KeyError, match="add it to the catalogue first"):
        ActionError("SOMETHING_NEW")


@pytest.mark.parametrize(
    "seed_error, code, words",
    [
        ("An invoice should have an associated customer", "CONTACT_MISSING", "has no"),
        ("An invoice should have an associated customer", "CUSTOMER_NOT_FOUND", "inactive or no longer exists"),
        (
            "The display name is a duplicate",
            "DUPLICATE_DISPLAY_NAME",
            "already has a customer, vendor or employee named",
        ),
        ("Enter a service date for the line for revenue recognition", "SERVICE_DATE_REQUIRED", "service date"),
        (
            "An invoice created in HubSpot was changed in QuickBooks",
            "QUICKBOOKS_DOCUMENT_CHANGED",
            "was changed in QuickBooks",
        ),
        ("Duplicate document number error", "DUPLICATE_DOCUMENT_NUMBER", "already has a document numbered"),
    ],
)
def test_the_five_errors_of_seed_000_are_explained(seed_error, code, words):
    error = ActionError(
        code,
        object_label="deal 7",
        party="associated contact",
        customer_id="58",
        contact="Ann Lee (HubSpot contact 9)",
        display_name="Acme Corp",
        number="1042",
        holder="",
        where="",
        entity="invoice",
    )
    assert words in error.message
    assert CATALOGUE[code].fix in error.message
    assert "?" not in error.message


# -- QuickBooks faults → codes -----------------------------------------------------------------------------

FAULTS = [
    # (code, message, detail, entity) → error_code, words in the message
    (
        (6240, "Duplicate Name Exists Error", "The name supplied already exists. : Ann Lee", "Customer"),
        "DUPLICATE_DISPLAY_NAME",
        "customer, vendor or employee named",
    ),
    (
        (6240, "Duplicate Name Exists Error", "Another product or service is already using this name.", "Item"),
        "QUICKBOOKS_VALIDATION",
        "Another product or service is already using this name",
    ),
    (
        (
            6140,
            "Duplicate Document Number Error",
            "You must specify a different number. This number has already been used. DocNumber=1042 is assigned to "
            "TxnType=Invoice with TxnId=130",
            "Invoice",
        ),
        "DUPLICATE_DOCUMENT_NUMBER",
        "numbered '1042'",
    ),
    (
        (
            6000,
            "A business validation error has occurred while processing your request",
            "Business Validation Error: Enter a service date for the line for revenue recognition.",
            "Invoice",
        ),
        "SERVICE_DATE_REQUIRED",
        "turn off revenue recognition",
    ),
    (
        (
            6000,
            "A business validation error has occurred while processing your request",
            "Business Validation Error: You can't use a closed customer.",
            "Invoice",
        ),
        "QUICKBOOKS_VALIDATION",
        "You can't use a closed customer",
    ),
    (
        (
            6070,
            "Amount is not equal to UnitPrice * Qty",
            "Amount is not equal to UnitPrice * Qty. Supplied value:10",
            "Invoice",
        ),
        "QUICKBOOKS_VALIDATION",
        "quantity times its unit price",
    ),
    (
        (6100, "Invalid Line TaxCode", "Invalid line TaxCode 7", "Invoice"),
        "QUICKBOOKS_VALIDATION",
        "US companies use TAX or NON",
    ),
    (
        (
            2500,
            "Invalid Reference Id",
            "Invalid Reference Id : Something you're trying to use has been made inactive.",
            "Invoice",
        ),
        "INVALID_INPUT",
        "made inactive",
    ),
    (
        (
            610,
            "Object Not Found",
            "Object Not Found : Something you're trying to use has been made inactive.",
            "Invoice",
        ),
        "INVALID_INPUT",
        "Object Not Found",
    ),
    (
        (5010, "Stale Object Error", "You and QuickBooks were working on this at the same time.", "Invoice"),
        "QUICKBOOKS_DOCUMENT_CHANGED",
        "The QuickBooks invoice was changed in QuickBooks",
    ),
    (
        (6210, "Account Period Closed", "The account period has closed.", "Invoice"),
        "QUICKBOOKS_PERIOD_CLOSED",
        "closed",
    ),
    (
        (4000, "Error parsing query", 'QueryParserError: Encountered " "\\u2019" at line 1', ""),
        "QUICKBOOKS_VALIDATION",
        "curly quotes",
    ),
    (
        (4001, "Invalid query", "QueryValidationError: property 'PrimaryEmailAddr' is not queryable", ""),
        "QUICKBOOKS_VALIDATION",
        "Report the execution id",
    ),
    (
        (3200, "message=AuthenticationFailed; errorCode=003200; statusCode=401", "", ""),
        "QUICKBOOKS_AUTH_EXPIRED",
        "Reconnect QuickBooks",
    ),
    (
        (3001, "message=ThrottleExceeded; errorCode=003001; statusCode=429", "", ""),
        "QUICKBOOKS_UNAVAILABLE",
        "re-enroll it later",
    ),
    (
        (6999, "Something QuickBooks invented", "Detail nobody has seen before", "Invoice"),
        "QUICKBOOKS_VALIDATION",
        "QuickBooks refused the invoice: Something QuickBooks invented (Detail nobody has seen before).",
    ),
]


@pytest.mark.parametrize("fault, code, words", FAULTS, ids=[f"{f[0][0]}-{f[1]}" for f in FAULTS])
def test_quickbooks_faults_map_to_codes(fault, code, words):
    error = explain_fault(QuickBooksFault(fault[0], fault[1], fault[2], entity=fault[3]))
    assert error.code == code
    assert words in error.message
    assert error.message.endswith(CATALOGUE[code].fix)
    assert error.details["fault_code"] == fault[0]


@pytest.mark.parametrize("fault_code", [6070, 6100, 4000, 4001])
def test_faults_without_a_code_of_their_own_carry_plain_advice(fault_code):
    error = explain_fault(QuickBooksFault(fault_code, "QuickBooks' message", "QuickBooks' detail"))
    assert error.code == "QUICKBOOKS_VALIDATION"
    assert "QuickBooks' message (QuickBooks' detail)." in error.message
    assert FAULT_ADVICE[fault_code] in error.message


# -- end to end: the fault QuickBooks answers becomes the callback's error_code ----------------------------


@pytest.fixture
def deal(portal, connection, fake_quickbooks):
    return seed_deal(portal, fake_quickbooks)


INVOICE_FAULTS = [
    (
        "6140",
        "Duplicate Document Number Error",
        "This number has already been used. DocNumber=1042 is assigned to TxnType=CreditMemo with TxnId=9",
        "DUPLICATE_DOCUMENT_NUMBER",
    ),
    (
        "6000",
        "A business validation error has occurred while processing your request",
        "Business Validation Error: Enter a service date for the line for revenue recognition.",
        "SERVICE_DATE_REQUIRED",
    ),
    ("6070", "Amount is not equal to UnitPrice * Qty", "Supplied value:10", "QUICKBOOKS_VALIDATION"),
    ("6100", "Invalid Line TaxCode", "Invalid line TaxCode", "QUICKBOOKS_VALIDATION"),
    (
        "2500",
        "Invalid Reference Id",
        "Invalid Reference Id : Something you're trying to use has been made inactive.",
        "INVALID_INPUT",
    ),
    (
        "610",
        "Object Not Found",
        "Object Not Found : Something you're trying to use has been made inactive.",
        "INVALID_INPUT",
    ),
    (
        "5010",
        "Stale Object Error",
        "Stale Object Error : You and QuickBooks were working on this at the same time.",
        "QUICKBOOKS_DOCUMENT_CHANGED",
    ),
    ("6210", "Account Period Closed", "The account period has closed.", "QUICKBOOKS_PERIOD_CLOSED"),
    ("6999", "Brand new fault", "Brand new detail", "QUICKBOOKS_VALIDATION"),
]


@pytest.mark.parametrize(
    "fault_code, message, detail, error_code", INVOICE_FAULTS, ids=[row[0] for row in INVOICE_FAULTS]
)
def test_invoice_fault_end_to_end(
    app, deal, signed_post, fake_quickbooks, fake_hubspot, fault_code, message, detail, error_code
):
    fake_quickbooks.fail_next("POST /invoice", status=400, code=fault_code, message=message, detail=detail)

    signed_post(PATH, execution_body(object_id=deal.deal_id))

    fields = fake_hubspot.completions[0].output_fields
    assert (fields["hs_execution_state"], fields["error_code"]) == ("FAIL_CONTINUE", error_code)
    assert fields["error_message"].endswith(CATALOGUE[error_code].fix)
    if error_code == "QUICKBOOKS_VALIDATION":  # QuickBooks' own words, then ours
        assert f"QuickBooks refused the invoice: {message} ({detail})." in fields["error_message"]
    [execution] = stored_executions(app)  # kept for the console
    assert (execution.error_code, execution.error_message) == (error_code, fields["error_message"])
    assert fake_quickbooks.company(REALM_ID).all("Invoice") == []


def test_6240_on_a_customer_with_fail_setting_end_to_end(app, deal, signed_post, fake_quickbooks, fake_hubspot):
    configure(app, display_name_conflicts="fail")
    fake_quickbooks.fail_next(
        "POST /customer",
        status=400,
        code="6240",
        message="Duplicate Name Exists Error",
        detail="The name supplied already exists. : Ann Lee",
    )

    signed_post(PATH, execution_body(object_id=deal.deal_id))

    assert fake_hubspot.completions[0].output_fields["error_code"] == "DUPLICATE_DISPLAY_NAME"


def test_401_3200_that_survives_a_token_refresh_is_auth_expired(deal, signed_post, fake_quickbooks, fake_hubspot):
    fake_quickbooks.fail_next(
        "POST /invoice",
        status=401,
        code="3200",
        message="message=AuthenticationFailed; errorCode=003200; statusCode=401",
        times=2,
    )

    signed_post(PATH, execution_body(object_id=deal.deal_id))

    fields = fake_hubspot.completions[0].output_fields
    assert (fields["hs_execution_state"], fields["error_code"]) == ("FAIL_CONTINUE", "QUICKBOOKS_AUTH_EXPIRED")
    assert "QuickBooks no longer accepts the connection to 'Sandbox Company'" in fields["error_message"]
    assert "Reconnect QuickBooks in the qbo-actions console" in fields["error_message"]
    assert fake_quickbooks.refresh_count == 1  # refreshed once, then gave up
    assert len(fake_quickbooks.requests_to("POST", "/invoice")) == 2


def test_429_3001_that_persists_is_quickbooks_unavailable(
    app, deal, signed_post, fake_quickbooks, fake_hubspot, run_due_jobs
):
    fake_quickbooks.throttle_next("POST /invoice", times=100, retry_after=0, xml=False)

    signed_post(PATH, execution_body(object_id=deal.deal_id))
    assert fake_hubspot.completions == []  # postponed, not failed
    run_due_jobs()

    fields = fake_hubspot.completions[0].output_fields
    assert (fields["hs_execution_state"], fields["error_code"]) == ("FAIL_CONTINUE", "QUICKBOOKS_UNAVAILABLE")
    assert "QuickBooks kept failing or throttling our requests" in fields["error_message"]
    assert "429" in fields["error_message"]
    [execution] = stored_executions(app)
    assert execution.attempts == 3
    assert fake_quickbooks.company(REALM_ID).all("Invoice") == []
