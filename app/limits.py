"""Rate limits of our outgoing QuickBooks and HubSpot requests, shared by every web and worker process.

QuickBooks allows per company (realm) 10 requests in flight, 500 requests a minute and 120 `/batch` requests
a minute; HubSpot 110 requests per 10 seconds per portal. Going over draws a 429, so every request first
takes its turn here: a slot (when the policy caps concurrency) and a token of the rate.

Rate: fixed sub-windows. A policy's window is cut into SLICES slices and each slice admits
floor(limit / (SLICES + 1)) requests: any sliding window (what the services count) overlaps at most
SLICES + 1 slices, so it never holds more than the limit. A slice's count is one atomic increment in the
store; a request over the allowance sleeps until the next slice. Slices are numbered by wall-clock time,
which every process of a host shares (hosts keep theirs in step with NTP).

In flight: numbered slots per key, each claimed atomically by one request and freed after its response; a
slot also expires, so a process that died holding one does not keep it.

Stores: Redis when REDIS_URL is set, else the database; MemoryStore in-process. When the store cannot be
reached the limiter does not fail the request: it warns (once a minute) and limits in-process meanwhile.
"""

import logging
import math
import random
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import delete, select, update
from sqlalchemy.exc import SQLAlchemyError

from actions.errors import TransientError

log = logging.getLogger(__name__)

SLICES = 10
# Longest an acquisition waits before the job gives up its try (TransientError: it is retried later).
MAX_WAIT = 120.0
# A store that failed is left alone until the next whole second of the wall clock: every process tries it again
# at the same moment, so they never split between two stores (each would admit a full share) for longer than
# the slice of headroom covers.
STORE_RETRY_SECONDS = 1.0
WARN_EVERY_SECONDS = 60.0
# Every this many increments a store deletes slices that no window can reach any more.
CLEANUP_EVERY = 100

# Called after every acquisition that had to wait, with (policy name, seconds waited): metrics append here.
on_wait: list[Callable[[str, float], None]] = []


@dataclass(frozen=True)
class Policy:
    name: str  # "quickbooks-requests": names the counters, and the service before the first "-"
    limit: int  # requests per window
    per_seconds: float  # the window
    in_flight: int = 0  # requests at once; 0: no concurrency cap

    def __post_init__(self):
        if self.limit < 2 or self.per_seconds <= 0 or self.in_flight < 0:
            # Fixed slices cannot promise 1 request per window: two may sit either side of a slice border.
            raise ValueError(f"rate limit {self.name}: needs at least 2 requests per positive window: {self}")

    @property
    def slices(self) -> int:
        # A small limit gets fewer slices, so that each slice still admits at least one request.
        return min(SLICES, self.limit - 1)

    @property
    def slice_seconds(self) -> float:
        return self.per_seconds / self.slices

    @property
    def per_slice(self) -> int:
        """Requests one slice admits. Any window overlaps at most slices + 1 slices; one slice more of headroom
        covers a request that reaches the service a little after its turn, and the turns counted in another
        store when the shared one fails over."""
        return max(1, self.limit // (self.slices + 2))

    @property
    def service(self) -> str:
        prefix = self.name.split("-", 1)[0]
        return {"quickbooks": "QuickBooks", "hubspot": "HubSpot"}.get(prefix, prefix)


def quickbooks_policies(config) -> tuple[Policy, Policy]:
    """(every request, /batch requests) to one QuickBooks company; a batch takes a token of both."""
    requests = Policy(
        "quickbooks-requests", int(config["QBO_REQUESTS_PER_MINUTE"]), 60.0, int(config["QBO_REQUESTS_IN_FLIGHT"])
    )
    return requests, Policy("quickbooks-batches", int(config["QBO_BATCHES_PER_MINUTE"]), 60.0)


def hubspot_policy(config) -> Policy:
    return Policy("hubspot-requests", int(config["HUBSPOT_REQUESTS_PER_10_SECONDS"]), 10.0)


DEFAULT_CONFIG = {
    "QBO_REQUESTS_PER_MINUTE": 500,
    "QBO_REQUESTS_IN_FLIGHT": 10,
    "QBO_BATCHES_PER_MINUTE": 120,
    "HUBSPOT_REQUESTS_PER_10_SECONDS": 110,
}


# -- stores: an atomic counter per (bucket, slice), and claimable slots per bucket -----------------------


class MemoryStore:
    """This process only: the fallback of the shared stores, and what tests use."""

    errors: tuple = ()

    def __init__(self):
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, int], int] = {}
        self._slots: dict[tuple[str, int], tuple[str, float]] = {}  # (bucket, n) -> (holder, expires)
        self._increments = 0

    def increment(self, bucket: str, number: int, keep_seconds: float) -> int:
        with self._lock:
            count = self._counts.get((bucket, number), 0) + 1
            self._counts[(bucket, number)] = count
            self._increments += 1
            if self._increments % CLEANUP_EVERY == 0:
                # Old slices of this policy's keys: slice numbers of other policies count other lengths.
                policy = bucket.split(":", 1)[0] + ":"
                stale = [k for k in self._counts if k[0].startswith(policy) and k[1] < number - 2 * SLICES]
                for k in stale:
                    del self._counts[k]
            return count

    def claim(self, bucket: str, slots: int, holder: str, ttl: float) -> int | None:
        now = time.time()
        with self._lock:
            for number in random.sample(range(slots), slots):
                held = self._slots.get((bucket, number))
                if held is None or held[1] < now:
                    self._slots[(bucket, number)] = (holder, now + ttl)
                    return number
        return None

    def release(self, bucket: str, number: int, holder: str) -> None:
        with self._lock:
            if self._slots.get((bucket, number), ("",))[0] == holder:
                del self._slots[(bucket, number)]


