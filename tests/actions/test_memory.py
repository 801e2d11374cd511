"""What a QuickBooks fault says about remembered references, and how a mapping keeps its facts.

The end-to-end cases (a remembered customer, item or payment method refused by QuickBooks, then resolved
again) are in test_customers.py, test_products.py and test_sales_documents.py.
"""

import pytest

from actions.errors import QuickBooksFault, refused_references
from app.storage.connections import MappingStore

INACTIVE = (
    "Invalid Reference Id : Something you're trying to use has been made inactive. "
    "Check the fields with accounts, customers, items, vendors or employees."
)


@pytest.mark.parametrize(
    "code, message, detail, element, kinds, named",
    [
        (2500, "Invalid Reference Id", INACTIVE, "CustomerRef", {"customer"}, True),
        (2500, "Invalid Reference Id", INACTIVE, "Line.SalesItemLineDetail.ItemRef", {"item"}, True),
        (2500, "Invalid Reference Id", INACTIVE, "PaymentMethodRef", {"payment_method"}, True),
        (2500, "Invalid Reference Id", INACTIVE, "EntityRef", {"vendor"}, True),
        (2500, "Invalid Reference Id", INACTIVE, "AccountRef", {"account"}, True),
        # A reference chosen in the action: not one qbo-actions remembers.
        (2500, "Invalid Reference Id", INACTIVE, "SalesTermRef", {"other"}, False),
        (2500, "Invalid Reference Id", INACTIVE, "Line.AccountBasedExpenseLineDetail.AccountRef", {"other"}, False),
        # QuickBooks' general words name every kind of list: it does not say which.
        (610, "Object Not Found", INACTIVE, "", set(), False),
        (2500, "Invalid Reference Id", INACTIVE, "", set(), False),
        (610, "Object Not Found", "Object Not Found : ... (Customer Id=58)", "", {"customer"}, True),
        (
            6000,
            "A business validation error has occurred while processing your request",
            "Business Validation Error: Item assigned to this transaction has been deleted.",
            "",
            {"item"},
            True,
        ),
        (
            6000,
            "A business validation error has occurred while processing your request",
            "Business Validation Error: The transaction currency (EUR) must be the same as the customer's currency.",
            "CurrencyRef",
            {"customer"},
            True,
        ),
    ],
)
def test_faults_about_a_gone_or_inactive_reference(code, message, detail, element, kinds, named):
    refused = refused_references(QuickBooksFault(code, message, detail, element))

    assert refused is not None
    assert (set(refused.kinds), refused.named) == (kinds, named)


@pytest.mark.parametrize(
    "code, detail, element",
    [
        (6140, "DocNumber=1001 is assigned to TxnType=Invoice", "DocNumber"),
        (6240, "The name supplied already exists.", ""),
        (6070, "Amount is not equal to UnitPrice * Qty", "Line.Amount"),
        (6100, "Invalid line TaxCode", "Line.SalesItemLineDetail.TaxCodeRef"),
        (6000, "Business Validation Error: Enter a service date for the line for revenue recognition", ""),
        (6000, "Business Validation Error: The payment amount exceeds the open balance.", "Line.Amount"),
        (2020, "Required parameter Line is missing in the request", "Line"),
        (5010, "Stale Object Error", ""),
    ],
)
def test_other_faults_are_not_about_references(code, detail, element):
    assert refused_references(QuickBooksFault(code, "A fault", detail, element)) is None


def test_facts_are_kept_beside_the_id(app, connection):
    from app.extensions import db

    mappings = MappingStore(db, connection)
    mappings.remember("contact", "101", "58", {"currency": "EUR", "name": "Ann Lee"})
    mappings.remember("contact", "102", "59")  # remembered without facts, as before they were

    assert mappings.recall("contact", "101") == ("58", {"currency": "EUR", "name": "Ann Lee"})
    assert mappings.recall("contact", "102") == ("59", {})
    assert mappings.get("contact", "101") == "58"
    mappings.remember("contact", "101", "58", {"currency": "EUR", "name": "A" * 300})  # no length to fit
    assert mappings.recall("contact", "101")[1]["name"] == "A" * 300
