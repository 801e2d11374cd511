"""The console's sync errors, history and execution pages, and retry and dismiss, through the Flask test client.

Failures come from real executions against the fakes (a deal whose line item has no QuickBooks product fails
with PRODUCT_NOT_FOUND); other portals' executions are inserted directly. A retry runs the same execution
(same callbackId, same QuickBooks request ids and journal), so it never leaves a second document behind, and
HubSpot's callback is completed only while it is still open.
"""

import re
from datetime import timedelta
from html import unescape

import pytest
from sqlalchemy import select

from actions.errors import CATALOGUE
from actions.settings import DEFAULT_SETTINGS
from app.console import service
from app.extensions import db
from app.storage.models import Execution, utcnow
from tests.conftest import PORTAL_ID, REALM_ID
from tests.scenarios import add_contact, add_line_items, seed_products, stored_executions

OTHER_PORTAL = 777001
GADGET = {"name": "Gadget", "hs_sku": "G-1", "quantity": "1", "price": "50", "amount": "50", "hs_product_id": "503"}
WIDGET = {"name": "Widget", "hs_sku": "W-1", "quantity": "2", "price": "100", "amount": "200", "hs_product_id": "501"}
CALLBACKS = "POST /automation/actions/callbacks"
# The JSON searches and the retry's conditional UPDATE (on updated_at) run on both databases.
BOTH_BACKENDS = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)


@pytest.fixture(autouse=True)
def other_console_pages(app):
    """base.html's nav links to the settings page, built in parallel: stand in for it until it exists."""
    if "console.settings" not in app.view_functions:
        app.add_url_rule("/settings", endpoint="console.settings", view_func=lambda: "settings")


@pytest.fixture
def signed_in(client, portal):
    with client.session_transaction() as session:
        session["portal_id"] = PORTAL_ID
    return client


@pytest.fixture
def items(fake_quickbooks):
    """QuickBooks' Widget and Setup service; no Gadget."""
    return seed_products(fake_quickbooks)


@pytest.fixture
def deal_with(portal, items):
    """deal_with(lines, contact=True): a deal billed to Ann Lee with these line items; its id."""

    def make(lines, contact=True, name="Ann", email="ann.lee@acme.test") -> str:
        deal_id = portal.add("deals", {"dealname": "Acme rollout", "amount": "50", "closedate": "2026-11-30"})
        add_line_items(portal, "deals", deal_id, lines)
        if contact:
            add_contact(portal, deal_id, email=email, firstname=name, lastname="Lee")
        return str(deal_id)

    return make


@pytest.fixture
def failed_invoice(action_for, deal_with):
    """A create_invoice execution that failed with PRODUCT_NOT_FOUND (a Gadget QuickBooks lacks); (deal, execution)."""

    def run(callback_id=None, **inputs):
        deal_id = deal_with([GADGET])
        fields = action_for("create_invoice", deal_id, callback_id=callback_id, **inputs)
        assert fields["error_code"] == "PRODUCT_NOT_FOUND", fields
        return deal_id, latest_execution()

    return run


def latest_execution() -> Execution:
    """The newest execution as stored now (a snapshot: later runs do not change it)."""
    db.session.expire_all()  # the worker wrote through its own session
    row = db.session.scalars(select(Execution).order_by(Execution.id.desc())).first()
    db.session.expunge(row)
    return row


def execution(app, execution_id) -> Execution:
    with app.app_context():
        db.session.expire_all()
        row = db.session.get(Execution, execution_id)
        db.session.expunge(row)
        return row


def csrf_token(client, path="/sync-errors") -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).get_data(as_text=True))
    assert found, f"no CSRF token on {path}"
    return found.group(1)


def post(client, path, **form):
    return client.post(path, data={"csrf_token": csrf_token(client), **form})


def page(client, path) -> str:
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    return response.get_data(as_text=True)


def flashes(html: str) -> list[str]:
    found = re.findall(r'<p class="flash[^"]*"[^>]*>(.*?)</p>', html, re.S)
    return [unescape(re.sub(r"\s+", " ", text)) for text in found]


def cards(html: str) -> list[str]:
    return re.findall(r'<article class="error-card".*?</article>', html, re.S)


