"""The fault and load suite: many executions of all six actions across several portals and QuickBooks
companies, on the deployment of tests/stack.py, while everything goes wrong at once; then the invariants,
checked from what the fakes hold, and the figures.

    python -m tests.soak --executions 2000 --workers 4      # `make soak`

It runs on a PostgreSQL cluster and a Redis server of its own (temporary, on free ports), which it restarts.

tests/test_faults.py runs a short version in CI. Faults injected while the executions are delivered:
duplicated deliveries (the same callbackId again later, and several at once), QuickBooks 5xx, 429, timeouts
and lost responses (written, then an error answered), HubSpot failures (callback completions included),
a worker killed with SIGKILL and restarted, PostgreSQL restarted, Redis restarted (its jobs lost), every
QuickBooks access token expired at once (the workers refresh them together), and one company's refresh token
revoked (its later executions must fail QUICKBOOKS_AUTH_EXPIRED, nothing else).
"""

import argparse
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from app.extensions import db
from app.storage.models import Execution
from tests.scenarios import PAYMENT_PROPERTIES, add_line_items
from tests.stack import OwnPostgres, OwnRedis, Stack, own_services_available

WIDGET = {"name": "Widget", "hs_sku": "W-1", "quantity": "2", "price": "100", "amount": "200"}
SETUP = {"name": "Setup service", "quantity": "1", "price": "250", "amount": "250"}
ACTIONS = (
    "create_invoice",
    "create_estimate",
    "create_sales_receipt",
    "create_paid_invoice",
    "create_expense",
    "create_refund_receipt",
)
# What a successful execution of each action leaves in QuickBooks: entity → how many, tagged with its callbackId.
WRITES = {
    "create_invoice": {"Invoice": 1},
    "create_estimate": {"Estimate": 1},
    "create_sales_receipt": {"SalesReceipt": 1},
    "create_paid_invoice": {"Invoice": 1, "Payment": 1},
    "create_expense": {"Purchase": 1},
    "create_refund_receipt": {"RefundReceipt": 1},
}
TRANSACTIONS = ("Invoice", "Estimate", "SalesReceipt", "Payment", "Purchase", "RefundReceipt")
DOOMED = "QUICKBOOKS_AUTH_EXPIRED"  # the one failure expected: the company whose refresh token is revoked


@dataclass
class Planned:
    action: str
    portal_id: int
    realm_id: str
    object_type: str
    object_id: str
    inputs: dict
    callback_id: str = ""
    same_as: "Planned | None" = None  # the same payment enrolled again: answered with the first's document
    delivered_at: float = 0.0
    settled_at: float = 0.0


@dataclass
class Tenant:
    portal_id: int
    realm_id: str
    contacts: list = field(default_factory=list)
    accounts: dict = field(default_factory=dict)
    doomed: bool = False


