"""Executions running at once in one worker process share HubSpot requests: their record reads, association
reads and callback completions go as one batch request each, and every execution still gets its own answer."""

import threading
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import pytest

from app.coalesce import Coalescer
from app.hubspot.client import HubSpotClient, HubSpotError, HubSpotNotFound
from tests.conftest import PORTAL_ID, FixedTokens

PORTALS = 6


@pytest.fixture
def clients(fake_hubspot):
    """Six clients of one portal (six executions' worth) sharing one process's coalescer, already busy."""
    token = fake_hubspot.issue_tokens(PORTAL_ID)["access_token"]
    coalescer = Coalescer(window=0.3)

    def client():
        tokens = FixedTokens(token)
        return HubSpotClient(base_url=fake_hubspot.url, tokens=tokens, portal_id=PORTAL_ID, coalescer=coalescer)

    built = [client() for _ in range(PORTALS)]
    return built, coalescer


def at_once(calls):
    """Run the calls together (as concurrent executions would); their answers or errors, in order."""
    barrier = threading.Barrier(len(calls))

    def run(call):
        barrier.wait()
        try:
            return call()
        except Exception as exc:  # noqa: BLE001 - compared by the test
            return exc

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def api_requests(fake_hubspot):
    return [f"{r.method} {r.path}" for r in fake_hubspot.requests if not r.path.startswith("/oauth")]


def prime(coalescer, *keys):
    for key in keys:
        coalescer.call(key, None, lambda items: items)


def test_record_reads_go_as_one_batch_read(fake_hubspot, clients):
    crm, coalescer = clients
    portal = fake_hubspot.portal(PORTAL_ID)
    deals = [str(portal.add("deals", {"dealname": f"Deal {n}", "amount": str(n)})) for n in range(5)]
    coalescer.call((crm[0].base_url, PORTAL_ID, "get", "deals", ("dealname", "amount")), None, lambda items: items)
    fake_hubspot.requests.clear()

    answers = at_once(
        [
            lambda d=d, c=c: c.get_object("deals", d, ["dealname", "amount"])
            for d, c in zip([*deals, "999999"], crm, strict=True)
        ]
    )

    assert [a["properties"]["dealname"] for a in answers[:5]] == [f"Deal {n}" for n in range(5)]
    assert isinstance(answers[5], HubSpotNotFound)  # only the missing record's execution hears of it
    assert api_requests(fake_hubspot) == ["POST /crm/objects/2026-03/deals/batch/read"]


def test_association_reads_go_as_one_batch_read(fake_hubspot, clients):
    crm, coalescer = clients
    portal = fake_hubspot.portal(PORTAL_ID)
    deals = []
    for n in range(PORTALS):
        deal = portal.add("deals", {"dealname": f"Deal {n}"})
        if n:  # the first deal has no contact
            portal.associate("deals", deal, "contacts", portal.add("contacts", {"email": f"c{n}@x.test"}))
        deals.append(str(deal))
    coalescer.call((crm[0].base_url, PORTAL_ID, "associations", "deals", "contacts"), None, lambda items: items)
    fake_hubspot.requests.clear()

    answers = at_once(
        [lambda d=d, c=c: c.associations("deals", d, "contacts") for d, c in zip(deals, crm, strict=True)]
    )

    assert answers[0] == [] and all(len(a) == 1 for a in answers[1:])
    assert api_requests(fake_hubspot) == ["POST /crm/associations/2026-03/deals/contacts/batch/read"]


def test_callbacks_complete_together_and_one_already_completed_spoils_nothing(fake_hubspot, clients):
    crm, coalescer = clients
    callbacks = [fake_hubspot.new_callback_id(PORTAL_ID) for _ in range(PORTALS)]
    crm[0].complete_callback(callbacks[0], {"hs_execution_state": "SUCCESS"})  # HubSpot took this one already
    fake_hubspot.requests.clear()

    answers = at_once(
        [
            lambda cb=cb, c=c: c.complete_callback(cb, {"hs_execution_state": "SUCCESS"})
            for cb, c in zip(callbacks, crm, strict=True)
        ]
    )

    assert isinstance(answers[0], HubSpotError) and "not in a pending state" in answers[0].message
    assert answers[1:] == [None] * (PORTALS - 1)
    assert fake_hubspot.completions_by_callback() == {cb: 1 for cb in callbacks}
    paths = api_requests(fake_hubspot)
    assert paths[0] == "POST /automation/actions/callbacks/2026-03/complete"  # the batch, refused as a whole
    assert len(paths) == 1 + PORTALS  # then each on its own


def test_callbacks_all_pending_complete_in_one_request(fake_hubspot, clients):
    crm, coalescer = clients
    callbacks = [fake_hubspot.new_callback_id(PORTAL_ID) for _ in range(PORTALS)]
    prime(coalescer, (crm[0].base_url, PORTAL_ID, "complete"))
    fake_hubspot.requests.clear()

    at_once(
        [
            lambda cb=cb, c=c: c.complete_callback(cb, {"hs_execution_state": "SUCCESS"})
            for cb, c in zip(callbacks, crm, strict=True)
        ]
    )

    assert api_requests(fake_hubspot) == ["POST /automation/actions/callbacks/2026-03/complete"]
    assert fake_hubspot.completions_by_callback() == {cb: 1 for cb in callbacks}


def test_a_lone_call_uses_the_single_record_endpoint_at_once(fake_hubspot, clients):
    crm, _ = clients
    deal = str(fake_hubspot.portal(PORTAL_ID).add("deals", {"dealname": "Alone"}))
    fake_hubspot.requests.clear()
    assert crm[0].get_object("deals", deal, ["dealname"])["properties"]["dealname"] == "Alone"
    assert api_requests(fake_hubspot) == [f"GET /crm/objects/2026-03/deals/{deal}"]


def test_record_updates_go_as_one_batch_update(fake_hubspot, clients):
    crm, coalescer = clients
    portal = fake_hubspot.portal(PORTAL_ID)
    deals = [str(portal.add("deals", {"dealname": f"Deal {n}"})) for n in range(PORTALS)]
    prime(coalescer, (crm[0].base_url, PORTAL_ID, "update", "deals"))
    fake_hubspot.requests.clear()

    at_once(
        [partial(c.update_object, "deals", d, {"dealname": f"Renamed {d}"}) for d, c in zip(deals, crm, strict=True)]
    )

    assert [portal.get("deals", d)["properties"]["dealname"] for d in deals] == [f"Renamed {d}" for d in deals]
    assert api_requests(fake_hubspot) == ["POST /crm/objects/2026-03/deals/batch/update"]