def insert(app, portal_id=PORTAL_ID, n=1, **fields) -> list[int]:
    """Executions written directly (another portal's, or many), newest last."""
    ids = []
    with app.app_context():
        start = utcnow() - timedelta(hours=n + 1)
        for i in range(n):
            values = {
                "callback_id": f"ap-{portal_id}-{i}-{fields.get('object_id', 'x')}-{utcnow().timestamp()}",
                "action": "create_invoice",
                "object_type": "DEAL",
                "object_id": str(9000 + i),
                "status": Execution.COMPLETED,
                "outcome": "SUCCESS",
                "expires_at": utcnow() + timedelta(days=6),
                "created_at": start + timedelta(minutes=i),
                **fields,
            }
            row = Execution(portal_id=portal_id, **values)
            db.session.add(row)
            db.session.commit()
            ids.append(row.id)
    return ids


def invoices(books) -> list[dict]:
    return books.all("Invoice")


# -- sync errors ------------------------------------------------------------------------------------------


def test_a_failure_shows_with_its_explanation_fix_and_settings_link(app, signed_in, failed_invoice):
    deal_id, failed = failed_invoice()
    html = page(signed_in, "/sync-errors")
    [card] = cards(html)
    assert "PRODUCT_NOT_FOUND" in card
    assert "Create a QuickBooks invoice" in card  # the action's label from hubspot-app.json
    assert "Workflow 192814114" in card  # the workflow HubSpot named in the request's context
    assert f'href="https://app.hubspot.com/contacts/{PORTAL_ID}/record/0-3/{deal_id}"' in card
    explanation = unescape(re.search(r'<p class="explanation">(.*?)</p>', card, re.S).group(1))
    fix = unescape(re.search(r'<div class="fix">(.*?)</div>', card, re.S).group(1))
    assert "'Gadget' (SKU G-1)" in explanation
    assert CATALOGUE["PRODUCT_NOT_FOUND"].fix in fix
    assert "Use QuickBooks products" not in explanation  # the fix is shown apart, not twice
    assert 'href="/settings#setting-income_account"' in fix
    assert f'href="/executions/{failed.id}"' in card
    assert f'action="/executions/{failed.id}/retry"' in card and f'action="/executions/{failed.id}/dismiss"' in card


def test_no_sync_errors(signed_in, action_for, deal_with):
    action_for("create_invoice", deal_with([WIDGET]))  # a success is not a sync error
    html = page(signed_in, "/sync-errors")
    assert "No sync errors" in html and not cards(html)


def test_filters_by_action_and_error_code_and_counts_per_code(signed_in, action_for, deal_with):
    gadget_deal, lonely_deal = deal_with([GADGET]), deal_with([WIDGET], contact=False)
    assert action_for("create_invoice", gadget_deal)["error_code"] == "PRODUCT_NOT_FOUND"
    assert action_for("create_estimate", gadget_deal)["error_code"] == "PRODUCT_NOT_FOUND"
    assert action_for("create_invoice", lonely_deal)["error_code"] == "CONTACT_MISSING"

    html = page(signed_in, "/sync-errors")
    assert len(cards(html)) == 3
    counts = dict(re.findall(r"<code>([A-Z_]+)</code></a></th>\s*<td>(\d+)</td>", html))
    assert counts == {"PRODUCT_NOT_FOUND": "2", "CONTACT_MISSING": "1"}
    assert 'href="/sync-errors?error_code=PRODUCT_NOT_FOUND"' in html  # each count links to its filter
    assert '<label for="filter-action">Action</label>' in html and '<label for="filter-code">Error code</label>' in html

    by_code = page(signed_in, "/sync-errors?error_code=PRODUCT_NOT_FOUND")
    assert len(cards(by_code)) == 2 and "CONTACT_MISSING</code> ·" not in by_code
    by_action = page(signed_in, "/sync-errors?action=create_estimate")
    assert [("Create a QuickBooks estimate" in card) for card in cards(by_action)] == [True]
    assert re.findall(r"<code>([A-Z_]+)</code></a></th>\s*<td>(\d+)</td>", by_action) == [("PRODUCT_NOT_FOUND", "1")]
    both = page(signed_in, "/sync-errors?action=create_estimate&error_code=CONTACT_MISSING")
    assert not cards(both) and "No sync errors match these filters" in both
    newest_first = cards(html)
    assert "CONTACT_MISSING" in newest_first[0] and "estimate" in newest_first[1]


