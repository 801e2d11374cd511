"""Rate limits of our QuickBooks and HubSpot requests (app/limits.py), shared by every process.

Each store (in-process, the database on SQLite and PostgreSQL, Redis) is hammered from threads and, for the
shared ones, from several processes at once; every sliding window of the recorded request times must hold at
most the limit, and never more requests may be held at once than the cap. Then what happens when the store is
down, when a turn takes too long, and that the HTTP clients really wait for their turns.
"""

import bisect
import json
import logging
import socket
import subprocess
import sys
import threading
import time
import uuid

import pytest
import redis
from sqlalchemy import select

from actions.errors import TransientError
from app import create_app, http
from app.config import ConfigError, finish_config, load_config
from app.extensions import db, make_engine
from app.hubspot.client import HubSpotClient, hubspot_client
from app.limits import (
    DatabaseStore,
    Limiter,
    MemoryStore,
    Policy,
    RedisStore,
    hubspot_policy,
    on_wait,
    quickbooks_policies,
)
from app.quickbooks.client import BooksClient, books_client
from app.storage.connections import get_portal
from app.storage.models import QuickBooksConnection, RateLimitCounter
from tests.conftest import PORTAL_ID, REALM_ID, FixedTokens

STORES = pytest.mark.parametrize(
    "backend, kind",
    [("sqlite", "memory"), ("sqlite", "database"), ("postgres", "database"), ("postgres", "redis")],
    indirect=["backend"],
    ids=["memory", "database-sqlite", "database-postgres", "redis"],
)
SHARED_STORES = pytest.mark.parametrize(
    "backend, kind",
    [("sqlite", "database"), ("postgres", "database"), ("postgres", "redis")],
    indirect=["backend"],
    ids=["database-sqlite", "database-postgres", "redis"],
)
DEFAULTS = {  # the settings' defaults, as finish_config makes them
    "QBO_REQUESTS_PER_MINUTE": 500,
    "QBO_REQUESTS_IN_FLIGHT": 10,
    "QBO_BATCHES_PER_MINUTE": 120,
    "HUBSPOT_REQUESTS_PER_10_SECONDS": 110,
}


def fresh_policy(limit=120, per_seconds=1.0, in_flight=3) -> Policy:
    """A policy of its own (a fresh name: nothing counted before, in a store kept between runs)."""
    return Policy(f"test{uuid.uuid4().hex[:12]}-requests", limit, per_seconds, in_flight)


def most_in_any_window(stamps: list[float], seconds: float) -> int:
    stamps = sorted(stamps)
    return max((bisect.bisect_left(stamps, start + seconds) - i for i, start in enumerate(stamps)), default=0)


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    held = peak = 0
    for _, change in events:
        held += change
        peak = max(peak, held)
    return peak


