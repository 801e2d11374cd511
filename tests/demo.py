"""`make demo`: try qbo-actions without a HubSpot or QuickBooks account.

One process runs everything on loopback: the real server (a werkzeug server thread) and the real job worker
(Huey's consumer, in threads), talking to the test fakes of HubSpot and QuickBooks. The demo installs the app
in a demo HubSpot account, connects a demo QuickBooks company (US), seeds deals, a quote and payments, and
sends a handful of signed executions of every action to `POST /hubspot/actions/<action>`, as HubSpot would;
some fail for the usual reasons. When every callback has completed it prints what happened and the console's
sign-in URL (the fake HubSpot approves the sign-in at once), adds the product one execution was missing so a
Retry in the console succeeds, and serves until Ctrl-C.

    python -m tests.demo [--port 5000] [--no-serve]

Its database, job queue and generated keys live in instance/demo/, wiped at each start. Nothing leaves the
machine: every URL the server calls is one of the fakes.
"""

import argparse
import itertools
import json
import logging
import os
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import requests
from huey.consumer import Consumer
from werkzeug.serving import make_server

from app import create_app
from app.extensions import db
from app.hubspot import oauth as hubspot_oauth
from app.hubspot.signature import sign_request
from app.storage.connections import get_or_create_portal
from app.storage.migrate import upgrade
from tests.conftest import HUBSPOT_SECRET, PORTAL_ID, REALM_ID, connect_company, execution_body
from tests.fakes.hubspot import FakeHubSpot
from tests.fakes.quickbooks import FakeQuickBooks
from tests.scenarios import PAYMENT_PROPERTIES, account_id, add_line_items, seed_products

HOST = "127.0.0.1"
DEFAULT_INSTANCE = Path(__file__).resolve().parent.parent / "instance" / "demo"
COMPANY_NAME = "Demo Company"
SETTLE_TIMEOUT = 60.0
DOCUMENTS = {
    "create_invoice": "Invoice",
    "create_estimate": "Estimate",
    "create_sales_receipt": "Sales receipt",
    "create_paid_invoice": "Paid invoice",
    "create_expense": "Expense",
    "create_refund_receipt": "Refund receipt",
}
ENTITIES = {  # where each action's document lives in QuickBooks
    "create_invoice": "Invoice",
    "create_estimate": "Estimate",
    "create_sales_receipt": "SalesReceipt",
    "create_paid_invoice": "Invoice",
    "create_expense": "Purchase",
    "create_refund_receipt": "RefundReceipt",
}
RECORD_NAMES = {"DEAL": "deal", "QUOTE": "quote", "COMMERCE_PAYMENT": "payment"}
WIDGET = {"name": "Widget", "hs_sku": "W-1", "quantity": "2", "price": "100", "amount": "200", "hs_product_id": "501"}
SETUP = {"name": "Setup service", "quantity": "1", "price": "250", "amount": "250", "hs_product_id": "502"}
# Not in QuickBooks when the demo runs; added afterwards, so a Retry in the console succeeds.
WORKSHOP = {"name": "Onboarding workshop", "hs_sku": "OW-1", "quantity": "1", "price": "900", "amount": "900"}
WORKSHOP_ITEM = {"Name": "Onboarding workshop", "Sku": "OW-1", "Type": "Service", "UnitPrice": 900}


@dataclass(frozen=True)
class Record:
    """A HubSpot record the demo seeded."""

    object_type: str  # DEAL, QUOTE or COMMERCE_PAYMENT, as HubSpot names them in the request
    object_id: str
    title: str

    def __str__(self) -> str:
        return f"{RECORD_NAMES[self.object_type]} {self.object_id}"


@dataclass
class Execution:
    """One workflow execution the demo sends, and what HubSpot's callback received for it."""

    action: str
    record: Record
    expected: str  # SUCCESS or the error code
    shows: str = ""  # what this execution demonstrates
    inputs: dict = field(default_factory=dict)
    callback_id: str = ""
    outputs: dict = field(default_factory=dict)  # the callback's output fields once settled

    @property
    def outcome(self) -> str:
        return self.outputs.get("hs_execution_state", "")

    @property
    def error_code(self) -> str:
        return self.outputs.get("error_code", "")

    @property
    def succeeded(self) -> bool:
        return self.outcome == "SUCCESS"

    def result(self) -> str:
        """The document made ("Invoice 1001") or the error code."""
        if not self.succeeded:
            return self.error_code or self.outcome or "no answer"
        number = self.outputs.get("quickbooks_document_number") or f"(id {self.outputs.get('quickbooks_document_id')})"
        extra = " + payment" if self.outputs.get("quickbooks_payment_id") else ""
        return f"{DOCUMENTS[self.action]} {number}{extra}"