def test_each_setting_link_names_a_real_setting_and_a_real_error_code():
    assert set(service.SETTING_FOR_ERROR) <= set(CATALOGUE)
    assert set(service.SETTING_FOR_ERROR.values()) <= set(DEFAULT_SETTINGS)


# -- retry -------------------------------------------------------------------------------------------------


@BOTH_BACKENDS
def test_retry_after_fixing_the_cause_succeeds_with_one_invoice(
    app, signed_in, failed_invoice, books, fake_hubspot, fake_quickbooks
):
    """HubSpot took the FAIL_CONTINUE already: the retry stores the success, and HubSpot is not asked again."""
    _, failed = failed_invoice()
    callback_id = failed.callback_id
    books.add_item(Name="Gadget", Sku="G-1", UnitPrice=50)

    response = post(signed_in, f"/executions/{failed.id}/retry")
    assert response.status_code == 302 and response.headers["Location"].endswith("/sync-errors")
    html = page(signed_in, "/sync-errors")
    [invoice] = invoices(books)
    [message] = flashes(html)
    assert message.startswith(f"Retried: it succeeded — QuickBooks invoice {invoice['DocNumber']}.")
    assert "HubSpot had already recorded the earlier failure" in message
    assert not cards(html) and "No sync errors" in html

    retried = execution(app, failed.id)
    assert (retried.callback_id, retried.status, retried.outcome) == (callback_id, "completed", "SUCCESS")
    assert retried.outputs["quickbooks_document_id"] == invoice["Id"]
    assert (retried.error_code, retried.error_message, retried.dismissed_at) == (None, None, None)
    assert retried.completed_at == failed.completed_at  # when HubSpot took the earlier outcome
    assert retried.notes[0].startswith("Retried from the console on ")
    assert retried.notes[0].endswith(" UTC after FAIL_CONTINUE PRODUCT_NOT_FOUND.")
    assert any("workflow went on with that one; this SUCCESS is kept here only" in note for note in retried.notes[1:])
    # A callback takes one completion: HubSpot keeps the earlier outcome and was not called again.
    assert [c.output_fields["hs_execution_state"] for c in fake_hubspot.completions] == ["FAIL_CONTINUE"]
    assert [a.callback_id for a in fake_hubspot.completion_attempts] == [callback_id]

    details = page(signed_in, f"/executions/{failed.id}")
    assert "succeeded" in details and f'href="{retried.outputs["quickbooks_document_url"]}"' in details
    retries = re.search(r"<h3>Retries</h3>\s*<ul>(.*?)</ul>", details, re.S).group(1)
    assert "after FAIL_CONTINUE PRODUCT_NOT_FOUND" in retries and "this SUCCESS is kept here only" in retries


def test_retry_completes_a_callback_that_is_still_open(
    app, signed_in, failed_invoice, books, fake_hubspot, run_due_jobs
):
    fake_hubspot.fail_next(CALLBACKS, status=503, times=3)  # the failure's completion did not get through
    with pytest.raises(AssertionError, match="no callback completed"):
        failed_invoice()
    failed = latest_execution()
    assert (failed.status, failed.outcome, failed.completed_at) == ("finished", "FAIL_CONTINUE", None)
    assert "503" in failed.last_callback_error
    books.add_item(Name="Gadget", Sku="G-1", UnitPrice=50)

    post(signed_in, f"/executions/{failed.id}/retry")
    retried = execution(app, failed.id)
    assert (retried.status, retried.outcome) == ("completed", "SUCCESS")
    [completion] = fake_hubspot.completions
    assert completion.callback_id == failed.callback_id
    assert completion.output_fields["hs_execution_state"] == "SUCCESS"
    assert completion.output_fields["quickbooks_document_id"] == invoices(books)[0]["Id"]
    [message] = flashes(page(signed_in, "/sync-errors"))
    assert message.startswith("Retried: it succeeded — QuickBooks invoice") and "HubSpot" not in message

    run_due_jobs()  # the failure's postponed completion finds the callback completed: nothing more is sent
    assert len(fake_hubspot.completions) == 1 and len(invoices(books)) == 1
    assert execution(app, failed.id).status == "completed"


