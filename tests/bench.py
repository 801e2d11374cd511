"""`make bench`: how fast the execution endpoint answers, and what one invoice costs end to end.

Everything runs on loopback: the app under a real WSGI server, the real consumer (`flask worker`) in a
subprocess, and the HubSpot and QuickBooks fakes. Figures are printed, not asserted: speed targets
live here, not in timed tests. Set BENCH_DATABASE_URL / BENCH_REDIS_URL to measure PostgreSQL + Redis.
"""

import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
from cryptography.fernet import Fernet
from werkzeug.serving import make_server

from app import create_app
from app.hubspot.signature import sign_request
from app.storage.migrate import upgrade
from tests.conftest import HUBSPOT_SECRET, PORTAL_ID, REALM_ID, connect_company, execution_body, reset_postgres
from tests.fakes.hubspot import FakeHubSpot
from tests.fakes.quickbooks import FakeQuickBooks
from tests.scenarios import seed_deal

REQUESTS = int(os.environ.get("BENCH_REQUESTS", "300"))
INVOICES = int(os.environ.get("BENCH_INVOICES", "50"))


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def describe(label, seconds):
    ms = [s * 1000 for s in seconds]
    print(
        f"  {label:<44} n={len(ms):<4} p50={statistics.median(ms):7.1f} ms  p95={percentile(ms, 95):7.1f} ms  "
        f"max={max(ms):7.1f} ms"
    )


class Bench:
    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.hubspot = FakeHubSpot(client_id="hs-client-id", client_secret=HUBSPOT_SECRET).start()
        self.quickbooks = FakeQuickBooks(client_id="qbo-client-id", client_secret="qbo-client-secret").start()
        self.quickbooks.add_company(REALM_ID, name="Bench Company")
        self.config = self.make_config()
        os.environ["INSTANCE_PATH"] = str(workdir / "instance")
        self.app = create_app({**self.config, "QUEUE_IMMEDIATE": False})
        with self.app.app_context():
            upgrade()
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.worker = None

    def make_config(self):
        database = os.environ.get("BENCH_DATABASE_URL", "")
        if database.startswith("postgres"):
            reset_postgres(database)
        return {
            "APP_ENV": "bench",
            "SECRET_KEY": "bench",
            "TOKEN_ENCRYPTION_KEY": Fernet.generate_key().decode(),
            "PUBLIC_URL": "https://qbo-actions.bench",
            "HUBSPOT_APP_ID": "4242",
            "HUBSPOT_CLIENT_ID": "hs-client-id",
            "HUBSPOT_CLIENT_SECRET": HUBSPOT_SECRET,
            "HUBSPOT_API_BASE_URL": self.hubspot.url,
            "QBO_CLIENT_ID": "qbo-client-id",
            "QBO_CLIENT_SECRET": "qbo-client-secret",
            "QBO_ENVIRONMENT": self.quickbooks.discovery_url,
            "QBO_API_BASE_URL": self.quickbooks.api_base,
            "DATABASE_URL": database or f"sqlite:///{self.workdir / 'bench.db'}",
            "REDIS_URL": os.environ.get("BENCH_REDIS_URL", ""),
            "QUEUE_NAME": f"qbo-bench-{os.getpid()}",
            "QUEUE_SQLITE_PATH": str(self.workdir / "queue.db"),
            "LOG_LEVEL": "WARNING",
        }

    def install(self):
        from app.extensions import db
        from app.hubspot import oauth as hubspot_oauth
        from app.storage.connections import get_or_create_portal

        with self.app.app_context():
            portal = get_or_create_portal(db.session, PORTAL_ID)
            hubspot_oauth.store_tokens(portal, self.hubspot.issue_tokens(PORTAL_ID))
            db.session.commit()
        connect_company(self.app, self.quickbooks, REALM_ID)

    def post(self, body: dict) -> tuple[float, dict]:
        raw = json.dumps(body).encode()
        path = "/hubspot/actions/create_invoice"
        headers = sign_request("POST", self.config["PUBLIC_URL"] + path, raw, secret=HUBSPOT_SECRET)
        started = time.perf_counter()
        response = requests.post(self.url + path, data=raw, headers={**headers, "Content-Type": "application/json"})
        elapsed = time.perf_counter() - started
        response.raise_for_status()
        return elapsed, response.json()

    def start_worker(self):
        env = {**os.environ, **{k: str(v) for k, v in self.config.items()}, "WORKER_THREADS": "4"}
        self.worker = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "app", "worker"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(self.workdir / "worker.log", "w"),
        )

    def stop(self):
        if self.worker:
            self.worker.terminate()
            self.worker.wait(timeout=10)
        self.server.shutdown()
        self.hubspot.stop()
        self.quickbooks.stop()