class ThreadConsumer(Consumer):
    """Huey's consumer with its workers and scheduler in threads of this process (what `flask worker` runs).

    Consumer.start() would take over SIGINT and SIGTERM; here Ctrl-C belongs to the demo, which stops the
    consumer itself."""

    def _set_signal_handlers(self):
        pass


class Demo:
    """The fakes, the server and the worker; `start()`, `run()` the executions, `stop()`."""

    def __init__(self, port: int = 5000, instance_path: Path = DEFAULT_INSTANCE, out=None):
        self.out = out or sys.stdout
        self.instance_path = Path(instance_path)
        self.port = port
        self.hubspot = FakeHubSpot(client_id="hs-client-id", client_secret=HUBSPOT_SECRET)
        self.quickbooks = FakeQuickBooks(client_id="qbo-client-id", client_secret="qbo-client-secret")
        self.app = None
        self.server = None
        self.consumer = None
        self.executions: list[Execution] = []
        self._server_thread = None

    # -- the pieces --------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def sign_in_url(self) -> str:
        return self.url + "/sign-in"

    @property
    def books(self):
        return self.quickbooks.company(REALM_ID)

    @property
    def portal(self):
        return self.hubspot.portal(PORTAL_ID)

    def start(self) -> "Demo":
        # Bind first: a busy port fails at once, and PUBLIC_URL must name the port actually bound.
        try:
            self.server = make_server(HOST, self.port, self._wsgi, threaded=True)
        except OSError as error:
            raise SystemExit(
                f"Cannot listen on {HOST}:{self.port} ({error.strerror or error}). Is `make run` or another demo "
                "running? Stop it, or pick another port: make demo PORT=5001"
            ) from None
        self.port = self.server.server_port
        self.hubspot.start()
        self.quickbooks.start()
        self.quickbooks.add_company(REALM_ID, name=COMPANY_NAME, country="US")
        self.app = self._create_app()
        with self.app.app_context():
            upgrade()
        self._server_thread = threading.Thread(target=self.server.serve_forever, name="demo-server", daemon=True)
        self._server_thread.start()
        self.consumer = ThreadConsumer(
            self.app.extensions["queue"].huey,
            workers=1,  # one after another: the documents are numbered in the order the table lists them
            worker_type="thread",
            periodic=True,
            check_worker_health=False,
            max_delay=0.25,
        )
        self.consumer.start()
        return self

    def _wsgi(self, environ, start_response):
        return self.app(environ, start_response)

    def config(self) -> dict:
        """Every setting the environment could otherwise give (a DATABASE_URL or SENTRY_DSN of a real set-up)."""
        return {
            "APP_ENV": "development",
            "PUBLIC_URL": self.url,
            "SESSION_COOKIE_SECURE": False,  # plain http on loopback
            "SECRET_KEY": "",  # generated into the instance folder, as `make run` does
            "TOKEN_ENCRYPTION_KEY": "",
            "DATABASE_URL": f"sqlite:///{self.instance_path / 'demo.db'}",
            "REDIS_URL": "",
            "QUEUE_SQLITE_PATH": str(self.instance_path / "queue.db"),
            "QUEUE_NAME": "qbo-demo",
            "QUEUE_IMMEDIATE": False,
            "HUBSPOT_APP_ID": str(self.hubspot.app_id),
            "HUBSPOT_CLIENT_ID": self.hubspot.client_id,
            "HUBSPOT_CLIENT_SECRET": self.hubspot.client_secret,
            "HUBSPOT_DEVELOPER_API_KEY": self.hubspot.developer_api_key,
            "HUBSPOT_DEVELOPER_TOKEN": "",
            "HUBSPOT_API_BASE_URL": self.hubspot.url,
            "HUBSPOT_AUTHORIZE_URL": self.hubspot.url + "/oauth/authorize",
            "QBO_CLIENT_ID": self.quickbooks.client_id,
            "QBO_CLIENT_SECRET": self.quickbooks.client_secret,
            "QBO_ENVIRONMENT": self.quickbooks.discovery_url,
            "QBO_API_BASE_URL": self.quickbooks.api_base,
            "QBO_APP_URL": self.quickbooks.url,  # document links stay on loopback too
            "SENTRY_DSN": "",
            "LOG_LEVEL": "WARNING",
            "HTTP_TIMEOUT": "10",
            "RETRY_DELAYS": "1,2,5",
            "RETRY_FOR_SECONDS": "8",
            "CALLBACK_RETRY_DELAYS": "1,2,5",
        }

    def _create_app(self):
        shutil.rmtree(self.instance_path, ignore_errors=True)  # a fresh demo at each start
        self.instance_path.mkdir(parents=True)
        previous = os.environ.get("INSTANCE_PATH")
        os.environ["INSTANCE_PATH"] = str(self.instance_path)
        try:
            app = create_app(self.config())
        finally:
            if previous is None:
                os.environ.pop("INSTANCE_PATH", None)
            else:
                os.environ["INSTANCE_PATH"] = previous
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        return app

    def stop(self) -> None:
        """Let the worker finish what it is running, then stop serving and the fakes."""
        if self.consumer is not None:
            self.consumer.stop(graceful=True)
            self.consumer = None
        if self._server_thread is not None:
            self.server.shutdown()
            self._server_thread.join(timeout=5)
            self._server_thread = None
        if self.server is not None:
            self.server.server_close()
            self.server = None
        self.hubspot.stop()
        self.quickbooks.stop()
        if self.app is not None:
            db.session.remove()
            db.engine.dispose()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    # -- the scenario ------------------------------------------------------------------------------------

    def install(self) -> None:
        """The demo portal installs the app (tokens from the fake HubSpot) and connects the demo company."""
        tokens = self.hubspot.issue_tokens(PORTAL_ID)
        with self.app.app_context():
            metadata = hubspot_oauth.token_metadata(self.app.config, tokens["access_token"])
            portal = get_or_create_portal(db.session, PORTAL_ID)
            hubspot_oauth.store_tokens(portal, tokens)
            portal.scopes = metadata.get("scopes") or []
            portal.hub_domain = metadata.get("hub_domain")
            db.session.commit()
        self.hubspot.next_install_portal = PORTAL_ID  # signing in through the fake lands in this portal
        connect_company(self.app, self.quickbooks, REALM_ID, portal_id=PORTAL_ID)

    def seed(self) -> list[Execution]:
        """The demo's records in both fakes, and the executions to run on them (in this order)."""
        seed_products(self.quickbooks)  # Widget (SKU W-1) and Setup service
        books, portal, today = self.books, self.portal, date.today()
        checking, bank_charges = account_id(books, "Checking"), account_id(books, "Bank Charges")
        net_30 = str(books.find("Term", Name="Net 30")["Id"])

        def contact(first, last, email=None):
            return portal.add("contacts", {"firstname": first, "lastname": last, **({"email": email} if email else {})})

        ann = contact("Ann", "Lee", "ann.lee@acme.test")
        bo = contact("Bo", "Bell", "bo.bell@globex.test")
        cy = contact("Cy", "Park")  # no email: the default contact sync filter refuses them
        dee = contact("Dee", "Diaz", "dee.diaz@umbrella.test")
        eve = contact("Eve", "Stone", "eve.stone@hooli.test")

        def deal(name, who, lines, days_ago=2, company=None):
            amount = sum(float(line["amount"]) for line in lines)
            closed = (today - timedelta(days=days_ago)).isoformat()
            deal_id = portal.add("deals", {"dealname": name, "amount": f"{amount:g}", "closedate": closed})
            portal.associate("deals", deal_id, "contacts", who)
            if company:
                company_id = portal.add("companies", {"name": company, "domain": company.split()[0].lower() + ".test"})
                portal.associate("deals", deal_id, "companies", company_id, label="Primary")
            add_line_items(portal, "deals", deal_id, lines)
            return Record("DEAL", str(deal_id), name)

        references = itertools.count(1)

        def payment(title, who, lines=(WIDGET, SETUP), days_ago=1, **properties):
            paid = datetime.now(UTC).replace(microsecond=0) - timedelta(days=days_ago)
            values = {
                **PAYMENT_PROPERTIES,
                "hs_customer_email": portal.get("contacts", who)["properties"]["email"],
                "hs_initiated_date": paid.isoformat().replace("+00:00", "Z"),
                "hs_payout_date": (paid.date() + timedelta(days=2)).isoformat(),
                "hs_reference_number": f"HSP-DEMO-{next(references)}",
                **properties,
            }
            payment_id = portal.add("commerce_payments", values)
            portal.associate("commerce_payments", payment_id, "contacts", who)
            add_line_items(portal, "commerce_payments", payment_id, list(lines))
            return Record("COMMERCE_PAYMENT", str(payment_id), title)

        acme = deal("Acme rollout", ann, [WIDGET, SETUP], days_ago=3)
        globex = deal("Globex renewal", bo, [{**WIDGET, "quantity": "5", "amount": "500"}], company="Globex Corp")
        initech = deal("Initech pilot", cy, [SETUP])
        umbrella = deal("Umbrella onboarding", dee, [WIDGET, WORKSHOP])
        hooli = deal("Hooli expansion", eve, [{"name": "Premium support", "hs_sku": "PS-12", **_priced(1200)}])
        stark = deal("Stark inquiry", ann, [])

        quote = portal.add(
            "quotes",
            {
                "hs_title": "Acme phase 2",
                "hs_quote_amount": "450",
                "hs_quote_number": f"Q-{today.year}-17",
                "hs_expiration_date": (today + timedelta(days=30)).isoformat(),
            },
        )
        portal.associate("quotes", quote, "contacts", ann)
        add_line_items(portal, "quotes", quote, [WIDGET, SETUP])
        quote = Record("QUOTE", str(quote), "Acme phase 2")

        card = payment("card payment", ann, days_ago=2)
        from_invoice = payment("payment of a HubSpot invoice", bo, hs_payment_source_app="INVOICE")
        ach = payment("ACH payment", bo, hs_payment_method_type="ach", hs_fees_amount="0")
        overpaid = payment("payment of 500", eve, hs_initial_amount="500")
        refunded = payment("refunded payment", dee, days_ago=4, hs_latest_status="refunded", hs_refunds_amount="450")
        part_refunded = payment(
            "partly refunded payment", ann, days_ago=5, hs_latest_status="partially_refunded", hs_refunds_amount="200"
        )

        fee_accounts = {"payment_account": checking, "expense_account": bank_charges}
        run = Execution
        return [
            run("create_invoice", acme, "SUCCESS", inputs={"payment_terms": net_30}),
            run("create_invoice", globex, "SUCCESS", "billed to the deal's company", {"customer": "primary_company"}),
            run("create_invoice", initech, "CONTACT_NOT_ELIGIBLE", "contact without email"),
            run("create_invoice", umbrella, "PRODUCT_NOT_FOUND", "unknown product"),
            run("create_invoice", hooli, "SUCCESS", "creates the missing product", {"create_missing_products": "true"}),
            run("create_estimate", quote, "SUCCESS", "expires with the quote"),
            run("create_estimate", stark, "NO_LINE_ITEMS", "no line items"),
            run("create_sales_receipt", card, "SUCCESS"),
            run("create_sales_receipt", from_invoice, "PAYMENT_FROM_INVOICE", "already synced by HubSpot"),
            run("create_paid_invoice", ach, "SUCCESS"),
            run("create_paid_invoice", overpaid, "PAYMENT_AMOUNT_MISMATCH", "lines add up to 450"),
            run("create_expense", card, "SUCCESS", "its 13.35 fee", fee_accounts),
            run("create_expense", ach, "NO_PAYMENT_FEE", "no fee", fee_accounts),
            run("create_refund_receipt", refunded, "SUCCESS", inputs={"payment_account": checking}),
            run(
                "create_refund_receipt",
                part_refunded,
                "NOT_FULLY_REFUNDED",
                "200 of 450 refunded",
                {"payment_account": checking},
            ),
        ]

    def send(self, execution: Execution) -> None:
        """POST the execution to the server, signed with the app's secret as HubSpot signs it."""
        execution.callback_id = self.hubspot.new_callback_id(PORTAL_ID)
        path = f"/hubspot/actions/{execution.action}"
        body = execution_body(
            callback_id=execution.callback_id,
            object_id=execution.record.object_id,
            object_type=execution.record.object_type,
            inputs=execution.inputs,
            portal_id=PORTAL_ID,
        )
        raw = json.dumps(body).encode()
        headers = sign_request("POST", self.url + path, raw, secret=self.hubspot.client_secret)
        response = requests.post(
            self.url + path, data=raw, headers={**headers, "Content-Type": "application/json"}, timeout=30
        )
        response.raise_for_status()

    def wait_until_settled(self, executions: list[Execution], timeout: float = SETTLE_TIMEOUT) -> None:
        """Until HubSpot's callback of every execution has been completed (in the fake)."""
        deadline = time.monotonic() + timeout
        waiting = list(executions)
        while waiting:
            for execution in list(waiting):
                completion = self.hubspot.completion_for(execution.callback_id)
                if completion is not None:
                    execution.outputs = dict(completion.output_fields)
                    waiting.remove(execution)
            if waiting and time.monotonic() > deadline:
                late = ", ".join(f"{e.action} on {e.record}" for e in waiting)
                raise RuntimeError(f"no callback completed within {timeout:.0f} s for: {late}")
            time.sleep(0.05)

    def run(self) -> list[Execution]:
        """Install, seed, send every execution, wait for all; then add the product one of them missed."""
        self.install()
        self.executions = self.seed()
        for execution in self.executions:
            self.send(execution)
        self.wait_until_settled(self.executions)
        self.books.add_item(**WORKSHOP_ITEM)
        return self.executions

    # -- what the newcomer reads -------------------------------------------------------------------------

    def retry_hint(self) -> str:
        missing = next((e for e in self.executions if e.error_code == "PRODUCT_NOT_FOUND"), None)
        if missing is None:
            return ""
        return (
            f"PRODUCT_NOT_FOUND on {missing.record}: the demo adds the missing product now — "
            "press Retry on the Sync errors page to see it succeed."
        )

    def report(self) -> str:
        done = self.executions
        rows = [("#", "action", "record", "outcome", "document / error", "")]
        for number, execution in enumerate(done, start=1):
            record = f'{execution.record} "{execution.record.title}"'
            outcome = "SUCCESS" if execution.succeeded else "FAILED"
            shows = f"({execution.shows})" if execution.shows else ""
            rows.append((str(number), execution.action, record, outcome, execution.result(), shows))
        widths = [max(len(row[column]) for row in rows) for column in range(5)]
        table = [
            (
                "  " + "  ".join(cell.ljust(width) for cell, width in zip(row[:5], widths, strict=True)) + "  " + row[5]
            ).rstrip()
            for row in rows
        ]
        succeeded = sum(e.succeeded for e in done)
        unexpected = [e for e in done if (e.error_code or e.outcome) != e.expected]
        company = self.books
        lines = [
            "qbo-actions demo: the server, its job worker, and fakes of HubSpot and QuickBooks, all on this machine.",
            "",
            f"HubSpot account {PORTAL_ID} (fake) installed the app; QuickBooks company {company.name} "
            f"(realm {company.realm_id}, {company.country}, fake) is connected.",
            f"{len(done)} workflow executions of all {len(DOCUMENTS)} actions, signed and sent to "
            "POST /hubspot/actions/<action> as HubSpot sends them:",
            "",
            *table,
            "",
            f"{succeeded} succeeded and wrote their documents to QuickBooks; {len(done) - succeeded} failed, "
            "each with an error code and a message saying how to fix it.",
        ]
        for execution in unexpected:
            lines.append(
                f"Unexpected: {execution.action} on {execution.record} should have ended {execution.expected}: "
                f"{execution.outputs.get('error_message') or execution.outcome}"
            )
        lines += [
            "",
            f"Open {self.sign_in_url} to see them in the console (it signs you in to HubSpot account "
            f"{PORTAL_ID} through the fake HubSpot).",
        ]
        hint = self.retry_hint()
        if hint:
            lines.append(hint)
        return "\n".join(lines)

    def print(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)