def test_retry_when_hubspot_had_settled_the_callback_unknown_to_us(app, signed_in, failed_invoice, books, fake_hubspot):
    """The earlier completion reached HubSpot but its answer was lost: HubSpot answers 'not in a pending state'."""
    fake_hubspot.fail_next(CALLBACKS, status=503, times=3)  # every inline try fails
    with pytest.raises(AssertionError):
        failed_invoice()
    failed = latest_execution()
    fake_hubspot.expire_callback(failed.callback_id)
    books.add_item(Name="Gadget", Sku="G-1", UnitPrice=50)

    post(signed_in, f"/executions/{failed.id}/retry")
    retried = execution(app, failed.id)
    assert (retried.status, retried.outcome) == ("completed", "SUCCESS")
    assert retried.notes[-1].startswith("HubSpot had already settled this callback, possibly with the outcome sent")
    assert fake_hubspot.completion_attempts[-1].status == 400 and fake_hubspot.completions == []
    assert len(invoices(books)) == 1


def test_retry_of_an_expired_execution_runs_and_leaves_the_callback_alone(
    app, signed_in, failed_invoice, books, fake_hubspot
):
    """HubSpot stopped waiting: the action still runs and its outcome is stored, but no completion is sent.
    Never completed before → 'expired'; completed before with the failure → 'completed', with a note."""
    fake_hubspot.fail_next(CALLBACKS, status=503, times=3)  # every inline try fails
    with pytest.raises(AssertionError):
        failed_invoice()
    never_completed = latest_execution()
    _, completed = failed_invoice()
    with app.app_context():
        for row in db.session.scalars(select(Execution)):
            row.expires_at = utcnow() - timedelta(minutes=1)
        db.session.commit()
    books.add_item(Name="Gadget", Sku="G-1", UnitPrice=50)
    attempts = len(fake_hubspot.completion_attempts)

    post(signed_in, f"/executions/{never_completed.id}/retry")
    [message] = flashes(page(signed_in, "/sync-errors"))
    assert "HubSpot had stopped waiting for this enrollment" in message
    post(signed_in, f"/executions/{completed.id}/retry")

    expired, kept = execution(app, never_completed.id), execution(app, completed.id)
    assert (expired.status, expired.outcome, expired.completed_at) == ("expired", "SUCCESS", None)
    assert (kept.status, kept.outcome, kept.completed_at) == ("completed", "SUCCESS", completed.completed_at)
    assert "HubSpot was not asked again" in kept.notes[-1]
    assert expired.outputs["quickbooks_document_id"] and kept.outputs["quickbooks_document_id"]
    assert len(fake_hubspot.completion_attempts) == attempts  # the callbacks were left alone
    assert [c.output_fields["hs_execution_state"] for c in fake_hubspot.completions] == ["FAIL_CONTINUE"]
    assert len(invoices(books)) == 2  # one per deal
    details = page(signed_in, f"/executions/{expired.id}")
    assert "expired: HubSpot stopped waiting before it got this outcome" in details


