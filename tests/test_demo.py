"""`make demo` (tests/demo.py): the demo scenario runs in-process, every action settles with the outcome the
summary promises, the documents land in the fake QuickBooks, and the printed URL signs a browser in."""

import io
import socket
from collections import Counter
from urllib.parse import urlsplit

import pytest
import requests

from actions import ACTION_NAMES
from tests.conftest import PORTAL_ID
from tests.demo import ENTITIES, WORKSHOP, Demo, Execution, run_demo


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo after its run, still serving (module-wide: the scenario runs once for these tests)."""
    with Demo(port=0, instance_path=tmp_path_factory.mktemp("demo") / "instance", out=io.StringIO()) as demo:
        demo.run()
        yield demo


def failures(demo) -> dict[str, Execution]:
    return {e.error_code: e for e in demo.executions if not e.succeeded}


def test_every_action_runs_a_handful_of_times_and_settles(demo):
    counts = Counter(e.action for e in demo.executions)

    assert set(counts) == set(ACTION_NAMES)
    assert all(count >= 2 for count in counts.values()), counts
    for execution in demo.executions:
        assert execution.outcome in ("SUCCESS", "FAIL_CONTINUE"), execution
        assert (execution.error_code or execution.outcome) == execution.expected, execution.outputs
    assert {e.callback_id for e in demo.executions} == {c.callback_id for c in demo.hubspot.completions}


def test_the_usual_failures_happen_with_their_codes_and_explanations(demo):
    failed = failures(demo)

    assert {"CONTACT_NOT_ELIGIBLE", "PRODUCT_NOT_FOUND"} <= set(failed)
    assert len(failed) >= 5  # and more of the catalogue
    assert all(e.outputs["error_message"] for e in failed.values())
    assert "Onboarding workshop" in failed["PRODUCT_NOT_FOUND"].outputs["error_message"]
    assert failed["CONTACT_NOT_ELIGIBLE"].record.object_type == "DEAL"
    assert "email" in failed["CONTACT_NOT_ELIGIBLE"].outputs["error_message"]


def test_successes_wrote_their_documents_to_quickbooks(demo):
    succeeded = [e for e in demo.executions if e.succeeded]

    assert {e.action for e in succeeded} == set(ACTION_NAMES)
    for execution in succeeded:
        document = demo.books.get(ENTITIES[execution.action], execution.outputs["quickbooks_document_id"])
        assert document is not None, execution.outputs
        assert document.get("DocNumber", "") == execution.outputs["quickbooks_document_number"]
    paid = next(e for e in succeeded if e.action == "create_paid_invoice")
    assert demo.books.get("Payment", paid.outputs["quickbooks_payment_id"]) is not None
    # Failures wrote nothing: one document per success (the paid invoice's payment aside).
    written = sum(len(demo.books.all(entity)) for entity in set(ENTITIES.values()))
    assert written == len(succeeded)


def test_the_summary_lists_every_execution_and_the_sign_in_url(demo):
    report = demo.report()
    port = urlsplit(demo.url).port

    assert demo.sign_in_url == f"http://127.0.0.1:{port}/sign-in"
    assert f"Open {demo.sign_in_url} " in report
    assert demo.app.config["PUBLIC_URL"] == demo.url
    for number, execution in enumerate(demo.executions, start=1):
        row = next(line for line in report.splitlines() if line.split()[:2] == [str(number), execution.action])
        assert str(execution.record) in row and execution.result() in row
    product_missing = failures(demo)["PRODUCT_NOT_FOUND"]
    assert (
        f"PRODUCT_NOT_FOUND on deal {product_missing.record.object_id}: the demo adds the missing product now — "
        "press Retry on the Sync errors page to see it succeed." in report
    )
    assert "Unexpected" not in report


def test_the_sign_in_url_signs_a_browser_in_to_the_demo_portal(demo):
    browser = requests.Session()

    landed = browser.get(demo.sign_in_url, timeout=10)

    assert landed.status_code == 200
    hops = [urlsplit(response.url) for response in landed.history]
    assert any(hop.path == "/oauth/authorize" and hop.port == urlsplit(demo.hubspot.url).port for hop in hops)
    assert any(hop.path == "/oauth/hubspot/callback" for hop in hops)
    assert urlsplit(landed.url).path == "/"  # the callback lands on the console's home page
    assert "Signed in to HubSpot account" in landed.text
    session = demo.app.session_interface.get_signing_serializer(demo.app).loads(browser.cookies["session"])
    assert session["portal_id"] == PORTAL_ID
    assert browser.get(demo.url + "/", timeout=10).status_code == 200


def test_the_missing_product_is_added_so_running_the_deal_again_succeeds(demo):
    failed = failures(demo)["PRODUCT_NOT_FOUND"]
    again = Execution(failed.action, failed.record, "SUCCESS")  # HubSpot enrolls the deal again

    demo.send(again)
    demo.wait_until_settled([again], timeout=15)

    assert again.succeeded, again.outputs
    invoice = demo.books.get("Invoice", again.outputs["quickbooks_document_id"])
    items = [
        line["SalesItemLineDetail"]["ItemRef"]["value"] for line in invoice["Line"] if "SalesItemLineDetail" in line
    ]
    assert demo.books.find("Item", Name=WORKSHOP["name"])["Id"] in items


def test_nothing_is_configured_to_leave_the_machine(demo):
    config = demo.app.config
    for key in (
        "PUBLIC_URL",
        "HUBSPOT_API_BASE_URL",
        "HUBSPOT_AUTHORIZE_URL",
        "QBO_ENVIRONMENT",
        "QBO_API_BASE_URL",
        "QBO_APP_URL",
    ):
        assert urlsplit(config[key]).hostname == "127.0.0.1", (key, config[key])
    assert config["SENTRY_DSN"] == "" and config["REDIS_URL"] == ""
    assert config["DATABASE_URL"].startswith("sqlite:///") and not config["QUEUE_IMMEDIATE"]


def test_no_serve_runs_prints_and_stops(tmp_path):
    out = io.StringIO()

    demo = run_demo(0, serve=False, instance_path=tmp_path / "instance", out=out)

    printed = out.getvalue()
    assert f"Open {demo.sign_in_url} " in printed
    assert "PRODUCT_NOT_FOUND on deal" in printed
    assert len(demo.executions) >= 12 and all(e.outcome for e in demo.executions)
    with pytest.raises(OSError):  # the server stopped listening
        socket.create_connection(("127.0.0.1", urlsplit(demo.url).port), timeout=1).close()
