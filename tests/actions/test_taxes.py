"""Which QuickBooks tax code a line gets outside the US: the mapping's keys, most specific first (pure)."""

from decimal import Decimal

import pytest

from actions.errors import ActionError
from actions.steps.source import Record
from actions.steps.taxes import hubspot_rate_keys, mapped_code

CODES = {
    "7": {
        "Id": "7",
        "Name": "20.0% S",
        "Active": True,
        "SalesTaxRateList": {"TaxRateDetail": [{"TaxRateRef": {"value": "70"}}]},
    },
    "8": {
        "Id": "8",
        "Name": "0.0% Z",
        "Active": True,
        "SalesTaxRateList": {"TaxRateDetail": [{"TaxRateRef": {"value": "80"}}]},
    },
    "9": {"Id": "9", "Name": "No VAT", "Active": True},
}
RATES = {"70": {"Id": "70", "RateValue": 20}, "80": {"Id": "80", "RateValue": 0}}


class Ctx:
    def __init__(self, **settings):
        self.settings = settings
        self.inputs = {}

    def input(self, name, default=""):
        return self.inputs.get(name, default)


def line(**properties):
    return Record(id="1", properties={"name": "Widget", "amount": "100", **properties})


@pytest.mark.parametrize(
    "properties, keys",
    [
        ({"hs_tax_rate_group_id": "tg-1", "hs_tax_rate": "20.0"}, ["tg-1", "20"]),
        ({"hs_tax_rate": "7.50"}, ["7.5"]),
        ({"hs_tax_amount": "20"}, ["20"]),  # the rate its amount implies
        ({"hs_tax_rate": "0"}, ["0"]),
        ({}, []),
    ],
)
def test_keys_most_specific_first(properties, keys):
    assert hubspot_rate_keys(line(**properties)) == keys


def test_a_rate_group_without_its_own_mapping_falls_back_to_its_rate():
    ctx = Ctx(tax_codes={"20": "7"})
    assert mapped_code(ctx, line(hs_tax_rate_group_id="tg-1", hs_tax_rate="20"), CODES, RATES) == ("7", Decimal(20))


def test_a_rate_group_mapping_wins_over_the_rate():
    ctx = Ctx(tax_codes={"tg-1": "8", "20": "7"})
    assert mapped_code(ctx, line(hs_tax_rate_group_id="tg-1", hs_tax_rate="20"), CODES, RATES)[0] == "8"


def test_a_zero_rate_uses_its_mapping_else_the_default():
    assert mapped_code(Ctx(tax_codes={"0": "8"}, default_tax_code="9"), line(hs_tax_rate="0"), CODES, RATES)[0] == "8"
    assert mapped_code(Ctx(default_tax_code="9"), line(hs_tax_rate="0"), CODES, RATES)[0] == "9"


def test_an_unmapped_group_and_rate_name_both_keys():
    with pytest.raises(ActionError) as caught:
        mapped_code(Ctx(), line(hs_tax_rate_group_id="tg-1", hs_tax_rate="5"), CODES, RATES)
    assert caught.value.code == "TAX_CODE_MISSING"
    assert 'tax_codes (add "tg-1" or "5"' in caught.value.message
    assert "rate group tg-1 and rate 5%" in caught.value.message