def hammer(limiter: Limiter, policy: Policy, *, threads=8, total=200, hold=0.005) -> list[tuple[float, float]]:
    """`total` turns from `threads` threads; the (start, end) of each, recorded while it was held."""
    held, lock = [], threading.Lock()

    def work(turns):
        for _ in range(turns):
            with limiter.acquire(policy, REALM_ID):
                start = time.time()
                time.sleep(hold)
                end = time.time()
            with lock:
                held.append((start, end))

    workers = [threading.Thread(target=work, args=(total // threads,)) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return held


@pytest.fixture
def app_config(app_config):
    return {**app_config, "RATE_LIMITS": "on"}  # the suite turns them off elsewhere


@pytest.fixture
def store(request, backend, kind, country):  # `country`: the app's fake company, parametrized, named statically
    if kind == "memory":
        return MemoryStore()
    app = request.getfixturevalue("app")  # migrated SQLite, or PostgreSQL + Redis (skipped when not configured)
    if kind == "database":
        return DatabaseStore(db.engine)
    shared = app.extensions["limiter"].store
    assert isinstance(shared, RedisStore)  # REDIS_URL set: init_app chose Redis
    return shared


# -- the arithmetic --------------------------------------------------------------------------------------


def test_each_slice_admits_what_any_sliding_window_can_hold():
    requests, batches = quickbooks_policies(DEFAULTS)
    assert (requests.per_slice, requests.slice_seconds, requests.in_flight) == (41, 6.0, 10)  # 500 a minute
    assert (batches.per_slice, batches.slice_seconds, batches.in_flight) == (10, 6.0, 0)  # 120 a minute
    hubspot = hubspot_policy(DEFAULTS)
    assert (hubspot.per_slice, hubspot.slice_seconds) == (9, 1.0)  # 110 per 10 s
    for policy in (requests, batches, hubspot):
        assert policy.per_slice * (policy.slices + 2) <= policy.limit  # a slice of headroom
    tiny = Policy("tiny", 2, 1.0)  # fewer slices, so that each still admits a request
    assert (tiny.slices, tiny.per_slice, tiny.slice_seconds) == (1, 1, 1.0)
    with pytest.raises(ValueError):
        Policy("one", 1, 1.0)  # two requests either side of a slice border would make two in a window
    assert requests.service == "QuickBooks" and hubspot.service == "HubSpot"


def test_the_limits_are_settings(tmp_path):
    config = load_config(str(tmp_path), environ={"QBO_REQUESTS_PER_MINUTE": "300", "RATE_LIMITS": " OFF "})
    finish_config(config, str(tmp_path))
    assert (config["QBO_REQUESTS_PER_MINUTE"], config["QBO_REQUESTS_IN_FLIGHT"]) == (300, 10)
    assert (config["QBO_BATCHES_PER_MINUTE"], config["HUBSPOT_REQUESTS_PER_10_SECONDS"]) == (120, 110)
    assert config["RATE_LIMITS"] == "off"
    for wrong in ({"QBO_BATCHES_PER_MINUTE": "1"}, {"HUBSPOT_REQUESTS_PER_10_SECONDS": "many"}, {"RATE_LIMITS": "x"}):
        config = load_config(str(tmp_path), environ=wrong)
        with pytest.raises(ConfigError, match=next(iter(wrong))):
            finish_config(config, str(tmp_path))


def test_the_app_shares_its_limits_through_the_database_without_redis(app_config, tmp_path, monkeypatch):
    monkeypatch.setenv("INSTANCE_PATH", str(tmp_path / "instance"))
    limiter = create_app(app_config).extensions["limiter"]
    assert isinstance(limiter.store, DatabaseStore) and limiter.enabled
    assert limiter.slot_ttl == 2 * 5 + 5  # HTTP_TIMEOUT is 5 in the tests
    off = create_app({**app_config, "RATE_LIMITS": "off"}).extensions["limiter"]
    with off.acquire(fresh_policy(limit=2, per_seconds=3600), REALM_ID), off.acquire(fresh_policy(2, 3600), REALM_ID):
        pass  # a second turn of a 2-per-hour policy, at once: nothing is limited
    assert not off.enabled and off.waited_seconds == 0


# -- each store, from threads ----------------------------------------------------------------------------


@STORES
def test_a_store_keeps_every_window_and_the_cap_from_many_threads(store):
    limiter = Limiter(store)
    policy = fresh_policy(limit=120, per_seconds=1.0, in_flight=3)  # 10 turns per 100 ms slice
    started = time.monotonic()
    held = hammer(limiter, policy, threads=8, total=200)
    elapsed = time.monotonic() - started
    assert len(held) == 200
    assert most_in_any_window([start for start, _ in held], policy.per_seconds) <= policy.limit
    assert 1 < most_at_once(held) <= policy.in_flight
    assert elapsed >= (200 / policy.per_slice - 2) * policy.slice_seconds  # 20 slices: the first may end at once
    assert limiter.waited_seconds > 0 and limiter.fallbacks == 0


# -- several processes sharing one store ---------------------------------------------------------------

PROCESS = r"""
import json, sys, threading, time
from app.limits import DatabaseStore, Limiter, Policy, RedisStore

kind, url, name, turns = json.loads(sys.argv[1])
if kind == "redis":
    import redis
    store = RedisStore(redis.Redis.from_url(url))
else:
    from app.extensions import make_engine
    store = DatabaseStore(make_engine(url))
limiter = Limiter(store)
policy = Policy(name, 120, 1.0, 3)
held, lock = [], threading.Lock()

def work():
    for _ in range(turns):
        with limiter.acquire(policy, "9130350000000001"):
            start = time.time()
            time.sleep(0.005)
            end = time.time()
        with lock:
            held.append((start, end))

print("ready", flush=True)
sys.stdin.readline()  # every process starts at once
threads = [threading.Thread(target=work) for _ in range(2)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(json.dumps({"held": held, "fallbacks": limiter.fallbacks}), flush=True)
"""


@SHARED_STORES
def test_processes_sharing_a_store_keep_the_limits_together(app, kind):
    url = app.config["REDIS_URL"] if kind == "redis" else app.config["DATABASE_URL"]
    policy = fresh_policy(limit=120, per_seconds=1.0, in_flight=3)
    argument = json.dumps([kind, url, policy.name, 30])
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", PROCESS, argument], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    try:
        for process in processes:
            assert process.stdout.readline().strip() == "ready"
        for process in processes:
            process.stdin.write("go\n")
            process.stdin.flush()
        results = [json.loads(process.communicate(timeout=30)[0]) for process in processes]
    finally:
        for process in processes:
            process.kill()
    held = [tuple(interval) for result in results for interval in result["held"]]
    assert len(held) == 3 * 2 * 30 and all(result["fallbacks"] == 0 for result in results)
    assert most_in_any_window([start for start, _ in held], policy.per_seconds) <= policy.limit
    assert most_at_once(held) <= policy.in_flight
    # Not one process alone: their turns interleave.
    firsts = sorted(min(start for start, _ in result["held"]) for result in results)
    lasts = sorted(max(start for start, _ in result["held"]) for result in results)
    assert firsts[-1] < lasts[0]


# -- when the store is down, or a turn takes too long ----------------------------------------------------


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_store_that_is_down_falls_back_to_limiting_in_this_process(tmp_path, caplog):
    unreachable = RedisStore(redis.Redis.from_url(f"redis://127.0.0.1:{closed_port()}/0", socket_connect_timeout=0.5))
    not_migrated = DatabaseStore(make_engine(f"sqlite:///{tmp_path / 'empty.db'}"))  # no rate_limit_* tables
    for store in (unreachable, not_migrated):
        caplog.clear()
        limiter = Limiter(store)
        policy = fresh_policy(limit=120, per_seconds=1.0, in_flight=2)
        with caplog.at_level(logging.WARNING, logger="app.limits"):
            held = hammer(limiter, policy, threads=4, total=40)
        assert len(held) == 40 and limiter.fallbacks > 0
        assert most_in_any_window([start for start, _ in held], 1.0) <= policy.limit
        assert most_at_once(held) <= policy.in_flight
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "this process only" in warnings[0]  # once a minute, not per call


def test_redis_down_the_database_keeps_the_limits_shared(app, tmp_path, caplog):
    """Several processes must keep sharing their turns while Redis restarts: the database takes over."""
    from app.extensions import db

    unreachable = RedisStore(redis.Redis.from_url(f"redis://127.0.0.1:{closed_port()}/0", socket_connect_timeout=0.5))
    with app.app_context():
        limiter = Limiter(unreachable, backup=DatabaseStore(db.engine))
        policy = fresh_policy(limit=120, per_seconds=1.0, in_flight=2)
        with caplog.at_level(logging.WARNING, logger="app.limits"):
            held = hammer(limiter, policy, threads=4, total=40)
        counted = db.session.scalars(select(RateLimitCounter.bucket)).all()
    assert len(held) == 40 and limiter.fallbacks == 0  # never in-process alone
    assert any(bucket.startswith(policy.name) for bucket in counted)  # the turns were taken in the database
    assert "limiting through the database" in caplog.text


def test_no_turn_within_max_wait_is_a_transient_failure():
    limiter = Limiter(MemoryStore(), max_wait=0.3)
    hourly = Policy("quickbooks-test", 2, 3600.0)  # one turn an hour
    with limiter.acquire(hourly, REALM_ID):
        pass
    started = time.monotonic()
    with pytest.raises(TransientError, match="rate limit") as refused:
        with limiter.acquire(hourly, REALM_ID):
            pass
    assert time.monotonic() - started < 0.1  # no use sleeping when the turn comes after max_wait anyway
    assert refused.value.service == "QuickBooks" and refused.value.retry_after == 3600.0

    one_at_once = Policy("hubspot-test", 1000, 1.0, in_flight=1)
    with limiter.acquire(one_at_once, "62515"):
        started = time.monotonic()
        with pytest.raises(TransientError) as refused:
            with limiter.acquire(one_at_once, "62515"):
                pass
        assert 0.1 < time.monotonic() - started < 1.0  # it waited, about max_wait, then gave up
    assert refused.value.service == "HubSpot"
    with limiter.acquire(one_at_once, "62515"):  # the slot came back
        pass


def test_a_turn_taken_ahead_is_used_by_the_next_request_only():
    store = CountingStore()
    limiter = Limiter(store)
    requests_policy, batches_policy = limiter.quickbooks_requests, limiter.quickbooks_batches
    with limiter.quickbooks_ahead(REALM_ID):
        assert len(store.buckets) == 2  # the request's tokens (as a /batch), taken before anything is sent
        with limiter.acquire(requests_policy, REALM_ID, batches_policy):  # the request, a /batch: nothing more
            pass
        with limiter.acquire(requests_policy, REALM_ID, batches_policy):  # a retry takes a turn of its own
            pass
    with limiter.quickbooks_ahead(REALM_ID):
        with limiter.acquire(requests_policy, REALM_ID):  # the request went alone: its /batch token goes unused
            pass
    with limiter.acquire(requests_policy, REALM_ID, batches_policy):  # after the block nothing is left over
        pass
    assert [bucket.split(":")[0] for bucket in store.buckets] == [
        requests_policy.name,
        batches_policy.name,
        requests_policy.name,
        batches_policy.name,
        requests_policy.name,
        batches_policy.name,
        requests_policy.name,
        batches_policy.name,
    ]


def test_a_turn_taken_ahead_but_unused_is_not_left_for_later():
    store = CountingStore()
    limiter = Limiter(store)
    with limiter.hubspot_ahead(62515):
        pass  # nothing sent (an answer from a cache, an error before the request)
    with limiter.hubspot(62515):
        pass
    assert len(store.buckets) == 2


def test_the_wait_is_reported_to_the_hooks():
    seen = []
    on_wait.append(lambda name, seconds: seen.append((name, seconds)))
    try:
        limiter = Limiter(MemoryStore())
        policy = fresh_policy(limit=2, per_seconds=0.2, in_flight=0)  # one turn per 200 ms
        for _ in range(3):
            with limiter.acquire(policy, REALM_ID):
                pass
    finally:
        on_wait.pop()
    assert [name for name, _ in seen] == [policy.name, policy.name]
    assert abs(sum(seconds for _, seconds in seen) - limiter.waited_seconds) < 1e-9 and limiter.waited_seconds > 0.2


# -- the clients wait for their turns --------------------------------------------------------------------


class CountingStore(MemoryStore):
    """MemoryStore that remembers which buckets took tokens."""

    def __init__(self):
        super().__init__()
        self.buckets = []

    def increment(self, bucket, number, keep_seconds):
        self.buckets.append(bucket)
        return super().increment(bucket, number, keep_seconds)


def tiny_books(fake_quickbooks, limiter) -> BooksClient:
    return BooksClient(
        realm_id=REALM_ID,
        company_name="Sandbox Company",
        tokens=FixedTokens(fake_quickbooks.issue_tokens(REALM_ID)["access_token"]),
        api_base_url=fake_quickbooks.api_base,
        timeout=5,
        limiter=limiter,
    )


def test_quickbooks_requests_wait_for_their_turn_and_a_batch_takes_both(fake_quickbooks, books):
    store = CountingStore()
    requests_policy = Policy("quickbooks-requests", 2, 0.4, in_flight=1)  # one request per 400 ms
    limiter = Limiter(store, quickbooks=(requests_policy, Policy("quickbooks-batches", 2, 0.4)))
    client = tiny_books(fake_quickbooks, limiter)
    fake_quickbooks.reset_requests()
    started = time.monotonic()
    client.query("select * from Customer")
    client.query("select * from Item")
    client.query_batch(["select * from Customer", "select * from Item"])
    elapsed = time.monotonic() - started
    assert len(fake_quickbooks.requests) == 3  # waiting adds no request
    assert 0.4 < elapsed < 2.0 and limiter.waited_seconds > 0
    assert store.buckets.count(f"quickbooks-batches:{REALM_ID}") == 1
    assert store.buckets.count(f"quickbooks-requests:{REALM_ID}") >= 3


def test_send_takes_a_turn_for_each_try(monkeypatch):
    class Flaky:
        answers = [503, 200]

        def request(self, method, url, **kwargs):
            response = http.requests.Response()
            response.status_code = self.answers.pop(0)
            return response

    turns = []

    class Turn:
        def __enter__(self):
            turns.append("in")

        def __exit__(self, *exc):
            turns.append("out")

    response = http.send(Flaky(), "GET", "https://x.test/", service="QuickBooks", timeout=1, limit=Turn)
    assert response.status_code == 200 and turns == ["in", "out", "in", "out"]


def test_hubspot_requests_wait_for_their_portals_turn_and_are_never_throttled(fake_hubspot):
    """110 per 10 s shrunk to 22 per second (2 per 100 ms slice): the fake, counting the same limit as a
    sliding window, answers no 429."""
    tokens = fake_hubspot.issue_tokens(PORTAL_ID)
    contact_id = fake_hubspot.portal(PORTAL_ID).add("contacts", {"email": "ann@acme.test"})
    fake_hubspot.enforce_rate_limit = True
    fake_hubspot.rate_limit_max, fake_hubspot.rate_limit_interval = 22, 1.0
    store = CountingStore()
    limiter = Limiter(store, hubspot=Policy("hubspot-requests", 22, 1.0))

    def work():
        crm = HubSpotClient(
            base_url=fake_hubspot.url,
            tokens=FixedTokens(tokens["access_token"]),
            timeout=5,
            limiter=limiter,
            portal_id=PORTAL_ID,
        )
        for _ in range(10):
            crm.get_object("contacts", contact_id, ["email"])

    started = time.monotonic()
    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert 1.3 < time.monotonic() - started < 3.0  # 30 requests, 2 per 100 ms
    assert store.buckets.count(f"hubspot-requests:{PORTAL_ID}") >= 30
    assert not fake_hubspot.rate_limited


def test_the_apps_clients_use_its_limiter(app, portal, connection):
    with app.app_context():
        limiter = app.extensions["limiter"]
        crm = hubspot_client(get_portal(db.session, PORTAL_ID), app.config)
        assert (crm.limiter, crm.portal_id) == (limiter, PORTAL_ID)
        books = books_client(db.session.get(QuickBooksConnection, connection), app.config)
        assert books.limiter is limiter
        books.query("select * from Customer")
        counted = db.session.scalars(select(RateLimitCounter.bucket)).all()
        assert f"quickbooks-requests:{REALM_ID}" in counted  # shared through the app's database
    assert books_client(db.session.get(QuickBooksConnection, connection), app.config).limiter is None  # no app


def test_the_fakes_never_throttle_us_within_the_same_limits(fake_quickbooks, books):
    """The QuickBooks fake, counting the same limits as sliding windows, answers no 429 to limited clients.

    QuickBooks' minute shrunk to a second: 24 requests (2 per 100 ms slice, 2 in flight) and 12 batches
    (1 per slice) per second; as in production, both policies share their slices' borders."""
    fake_quickbooks.enforce_rate_limits = True
    fake_quickbooks.max_in_flight, fake_quickbooks.rate_window_seconds = 2, 1.0
    fake_quickbooks.requests_per_minute, fake_quickbooks.batches_per_minute = 24, 12  # per 1 s window here
    limiter = Limiter(
        MemoryStore(), quickbooks=(Policy("quickbooks-requests", 24, 1.0, 2), Policy("quickbooks-batches", 12, 1.0))
    )
    clients = [tiny_books(fake_quickbooks, limiter) for _ in range(4)]

    def work(client):
        for turn in range(8):
            if turn % 2:
                client.query_batch(["select * from Customer", "select * from Item"])
            else:
                client.query("select * from Customer")

    threads = [threading.Thread(target=work, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(fake_quickbooks.requests_to("POST", "/batch")) == 16
    assert not fake_quickbooks.rate_limited, fake_quickbooks.rate_limited
    assert fake_quickbooks.peak_in_flight[REALM_ID] <= 2


def test_a_retry_within_a_turn_taken_ahead_needs_no_second_slot():
    """The turn's slot covers the thread's requests one after another: with every other slot taken (an outage,
    leaders retrying at once), a retry still gets its token at once instead of waiting for a slot."""
    limiter = Limiter(MemoryStore(), max_wait=0.3)
    one_at_once = Policy("quickbooks-test", 1000, 1.0, in_flight=1)
    with limiter.turn_ahead(one_at_once, REALM_ID):
        with limiter.acquire(one_at_once, REALM_ID):  # the request, on the turn taken ahead
            pass
        started = time.monotonic()
        with limiter.acquire(one_at_once, REALM_ID):  # its retry: the only slot is this thread's own
            pass
        assert time.monotonic() - started < 0.1
    with pytest.raises(TransientError):  # outside the block, one at once still means one at once
        with limiter.acquire(one_at_once, REALM_ID), limiter.acquire(one_at_once, REALM_ID):
            pass
