"""`make bench`: the server as deployed, against the loopback fakes with real latencies and their rate limits on.

    python -m tests.bench                      # writes bench/results.md, bench/latency.png, bench/mass-enrollment.png

The deployment is tests/stack.py's: gunicorn serving the app (gunicorn.conf.py applies) and BENCH_WORKERS
`flask worker` processes, on PostgreSQL + Redis when they are configured (BENCH_DATABASE_URL / BENCH_REDIS_URL,
else TEST_*) or reachable at their defaults here (a database of its own, `qbo_bench`, created when missing, and
Redis database 14), else on SQLite + the embedded Huey queue; it says which. The fakes run in this process and
sleep QuickBooks' and HubSpot's latency on every request; both refuse with 429 past the real limits
(QuickBooks: 10 in flight, 500 a minute and 120 batches a minute per company; HubSpot: 110 per 10 s per portal).

Measured, each with its target where the issue sets one:
1. Answer time (delivery → BLOCK answer), p50 / p99, at 10, 50 and 200 concurrent deliveries, and throughput as
   a ratio to a bare gunicorn Flask endpoint (bench/bare.py) served the same way and hit by the same client in
   the same run, each delivery on a new connection (as nginx forwards), then again over keep-alive connections;
   with the CPU each delivery cost the web processes, PostgreSQL, Redis and the client, and what other processes
   on the machine used meanwhile. The queue workers are paused (SIGSTOP): this is the web process's work alone
   (verify, validate, record, enqueue, answer); that deployment and its backlog are then thrown away.
2. End to end, delivery → invoice in QuickBooks → callback completed, one at a time (cold: the company's first
   document, then new contacts; warm: a known contact and known products), and under load (mass enrollment).
3. QuickBooks and HubSpot API requests per document (OAuth not counted; HubSpot's include the callback
   completion and the write-back of the document onto the deal), cold, warm and under load.
4. Mass enrollment: BENCH_MASS deals of one portal into one company, delivered BENCH_MASS_CONCURRENCY at a time:
   documents per minute, 429s, duplicates, time until the last callback completed (at most BENCH_MASS_TIMEOUT).
5. Peak memory (VmHWM) of every web process and every queue worker.
Then, unless BENCH_PROFILE=0, py-spy profiles of the web answer path and of a worker ("Where the time goes").

Knobs (environment): BENCH_QBO_LATENCY (0.3 s), BENCH_HUBSPOT_LATENCY (0.08 s), BENCH_MASS (5000),
BENCH_MASS_CONCURRENCY (200), BENCH_MASS_TIMEOUT (1800 s), BENCH_CONTACTS (200), BENCH_WORKERS (2),
BENCH_WORKER_THREADS (128: batching gathers the calls of one process's executions),
BENCH_WEB_WORKERS (gunicorn.conf.py's default: 2 x CPUs + 1, at most 8),
BENCH_WEB_THREADS (4, as WEB_THREADS), BENCH_CONCURRENCY ("10,50,200"), BENCH_ANSWER_REQUESTS (per level; default
max(1000, 10 x concurrency)), BENCH_WARM_RUNS (20), BENCH_COLD_RUNS (5), BENCH_BACKEND (sqlite | postgres: no
probing), BENCH_PROFILE (1), BENCH_OUT (bench/), BENCH_QUICK=1 (a smoke run in seconds: tiny numbers, low
latencies, no profile). Figures are written, never asserted: the targets are reported met or missed.
"""

import http.client
import itertools
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import requests

from app.hubspot.signature import sign_request
from tests.scenarios import add_line_items
from tests.stack import ROOT, Stack, child_pids, free_port, peak_rss, wait_until

PORTAL_ID = 80_100
REALM_ID = "9380000000000001"
ACTION = "create_invoice"
PATH = f"/hubspot/actions/{ACTION}"
# Line items added from HubSpot's product library carry their product's id, which a warm run's item mapping is keyed by.
WIDGET = {"name": "Widget", "hs_sku": "W-1", "quantity": "2", "price": "100", "amount": "200", "hs_product_id": "501"}
SETUP = {"name": "Setup service", "quantity": "1", "price": "250", "amount": "250", "hs_product_id": "502"}
DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/qbo_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/14"
MB = 1024 * 1024

# The targets of the issue.
TARGET_ANSWER_P99_MS = 50.0
TARGET_THROUGHPUT_RATIO = 0.8
TARGET_WARM_P50_S = 1.0
TARGET_DOCUMENTS_PER_MINUTE = 1000.0
TARGET_MEMORY_MB = 150.0


# -- settings -----------------------------------------------------------------------------------------------


def deployed_web_workers() -> int:
    """gunicorn.conf.py's default WEB_CONCURRENCY on this machine."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    return min(2 * cpus + 1, 8)


@dataclass
class Settings:
    quick: bool
    qbo_latency: float
    hubspot_latency: float
    mass: int
    mass_concurrency: int
    mass_timeout: float
    contacts: int
    workers: int
    worker_threads: int
    web_workers: int
    web_threads: int
    levels: list[int]
    answer_requests: int  # 0: max(1000, 10 x concurrency)
    warm_runs: int
    cold_runs: int
    profile: bool
    out: Path
    backend: str  # "", "sqlite" or "postgres"
    quiet_seconds: float  # no request for this long: one execution's work (its write-back included) is over

    @classmethod
    def from_env(cls, environ=None) -> "Settings":
        env = os.environ if environ is None else environ
        quick = env.get("BENCH_QUICK", "") not in ("", "0")

        def number(name, full, smoke, kind=float):
            value = env.get(name, "").strip()
            return kind(value) if value else kind(smoke if quick else full)

        levels = env.get("BENCH_CONCURRENCY", "").strip() or ("2,5" if quick else "10,50,200")
        return cls(
            quick=quick,
            qbo_latency=number("BENCH_QBO_LATENCY", 0.3, 0.02),
            hubspot_latency=number("BENCH_HUBSPOT_LATENCY", 0.08, 0.01),
            mass=number("BENCH_MASS", 5000, 12, int),
            mass_concurrency=number("BENCH_MASS_CONCURRENCY", 200, 6, int),
            mass_timeout=number("BENCH_MASS_TIMEOUT", 1800, 60),
            contacts=number("BENCH_CONTACTS", 200, 3, int),
            workers=number("BENCH_WORKERS", 2, 1, int),
            worker_threads=number("BENCH_WORKER_THREADS", 128, 4, int),
            web_workers=number("BENCH_WEB_WORKERS", deployed_web_workers(), 2, int),
            web_threads=number("BENCH_WEB_THREADS", 4, 4, int),
            levels=[int(level) for level in levels.split(",") if level.strip()],
            answer_requests=number("BENCH_ANSWER_REQUESTS", 0, 20, int),
            warm_runs=number("BENCH_WARM_RUNS", 20, 2, int),
            cold_runs=number("BENCH_COLD_RUNS", 5, 1, int),
            profile=number("BENCH_PROFILE", 1, 0, int) > 0,
            out=Path(env.get("BENCH_OUT", "").strip() or ROOT / "bench"),
            backend=env.get("BENCH_BACKEND", "").strip().lower(),
            quiet_seconds=0.5 if quick else 1.5,
        )

    def requests_at(self, concurrency: int) -> int:
        return self.answer_requests or max(1000, 10 * concurrency)


@dataclass
class Backend:
    database_url: str  # "": SQLite in the stack's directory
    redis_url: str  # "": the embedded Huey queue on SQLite
    label: str
    why: str


def reachable_postgres(url: str) -> bool:
    """Can we connect to the server of `url`? Creates the database when the server is there without it."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    target = make_url(url)
    try:
        engine = create_engine(target.set(database="postgres"), connect_args={"connect_timeout": 3})
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            exists = connection.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": target.database}
            ).first()
            if not exists:
                connection.execute(text(f'CREATE DATABASE "{target.database}"'))
        engine.dispose()
        return True
    except Exception:  # noqa: BLE001 - not there, not ours: the embedded defaults then
        return False


def reachable_redis(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=2).ping())
    except Exception:  # noqa: BLE001
        return False