def measure_answers(bench, deal_id):
    """The endpoint alone: verify, validate, record, enqueue, answer BLOCK (no worker running)."""
    fresh = [
        bench.post(execution_body(callback_id=f"ap-{PORTAL_ID}-9-{n}-0", object_id=deal_id))[0] for n in range(REQUESTS)
    ]
    describe("new execution → BLOCK", fresh)
    repeats = [
        bench.post(execution_body(callback_id=f"ap-{PORTAL_ID}-9-{n}-0", object_id=deal_id))[0]
        for n in range(min(REQUESTS, 100))
    ]
    describe("repeat delivery (known callbackId)", repeats)


def main():
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        bench = Bench(Path(tmp))
        try:
            bench.install()
            portal = bench.hubspot.portal(PORTAL_ID)
            deal = seed_deal(portal, bench.quickbooks)
            backend = "PostgreSQL + Redis" if bench.config["REDIS_URL"] else "SQLite + Huey on SQLite"
            print(f"qbo-actions bench ({backend}; loopback fakes; {os.cpu_count()} cores)")
            measure_answers(bench, deal.deal_id)
            measure_end_to_end(bench, portal)
        finally:
            bench.stop()


def measure_end_to_end(bench, portal):
    contacts = []
    company = bench.quickbooks.company(REALM_ID)
    for n in range(INVOICES):
        contact = portal.add("contacts", {"email": f"buyer{n}@bench.test", "firstname": "Buyer", "lastname": f"No{n}"})
        deal = portal.add("deals", {"dealname": f"Bench {n}", "amount": "450"})
        portal.associate("deals", deal, "contacts", contact)
        for properties in (
            {
                "name": "Widget",
                "hs_sku": "W-1",
                "quantity": "2",
                "price": "100",
                "amount": "200",
                "hs_product_id": "501",
            },
            {"name": "Setup service", "quantity": "1", "price": "250", "amount": "250", "hs_product_id": "502"},
        ):
            line = portal.add("line_items", properties)
            portal.associate("deals", deal, "line_items", line)
        contacts.append(deal)
    drain_backlog(bench)
    before_requests = len(bench.quickbooks.requests)
    before_invoices = len(company.all("Invoice"))
    alone = []
    for n, deal in enumerate(contacts[:10]):
        callback = f"ap-{PORTAL_ID}-8-{n}-0"
        sent_at = {callback: time.perf_counter()}
        bench.post(execution_body(callback_id=callback, object_id=deal))
        alone += wait_for_completions(bench, sent_at)
    describe("one at a time: BLOCK → callback completed", alone)
    contacts = contacts[10:]
    sent = {}
    started = time.perf_counter()
    for n, deal in enumerate(contacts):
        callback = f"ap-{PORTAL_ID}-7-{n}-0"
        sent[callback] = time.perf_counter()
        bench.post(execution_body(callback_id=callback, object_id=deal))
    latencies = wait_for_completions(bench, sent)
    outcomes = {
        c.output_fields.get("error_code") or "SUCCESS" for c in bench.hubspot.completions if c.callback_id in sent
    }
    print(f"  outcomes: {sorted(outcomes)}")
    total = time.perf_counter() - started
    invoices = len(company.all("Invoice")) - before_invoices
    describe(f"{len(contacts)} at once: BLOCK → callback completed", latencies)
    print(
        f"  {len(contacts)} invoices in {total:.1f} s = {len(contacts) / total:.1f} invoices/s with 4 worker threads; "
        f"{(len(bench.quickbooks.requests) - before_requests) / max(invoices, 1):.1f} QuickBooks requests per invoice "
        f"(new customer each, products remembered after the first)"
    )


def drain_backlog(bench):
    """The executions answered BLOCK above are queued: the consumer works them off first (warm: same contact)."""
    backlog = {f"ap-{PORTAL_ID}-9-{n}-0": 0.0 for n in range(REQUESTS)}
    started = time.perf_counter()
    bench.start_worker()
    wait_for_completions(bench, backlog)
    elapsed = time.perf_counter() - started
    print(
        f"  backlog of {REQUESTS} queued executions (same deal, warm) done in {elapsed:.1f} s "
        f"= {REQUESTS / elapsed:.1f} invoices/s, consumer start-up included"
    )


def wait_for_completions(bench, sent, timeout=120):
    done = {}
    deadline = time.monotonic() + timeout
    while len(done) < len(sent) and time.monotonic() < deadline:
        for completion in list(bench.hubspot.completions):
            if completion.callback_id in sent and completion.callback_id not in done:
                done[completion.callback_id] = time.perf_counter() - sent[completion.callback_id]
        time.sleep(0.02)
    if len(done) < len(sent):
        raise SystemExit(f"only {len(done)} of {len(sent)} executions completed in {timeout} s")
    return list(done.values())


if __name__ == "__main__":
    main()