class RedisStore:
    """INCR + PEXPIRE per slice key; SET NX PX per slot, freed by a compare-and-delete."""

    _RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"

    def __init__(self, client):
        import redis

        self.errors = (redis.RedisError, OSError)
        self.client = client
        self._release = client.register_script(self._RELEASE)

    def increment(self, bucket: str, number: int, keep_seconds: float) -> int:
        key = f"limits:{bucket}:{number}"
        pipe = self.client.pipeline()
        pipe.incr(key)
        pipe.pexpire(key, max(1000, int(keep_seconds * 1000)))  # Redis forgets old slices by itself
        count, _ = pipe.execute()
        return int(count)

    def claim(self, bucket: str, slots: int, holder: str, ttl: float) -> int | None:
        for number in random.sample(range(slots), slots):
            if self.client.set(f"limits:slot:{bucket}:{number}", holder, nx=True, px=max(1, int(ttl * 1000))):
                return number
        return None

    def release(self, bucket: str, number: int, holder: str) -> None:
        # Only if still ours: after the TTL the slot may belong to another request.
        self._release(keys=[f"limits:slot:{bucket}:{number}"], args=[holder])


class DatabaseStore:
    """rate_limit_counters / rate_limit_slots, each operation one short transaction of its own."""

    errors = (SQLAlchemyError, OSError)

    def __init__(self, engine):
        from app.storage.models import RateLimitCounter, RateLimitSlot

        self.engine = engine
        self.counters = RateLimitCounter.__table__
        self.slots = RateLimitSlot.__table__
        if engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        self.insert = insert
        self._lock = threading.Lock()
        self._increments = 0

    def increment(self, bucket: str, number: int, keep_seconds: float) -> int:
        counters = self.counters
        statement = self.insert(counters).values(bucket=bucket, slice=number, count=1)
        statement = statement.on_conflict_do_update(
            index_elements=[counters.c.bucket, counters.c.slice], set_={"count": counters.c.count + 1}
        ).returning(counters.c.count)
        with self.engine.begin() as connection:
            count = connection.execute(statement).scalar_one()
        with self._lock:
            self._increments += 1
            cleanup = self._increments % CLEANUP_EVERY == 0
        if cleanup:
            self._forget_old_slices(bucket, number)
        return count

    def _forget_old_slices(self, bucket: str, number: int) -> None:
        # Every bucket of the policy shares its slice length, so one statement covers its idle keys too.
        policy = bucket.split(":", 1)[0]
        counters = self.counters
        with self.engine.begin() as connection:
            connection.execute(
                delete(counters).where(
                    counters.c.bucket.startswith(policy + ":", autoescape=True), counters.c.slice < number - 2 * SLICES
                )
            )

    def claim(self, bucket: str, slots: int, holder: str, ttl: float) -> int | None:
        table = self.slots
        now = datetime.now(UTC)
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(table.c.slot, table.c.holder, table.c.expires_at).where(table.c.bucket == bucket)
            ).all()
        known = {row.slot for row in rows}
        if len(known & set(range(slots))) < slots:  # first use of this key (or a higher cap): add its slots
            missing = [{"bucket": bucket, "slot": n} for n in range(slots) if n not in known]
            with self.engine.begin() as connection:
                connection.execute(self.insert(table).values(missing).on_conflict_do_nothing())
        free = [n for n in range(slots) if n not in known]
        free += [r.slot for r in rows if r.slot < slots and (r.holder is None or r.expires_at < now)]
        random.shuffle(free)
        for number in free:  # what looked free may be taken meanwhile: the UPDATE decides
            with self.engine.begin() as connection:
                claimed = connection.execute(
                    update(table)
                    .where(
                        table.c.bucket == bucket,
                        table.c.slot == number,
                        (table.c.holder.is_(None)) | (table.c.expires_at < now),
                    )
                    .values(holder=holder, expires_at=now + timedelta(seconds=ttl))
                )
            if claimed.rowcount == 1:
                return number
        return None

    def release(self, bucket: str, number: int, holder: str) -> None:
        table = self.slots
        with self.engine.begin() as connection:
            connection.execute(
                update(table)
                .where(table.c.bucket == bucket, table.c.slot == number, table.c.holder == holder)
                .values(holder=None, expires_at=None)
            )