def choose_backend(settings: Settings, environ=None) -> Backend:
    env = os.environ if environ is None else environ
    database = env.get("BENCH_DATABASE_URL", "") or env.get("TEST_DATABASE_URL", "")
    redis_url = env.get("BENCH_REDIS_URL", "") or env.get("TEST_REDIS_URL", "")
    if settings.backend == "sqlite":
        return Backend("", "", "SQLite + embedded Huey", "BENCH_BACKEND=sqlite")
    configured = bool(database and redis_url)
    database = database or DEFAULT_DATABASE_URL
    redis_url = redis_url or DEFAULT_REDIS_URL
    if reachable_postgres(database) and reachable_redis(redis_url):
        why = "configured" if configured else "reachable at the defaults"
        return Backend(database, redis_url, "PostgreSQL + Redis", f"{why}: {database}, {redis_url}")
    if settings.backend == "postgres":
        raise SystemExit(f"BENCH_BACKEND=postgres but {database} or {redis_url} cannot be reached")
    return Backend("", "", "SQLite + embedded Huey", "PostgreSQL + Redis not configured nor reachable")


# -- statistics -----------------------------------------------------------------------------------------------


def percentile(values, p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = p / 100 * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def p50_p99(values) -> tuple[float, float]:
    return percentile(values, 50), percentile(values, 99)


def ms(seconds: float) -> str:
    return "n/a" if seconds != seconds else f"{seconds * 1000:.1f} ms"


def sec(seconds: float) -> str:
    return "n/a" if seconds != seconds else f"{seconds:.2f} s"


def mb(size: float) -> str:
    return f"{size / MB:.0f} MB"


# -- the client: closed-loop load over keep-alive connections ---------------------------------------------


@dataclass
class Shot:
    sent: float  # perf_counter
    answered: float
    status: int  # 0: no answer (connection error, timeout)
    tries: int = 1

    @property
    def seconds(self) -> float:
        return self.answered - self.sent


def fire(
    port: int,
    count: int,
    prepare: Callable[[int], tuple[bytes, dict]],
    concurrency: int,
    *,
    retries: int = 0,
    on_sent: Callable[[int, float], None] | None = None,
    keep_alive: bool = False,
) -> tuple[list[Shot], float]:
    """POST `count` prepared requests, `concurrency` at a time: each of `concurrency` threads sends its next
    request as soon as the last is answered (http.client, the lightest client at hand: its cost is the same for
    our endpoint and the bare one). Each request on a new connection (`Connection: close`), as a proxy such as
    nginx forwards by default; keep_alive=True keeps one HTTP/1.1 connection per thread instead. Returns each
    request's Shot and the wall time. retries > 0 sends again after an error or a 5xx, as HubSpot does (a second
    later)."""
    extra = {} if keep_alive else {"Connection": "close"}
    shots: list[Shot | None] = [None] * count
    numbers = itertools.count()
    barrier = threading.Barrier(concurrency + 1)

    def connect():
        return http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def run():
        connection = connect()
        barrier.wait()
        while (index := next(numbers)) < count:
            body, headers = prepare(index)
            first = None
            for attempt in range(retries + 1):
                started = time.perf_counter()
                first = first or started
                if on_sent is not None and attempt == 0:
                    on_sent(index, started)
                try:
                    connection.request("POST", PATH, body=body, headers={**headers, **extra})
                    response = connection.getresponse()
                    response.read()
                    status = response.status
                    if response.will_close or not keep_alive:
                        connection.close()
                        connection = connect()
                except (OSError, http.client.HTTPException):
                    status = 0
                    connection.close()
                    connection = connect()
                shots[index] = Shot(started, time.perf_counter(), status, attempt + 1)
                if 0 < status < 500 or attempt == retries:
                    break
                time.sleep(1)
                body, headers = prepare(index)  # signed again: HubSpot signs each try
            shots[index].sent = first
        connection.close()

    threads = [threading.Thread(target=run, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    return [shot for shot in shots if shot is not None], time.perf_counter() - started


def connection_spread(port: int) -> list[int]:
    """How many established connections to `port` each server process holds now, most first (ss; [] without)."""
    try:
        out = subprocess.run(
            ["ss", "-tnpH", "state", "established", f"sport = :{port}"], capture_output=True, text=True, timeout=10
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return sorted(Counter(re.findall(r"pid=(\d+)", out)).values(), reverse=True)


def signed(stack: Stack, callback_id: str, deal_id: str) -> tuple[bytes, dict]:
    """An execution of create_invoice for the deal, signed as HubSpot signs it (v3)."""
    body = stack.execution_body(callback_id=callback_id, object_id=deal_id, portal_id=PORTAL_ID)
    raw = json.dumps(body).encode()
    headers = sign_request("POST", stack.url + PATH, raw, secret=stack.hubspot.client_secret)
    return raw, {**headers, "Content-Type": "application/json"}


# -- CPU time by process group ----------------------------------------------------------------------------


def cpu_seconds(pids) -> float:
    """User + system CPU time the processes have used (0 for one that is gone)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of proc(5)
    return total / os.sysconf("SC_CLK_TCK")


def pids_named(name: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


CPU_GROUPS = ("web processes", "PostgreSQL", "Redis", "client and fakes")


def postgres_pids(database: str) -> list[int]:
    """PostgreSQL's backends serving `database` (their process title names it) and its auxiliary processes
    (WAL writer, checkpointer...: no client address in their title), not other databases' backends."""
    found = []
    for pid in pids_named("postgres"):
        try:
            title = Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
        except OSError:
            continue
        if f" {database} " in title or "(" not in title:
            found.append(pid)
    return found


def machine_busy() -> float:
    """CPU seconds the whole machine has spent busy (every CPU; /proc/stat: all but idle and iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def load_average() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def cpu_snapshot(server: subprocess.Popen, database: str) -> dict[str, float]:
    """CPU seconds used so far by the web server (gunicorn's master and workers), PostgreSQL's processes for
    `database`, Redis, and this process (the client's threads, and the fakes, idle while answer time is
    measured); and by the whole machine ("machine"): what else ran shows as the difference."""
    times = os.times()
    return {
        "web processes": cpu_seconds([server.pid, *child_pids(server.pid)]),
        "PostgreSQL": cpu_seconds(postgres_pids(database)) if database else 0.0,
        "Redis": cpu_seconds(pids_named("redis-server")),
        "client and fakes": times.user + times.system,
        "machine": machine_busy(),
    }


# -- profiles -------------------------------------------------------------------------------------------------


class Profiler:
    """py-spy recording a process (and its children) into raw collapsed stacks, until stop()."""

    def __init__(self, pid: int, output: Path, *, subprocesses: bool = False, idle: bool = False, rate: int = 100):
        self.output = output
        self.process = None
        py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if not Path(py_spy).exists():
            return
        command = [py_spy, "record", "--pid", str(pid), "--format", "raw", "--full-filenames", "--nonblocking"]
        command += ["--rate", str(rate), "--output", str(output)]
        command += ["--subprocesses"] if subprocesses else []
        command += ["--idle"] if idle else []
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def stop(self) -> dict[str, int]:
        """{stack: samples}; {} when py-spy is missing or failed."""
        if self.process is None:
            return {}
        self.process.send_signal(signal.SIGINT)  # py-spy writes what it has on Ctrl-C
        try:
            _, errors = self.process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return {}
        if not self.output.exists():
            print(f"  py-spy wrote nothing: {errors.strip()[-300:]}")
            return {}
        stacks: dict[str, int] = {}
        for line in self.output.read_text().splitlines():
            stack, _, samples = line.rpartition(" ")
            if stack and samples.isdigit():
                stacks[stack] = stacks.get(stack, 0) + int(samples)
        return stacks


FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")

# What a sample is doing: the first rule matching a frame, walking from the innermost frame outwards.
WEB_RULES = [
    ("database (SQLAlchemy, driver)", ("sqlalchemy/", "psycopg", "sqlite3", "alembic/")),
    ("queue (Huey enqueue, Redis)", ("/huey/", "/redis/")),
    ("signature check", ("app/hubspot/signature.py",)),
    ("request validation (marshmallow)", ("marshmallow/",)),
    ("logging", ("/logging/", "app/observability.py")),
    ("metrics", ("prometheus_client/", "app/metrics.py")),
    ("JSON", ("/json/",)),
    ("Flask and Werkzeug", ("/flask/", "/werkzeug/")),
    ("gunicorn (HTTP parsing, sockets, threads)", ("/gunicorn/", "/socket.py", "/selectors.py", "/threading.py")),
]
WORKER_RULES = [
    ("waiting for a rate-limit turn", ("app/limits.py",)),
    ("database (SQLAlchemy, driver)", ("sqlalchemy/", "psycopg", "sqlite3")),
    ("Redis", ("/redis/",)),
    ("QuickBooks API calls (latency, HTTP, python-quickbooks)", ("app/quickbooks/", "/quickbooks/", "intuitlib")),
    ("HubSpot API calls (latency, HTTP, SDK)", ("app/hubspot/", "/hubspot/")),
    ("retry back-off sleeps", ("app/backoff.py",)),
    ("logging", ("/logging/", "app/observability.py")),
]


def frame_file(frame: str) -> str:
    match = FRAME.match(frame)
    return match.group("file") if match else frame


def frame_label(frame: str) -> str:
    match = FRAME.match(frame)
    if not match:
        return frame
    path = match.group("file")
    for marker in ("/site-packages/", str(ROOT) + "/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{match.group('function')} ({path})"


def classify(frames: list[str], rules) -> str:
    for frame in reversed(frames):
        path = frame_file(frame)
        for name, needles in rules:
            if any(needle in path for needle in needles):
                return name
    return "other (our code, the interpreter)"


def own_frame(frame: str) -> bool:
    path = frame_file(frame)
    return path.startswith(str(ROOT)) and "/.venv/" not in path and "/tests/" not in path


def summarise_profile(stacks: dict[str, int], rules, *, job_only: bool = False) -> dict:
    """Shares of samples by category, and the functions of our code with the most samples inside them."""
    total = sum(stacks.values())
    categories: Counter = Counter()
    inclusive: Counter = Counter()
    self_time: Counter = Counter()
    idle = 0
    for stack, samples in stacks.items():
        frames = [frame for frame in stack.split(";") if frame and not frame.startswith("process ")]
        frames = [frame for frame in frames if not frame.startswith("thread ")]
        if job_only and not any("app/worker.py" in frame_file(frame) for frame in frames):
            idle += samples  # a consumer thread waiting for a job, the scheduler, the main thread
            continue
        categories[classify(frames, rules)] += samples
        if frames:
            self_time[frame_label(frames[-1])] += samples
        for label in {frame_label(frame) for frame in frames if own_frame(frame)}:
            inclusive[label] += samples
    busy = total - idle
    return {
        "samples": total,
        "busy": busy,
        "idle": idle,
        "categories": categories.most_common(),
        "inclusive": inclusive.most_common(12),
        "self": self_time.most_common(10),
    }


# -- the benchmark --------------------------------------------------------------------------------------------


@dataclass
class Run:
    """One execution delivered alone."""

    answered: float
    document: float  # seconds from the delivery to the invoice stored in the fake QuickBooks
    completed: float  # ... to the callback completed at the fake HubSpot
    quickbooks: int  # API requests
    hubspot: int
    outcome: str


@dataclass
class Results:
    settings: Settings
    backend: Backend
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    answers: dict = field(default_factory=dict)  # (target, concurrency) -> {"p50", "p99", "throughput", ...}
    runs: dict = field(default_factory=dict)  # "cold company" | "cold contact" | "warm" -> [Run]
    mass: dict = field(default_factory=dict)
    memory: dict = field(default_factory=lambda: {"web": {}, "workers": {}, "bare": {}})
    profiles: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    duration: float = 0.0
    code: str = field(default_factory=lambda: code_state())
    load: dict = field(default_factory=dict)  # the machine's 1-minute load average at points of the run


def quickbooks_api(requests_seen) -> list:
    return [r for r in requests_seen if r.path.startswith("/v3/company/")]


def hubspot_api(requests_seen) -> list:
    return [r for r in requests_seen if not r.path.startswith("/oauth")]


class Bench:
    def __init__(self, settings: Settings, backend: Backend, workdir: Path):
        self.settings = settings
        self.backend = backend
        self.workdir = workdir
        self.results = Results(settings, backend)
        self.database_name = backend.database_url.rsplit("/", 1)[-1].split("?", 1)[0] if backend.database_url else ""

    def stack(self, name: str) -> Stack:
        s = self.settings
        return Stack(
            self.workdir / name,
            database_url=self.backend.database_url,
            redis_url=self.backend.redis_url,
            workers=s.workers,
            worker_threads=s.worker_threads,
            web_workers=s.web_workers,
            web_threads=s.web_threads,
            quickbooks_latency=s.qbo_latency,
            hubspot_latency=s.hubspot_latency,
            settings={"LOG_LEVEL": "INFO"},  # as deployed (the stack's default is WARNING)
        )

    def set_up(self, stack: Stack):
        """One portal, one company with the two products, the fakes' limits on."""
        stack.quickbooks.enforce_rate_limits = True
        stack.hubspot.enforce_rate_limit = True
        stack.install(PORTAL_ID, REALM_ID, company_name="Bench Company")
        books = stack.quickbooks.company(REALM_ID)
        income = min(books.all("Account"), key=lambda a: int(a["Id"]))["Id"]
        books.add_item(Name="Widget", Sku="W-1", Type="NonInventory", UnitPrice=100, IncomeAccountRef={"value": income})
        books.add_item(Name="Setup service", Type="Service", UnitPrice=250, IncomeAccountRef={"value": income})
        return stack.hubspot.portal(PORTAL_ID)

    @staticmethod
    def contact(portal, n: int) -> str:
        return portal.add("contacts", {"firstname": f"Buyer{n}", "lastname": "Bench", "email": f"buyer{n}@bench.test"})

    @staticmethod
    def deal(portal, contact: str, n: int) -> str:
        closed = (date.today() - timedelta(days=1)).isoformat()
        deal_id = portal.add("deals", {"dealname": f"Bench deal {n}", "amount": "450", "closedate": closed})
        portal.associate("deals", deal_id, "contacts", contact)
        add_line_items(portal, "deals", deal_id, [WIDGET, SETUP])
        return str(deal_id)

    def run(self) -> Results:
        started = time.monotonic()
        self.results.load["start"] = load_average()
        self.answer_time()
        self.results.load["after answer time"] = load_average()
        self.flows()
        self.results.load["end"] = load_average()
        self.results.duration = time.monotonic() - started
        return self.results

    # -- 1. answer time ---------------------------------------------------------------------------------

    def answer_time(self) -> None:
        s = self.settings
        print(f"answer time: {s.levels} concurrent, workers paused, against a bare endpoint")
        with self.stack("answers") as stack:
            portal = self.set_up(stack)
            deal_id = self.deal(portal, self.contact(portal, 0), 0)
            stack.pause_workers()
            bare_port = free_port()
            bare = stack.start_gunicorn("bench.bare:create_app()", bare_port, "bare.log")
            try:
                wait_until(
                    lambda: requests.get(f"http://127.0.0.1:{bare_port}/healthz", timeout=1).ok, 60, "the bare endpoint"
                )
                for concurrency, keep_alive in itertools.product(s.levels, (False, True)):
                    count = s.requests_at(concurrency)
                    warm_up = min(100, count)
                    mode = "keep-alive" if keep_alive else "new connection"
                    for target, port, server in (("bare", bare_port, bare), ("ours", stack.port, stack.web)):
                        bodies = [
                            signed(stack, callback, deal_id)
                            for callback in (stack.hubspot.new_callback_id(PORTAL_ID) for _ in range(count + warm_up))
                        ]
                        fire(port, warm_up, bodies.__getitem__, min(concurrency, warm_up), keep_alive=keep_alive)
                        spread: list[int] = []
                        if keep_alive:  # which processes hold the connections, once they are all open
                            sampler = threading.Timer(1.0, lambda p=port, out=spread: out.extend(connection_spread(p)))
                            sampler.start()
                        cpu_before = cpu_snapshot(server, self.database_name)
                        shots, wall = fire(
                            port,
                            count,
                            lambda i, b=bodies, skip=warm_up: b[skip + i],
                            concurrency,
                            keep_alive=keep_alive,
                        )
                        cpu_after = cpu_snapshot(server, self.database_name)
                        if keep_alive:
                            sampler.join()
                        ok = [shot.seconds for shot in shots if shot.status == 200]
                        p50, p99 = p50_p99(ok)
                        self.results.answers[(target, concurrency, mode)] = {
                            "p50": p50,
                            "p99": p99,
                            "max": max(ok, default=float("nan")),
                            "throughput": len(shots) / wall,
                            "errors": Counter(shot.status for shot in shots if shot.status != 200),
                            "requests": len(shots),
                            "cpu": {k: (cpu_after[k] - cpu_before[k]) / len(shots) for k in cpu_after},
                            "load": load_average(),
                            "wall": wall,
                            "spread": spread,
                        }
                        print(
                            f"  {target:<4} {concurrency:>4} concurrent, {mode:<14}: p50 {ms(p50)}, p99 {ms(p99)}, "
                            f"{len(shots) / wall:.0f}/s, errors {sum(1 for shot in shots if shot.status != 200)}"
                        )
                if s.profile:
                    self.profile_web(stack, deal_id, max(s.levels))
                self.results.memory["web"].update(stack.peak_memory()["web"])
                self.results.memory["bare"] = {pid: peak_rss(pid) for pid in child_pids_of(bare)}
            finally:
                bare.terminate()
                bare.wait(timeout=15)
                for worker in stack.workers:  # their backlog goes with this deployment
                    if worker.poll() is None:
                        worker.terminate()
                stack.resume_workers()

    def profile_web(self, stack: Stack, deal_id: str, concurrency: int) -> None:
        count = max(2000, 10 * concurrency)
        print(f"  profiling the web processes (py-spy) over {count} more deliveries, {concurrency} concurrent")
        bodies = [signed(stack, stack.hubspot.new_callback_id(PORTAL_ID), deal_id) for _ in range(count)]
        profiler = Profiler(stack.web.pid, self.workdir / "web-profile.txt", subprocesses=True)
        time.sleep(1.0)  # py-spy attaches
        fire(stack.port, count, bodies.__getitem__, concurrency)
        stacks = profiler.stop()
        if stacks:
            self.results.profiles["web"] = summarise_profile(stacks, WEB_RULES)

    # -- 2 to 5: end to end, requests per document, mass enrollment, memory ------------------------------

    def flows(self) -> None:
        with self.stack("flows") as stack:
            portal = self.set_up(stack)
            stack.wait_for_workers()  # the first document's time is not the workers' start-up
            self.alone(stack, portal)
            self.mass_enrollment(stack, portal)
            if self.settings.profile:
                self.profile_worker(stack, portal)
            memory = stack.peak_memory()
            self.results.memory["web"].update(memory["web"])
            self.results.memory["workers"].update(memory["workers"])

    def run_one(self, stack: Stack, deal_id: str) -> Run:
        qbo, hs = stack.quickbooks, stack.hubspot
        qbo_before, hs_before = len(qbo.requests), len(hs.requests)
        callback = hs.new_callback_id(PORTAL_ID)
        started = time.perf_counter()
        body = stack.execution_body(callback_id=callback, object_id=deal_id, portal_id=PORTAL_ID)
        answer = stack.deliver(ACTION, body)
        answered = time.perf_counter() - started
        document = completed = float("nan")
        deadline = time.monotonic() + 120
        completion = None
        while time.monotonic() < deadline and (completion is None or document != document):
            if document != document and callback in qbo.documents_by_execution(REALM_ID, ["Invoice"]):
                document = time.perf_counter() - started
            if completion is None and (completion := hs.completion_for(callback)) is not None:
                completed = time.perf_counter() - started
            time.sleep(0.005)
        # The write-back of the document onto the deal follows the callback: wait until both fakes are quiet.
        quiet_since, seen = time.monotonic(), (len(qbo.requests), len(hs.requests))
        while time.monotonic() - quiet_since < self.settings.quiet_seconds and time.monotonic() < deadline:
            time.sleep(0.05)
            now = (len(qbo.requests), len(hs.requests))
            if now != seen:
                quiet_since, seen = time.monotonic(), now
        qbo_requests = [r for r in quickbooks_api(qbo.requests[qbo_before:]) if not r.path.endswith("/cdc")]
        outcome = "no answer" if answer.status_code != 200 else "not completed"
        if completion is not None:
            fields = completion.output_fields
            outcome = fields.get("error_code") or fields.get("hs_execution_state", "?")
        return Run(answered, document, completed, len(qbo_requests), len(hubspot_api(hs.requests[hs_before:])), outcome)

    def alone(self, stack: Stack, portal) -> None:
        s = self.settings
        print("end to end, one at a time: cold (the company's first document; new contacts) and warm")
        first_contact = self.contact(portal, 1)
        kinds = [("cold company", [first_contact])]
        kinds.append(("cold contact", [self.contact(portal, 100 + n) for n in range(s.cold_runs)]))
        kinds.append(("warm", [first_contact] * s.warm_runs))
        for kind, contacts in kinds:
            runs = [self.run_one(stack, self.deal(portal, contact, n)) for n, contact in enumerate(contacts)]
            self.results.runs[kind] = runs
            p50, p99 = p50_p99([run.completed for run in runs])
            print(
                f"  {kind:<13} n={len(runs)}: end to end p50 {sec(p50)} p99 {sec(p99)}; "
                f"{statistics.mean(r.quickbooks for r in runs):.1f} QuickBooks and "
                f"{statistics.mean(r.hubspot for r in runs):.1f} HubSpot requests each; "
                f"{dict(Counter(r.outcome for r in runs))}"
            )

    def mass_enrollment(self, stack: Stack, portal) -> None:
        s = self.settings
        qbo, hs = stack.quickbooks, stack.hubspot
        print(
            f"mass enrollment: {s.mass} deals of portal {PORTAL_ID} into one company, {s.contacts} contacts, "
            f"{s.mass_concurrency} deliveries at a time (at most {s.mass_timeout:.0f} s)"
        )
        contacts = [self.contact(portal, 1000 + n) for n in range(s.contacts)]
        deals = [self.deal(portal, contacts[n % len(contacts)], 10_000 + n) for n in range(s.mass)]
        callbacks = [hs.new_callback_id(PORTAL_ID) for _ in deals]
        index = {callback: n for n, callback in enumerate(callbacks)}
        sent = [float("nan")] * s.mass
        documented = [float("nan")] * s.mass
        completed = [float("nan")] * s.mass
        written = [float("nan")] * s.mass  # the invoice's id written onto its deal (after the callback)
        unwritten = set(range(s.mass))
        timeline: list[tuple[float, int, int, int]] = []  # (perf_counter, invoices, completions, written back)
        qbo.reset_counters()
        hs.reset_counters()
        qbo_before, hs_before = len(qbo.requests), len(hs.requests)
        invoices = qbo.company(REALM_ID)
        invoices_before = len(invoices.all("Invoice"))
        watching = threading.Event()
        watching.set()

        def watch():
            seen_completions = seen_invoices = 0
            documents = completions = 0
            for tick in itertools.count():
                if not watching.is_set():
                    break
                now = time.perf_counter()
                for completion in hs.completions[seen_completions:]:
                    n = index.get(completion.callback_id)
                    if n is not None and completed[n] != completed[n]:
                        completed[n] = now
                        completions += 1
                    seen_completions += 1
                with qbo._lock:
                    fresh = list(invoices.records("Invoice"))[invoices_before + seen_invoices :]
                    notes = [str(record.get("PrivateNote") or "") for record in fresh]
                seen_invoices += len(fresh)
                for note in notes:
                    for callback in re.findall(r"\(execution ([^)]+)\)", note):
                        n = index.get(callback)
                        if n is not None and documented[n] != documented[n]:
                            documented[n] = now
                            documents += 1
                if tick % 8 == 0:  # every 2 s: which deals carry their invoice's id now
                    for n in list(unwritten):
                        if portal.get("deals", deals[n])["properties"].get("quickbooks_invoice_id"):
                            written[n] = now
                            unwritten.discard(n)
                timeline.append((now, documents, completions, s.mass - len(unwritten)))
                time.sleep(0.25)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()

        def prepare(n):
            return signed(stack, callbacks[n], deals[n])

        def on_sent(n, at):
            sent[n] = at

        began = time.perf_counter()
        shots, delivered_in = fire(stack.port, s.mass, prepare, s.mass_concurrency, retries=4, on_sent=on_sent)
        print(
            f"  {len(shots)} delivered in {delivered_in:.1f} s; answers {dict(Counter(shot.status for shot in shots))}"
        )
        deadline = began + s.mass_timeout
        last_report = time.perf_counter()
        while time.perf_counter() < deadline and sum(1 for t in completed if t == t) < s.mass:
            time.sleep(0.5)
            if time.perf_counter() - last_report > 60:
                last_report = time.perf_counter()
                done = sum(1 for t in completed if t == t)
                print(f"  {last_report - began:6.0f} s: {done} callbacks completed", flush=True)
        timed_out = sum(1 for t in completed if t == t) < s.mass
        # The write-backs of the invoices onto their deals follow the callbacks: their requests count too.
        write_back_deadline = time.perf_counter() + (0 if timed_out else 900)
        progress, progress_at = len(unwritten), time.perf_counter()
        while unwritten and time.perf_counter() < write_back_deadline:
            time.sleep(0.5)
            if len(unwritten) != progress:
                progress, progress_at = len(unwritten), time.perf_counter()
            elif time.perf_counter() - progress_at > 120:  # none for two minutes: they are not coming
                break
            if time.perf_counter() - last_report > 60:
                last_report = time.perf_counter()
                print(f"  {last_report - began:6.0f} s: {s.mass - len(unwritten)} written back", flush=True)
        quiet_deadline = time.monotonic() + (5 if timed_out else 60)
        seen, quiet_since = (len(qbo.requests), len(hs.requests)), time.monotonic()
        while time.monotonic() < quiet_deadline and time.monotonic() - quiet_since < 3 * s.quiet_seconds:
            time.sleep(0.1)
            if (now := (len(qbo.requests), len(hs.requests))) != seen:
                seen, quiet_since = now, time.monotonic()
        watching.clear()
        watcher.join()
        by_execution = qbo.documents_by_execution(REALM_ID, ["Invoice"])
        ours = {callback: by_execution.get(callback, []) for callback in callbacks}
        outcomes = Counter()
        for completion in hs.completions:
            if completion.callback_id in index:
                fields = completion.output_fields
                outcomes[fields.get("error_code") or fields.get("hs_execution_state", "?")] += 1
        customers = Counter(c.get("DisplayName") for c in invoices.all("Customer"))
        done_times = [t for t in completed if t == t]
        documents = sum(1 for documents in ours.values() if documents)
        last_document = max((t for t in documented if t == t), default=float("nan"))
        self.results.mass = {
            "executions": s.mass,
            "delivered in": delivered_in,
            "delivery answers": Counter(shot.status for shot in shots),
            "delivery retries": sum(shot.tries - 1 for shot in shots),
            "timed out": timed_out,
            "documents": documents,
            "completed": len(done_times),
            "outcomes": outcomes,
            "documents per minute": (documents / (last_document - began) * 60) if documents else 0.0,
            "best minute": best_minute(timeline, began),
            "last callback": (max(done_times) - began) if done_times else float("nan"),
            "written back": sum(1 for t in written if t == t),
            "last write-back": max((t for t in written if t == t), default=began + float("nan")) - began,
            "duplicates": sum(max(0, len(documents) - 1) for documents in ours.values()),
            "duplicate customers": sum(count - 1 for count in customers.values() if count > 1),
            "429 QuickBooks": dict(qbo.rate_limited),
            "429 HubSpot": dict(hs.rate_limited),
            "peak in flight": dict(qbo.peak_in_flight),
            "quickbooks requests": len(quickbooks_api(qbo.requests[qbo_before:])),
            "quickbooks batches": sum(1 for r in qbo.requests[qbo_before:] if r.path.endswith("/batch")),
            "hubspot requests": len(hubspot_api(hs.requests[hs_before:])),
            "end to end": [completed[n] - sent[n] for n in range(s.mass) if completed[n] == completed[n]],
            "to document": [documented[n] - sent[n] for n in range(s.mass) if documented[n] == documented[n]],
            "timeline": [(t - began, d, c, w) for t, d, c, w in timeline],
        }
        m = self.results.mass
        print(
            f"  {documents} invoices, {len(done_times)} callbacks completed{' (TIMED OUT)' if timed_out else ''}; "
            f"{m['documents per minute']:.0f} documents/min; last callback after {sec(m['last callback'])}; "
            f"429s QuickBooks {m['429 QuickBooks']} HubSpot {m['429 HubSpot']}; duplicates {m['duplicates']}"
        )

    def profile_worker(self, stack: Stack, portal) -> None:
        """A worker's wall-clock time (idle threads included) while a fresh wave of executions is worked off."""
        seconds = 30
        wave = 120
        print(f"  profiling a worker (py-spy, wall clock) for {seconds} s over a wave of {wave} executions")
        contacts = [self.contact(portal, 5000 + n) for n in range(10)]
        deals = [self.deal(portal, contacts[n % len(contacts)], 50_000 + n) for n in range(wave)]
        callbacks = [stack.hubspot.new_callback_id(PORTAL_ID) for _ in deals]
        profiler = Profiler(stack.workers[0].pid, self.workdir / "worker-profile.txt", idle=True, rate=50)
        time.sleep(1.0)
        began = time.monotonic()

        def prepare(n):
            return signed(stack, callbacks[n], deals[n])

        fire(stack.port, wave, prepare, 50, retries=4)
        time.sleep(max(0.0, seconds - (time.monotonic() - began)))
        stacks = profiler.stop()
        if stacks:
            self.results.profiles["worker"] = summarise_profile(stacks, WORKER_RULES, job_only=True)


def child_pids_of(process: subprocess.Popen) -> list[int]:
    return child_pids(process.pid) if process.poll() is None else []


def best_minute(timeline, began: float) -> float:
    """The most documents created in any 60 s of the timeline (fewer seconds when the run was shorter)."""
    best = 0
    start = 0
    for end in range(len(timeline)):
        while timeline[end][0] - timeline[start][0] > 60:
            start += 1
        best = max(best, timeline[end][1] - timeline[start][1])
    return float(best)


# -- the report -----------------------------------------------------------------------------------------------


@dataclass
class Figure:
    label: str
    value: str
    target: str = ""
    met: bool | None = None

    @property
    def verdict(self) -> str:
        return "" if self.met is None else ("met" if self.met else "**missed**")


# Every figure's label, as results.md writes it ({c}: the concurrency; {top}: the highest one): the smoke test
# checks each is there.
FIGURE_LABELS = [
    "Answer time p50 / p99, {c} concurrent",
    "Bare endpoint p50 / p99, {c} concurrent",
    "Throughput, {c} concurrent: ours / bare",
    "Keep-alive connections, {c} concurrent: ours p50 / p99; ours / bare",
    "Answer time p99 at {top} concurrent",
    "Throughput at {top} concurrent, ratio to bare",
    "End to end alone, cold (the company's first document)",
    "End to end alone, cold (new contact) p50 / p99",
    "End to end alone, warm p50 / p99",
    "Delivery → invoice in QuickBooks, warm p50 / p99",
    "End to end under load (mass enrollment) p50 / p99",
    "Delivery → invoice in QuickBooks under load p50 / p99",
    "QuickBooks requests per document: cold company / cold contact / warm / under load",
    "HubSpot requests per document: cold company / cold contact / warm / under load",
    "Mass enrollment: documents per minute",
    "Mass enrollment: best minute",
    "Mass enrollment: 429s caused (QuickBooks / HubSpot)",
    "Mass enrollment: duplicate invoices",
    "Mass enrollment: time until the last callback completed",
    "Mass enrollment: time until the last invoice was written back onto its deal",
    "Mass enrollment: outcomes",
    "Peak memory per web process",
    "Peak memory per queue worker",
]


NEW, KEEP = "new connection", "keep-alive"


def answered(results: Results, target: str, concurrency: int, mode: str = NEW) -> dict:
    return results.answers.get((target, concurrency, mode), {})


def figures(results: Results) -> list[Figure]:
    s = results.settings
    found: list[Figure] = []
    for c in s.levels:
        ours, bare = answered(results, "ours", c), answered(results, "bare", c)
        errors = sum(ours.get("errors", Counter()).values())
        found.append(
            Figure(
                f"Answer time p50 / p99, {c} concurrent",
                f"{ms(ours.get('p50', float('nan')))} / {ms(ours.get('p99', float('nan')))}"
                + (f" ({errors} errors: {dict(ours['errors'])})" if errors else ""),
            )
        )
        found.append(
            Figure(
                f"Bare endpoint p50 / p99, {c} concurrent",
                f"{ms(bare.get('p50', float('nan')))} / {ms(bare.get('p99', float('nan')))}",
            )
        )
        ratio = ours.get("throughput", 0) / bare["throughput"] if bare.get("throughput") else float("nan")
        found.append(
            Figure(
                f"Throughput, {c} concurrent: ours / bare",
                f"{ours.get('throughput', 0):.0f} / {bare.get('throughput', 0):.0f} per s = {ratio:.2f}×",
            )
        )
        ours, bare = answered(results, "ours", c, KEEP), answered(results, "bare", c, KEEP)
        ratio = ours.get("throughput", 0) / bare["throughput"] if bare.get("throughput") else float("nan")
        found.append(
            Figure(
                f"Keep-alive connections, {c} concurrent: ours p50 / p99; ours / bare",
                f"{ms(ours.get('p50', float('nan')))} / {ms(ours.get('p99', float('nan')))}; "
                f"{ours.get('throughput', 0):.0f} / {bare.get('throughput', 0):.0f} per s = {ratio:.2f}× "
                f"(connections per web process: {ours.get('spread') or 'n/a'})",
            )
        )
    top = max(s.levels)
    ours, bare = answered(results, "ours", top), answered(results, "bare", top)
    p99 = ours.get("p99", float("nan"))
    found.append(
        Figure(
            f"Answer time p99 at {top} concurrent",
            ms(p99),
            f"≤ {TARGET_ANSWER_P99_MS:.0f} ms at 200",
            p99 * 1000 <= TARGET_ANSWER_P99_MS,
        )
    )
    ratio = ours.get("throughput", 0) / bare["throughput"] if bare.get("throughput") else 0.0
    found.append(
        Figure(
            f"Throughput at {top} concurrent, ratio to bare",
            f"{ratio:.2f}×",
            f"≥ {TARGET_THROUGHPUT_RATIO}×",
            ratio >= TARGET_THROUGHPUT_RATIO,
        )
    )
    runs = results.runs
    first = runs.get("cold company", [])
    found.append(
        Figure(
            "End to end alone, cold (the company's first document)",
            ", ".join(f"{sec(r.completed)} (invoice after {sec(r.document)}; {r.outcome})" for r in first) or "n/a",
        )
    )
    cold = runs.get("cold contact", [])
    found.append(Figure("End to end alone, cold (new contact) p50 / p99", pair(sec, [r.completed for r in cold])))
    warm = runs.get("warm", [])
    warm_p50 = percentile([r.completed for r in warm], 50)
    found.append(
        Figure(
            "End to end alone, warm p50 / p99",
            pair(sec, [r.completed for r in warm]) + f" ({dict(Counter(r.outcome for r in warm))})",
            f"p50 ≤ {TARGET_WARM_P50_S:.1f} s",
            warm_p50 <= TARGET_WARM_P50_S,
        )
    )
    found.append(Figure("Delivery → invoice in QuickBooks, warm p50 / p99", pair(sec, [r.document for r in warm])))
    m = results.mass
    found.append(Figure("End to end under load (mass enrollment) p50 / p99", pair(sec, m.get("end to end", []))))
    found.append(Figure("Delivery → invoice in QuickBooks under load p50 / p99", pair(sec, m.get("to document", []))))
    documents = max(1, m.get("documents", 0))
    for service, key in (("QuickBooks", "quickbooks"), ("HubSpot", "hubspot")):
        values = [mean_of(runs.get(kind, []), key) for kind in ("cold company", "cold contact", "warm")]
        values.append(f"{m.get(f'{key} requests', 0) / documents:.1f}")
        found.append(
            Figure(
                f"{service} requests per document: cold company / cold contact / warm / under load",
                " / ".join(values),
            )
        )
    partial = " (timed out: partial)" if m.get("timed out") else ""
    rate = m.get("documents per minute", 0.0)
    found.append(
        Figure(
            "Mass enrollment: documents per minute",
            f"{rate:.0f}{partial} ({m.get('documents', 0)} of {m.get('executions', 0)} invoices)",
            f"≥ {TARGET_DOCUMENTS_PER_MINUTE:.0f} per company",
            rate >= TARGET_DOCUMENTS_PER_MINUTE,
        )
    )
    found.append(Figure("Mass enrollment: best minute", f"{m.get('best minute', 0):.0f} invoices"))
    q429, h429 = sum(m.get("429 QuickBooks", {}).values()), sum(m.get("429 HubSpot", {}).values())
    found.append(
        Figure(
            "Mass enrollment: 429s caused (QuickBooks / HubSpot)",
            f"{q429} / {h429}" + (f" ({m['429 QuickBooks']}, {m['429 HubSpot']})" if q429 or h429 else ""),
            "0",
            q429 + h429 == 0,
        )
    )
    found.append(
        Figure(
            "Mass enrollment: duplicate invoices",
            f"{m.get('duplicates', 0)} (duplicate customers: {m.get('duplicate customers', 0)})",
            "0",
            m.get("duplicates", 0) == 0,
        )
    )
    found.append(
        Figure(
            "Mass enrollment: time until the last callback completed",
            f"{sec(m.get('last callback', float('nan')))}{partial} "
            f"({m.get('completed', 0)} of {m.get('executions', 0)} completed)",
        )
    )
    found.append(
        Figure(
            "Mass enrollment: time until the last invoice was written back onto its deal",
            f"{sec(m.get('last write-back', float('nan')))} ({m.get('written back', 0)} of {m.get('executions', 0)})",
        )
    )
    found.append(
        Figure(
            "Mass enrollment: outcomes",
            ", ".join(f"{k} {v}" for k, v in sorted(m.get("outcomes", {}).items())) or "none",
        )
    )
    for label, role in (("Peak memory per web process", "web"), ("Peak memory per queue worker", "workers")):
        sizes = results.memory.get(role, {})
        biggest = max(sizes.values(), default=0)
        found.append(
            Figure(
                label,
                f"{mb(biggest)} at most ({', '.join(mb(v) for v in sorted(sizes.values()))})",
                f"≤ {TARGET_MEMORY_MB:.0f} MB",
                0 < biggest <= TARGET_MEMORY_MB * MB,
            )
        )
    return found


def pair(show, values) -> str:
    values = [v for v in values if v == v]
    if not values:
        return "n/a"
    p50, p99 = p50_p99(values)
    return f"{show(p50)} / {show(p99)} (n={len(values)})"


def mean_of(runs, key) -> str:
    return f"{statistics.mean(getattr(r, key) for r in runs):.1f}" if runs else "n/a"


def code_state() -> str:
    """The commit measured, and how many files differed from it when the run started (the workers load the
    working tree as it is then)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True)
    except OSError:
        return "unknown (no git)"
    changed = len([line for line in dirty.stdout.splitlines() if line.strip()])
    return f"commit {head.stdout.strip() or '?'}" + (f" + {changed} changed or new files" if changed else "")


def machine() -> list[str]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = "unknown"
    try:
        total = next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
        memory = f"{int(total.split()[1]) / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration):
        pass
    return [
        f"CPU: {os.cpu_count()} × {model}",
        f"RAM: {memory}",
        f"OS: {platform.system()} {platform.release()}",
        f"Python: {platform.python_version()}",
    ]


def write_report(results: Results, out: Path) -> Path:
    s, m = results.settings, results.mass
    found = figures(results)
    lines = [
        "# Benchmark (`make bench`)",
        "",
        f"Run {results.started:%Y-%m-%d %H:%M} UTC in {results.duration / 60:.1f} min by `python -m tests.bench`"
        + (" in **BENCH_QUICK** mode (a smoke run: tiny numbers, not figures)" if s.quick else "")
        + ". Everything on loopback: the fakes in the benchmark's process, the server as deployed in subprocesses.",
        "",
        "## Figures",
        "",
        "| Figure | Value | Target | |",
        "| --- | --- | --- | --- |",
        *[f"| {f.label} | {f.value} | {f.target} | {f.verdict} |" for f in found],
        "",
        "## Machine and settings",
        "",
        *[f"- {line}" for line in machine()],
        "- Load average (1 min) at the start, after the answer-time phase and at the end: "
        + ", ".join(f"{v:.1f}" for v in results.load.values())
        + f" on {os.cpu_count()} CPUs (anything above what this run explains is other work on the machine)",
        f"- Code: {results.code}, as the run started",
        f"- Backend: **{results.backend.label}** ({results.backend.why})",
        f"- Web: gunicorn (gthread, gunicorn.conf.py), {s.web_workers} processes × {s.web_threads} threads; "
        f"queue: {s.workers} `flask worker` processes × {s.worker_threads} threads; LOG_LEVEL=INFO; RATE_LIMITS=on",
        f"- Fakes: QuickBooks latency {s.qbo_latency * 1000:.0f} ms, HubSpot {s.hubspot_latency * 1000:.0f} ms per "
        "request; their rate limits on (QuickBooks 10 in flight, 500/min, 120 batches/min per company; HubSpot "
        "110 per 10 s per portal)",
        f"- Answer time: {', '.join(f'{c} concurrent × {s.requests_at(c)}' for c in s.levels)} deliveries (after "
        "a warm-up), closed loop (http.client, each client thread sending its next delivery when the last is "
        "answered), each delivery on a new connection, then again over keep-alive connections; the same client "
        "and the same signed bodies for the bare endpoint (bench/bare.py under the same gunicorn command); the "
        "queue workers paused (SIGSTOP) meanwhile, so this is the web processes' work alone",
        f"- End to end alone: {len(results.runs.get('cold company', []))} + {s.cold_runs} cold and {s.warm_runs} "
        "warm invoices from deals, one at a time; warm = a contact and products already mapped",
        f"- Mass enrollment: {s.mass} deals of one portal into one company, {s.contacts} contacts, two products, "
        f"delivered {s.mass_concurrency} at a time (HubSpot's retries: 4 on an error or 5xx); at most "
        f"{s.mass_timeout / 60:.0f} min",
        "- Requests per document: API requests only (OAuth not counted); HubSpot's include the callback "
        "completion and the write-back of the document onto the deal (tests/actions/test_call_costs.py counts "
        "neither the callback nor OAuth); under load: all requests from the first delivery until the last invoice "
        "was written back onto its deal, divided by the invoices",
        "",
        "## Answer time",
        "",
        "The targets are read on new connections (one per delivery, as nginx forwards by default). With keep-alive "
        "connections (a client or proxy that reuses them) gunicorn's gthread processes do not share them out: "
        "whichever process accepts first keeps the connection, so most of the load lands on one or two processes "
        "(the connections each web process held, sampled once per run, are in the last column).",
        "",
        "| Concurrent | Connections | ours p50 | ours p99 | ours max | ours /s | bare p50 | bare p99 | bare /s | ratio "
        "| per process |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for c, mode in itertools.product(s.levels, (NEW, KEEP)):
        ours, bare = answered(results, "ours", c, mode), answered(results, "bare", c, mode)
        if not ours or not bare:
            continue
        lines.append(
            f"| {c} | {mode} | {ms(ours['p50'])} | {ms(ours['p99'])} | {ms(ours['max'])} | "
            f"{ours['throughput']:.0f} | {ms(bare['p50'])} | {ms(bare['p99'])} | {bare['throughput']:.0f} | "
            f"{ours['throughput'] / bare['throughput']:.2f}× | {ours['spread'] or ''} |"
        )
    lines += [
        "",
        "CPU time per delivery (ms; user + system, from /proc) by process group; how busy the machine's "
        f"{os.cpu_count()} CPUs were while each level ran, and how much of that was neither this deployment nor the "
        "client (other processes on the machine); the 1-minute load average at the end of the level:",
        "",
        "| Concurrent | Connections | | " + " | ".join(CPU_GROUPS) + " | all | CPUs busy | others | load |",
        "| --- | --- | --- | " + " | ".join("---" for _ in CPU_GROUPS) + " | --- | --- | --- | --- |",
    ]
    for c, mode in itertools.product(s.levels, (NEW, KEEP)):
        for target in ("ours", "bare"):
            answer = answered(results, target, c, mode)
            if "cpu" not in answer:
                continue
            total = sum(answer["cpu"][k] for k in CPU_GROUPS)
            per_cpu = answer["requests"] / answer["wall"] / (os.cpu_count() or 1)  # per-delivery → share of CPUs
            whole = answer["cpu"].get("machine", total)
            lines.append(
                f"| {c} | {mode} | {target} | "
                + " | ".join(f"{answer['cpu'][k] * 1000:.2f}" for k in CPU_GROUPS)
                + f" | {total * 1000:.2f} | {100 * whole * per_cpu:.0f}% | "
                f"{100 * max(0.0, whole - total) * per_cpu:.0f}% | {answer.get('load', 0):.1f} |"
            )
    lines += ["", "![answer time against concurrency](latency.png)", "", "## Mass enrollment", ""]
    if m:
        lines += [
            f"- Delivered in {m['delivered in']:.1f} s; answers {dict(m['delivery answers'])}, "
            f"{m['delivery retries']} retried",
            f"- {m['documents']} invoices, {m['completed']} callbacks completed of {m['executions']}"
            + (" — **timed out**: the figures are partial" if m["timed out"] else ""),
            f"- Requests: {m['quickbooks requests']} to QuickBooks, {m['hubspot requests']} to HubSpot; most "
            f"QuickBooks requests in flight at once: {m['peak in flight']}",
            "",
            "![documents over time during mass enrollment](mass-enrollment.png)",
            "",
        ]
    lines += ["## Peak memory (VmHWM)", ""]
    for role, name in (("web", "web processes (gunicorn workers)"), ("workers", "queue workers"), ("bare", "bare")):
        sizes = results.memory.get(role, {})
        lines.append(f"- {name}: " + (", ".join(f"pid {pid} {mb(v)}" for pid, v in sorted(sizes.items())) or "n/a"))
    lines += ["", "## Where the time goes", ""]
    lines += answer_lines(results)
    lines += ceiling_lines(results)
    lines += profile_lines(results)
    lines += ["", *[f"- {note}" for note in results.notes]] if results.notes else []
    path = out / "results.md"
    path.write_text("\n".join(lines).rstrip() + "\n")
    return path


def profile_lines(results: Results) -> list[str]:
    lines: list[str] = []
    web = results.profiles.get("web")
    if web:
        lines += [
            f"Web processes answering deliveries at {max(results.settings.levels)} concurrent (py-spy, CPU samples "
            f"of every gunicorn worker, {web['samples']} samples), by what the sample was doing (innermost match):",
            "",
            *[f"- {name}: {share(n, web['samples'])}" for name, n in web["categories"]],
            "",
            "Our functions with the most samples inside them (inclusive):",
            "",
            *[f"- {share(n, web['samples'])} {label}" for label, n in web["inclusive"]],
            "",
            "Innermost functions (self):",
            "",
            *[f"- {share(n, web['samples'])} {label}" for label, n in web["self"]],
            "",
        ]
    worker = results.profiles.get("worker")
    if worker:
        busy = worker["busy"] or 1
        lines += [
            f"One queue worker, wall clock of every thread ({worker['samples']} samples; "
            f"{share(worker['idle'], worker['samples'])} were threads waiting for a job or the scheduler), the "
            "samples inside a job by what it was doing:",
            "",
            *[f"- {name}: {share(n, busy)}" for name, n in worker["categories"]],
            "",
            "Our functions with the most samples inside them (inclusive, share of the samples inside a job):",
            "",
            *[f"- {share(n, busy)} {label}" for label, n in worker["inclusive"]],
            "",
        ]
    return lines or ["(not profiled: BENCH_PROFILE=0, or py-spy missing)"]


def answer_lines(results: Results) -> list[str]:
    """The answer path's cost against the bare endpoint's, from the CPU each delivery took."""
    top = max(results.settings.levels)
    ours, bare = answered(results, "ours", top), answered(results, "bare", top)
    if "cpu" not in ours or "cpu" not in bare:
        return []
    mine = sum(ours["cpu"][k] for k in CPU_GROUPS)
    theirs = sum(bare["cpu"][k] for k in CPU_GROUPS)
    cpu = {k: v * 1000 for k, v in ours["cpu"].items()}  # ms
    lines = [
        f"**The answer path.** Each delivery took {mine * 1000:.1f} ms of CPU in all ({cpu['web processes']:.1f} "
        f"in the web process, {cpu['PostgreSQL']:.1f} in PostgreSQL, {cpu['Redis']:.2f} in Redis, "
        f"{cpu['client and fakes']:.2f} in the client), the bare endpoint's {theirs * 1000:.1f} ms: "
        f"on the same CPUs our throughput cannot pass {theirs / mine:.2f}× the bare endpoint's until the work per "
        f"delivery shrinks. At {top} concurrent the answer time is a queue's: {top} deliveries in flight at "
        f"{ours['throughput']:.0f} a second wait {top / ours['throughput'] * 1000:.0f} ms on average (Little's law); "
        f"a p99 of {TARGET_ANSWER_P99_MS:.0f} ms there needs at least "
        f"{top / TARGET_ANSWER_P99_MS * 1000:.0f} answers a second, and even the bare endpoint's p99 is "
        f"{ms(bare['p99'])} on this machine.",
        "",
    ]
    web = results.profiles.get("web")
    if web:
        total = web["samples"] or 1
        database = dict(web["categories"]).get("database (SQLAlchemy, driver)", 0)
        functions = ", ".join(
            f"{label.split(' (')[0]} {share(n, total)}"
            for label, n in web["inclusive"]
            if not label.startswith("execute ")
        )
        lines += [
            f"In the web processes' CPU profile, {share(database, total)} of the samples are in the database client "
            f"(SQLAlchemy and psycopg, one round trip after another); by our functions: {functions}.",
            "",
        ]
    return lines


def ceiling_lines(results: Results) -> list[str]:
    """What the services' rate limits allow one portal and one company, at the requests per invoice measured."""
    warm = results.runs.get("warm", [])
    if not warm:
        return []
    hubspot = statistics.mean(r.hubspot for r in warm)
    quickbooks = statistics.mean(r.quickbooks for r in warm)
    m = results.mass
    documents = max(1, m.get("documents", 0))
    load_hubspot = m.get("hubspot requests", 0) / documents if m else hubspot
    load_quickbooks = m.get("quickbooks requests", 0) / documents if m else quickbooks
    # The limiter (app/limits.py) admits limit // (slices + 1) per slice, 10 slices a window, to stay under.
    hubspot_share = 110 // 11 * 10 * 6  # a minute
    quickbooks_share = 500 // 11 * 10
    return [
        "**The limits.** Mass enrollment cannot go faster than one portal's HubSpot limit divided by the HubSpot "
        f"requests each invoice costs: {load_hubspot:.1f} under load ({hubspot:.1f} warm), so HubSpot's 110 per "
        f"10 s (660 a minute) allows at most {660 / load_hubspot:.0f} invoices a minute, and the limiter, which keeps "
        f"to {hubspot_share} a minute to stay under, {hubspot_share / load_hubspot:.0f}. QuickBooks' 500 a minute "
        f"at {load_quickbooks:.1f} requests per invoice would allow {500 / load_quickbooks:.0f} "
        f"({quickbooks_share / load_quickbooks:.0f} within the limiter's {quickbooks_share})"
        + (
            f"; {m['quickbooks batches'] / documents:.1f} of them /batch, and 120 batches a minute allow "
            f"{120 / max(0.01, m['quickbooks batches'] / documents):.0f} (the limiter's 100, "
            f"{100 / max(0.01, m['quickbooks batches'] / documents):.0f}). "
            if m.get("quickbooks batches")
            else ". "
        )
        + f"{TARGET_DOCUMENTS_PER_MINUTE:.0f} invoices a minute needs at most {660 / TARGET_DOCUMENTS_PER_MINUTE:.2f} "
        f"HubSpot and {500 / TARGET_DOCUMENTS_PER_MINUTE:.2f} QuickBooks requests per invoice: the reads, the "
        "callback completions and the write-backs of many executions batched together (HubSpot's batch read, "
        "batch update and batch callback completion; QuickBooks' /batch of up to 30 operations).",
        "",
        "**End to end alone** is the sum of the calls made one after another: about "
        f"{quickbooks:.0f} QuickBooks requests × {results.settings.qbo_latency * 1000:.0f} ms and "
        f"{hubspot:.0f} HubSpot requests × {results.settings.hubspot_latency * 1000:.0f} ms (the write-back and "
        "its requests come after the callback) plus the queue's pick-up.",
        "",
    ]


def share(n: int, total: int) -> str:
    return f"{100 * n / max(1, total):.0f}%"


def plot(results: Results, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = results.settings
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for target, colour, light in (("ours", "tab:blue", "lightsteelblue"), ("bare", "tab:grey", "silver")):
        name = "qbo-actions" if target == "ours" else "bare Flask"
        for key, style, mode in (("p50", "-o", NEW), ("p99", "--s", NEW), ("p99", ":^", KEEP)):
            levels = [c for c in s.levels if answered(results, target, c, mode)]
            axes.plot(
                levels,
                [answered(results, target, c, mode)[key] * 1000 for c in levels],
                style,
                color=colour if mode == NEW else light,
                label=f"{name} {key}" + (" (keep-alive)" if mode == KEEP else ""),
            )
    target = f"target p99 {TARGET_ANSWER_P99_MS:.0f} ms"
    axes.axhline(TARGET_ANSWER_P99_MS, color="tab:red", linestyle=":", label=target)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xticks(s.levels, [str(c) for c in s.levels])
    axes.set_xlabel("concurrent deliveries")
    axes.set_ylabel("answer time (ms)")
    axes.set_title(f"Answer time ({results.backend.label}, {s.web_workers}×{s.web_threads} gunicorn)")
    axes.legend(fontsize="small")
    axes.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    figure.savefig(out / "latency.png", dpi=110)
    plt.close(figure)
    plot_mass_enrollment(results.mass, out)


def plot_mass_enrollment(m: dict, out: Path) -> None:
    """Documents over time: m["timeline"] = [(seconds since the first delivery, invoices, callbacks completed,
    written back), ...], m["executions"] the deals enrolled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    timeline = m.get("timeline", [])
    executions = max(1, m.get("executions", 1))
    if timeline:
        minutes = [t / 60 for t, *_ in timeline]
        invoices = [d for _, d, _, _ in timeline]
        axes.plot(minutes, invoices, color="tab:blue", linewidth=3, label="invoices in QuickBooks")
        axes.plot(minutes, [c for _, _, c, _ in timeline], color="tab:green", label="callbacks completed")
        axes.plot(minutes, [w for *_, w in timeline], color="tab:orange", label="written back onto the deal")
        full = executions / TARGET_DOCUMENTS_PER_MINUTE  # minutes the target takes for all of them
        axes.plot(
            [0, full, max(full, minutes[-1])],
            [0, executions, executions],
            color="tab:red",
            linestyle=":",
            label=f"target {TARGET_DOCUMENTS_PER_MINUTE:.0f}/min",
        )
    axes.set_ylim(0, executions * 1.05)
    axes.set_xlabel("minutes since the first delivery")
    axes.set_ylabel("documents")
    axes.set_title(f"Mass enrollment: {m.get('executions', 0)} deals, one portal, one company")
    axes.legend(fontsize="small", loc="lower right")
    axes.grid(True, alpha=0.3)
    figure.tight_layout()
    figure.savefig(out / "mass-enrollment.png", dpi=110)
    plt.close(figure)


def print_table(results: Results) -> None:
    found = figures(results)
    width = max(len(f.label) for f in found)
    print()
    for f in found:
        print(f"{f.label:<{width}}  {f.value}" + (f"  [target {f.target}: {f.verdict.strip('*')}]" if f.target else ""))


def interrupted(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    # Ctrl-C or SIGTERM stops the deployment on the way out (run in the background, SIGINT may have been ignored).
    signal.signal(signal.SIGINT, interrupted)
    signal.signal(signal.SIGTERM, interrupted)
    settings = Settings.from_env()
    backend = choose_backend(settings)
    print(f"qbo-actions bench on {backend.label} ({backend.why}){' — QUICK' if settings.quick else ''}", flush=True)
    settings.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="qbo-bench-") as tmp:
        results = Bench(settings, backend, Path(tmp)).run()
    plot(results, settings.out)
    path = write_report(results, settings.out)
    print_table(results)
    for line in profile_lines(results):
        print(line)
    print(f"\nwrote {path}, {settings.out / 'latency.png'}, {settings.out / 'mass-enrollment.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