class Soak:
    def __init__(self, stack: Stack, *, executions: int, tenants: int = 3, seconds: float = 60.0, seed: int = 17):
        self.stack = stack
        self.total = executions
        self.tenant_count = tenants
        self.seconds = seconds  # over how long the deliveries are spread
        self.random = random.Random(seed)
        self.tenants: list[Tenant] = []
        self.planned: list[Planned] = []
        self.faults = Counter()
        self.references = 0
        self.deliveries = 0
        self.answers = Counter()

    # -- the records -------------------------------------------------------------------------------------

    def set_up(self) -> None:
        for n in range(self.tenant_count + 1):  # the last one is doomed: its refresh token will be revoked
            tenant = Tenant(portal_id=70_000 + n, realm_id=f"93{n:02d}000000", doomed=n == self.tenant_count)
            self.stack.install(tenant.portal_id, tenant.realm_id)
            books = self.stack.quickbooks.company(tenant.realm_id)
            income = min(books.all("Account"), key=lambda a: int(a["Id"]))["Id"]
            books.add_item(
                Name="Widget", Sku="W-1", Type="NonInventory", UnitPrice=100, IncomeAccountRef={"value": income}
            )
            books.add_item(Name="Setup service", Type="Service", UnitPrice=250, IncomeAccountRef={"value": income})
            tenant.accounts = {
                name: str(books.find("Account", Name=name)["Id"]) for name in ("Checking", "Bank Charges")
            }
            portal = self.stack.hubspot.portal(tenant.portal_id)
            for c in range(12):
                tenant.contacts.append(
                    portal.add(
                        "contacts", {"firstname": f"Ann{c}", "lastname": f"Lee{n}", "email": f"ann{c}.{n}@soak.test"}
                    )
                )
            self.tenants.append(tenant)
        healthy = [t for t in self.tenants if not t.doomed]
        for index in range(self.total):
            tenant = self.tenants[-1] if index % 20 == 19 else healthy[index % len(healthy)]
            self.planned.append(self.plan(tenant, ACTIONS[index % len(ACTIONS)], index))

    def plan(self, tenant: Tenant, action: str, index: int) -> Planned:
        portal = self.stack.hubspot.portal(tenant.portal_id)
        contact = self.random.choice(tenant.contacts)
        inputs = {}
        if action in ("create_invoice", "create_sales_receipt") and index % 2:
            object_type, object_id = "DEAL", self.deal(portal, contact, index)
        elif action == "create_estimate":
            object_type, object_id = "QUOTE", self.quote(portal, contact, index)
        elif action == "create_expense" and index > 60 and self.random.random() < 0.1:
            earlier = self.random.choice(
                [p for p in self.planned if p.action == action and p.portal_id == tenant.portal_id and not p.same_as]
                or [None]
            )
            if earlier is not None:  # the same payment enrolled in the same action again
                return Planned(
                    action,
                    tenant.portal_id,
                    tenant.realm_id,
                    earlier.object_type,
                    earlier.object_id,
                    earlier.inputs,
                    same_as=earlier,
                )
            object_type, object_id = "COMMERCE_PAYMENT", self.payment(portal, contact, card=True)
        else:
            card = action != "create_paid_invoice"
            refunded = action == "create_refund_receipt"
            object_type, object_id = "COMMERCE_PAYMENT", self.payment(portal, contact, card=card, refunded=refunded)
        if action == "create_expense":
            inputs = {
                "payment_account": tenant.accounts["Checking"],
                "expense_account": tenant.accounts["Bank Charges"],
            }
        elif action == "create_refund_receipt":
            inputs = {"payment_account": tenant.accounts["Checking"]}
        return Planned(action, tenant.portal_id, tenant.realm_id, object_type, str(object_id), inputs)

    def deal(self, portal, contact, index) -> str:
        closed = (date.today() - timedelta(days=1)).isoformat()
        deal_id = portal.add("deals", {"dealname": f"Soak deal {index}", "amount": "450", "closedate": closed})
        portal.associate("deals", deal_id, "contacts", contact)
        add_line_items(portal, "deals", deal_id, [WIDGET, SETUP])
        return deal_id

    def quote(self, portal, contact, index) -> str:
        expires = (date.today() + timedelta(days=30)).isoformat()
        quote_id = portal.add(
            "quotes",
            {
                "hs_title": f"Soak quote {index}",
                "hs_quote_amount": "450",
                "hs_quote_number": f"Q-{index}",
                "hs_expiration_date": expires,
            },
        )
        portal.associate("quotes", quote_id, "contacts", contact)
        add_line_items(portal, "quotes", quote_id, [WIDGET, SETUP])
        return quote_id

    def payment(self, portal, contact, *, card: bool, refunded: bool = False) -> str:
        self.references += 1
        paid = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
        values = {
            **PAYMENT_PROPERTIES,
            "hs_customer_email": portal.get("contacts", contact)["properties"]["email"],
            "hs_initiated_date": paid.isoformat().replace("+00:00", "Z"),
            "hs_payout_date": paid.date().isoformat(),
            "hs_reference_number": f"HSP-SOAK-{self.references}",
            **({} if card else {"hs_payment_method_type": "ach", "hs_fees_amount": "0"}),
            **({"hs_latest_status": "refunded", "hs_refunds_amount": "450"} if refunded else {}),
        }
        payment_id = portal.add("commerce_payments", values)
        portal.associate("commerce_payments", payment_id, "contacts", contact)
        add_line_items(portal, "commerce_payments", payment_id, [WIDGET, SETUP])
        return payment_id

    # -- the run -----------------------------------------------------------------------------------------

    def run(self, fault_probability: float = 0.04, settle_timeout: float = 600.0) -> dict:
        for planned in self.planned:
            planned.callback_id = self.stack.hubspot.new_callback_id(planned.portal_id)
        self.stack.quickbooks.enforce_rate_limits = True
        self.stack.hubspot.enforce_rate_limit = True
        self.stack.quickbooks.chaos(
            fault_probability, kinds=("5xx", "429", "timeout", "lost"), timeout_seconds=4.0, seed=1
        )
        self.stack.hubspot.chaos(fault_probability, kinds=("5xx", "429", "timeout"), timeout_seconds=4.0, seed=2)
        started = time.monotonic()
        faults = threading.Thread(target=self.inject_faults, args=(started,), daemon=True)
        watcher = threading.Thread(target=self.watch_completions, daemon=True)
        watcher.start()
        faults.start()
        self.deliver_all(started)
        last_delivery = time.monotonic()
        faults.join()
        self.stack.quickbooks.calm()
        self.stack.hubspot.calm()
        faults_stopped = time.monotonic()
        self.wait_until_settled(settle_timeout)
        settled = time.monotonic()
        self.watching = False
        return {
            "started": started,
            "last_delivery": last_delivery,
            "faults_stopped": faults_stopped,
            "settled": settled,
        }

    def deliver_all(self, started: float) -> None:
        interval = self.seconds / max(1, len(self.planned))
        with ThreadPoolExecutor(max_workers=16) as pool:
            for index, planned in enumerate(self.planned):
                delay = started + index * interval - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                copies = 1
                draw = self.random.random()
                if draw < 0.05:
                    copies = 3  # the same delivery several times at once
                    self.faults["duplicate deliveries (concurrent)"] += 2
                for _ in range(copies):
                    pool.submit(self.deliver, planned)
                if 0.05 <= draw < 0.15:  # and again later, often after it settled
                    self.faults["duplicate deliveries (sequential)"] += 1
                    threading.Timer(self.random.uniform(1, 10), self.deliver, args=(planned,)).start()

    def deliver(self, planned: Planned) -> None:
        body = self.stack.execution_body(
            callback_id=planned.callback_id,
            object_id=planned.object_id,
            object_type=planned.object_type,
            inputs=planned.inputs,
            portal_id=planned.portal_id,
        )
        planned.delivered_at = planned.delivered_at or time.monotonic()
        for _ in range(20):  # HubSpot retries a delivery that failed (our 5xx, a refused connection)
            self.deliveries += 1
            try:
                answer = self.stack.deliver(planned.action, body, timeout=10)
            except OSError:
                self.answers["connection error"] += 1
                time.sleep(1)
                continue
            self.answers[answer.status_code] += 1
            if answer.status_code < 500:
                return
            time.sleep(1)

    def inject_faults(self, started: float) -> None:
        """The infrastructure faults, spread over the delivery window."""

        def at(fraction):
            delay = started + fraction * self.seconds - time.monotonic()
            if delay > 0:
                time.sleep(delay)

        at(0.2)
        self.stack.kill_worker(0)
        self.faults["worker killed (SIGKILL) and restarted"] += 1
        at(0.35)
        expired = self.expire_access_tokens()
        self.faults["QuickBooks access tokens expired at once"] += expired
        at(0.5)
        if self.stack.postgres is not None:
            self.stack.restart_postgres()
            self.faults["PostgreSQL restarted"] += 1
        at(0.6)
        self.revoke_doomed()
        self.faults["QuickBooks refresh token revoked"] += 1
        at(0.7)
        if self.stack.redis is not None:
            self.stack.restart_redis()
            self.faults["Redis restarted (queued jobs lost)"] += 1
        at(0.8)
        self.stack.kill_worker(len(self.stack.workers) - 1)
        self.faults["worker killed (SIGKILL) and restarted"] += 1
        at(1.0)

    def expire_access_tokens(self) -> int:
        tokens = self.stack.quickbooks._tokens  # the fake's token book: expire every live access token
        with self.stack.quickbooks._lock:
            live = list(tokens._access)
            for token in live:
                tokens.expire_access(token)
        return len(live)

    def revoke_doomed(self) -> None:
        doomed = self.tenants[-1]
        fake = self.stack.quickbooks
        with fake._lock:
            for token, grant in list(fake._tokens._refresh.items()):
                if grant.realm_id == doomed.realm_id:
                    fake._tokens.revoke_refresh(token)
            for token, (grant, _) in list(fake._tokens._access.items()):
                if grant.realm_id == doomed.realm_id:
                    fake._tokens.expire_access(token)
        self.doomed_at = time.monotonic()

    def watch_completions(self) -> None:
        self.watching = True
        by_callback = {p.callback_id: p for p in self.planned}
        seen = 0
        while self.watching:
            completions = self.stack.hubspot.completions
            for completion in completions[seen:]:
                planned = by_callback.get(completion.callback_id)
                if planned is not None and not planned.settled_at:
                    planned.settled_at = time.monotonic()
            seen = len(completions)
            time.sleep(0.1)

    def wait_until_settled(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.unsettled():
                return
            time.sleep(0.5)

    def unsettled(self) -> list[Execution]:
        with self.stack.app.app_context():
            db.session.expire_all()
            return list(db.session.scalars(select(Execution).where(Execution.status != Execution.COMPLETED)))

    # -- the invariants ----------------------------------------------------------------------------------

    def check(self) -> tuple[list[str], dict]:
        """Every problem found (empty: all invariants hold), and the counts behind them."""
        problems: list[str] = []
        with self.stack.app.app_context():
            db.session.expire_all()
            stored = {(e.portal_id, e.callback_id): e for e in db.session.scalars(select(Execution))}
        documents = self.documents_by_callback()
        completions = self.stack.hubspot.completions_by_callback()
        completed_outputs = {c.callback_id: c.output_fields for c in self.stack.hubspot.completions}
        counts = Counter()
        enrollments: dict[str, list[Planned]] = {}  # a payment's first enrollment's callbackId → every enrollment
        for planned in self.planned:
            enrollments.setdefault((planned.same_as or planned).callback_id, []).append(planned)
        for planned in self.planned:
            execution = stored.get((planned.portal_id, planned.callback_id))
            if execution is None:
                problems.append(f"{planned.callback_id}: delivered but never recorded (lost)")
                counts["lost"] += 1
                continue
            counts[f"{execution.outcome or 'unsettled'}"] += 1
            if execution.status != Execution.COMPLETED:
                problems.append(f"{planned.callback_id}: left {execution.status} (lost)")
                counts["lost"] += 1
            if execution.error_code:
                counts[f"error {execution.error_code}"] += 1
            doomed = planned.realm_id == self.tenants[-1].realm_id
            if execution.outcome == "FAIL_CONTINUE" and not (doomed and execution.error_code == DOOMED):
                problems.append(
                    f"{planned.callback_id} ({planned.action}): failed {execution.error_code}: "
                    f"{execution.error_message}"
                )
            times = completions.get(planned.callback_id, 0)
            if times != 1:
                problems.append(f"{planned.callback_id}: HubSpot callback completed {times} times")
                counts["callbacks not completed once"] += 1
            elif completed_outputs[planned.callback_id].get("hs_execution_state") != execution.outcome:
                problems.append(
                    f"{planned.callback_id}: HubSpot got {completed_outputs[planned.callback_id]}, "
                    f"stored {execution.outcome}"
                )
            written = documents.get(planned.callback_id, Counter())
            if execution.outcome == "SUCCESS":
                # A payment's document may carry a later enrollment's note: one that took over while the first was
                # waiting to retry. Counted once, for the payment, at its first enrollment.
                written = (
                    Counter()
                    if planned.same_as
                    else sum(
                        (documents.get(p.callback_id, Counter()) for p in enrollments[planned.callback_id]), Counter()
                    )
                )
            journal = Counter(  # the transactions it wrote (a customer or vendor it created is not one)
                w.get("entity")
                for w in (execution.quickbooks_writes or {}).values()
                if w.get("id") and w.get("entity") in TRANSACTIONS
            )
            if execution.outcome == "SUCCESS" and planned.same_as is None:
                expected = Counter(WRITES[planned.action])
            elif execution.outcome == "SUCCESS":
                expected = Counter()  # answered with the first enrollment's document
                first = stored.get((planned.portal_id, planned.same_as.callback_id))
                if first is None or execution.outputs.get("quickbooks_document_id") != first.outputs.get(
                    "quickbooks_document_id"
                ):
                    problems.append(f"{planned.callback_id}: the same payment again did not get the first document")
            else:
                expected = journal  # what it wrote before failing, once each
            if written != expected:
                extra = sum((written - expected).values())
                counts["duplicates"] += extra
                problems.append(
                    f"{planned.callback_id} ({planned.action}, {execution.outcome}): QuickBooks holds "
                    f"{dict(written)}, expected {dict(expected)}"
                )
        self.check_tokens(problems)
        counts["429s we caused (QuickBooks)"] = sum(self.stack.quickbooks.rate_limited.values())
        counts["429s we caused (HubSpot)"] = sum(self.stack.hubspot.rate_limited.values())
        if counts["429s we caused (QuickBooks)"] or counts["429s we caused (HubSpot)"]:
            problems.append(
                f"rate limits hit: QuickBooks {dict(self.stack.quickbooks.rate_limited)}, "
                f"HubSpot {dict(self.stack.hubspot.rate_limited)}"
            )
        return problems, counts

    def documents_by_callback(self) -> dict[str, Counter]:
        """Every transaction in every company, by the callbackId in its tracking note."""
        found: dict[str, Counter] = {}
        for tenant in self.tenants:
            books = self.stack.quickbooks.company(tenant.realm_id)
            for entity in TRANSACTIONS:
                for record in books.all(entity):
                    note = record.get("PrivateNote") or ""
                    if "(execution " in note:
                        callback_id = note.split("(execution ", 1)[1].split(")", 1)[0]
                        found.setdefault(callback_id, Counter())[entity] += 1
        return found

    def check_tokens(self, problems: list[str]) -> None:
        """No refresh token lost: each healthy connection's stored refresh token is one Intuit still honours."""
        from app.storage.connections import list_connections
        from app.storage.models import Portal

        book = self.stack.quickbooks._tokens
        with self.stack.app.app_context():
            for portal in db.session.scalars(select(Portal)):
                for connection in list_connections(db.session, portal.id):
                    if connection.realm_id == self.tenants[-1].realm_id:
                        continue
                    grant = book._refresh.get(connection.refresh_token)
                    if grant is None or grant.revoked or connection.refresh_token in book._revoked_refresh:
                        problems.append(
                            f"connection {connection.realm_id}: its stored refresh token is no longer valid"
                        )


def figures(soak: Soak, times: dict, counts: Counter) -> dict:
    durations = [p.settled_at - p.delivered_at for p in soak.planned if p.settled_at and p.delivered_at]
    last_settled = max((p.settled_at for p in soak.planned if p.settled_at), default=times["settled"])
    qbo, hs = soak.stack.quickbooks, soak.stack.hubspot
    return {
        "backend": soak.stack.backend,
        "worker processes": soak.stack.worker_count,
        "executions": len(soak.planned),
        "deliveries (with duplicates and HubSpot's retries)": soak.deliveries,
        "by action": dict(Counter(p.action for p in soak.planned)),
        "outcomes": {k: v for k, v in counts.items() if k in ("SUCCESS", "FAIL_CONTINUE") or k.startswith("error ")},
        "faults injected": {
            **{f"QuickBooks {k}": v for k, v in sorted(qbo.injected.items())},
            **{f"HubSpot {k}": v for k, v in sorted(hs.injected.items())},
            **dict(soak.faults),
        },
        "duplicates": counts["duplicates"],
        "lost": counts["lost"],
        "callbacks not completed exactly once": counts["callbacks not completed once"],
        "429s we caused": {
            "QuickBooks": counts["429s we caused (QuickBooks)"],
            "HubSpot": counts["429s we caused (HubSpot)"],
        },
        "deliveries over (s)": round(times["last_delivery"] - times["started"], 1),
        "settled after the last delivery (s)": round(last_settled - times["last_delivery"], 1),
        "settled after the faults stopped (s)": round(max(0.0, last_settled - times["faults_stopped"]), 1),
        "execution delivery → callback, p50 / p99 / max (s)": (
            [
                round(statistics.median(durations), 1),
                round(sorted(durations)[int(0.99 * (len(durations) - 1))], 1),
                round(max(durations), 1),
            ]
            if durations
            else []
        ),
    }


def run_soak(workdir: Path, *, executions: int, workers: int, seconds: float, tenants: int = 3, out=sys.stdout):
    """On a PostgreSQL cluster and a Redis of its own (restarting the machine's would disturb everything else)."""
    if not own_services_available():
        raise RuntimeError("the fault suite needs PostgreSQL's server binaries and redis-server on this machine")
    settings = {"HTTP_TIMEOUT": "3", "LEASE_SECONDS": "15"}
    postgres, redis = OwnPostgres().start(), OwnRedis(workdir / "redis").start()
    try:
        with Stack(workdir, workers=workers, settings=settings, postgres=postgres, redis=redis) as stack:
            soak = Soak(stack, executions=executions, tenants=tenants, seconds=seconds)
            soak.set_up()
            times = soak.run()
            problems, counts = soak.check()
            result = figures(soak, times, counts)
    finally:
        redis.stop()
        postgres.stop()
    print(json.dumps(result, indent=2), file=out)
    for problem in problems[:50]:
        print("PROBLEM:", problem, file=out)
    if len(problems) > 50:
        print(f"... and {len(problems) - 50} more", file=out)
    return result, problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--executions", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--tenants", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=300.0, help="the deliveries are spread over this long")
    parser.add_argument("--out", default="", help="also write the figures (JSON) to this file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="qbo-soak-") as workdir:
        result, problems = run_soak(
            Path(workdir), executions=args.executions, workers=args.workers, seconds=args.seconds, tenants=args.tenants
        )
    if args.out:
        Path(args.out).write_text(json.dumps({"figures": result, "problems": problems}, indent=2) + "\n")
    print("soak:", "PASSED" if not problems else f"FAILED ({len(problems)} problems)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
