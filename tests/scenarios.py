"""Records seeded in the fakes: a deal with a contact and line items, and matching QuickBooks products."""

from dataclasses import dataclass

from tests.conftest import REALM_ID


@dataclass
class DealScenario:
    deal_id: str
    contact_id: str
    line_item_ids: list
    widget_id: str  # QuickBooks Item ids
    service_id: str


def seed_deal(hubspot_portal, fake_quickbooks, *, email="ann.lee@acme.test", firstname="Ann", lastname="Lee",
              lines=None) -> DealScenario:
    company = fake_quickbooks.company(REALM_ID)
    income = min(company.all("Account"), key=lambda a: int(a["Id"]))["Id"]
    widget = company.add_item(Name="Widget", Sku="W-1", Type="NonInventory", UnitPrice=100,
                              IncomeAccountRef={"value": income})
    service = company.add_item(Name="Setup service", Type="Service", UnitPrice=250,
                               IncomeAccountRef={"value": income})
    contact_id = hubspot_portal.add("contacts", {"email": email, "firstname": firstname, "lastname": lastname})
    deal_id = hubspot_portal.add("deals", {"dealname": "Acme rollout", "amount": "450", "closedate": "2026-11-30"})
    hubspot_portal.associate("deals", deal_id, "contacts", contact_id)
    lines = lines if lines is not None else [
        {"name": "Widget", "hs_sku": "W-1", "quantity": "2", "price": "100", "amount": "200", "hs_product_id": "501"},
        {"name": "setup SERVICE", "quantity": "1", "price": "250", "amount": "250", "hs_product_id": "502"},
    ]
    line_item_ids = []
    for properties in lines:
        line_id = hubspot_portal.add("line_items", properties)
        hubspot_portal.associate("deals", deal_id, "line_items", line_id)
        line_item_ids.append(line_id)
    return DealScenario(str(deal_id), str(contact_id), line_item_ids, str(widget["Id"]), str(service["Id"]))
