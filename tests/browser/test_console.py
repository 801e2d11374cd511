"""The console in a real browser: sign in, connect QuickBooks, settings, a sync error fixed by Retry, history,
and one portal unable to see another's data. One demo (fifteen executions) serves the whole module."""

import re
import time

import pytest
from sqlalchemy import select

from app.extensions import db
from app.storage.models import Execution
from tests.browser.conftest import screenshot

pytestmark = pytest.mark.browser
OTHER_PORTAL = 88001
SECOND_REALM = "9130350000000077"


def sign_in(page, demo, portal_id=None):
    """Through the fake HubSpot, which approves at once: the browser lands on the console's home page."""
    if portal_id:
        demo.hubspot.next_install_portal = portal_id
    try:
        page.goto(demo.sign_in_url)
    finally:
        demo.hubspot.next_install_portal = 62515
    page.wait_for_url(demo.url + "/")


def stored(demo, **where) -> Execution:
    with demo.app.app_context():
        db.session.expire_all()
        return db.session.scalars(select(Execution).filter_by(**where).order_by(Execution.id)).first()


def wait_for(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("timed out waiting for the worker")


def test_signed_out_home_explains_and_offers_sign_in(page, demo):
    page.goto(demo.url + "/")
    assert page.get_by_role("heading", level=1).inner_text() == "QuickBooks actions for HubSpot workflows"
    assert page.get_by_role("link", name="Sign in with HubSpot").is_visible()
    page.goto(demo.url + "/sync-errors")  # every page of a portal's data asks to sign in first
    assert page.url == demo.url + "/"


def test_sign_in_shows_the_connection_and_the_error_banner(page, demo):
    sign_in(page, demo)
    assert "HubSpot account 62515" in page.inner_text("main")
    assert page.get_by_role("row", name=re.compile("Demo Company")).is_visible()
    assert page.get_by_role("alert").filter(has_text="sync error").is_visible()
    screenshot(page, "home")


def test_a_failed_execution_shows_its_fix_and_retry_makes_it_succeed(page, demo):
    failed = stored(demo, error_code="PRODUCT_NOT_FOUND")
    sign_in(page, demo)
    page.get_by_role("link", name="Sync errors").first.click()
    card = page.locator(".error-card").filter(has_text="PRODUCT_NOT_FOUND")
    assert "Onboarding workshop" in card.inner_text()  # the line item it names
    assert "create the product in QuickBooks" in card.inner_text().lower() or "products" in card.inner_text().lower()
    screenshot(page, "sync-errors")
    screenshot(page, "sync-errors-top", full_page=False)  # what README's docs/sync-errors.png shows

    card.get_by_role("button", name="Retry").click()  # the demo added the missing product after the first run

    done = wait_for(lambda: (e := stored(demo, id=failed.id)).outcome == "SUCCESS" and e.completed_at and e)
    assert done.outputs["quickbooks_document_number"]
    assert len([i for i in demo.books.all("Invoice") if f"execution {failed.callback_id}" in i["PrivateNote"]]) == 1
    page.goto(demo.url + f"/executions/{failed.id}")
    body = page.inner_text("main")
    assert done.outputs["quickbooks_document_number"] in body
    page.goto(demo.url + "/sync-errors")
    assert page.locator(".error-card").filter(has_text="PRODUCT_NOT_FOUND").count() == 0
    screenshot(page, "after-retry")


def test_a_setting_is_saved_and_a_bad_one_refused_with_nothing_half_saved(page, demo):
    sign_in(page, demo)
    page.get_by_role("link", name="Settings").first.click()
    page.locator("[name='portal:display_name_conflicts']").select_option("fail")
    page.get_by_role("button", name=re.compile("Save", re.I)).click()
    assert "Settings saved" in page.inner_text("main")
    assert portal_settings(demo).get("display_name_conflicts") == "fail"

    page.locator("[name='portal:display_name_conflicts']").select_option("disambiguate")
    page.locator("[name='portal:contact_sync_filters']").fill("[not json")
    page.get_by_role("button", name=re.compile("Save", re.I)).click()
    assert "contact_sync_filters must be a JSON list" in page.inner_text("main")
    assert portal_settings(demo).get("display_name_conflicts") == "fail"  # nothing of that form was saved
    screenshot(page, "settings-refused")


def portal_settings(demo) -> dict:
    from app.storage.models import Portal

    with demo.app.app_context():
        db.session.expire_all()
        return dict(db.session.get(Portal, 62515).settings or {})


def test_history_is_searchable_by_document_number_and_record(page, demo):
    succeeded = next(e for e in demo.executions if e.succeeded and e.action == "create_estimate")
    sign_in(page, demo)
    page.get_by_role("link", name="History").first.click()
    page.get_by_role("searchbox").fill(succeeded.record.object_id)
    page.get_by_role("button", name="Search").click()
    page.wait_for_url(re.compile(r"q=" + succeeded.record.object_id))
    rows = page.locator("tbody tr")
    assert rows.count() >= 1 and all(
        succeeded.record.object_id in rows.nth(i).inner_text() for i in range(rows.count())
    )
    screenshot(page, "history")

    number = succeeded.outputs["quickbooks_document_number"]
    page.get_by_role("searchbox").fill(number)
    page.get_by_role("button", name="Search").click()
    page.wait_for_url(re.compile(r"q=" + number))
    assert f"Estimate {number}" in page.inner_text("tbody")


def test_connect_another_quickbooks_company(page, demo):
    demo.quickbooks.add_company(SECOND_REALM, name="Second Books Ltd", country="GB")
    demo.quickbooks.next_consent_realm = SECOND_REALM
    sign_in(page, demo)
    page.get_by_role("link", name=re.compile("Connect another QuickBooks company")).click()
    page.wait_for_url(demo.url + "/")
    assert "Second Books Ltd is connected" in page.inner_text("main")
    assert page.get_by_role("row", name=re.compile("Second Books Ltd")).is_visible()


def test_another_portal_sees_and_changes_nothing_of_this_one(page, demo):
    failed = stored(demo, portal_id=62515, outcome="FAIL_CONTINUE")
    sign_in(page, demo, portal_id=OTHER_PORTAL)
    assert f"HubSpot account {OTHER_PORTAL}" in page.inner_text("main")
    assert "Demo Company" not in page.inner_text("main")
    page.goto(demo.url + "/sync-errors")
    assert page.locator(".error-card").count() == 0
    response = page.goto(demo.url + f"/executions/{failed.id}")
    assert response.status == 404
    # A forged retry of the other portal's execution (with this session's own CSRF token) is refused too.
    page.goto(demo.url + "/history")
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    answer = page.request.post(demo.url + f"/executions/{failed.id}/retry", form={"csrf_token": token})
    assert answer.status == 404
    assert stored(demo, id=failed.id).outcome == "FAIL_CONTINUE"


def test_usable_on_a_phone(browser, demo):
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    try:
        sign_in(page, demo)
        page.goto(demo.url + "/sync-errors")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 400  # no sideways scrolling on a phone
        screenshot(page, "sync-errors-phone")
    finally:
        context.close()