@BOTH_BACKENDS
def test_retrying_again_and_again_never_writes_a_second_document(
    app, signed_in, action_for, deal_with, books, fake_quickbooks
):
    """QuickBooks stored the invoice but its answer was lost (a failure): the retry gets the same invoice back."""
    fake_quickbooks.fail_next(
        "POST /invoice", status=400, code=6000, message="A business validation error", commit=True
    )
    fields = action_for("create_invoice", deal_with([WIDGET]))
    assert fields["error_code"] == "QUICKBOOKS_VALIDATION"
    [stored] = invoices(books)  # in QuickBooks, unknown to the execution
    failed = latest_execution()

    fake_quickbooks.fail_next("POST /invoice", status=400, code=6000, message="Still refusing")
    post(signed_in, f"/executions/{failed.id}/retry")
    assert flashes(page(signed_in, "/sync-errors")) == ["Retried: it failed again: QUICKBOOKS_VALIDATION."]
    assert execution(app, failed.id).outcome == "FAIL_CONTINUE"

    post(signed_in, f"/executions/{failed.id}/retry")
    assert flashes(page(signed_in, "/sync-errors"))[0].startswith("Retried: it succeeded")
    post(signed_in, f"/executions/{failed.id}/retry")  # a second click, or a stale page
    assert flashes(page(signed_in, "/sync-errors")) == [
        f"Execution {failed.id} has not failed: there is nothing to retry."
    ]

    [invoice] = invoices(books)
    assert invoice["Id"] == stored["Id"]  # the same request id: QuickBooks answered with the first invoice
    retried = execution(app, failed.id)
    assert retried.outputs["quickbooks_document_id"] == stored["Id"]
    assert sum(note.startswith("Retried from the console") for note in retried.notes) == 2
    assert len(books.all("Customer")) == 1


def test_a_retry_is_queued_when_the_worker_runs_it_later(app, signed_in, failed_invoice, monkeypatch):
    _, failed = failed_invoice()
    queued = []
    monkeypatch.setattr("app.queue.enqueue_execution", lambda execution_id, delay=None: queued.append(execution_id))
    post(signed_in, f"/executions/{failed.id}/retry", next=f"/executions/{failed.id}")
    assert queued == [failed.id]
    html = page(signed_in, f"/executions/{failed.id}")
    assert flashes(html)[0].startswith("Retry queued")
    pending = execution(app, failed.id)
    assert (pending.status, pending.outcome, pending.outputs, pending.attempts) == ("pending", None, {}, 0)
    assert pending.callback_id == failed.callback_id
    assert "PRODUCT_NOT_FOUND" not in page(signed_in, "/sync-errors")  # no longer a failure while it runs
    # A second retry of the pending execution is refused.
    post(signed_in, f"/executions/{failed.id}/retry")
    assert "nothing to retry" in flashes(page(signed_in, "/sync-errors"))[0]
    assert queued == [failed.id]


def test_a_retry_never_takes_an_execution_whose_callback_is_being_completed(app, signed_in, failed_invoice):
    _, failed = failed_invoice()
    with app.app_context():
        row = db.session.get(Execution, failed.id)
        row.status, row.lease_until = Execution.FINISHED, utcnow() + timedelta(minutes=1)
        db.session.commit()
    post(signed_in, f"/executions/{failed.id}/retry")
    assert "being worked on right now" in flashes(page(signed_in, "/sync-errors"))[0]
    assert execution(app, failed.id).outcome == "FAIL_CONTINUE"


def test_retry_and_dismiss_redirect_only_within_the_console(signed_in, failed_invoice):
    _, failed = failed_invoice()
    for target in ("https://evil.test/", "//evil.test/x", "/\\evil.test"):
        response = post(signed_in, f"/executions/{failed.id}/retry", next=target)
        assert response.headers["Location"] == "/sync-errors", target
    response = post(signed_in, f"/executions/{failed.id}/dismiss", next="/sync-errors?action=create_invoice")
    assert response.headers["Location"] == "/sync-errors?action=create_invoice"


def test_retry_and_dismiss_need_the_csrf_token(app, signed_in, failed_invoice):
    _, failed = failed_invoice()
    assert signed_in.post(f"/executions/{failed.id}/retry").status_code == 400
    assert signed_in.post(f"/executions/{failed.id}/dismiss").status_code == 400
    assert execution(app, failed.id).dismissed_at is None


# -- dismiss -----------------------------------------------------------------------------------------------


def test_dismiss_hides_the_failure_from_sync_errors_but_not_from_history(app, signed_in, failed_invoice):
    deal_id, failed = failed_invoice()
    response = post(signed_in, f"/executions/{failed.id}/dismiss")
    assert response.status_code == 302 and response.headers["Location"].endswith("/sync-errors")
    html = page(signed_in, "/sync-errors")
    assert not cards(html) and "No sync errors" in html
    assert flashes(html) == [f"Dismissed the PRODUCT_NOT_FOUND error of execution {failed.id}; History still lists it."]
    history = page(signed_in, "/history")
    assert f"Deal {deal_id}" in history and "dismissed" in history
    with app.app_context():
        assert service.failure_counts(db.session, portal_id=PORTAL_ID) == {}  # nor on the home page's banner

    post(signed_in, f"/executions/{failed.id}/retry")  # a dismissed failure can still be retried
    assert execution(app, failed.id).dismissed_at is None
    assert "failed again: PRODUCT_NOT_FOUND" in flashes(page(signed_in, "/sync-errors"))[0]