# -- the limiter -----------------------------------------------------------------------------------------


@dataclass
class _Slot:
    store: object
    bucket: str
    number: int
    holder: str


class Limiter:
    """Takes a turn for one request: `with limiter.acquire(policy, key): send it`."""

    def __init__(
        self,
        store=None,
        *,
        enabled: bool = True,
        quickbooks: tuple[Policy, Policy] | None = None,
        hubspot: Policy | None = None,
        max_wait: float = MAX_WAIT,
        slot_ttl: float = 65.0,
        backup=None,
    ):
        self.store = store if store is not None else MemoryStore()
        self.backup = backup  # shared too (the database behind Redis): used while the store is down
        self.fallback = self.store if isinstance(self.store, MemoryStore) else MemoryStore()
        self.enabled = enabled
        self.quickbooks_requests, self.quickbooks_batches = quickbooks or quickbooks_policies(DEFAULT_CONFIG)
        self.hubspot_requests = hubspot or hubspot_policy(DEFAULT_CONFIG)
        self.max_wait = max_wait
        self.slot_ttl = slot_ttl  # outlives any one HTTP request: a dead process's slot comes back after it
        self.waited_seconds = 0.0
        self.fallbacks = 0  # store operations that were done in-process because the store failed
        self._lock = threading.Lock()
        self._down_until: dict[int, float] = {}  # id(store) → until when it is left alone
        self._warned_at = -math.inf
        self._local = threading.local()  # .ahead: {(policy name, key)} turns this thread took ahead

    # -- what the clients call ---------------------------------------------------------------------------

    def quickbooks(self, realm_id: str, url: str):
        """A turn for one QuickBooks request of this company; a /batch is a request too, so it takes both."""
        if urlsplit(url).path.endswith("/batch"):
            return self.acquire(self.quickbooks_requests, realm_id, self.quickbooks_batches)
        return self.acquire(self.quickbooks_requests, realm_id)

    def hubspot(self, portal_id):
        """A turn for one HubSpot request of this portal."""
        return self.acquire(self.hubspot_requests, str(portal_id or ""))

    def hubspot_ahead(self, portal_id):
        """The turn of this thread's next HubSpot request of this portal, taken now (see turn_ahead)."""
        return self.turn_ahead(self.hubspot_requests, str(portal_id or ""))

    def quickbooks_ahead(self, realm_id: str):
        """The turn of this thread's next QuickBooks request of this company, as a /batch, taken now. A /batch turn
        is what runs out first at month-end (120 a minute); should the request go alone after all (its batch held
        one call), the /batch token is left unused: the slice admits one less, never one more."""
        return self.turn_ahead(self.quickbooks_requests, realm_id, self.quickbooks_batches)

    @contextmanager
    def turn_ahead(self, policy: Policy, key: str, *also: Policy):
        """Take the turn of this thread's next request under `policy` now and hold it while the block runs; that
        request, sent within the block, uses it instead of waiting for another. Its retries take tokens of their
        own but no second slot: the thread's requests go one after another, on the slot the block holds (a
        thread waiting for a second slot while holding one could leave none for anybody in an outage).

        Why: a batch's leader waits for its turn with the batch still open, so while the rate limit makes
        requests wait, every call that arrives meanwhile travels in the same request."""
        if not self.enabled:
            yield
            return
        taken = {(each.name, key) for each in (policy, *also)}
        with self.acquire(policy, key, *also):
            ahead, holding = self._ahead(), self._holding()
            ahead.update(taken)
            holding.update(taken)
            try:
                yield
            finally:
                ahead.difference_update(taken)
                holding.difference_update(taken)

    def _ahead(self) -> set:
        """(policy name, key) of turns this thread took ahead and its next request has not used yet."""
        if not hasattr(self._local, "ahead"):
            self._local.ahead = set()
        return self._local.ahead

    def _holding(self) -> set:
        """(policy name, key) whose in-flight slot a turn_ahead block of this thread holds."""
        if not hasattr(self._local, "holding"):
            self._local.holding = set()
        return self._local.holding

    # -- the algorithm -----------------------------------------------------------------------------------

    @contextmanager
    def acquire(self, policy: Policy, key: str, *also: Policy):
        """Hold a slot (of each policy that caps requests in flight) and a rate token of every policy while
        the block sends one request; TransientError when no turn comes within max_wait.

        The tokens of one turn are taken together, right before the request goes, and all again when one
        is refused: a token taken and then held while waiting for another would let the request reach the
        service later than its slice, beside the next slices' requests. A token of a refused turn is not
        given back: the slice admits one less, never one more.
        """
        if not self.enabled:
            yield
            return
        ahead, holding = self._ahead(), self._holding()
        policies = tuple(each for each in (policy, *also) if (each.name, key) not in ahead)
        ahead.difference_update((each.name, key) for each in (policy, *also))  # used up by this request
        if not policies:
            yield
            return
        policy = policies[0]
        started = time.monotonic()
        deadline = started + self.max_wait
        waited = False
        while True:
            slots = []
            try:
                for each in policies:
                    if each.in_flight and (each.name, key) not in holding:
                        slot, slept = self._claim_slot(each, f"{each.name}:{key}", deadline)
                        slots.append(slot)
                        waited |= slept
                wake_at = None
                for each in policies:
                    wake_at = self._take_token(each, f"{each.name}:{key}")
                    if wake_at is not None:
                        break
            except BaseException:
                self._release(slots)
                raise
            if wake_at is None:
                break
            # Refused in this slice: free the slots while sleeping, so that a slot is only ever held by a
            # request about to go (and its TTL need only cover the request itself).
            self._release(slots)
            self._sleep_until(wake_at, deadline, each)
            waited = True
        if waited:
            self._record_wait(policy, time.monotonic() - started)
        try:
            yield
        finally:
            self._release(slots)

    def _take_token(self, policy: Policy, bucket: str) -> float | None:
        """None when this slice admits the request; else the wall-clock time to try again."""
        width = policy.slice_seconds
        number = math.floor(time.time() / width)
        keep = 2 * width + 1.0
        count, store = self._in_store(lambda store: store.increment(bucket, number, keep))
        # In-process only (every shared store down): each process counts alone, so each takes a quarter.
        allowed = (
            policy.per_slice if store is not self.fallback or self.store is self.fallback else policy.per_slice // 4
        )
        if count <= max(1, allowed):
            return None
        return (number + 1) * width + random.uniform(0.002, 0.010)  # jitter: the waiters do not all wake at once

    def _claim_slot(self, policy: Policy, bucket: str, deadline: float) -> tuple[_Slot, bool]:
        """A free slot, and whether it had to be waited for."""
        holder = uuid.uuid4().hex
        pause, slept = 0.02, False
        while True:
            number, store = self._in_store(lambda store: store.claim(bucket, policy.in_flight, holder, self.slot_ttl))
            if number is not None:
                return _Slot(store, bucket, number, holder), slept
            self._sleep_until(time.time() + random.uniform(pause, pause * 2.5), deadline, policy)
            pause, slept = min(pause * 2, 0.08), True  # 20-50 ms, growing to 80-200 ms

    def _release(self, slots: list[_Slot]) -> None:
        for slot in slots:
            try:
                slot.store.release(slot.bucket, slot.number, slot.holder)
            except slot.store.errors as exc:  # its TTL frees it
                self._store_failed(slot.store, exc)
        slots.clear()

    def _sleep_until(self, wake_at: float, deadline: float, policy: Policy) -> None:
        pause = max(0.0, wake_at - time.time())
        if time.monotonic() + pause > deadline:
            raise TransientError(
                f"{policy.service} rate limit ({policy.limit} per {policy.per_seconds:g}s"
                f"{f', {policy.in_flight} at once' if policy.in_flight else ''}): "
                f"no turn within {self.max_wait:g}s",
                retry_after=policy.per_seconds,
                service=policy.service,
            )
        time.sleep(pause)

    def _record_wait(self, policy: Policy, seconds: float) -> None:
        with self._lock:
            self.waited_seconds += seconds
        for hook in list(on_wait):
            try:
                hook(policy.name, seconds)
            except Exception:  # metrics must never fail a request
                log.exception("rate limit on_wait hook failed")

    # -- a store that fails ------------------------------------------------------------------------------

    def _in_store(self, operation) -> tuple[object, object]:
        """(what operation(store) answered, the store that answered it): the shared store, else its backup
        (also shared), else this process's own."""
        for store in (self.store, self.backup):
            if store is None or store is self.fallback or time.time() < self._down_until.get(id(store), 0):
                continue
            try:
                return operation(store), store
            except store.errors as exc:
                self._store_failed(store, exc)
        with self._lock:
            self.fallbacks += self.store is not self.fallback
        return operation(self.fallback), self.fallback

    def _store_failed(self, store, exc: Exception) -> None:
        now = time.monotonic()
        with self._lock:
            self._down_until[id(store)] = (math.floor(time.time() / STORE_RETRY_SECONDS) + 1) * STORE_RETRY_SECONDS
            warn = now - self._warned_at >= WARN_EVERY_SECONDS
            if warn:
                self._warned_at = now
        if warn:
            instead = "the database" if store is self.store and self.backup is not None else "this process only"
            log.warning(
                "rate limits: %s failed (%s: %s); limiting through %s until it answers again",
                type(store).__name__,
                type(exc).__name__,
                str(exc)[:200],
                instead,
            )


def init_app(app) -> None:
    """app.extensions["limiter"]: shared through Redis when REDIS_URL is set, else through the database."""
    config = app.config
    if config["RATE_LIMITS"] == "off":
        app.extensions["limiter"] = Limiter(enabled=False)
        return
    from app.extensions import REDIS_MAX_CONNECTIONS, db

    store, backup = DatabaseStore(db.engine), None
    if config["REDIS_URL"]:
        import redis

        # Short timeouts: an unreachable Redis must cost a request little before the database takes over.
        redis_client = redis.Redis.from_url(
            config["REDIS_URL"], socket_connect_timeout=0.25, socket_timeout=1, max_connections=REDIS_MAX_CONNECTIONS
        )
        store, backup = RedisStore(redis_client), store
    app.extensions["limiter"] = Limiter(
        store,
        backup=backup,
        quickbooks=quickbooks_policies(config),
        hubspot=hubspot_policy(config),
        slot_ttl=2 * float(config["HTTP_TIMEOUT"]) + 5,
    )