def _priced(amount: int) -> dict:
    return {"quantity": "1", "price": str(amount), "amount": str(amount)}


def run_demo(port: int = 5000, *, serve: bool = True, instance_path: Path = DEFAULT_INSTANCE, out=None) -> Demo:
    """Start everything, run the executions, print the summary; serve until Ctrl-C unless serve is False."""
    demo = Demo(port=port, instance_path=instance_path, out=out)
    try:
        demo.start()
        demo.run()
        demo.print(demo.report())
        if serve:
            logging.getLogger("app.worker").setLevel(logging.INFO)  # a Retry in the console shows up here
            demo.print(f"\nServing {demo.url} until Ctrl-C.")
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        demo.print("\nStopping the demo…")
    finally:
        demo.stop()
    return demo


def interrupt(_signum, _frame):
    raise KeyboardInterrupt


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=5000, help="where the server listens on 127.0.0.1 (default 5000)")
    parser.add_argument("--no-serve", action="store_true", help="run the executions, print the summary and exit")
    args = parser.parse_args(argv)
    # Ctrl-C (even when started where SIGINT is ignored) and `kill` stop the demo cleanly.
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    demo = run_demo(args.port, serve=not args.no_serve)
    return 0 if all((e.error_code or e.outcome) == e.expected for e in demo.executions) else 1


if __name__ == "__main__":
    sys.exit(main())