# -- history -----------------------------------------------------------------------------------------------


def rows(html: str) -> list[str]:
    return re.findall(r"<tr>\s*<td><time.*?</tr>", html, re.S)


def test_history_lists_every_execution_with_state_and_document_link(signed_in, action_for, deal_with, books):
    good_deal, bad_deal = deal_with([WIDGET]), deal_with([GADGET])
    action_for("create_invoice", good_deal)
    action_for("create_invoice", bad_deal)
    html = page(signed_in, "/history")
    failed, succeeded = rows(html)  # newest first
    assert f"Deal {bad_deal}" in failed and '<span class="badge bad">failed</span>' in failed
    assert "PRODUCT_NOT_FOUND" in failed
    [invoice] = invoices(books)
    assert f"Deal {good_deal}" in succeeded and '<span class="badge good">succeeded</span>' in succeeded
    assert f"Invoice {invoice['DocNumber']}" in succeeded
    assert f'href="https://app.sandbox.qbo.intuit.com/app/invoice?txnId={invoice["Id"]}"' in succeeded
    assert "Create a QuickBooks invoice" in succeeded and 'href="/executions/' in succeeded


@BOTH_BACKENDS
def test_history_search_by_record_document_number_and_customer(app, signed_in, action_for, deal_with, books):
    ann_deal, bob_deal = deal_with([WIDGET]), deal_with([WIDGET], name="Bob", email="bob@acme.test")
    action_for("create_invoice", ann_deal)
    action_for("create_invoice", bob_deal)
    ann_execution, bob_execution = stored_executions(app)
    ann_invoice = books.get("Invoice", ann_execution.outputs["quickbooks_document_id"])

    def found(q):
        return re.findall(r">Deal (\d+)<", page(signed_in, f"/history?q={q}"))

    assert found(ann_deal) == [ann_deal]
    assert found(ann_invoice["DocNumber"]) == [ann_deal]
    assert found(bob_execution.outputs["quickbooks_customer_id"]) == [bob_deal]
    assert found("no-such-thing") == [] and "No executions match" in page(signed_in, "/history?q=no-such-thing")
    assert found("%") == []  # LIKE wildcards are taken literally

    # Customer names are searchable where the executions stored them: notes and error messages.
    insert(app, object_id="4242", notes=["QuickBooks display name 'Zoë Müller' is taken; using 'Zoë Müller (2)'."])
    insert(app, object_id="4343", outcome="FAIL_CONTINUE", error_code="CONTACT_NOT_ELIGIBLE",
           error_message="Contact Carla Diaz (carla@acme.test) does not meet the data-sync filter.")  # fmt: skip
    assert found("zoë müller") == ["4242"]
    assert found("carla diaz") == ["4343"] and found("zoë") == ["4242"]


def test_history_pages_by_25_newest_first(app, signed_in):
    insert(app, n=30)
    first = page(signed_in, "/history")
    assert len(rows(first)) == 25
    assert 'rel="next"' in first and 'rel="prev"' not in first
    assert "Deal 9029" in rows(first)[0]  # the newest
    older = re.search(r'href="([^"]+)" rel="next">Older', first).group(1)
    second = page(signed_in, older.replace("&amp;", "&"))
    assert len(rows(second)) == 5 and "Deal 9000" in rows(second)[-1]
    assert 'rel="next"' not in second and re.search(r'href="/history" rel="prev">Newer', second)


def test_history_paging_keeps_the_search(app, signed_in):
    insert(app, n=27, notes=["Created for Ann Lee"])
    insert(app, n=3)
    html = page(signed_in, "/history?q=ann+lee")
    assert len(rows(html)) == 25
    assert 'href="/history?q=ann+lee&amp;page=2" rel="next"' in html
    assert len(rows(page(signed_in, "/history?q=ann+lee&page=2"))) == 2


# -- one execution -----------------------------------------------------------------------------------------


def test_execution_details_show_steps_writes_notes_and_callback(app, signed_in, action_for, deal_with, books):
    deal_id = deal_with([WIDGET, GADGET])
    fields = action_for("create_invoice", deal_id, create_missing_products="true")
    assert fields["hs_execution_state"] == "SUCCESS", fields
    done = latest_execution()
    with app.app_context():
        row = db.session.get(Execution, done.id)
        row.notes = [*row.notes, "2 QuickBooks customers match contact Ann Lee; chose 12 because it is the oldest."]
        db.session.commit()
    html = page(signed_in, f"/executions/{done.id}")
    invoice = books.get("Invoice", fields["quickbooks_document_id"])
    gadget = books.find("Item", Name="Gadget")
    assert "Create a QuickBooks invoice" in html and '<span class="badge good">succeeded</span>' in html
    assert f'href="https://app.hubspot.com/contacts/{PORTAL_ID}/record/0-3/{deal_id}"' in html
    assert f'href="{fields["quickbooks_document_url"]}"' in html
    assert f"QuickBooks customer {fields['quickbooks_customer_id']}, created by this execution" in html
    assert "chose 12 because it is the oldest" in html
    assert f"Product {gadget['Id']}" in html  # created, since the action was told to
    assert re.search(rf"<th scope=\"row\">invoice</th><td>Invoice</td><td>{invoice['Id']}</td>", html)
    assert "completed: HubSpot has settled this callback" in html and done.callback_id in html
    assert "create_missing_products" in html and REALM_ID in html
    assert "Retry" not in html  # a success has nothing to retry


def test_execution_details_of_a_failure_offer_retry_and_dismiss(signed_in, failed_invoice):
    _, failed = failed_invoice()
    html = page(signed_in, f"/executions/{failed.id}")
    assert "Failed: <code>PRODUCT_NOT_FOUND</code>" in html and 'class="fix"' in html
    assert 'href="/settings#setting-income_account"' in html
    assert f'action="/executions/{failed.id}/retry"' in html and f'action="/executions/{failed.id}/dismiss"' in html
    post(signed_in, f"/executions/{failed.id}/dismiss", next=f"/executions/{failed.id}")
    html = page(signed_in, f"/executions/{failed.id}")
    assert "hidden from the sync errors" in html and f'action="/executions/{failed.id}/dismiss"' not in html


# -- portals -----------------------------------------------------------------------------------------------


@BOTH_BACKENDS
def test_another_portals_executions_are_404_and_never_listed(app, signed_in, failed_invoice):
    _, mine = failed_invoice()
    [theirs] = insert(
        app,
        portal_id=OTHER_PORTAL,
        object_id="31337",
        outcome="FAIL_CONTINUE",
        error_code="TAX_CODE_MISSING",
        error_message="The line item Secret has a rate.",
        outputs={"quickbooks_document_number": "1001"},
    )
    for path in (f"/executions/{theirs}",):
        assert signed_in.get(path).status_code == 404
    for action in ("retry", "dismiss"):
        assert post(signed_in, f"/executions/{theirs}/{action}").status_code == 404
    assert post(signed_in, "/executions/999999/retry").status_code == 404
    other = execution(app, theirs)
    assert (other.outcome, other.dismissed_at, other.status) == ("FAIL_CONTINUE", None, "completed")

    sync_errors = page(signed_in, "/sync-errors")
    assert len(cards(sync_errors)) == 1 and "TAX_CODE_MISSING" not in sync_errors
    for q in ("", "31337", "1001", "Secret"):
        assert "31337" not in "".join(rows(page(signed_in, f"/history?q={q}")))
    assert not cards(page(signed_in, "/sync-errors?error_code=TAX_CODE_MISSING"))
    assert f"/executions/{mine.id}" in sync_errors


def test_signed_out_pages_go_home(client, portal):
    for path in ("/sync-errors", "/history", "/executions/1"):
        response = client.get(path)
        assert response.status_code == 302 and response.headers["Location"] == "/"
