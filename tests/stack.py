"""A deployment on loopback, as production runs it: the web app under gunicorn and several `flask worker`
processes, on PostgreSQL + Redis (or SQLite + the embedded queue), against the HubSpot and QuickBooks fakes
served from this process. The fault suite and the benchmark drive it; it can kill a worker, restart
PostgreSQL and restart Redis under them.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from cryptography.fernet import Fernet

from app import create_app
from app.extensions import db
from app.hubspot import oauth as hubspot_oauth
from app.hubspot.signature import sign_request
from app.storage.connections import get_or_create_portal
from app.storage.migrate import upgrade
from tests.conftest import HUBSPOT_SECRET, connect_company, execution_body, reset_postgres
from tests.fakes.hubspot import DEFAULT_SCOPES, FakeHubSpot
from tests.fakes.quickbooks import FakeQuickBooks

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def child_pids(parent: int) -> list[int]:
    """The live processes whose parent is `parent` (from /proc/<pid>/stat)."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # it ended meanwhile
            continue
        # pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after the last ")".
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
            children.append(int(entry.name))
    return sorted(children)


def peak_rss(pid: int) -> int:
    """A process's peak resident set size in bytes (VmHWM in /proc/<pid>/status); 0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def wait_until(condition, timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except Exception:  # noqa: BLE001 - the thing waited for may fail until it is up
            pass
        time.sleep(interval)
    raise TimeoutError(f"{what} not within {timeout:.0f} s")


class OwnPostgres:
    """A PostgreSQL cluster of the suite's own (initdb in a temporary folder, its own port), so restarting it
    under load disturbs nothing else on the machine. Runs as the `postgres` user when started as root."""

    def __init__(self, port: int = 0):
        # A folder of its own directly under the temporary directory: the `postgres` user must reach it, and
        # pytest's and TemporaryDirectory's folders are private to root.
        self.folder = Path(tempfile.mkdtemp(prefix="qbo-postgres-"))
        self.port = port or free_port()
        self.bin = Path(sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1])
        self.data = self.folder / "pgdata"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *command: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *command], check=True, capture_output=True, timeout=120)

    def start(self) -> "OwnPostgres":
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres")
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self._ctl("start")
        return self

    def _ctl(self, verb: str) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300"
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.folder / "log"),
            "-m",
            "fast",
            "-w",
            verb,
        )

    def restart(self) -> None:
        self._ctl("restart")

    def stop(self) -> None:
        try:
            self._ctl("stop")
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.folder, ignore_errors=True)


class OwnRedis:
    """A Redis of the suite's own, without persistence (a restart loses every queued job, as configured here)."""

    def __init__(self, folder: Path, port: int = 0):
        self.folder = Path(folder)
        self.port = port or free_port()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "OwnRedis":
        self.folder.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                "redis-server",
                "--daemonize",
                "yes",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
                "--pidfile",
                str(self.folder / "redis.pid"),
            ],
            check=True,
            capture_output=True,
        )
        wait_until(self.answers, 20, "Redis")
        return self

    def answers(self) -> bool:
        ping = subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True)
        return ping.stdout.strip() == b"PONG"

    def restart(self, down_for: float = 1.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()

    def stop(self) -> None:
        subprocess.run(["redis-cli", "-p", str(self.port), "shutdown", "nosave"], capture_output=True)
        wait_until(lambda: not self.answers(), 10, "Redis to stop")


def own_services_available() -> bool:
    return bool(shutil.which("redis-server")) and bool(list(Path("/usr/lib/postgresql").glob("*/bin/initdb")))


class Stack:
    """start(), install() tenants, deliver() executions, kill_worker(), restart_postgres(), restart_redis(), stop()."""

    def __init__(
        self,
        workdir: Path,
        *,
        database_url: str = "",
        redis_url: str = "",
        workers: int = 3,
        worker_threads: int = 4,
        web_workers: int = 2,
        settings: dict | None = None,
        web_threads: int = 8,
        quickbooks_latency: float = 0.0,
        hubspot_latency: float = 0.0,
        postgres: "OwnPostgres | None" = None,
        redis: "OwnRedis | None" = None,
    ):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.postgres, self.redis = postgres, redis  # services of its own, which it may restart
        database_url = postgres.url if postgres else database_url
        self.database_url = database_url or f"sqlite:///{self.workdir / 'qbo-actions.db'}"
        self.redis_url = redis.url if redis else redis_url
        self.worker_count = workers
        self.worker_threads = worker_threads
        self.web_workers = web_workers
        self.web_threads = web_threads
        self.settings = settings or {}
        # The fakes sleep this long per request (seconds), outside their locks: set to QuickBooks' and HubSpot's
        # real latencies (the benchmark), the requests overlap as they would.
        self.hubspot = FakeHubSpot(client_id="hs-client-id", client_secret=HUBSPOT_SECRET, latency=hubspot_latency)
        self.quickbooks = FakeQuickBooks(
            client_id="qbo-client-id", client_secret="qbo-client-secret", latency=quickbooks_latency
        )
        self.port = free_port()
        self.web: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []
        self.app = None
        self.events: list[tuple[float, str]] = []  # (monotonic time, what the stack did)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def backend(self) -> str:
        return "PostgreSQL + Redis" if self.redis_url else "SQLite + embedded Huey"

    # -- start and stop ----------------------------------------------------------------------------------

    def start(self) -> "Stack":
        self.hubspot.start()
        self.quickbooks.start()
        if self.database_url.startswith("postgres"):
            reset_postgres(self.database_url)
        if self.redis_url:
            import redis

            redis.Redis.from_url(self.redis_url).flushdb()
        self.env = self.environment()
        os.environ["INSTANCE_PATH"] = str(self.workdir / "instance")
        self.app = create_app({k: v for k, v in self.env.items() if k != "INSTANCE_PATH"})
        with self.app.app_context():
            upgrade()
        self.start_web()
        for _ in range(self.worker_count):
            self.start_worker()
        return self

    def environment(self) -> dict[str, str]:
        """The environment every process of the deployment gets (12-factor: the config is the environment)."""
        env = {
            "APP_ENV": "soak",
            "SECRET_KEY": "stack-secret",
            "TOKEN_ENCRYPTION_KEY": Fernet.generate_key().decode(),
            "PUBLIC_URL": self.url,
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "QUEUE_SQLITE_PATH": str(self.workdir / "queue.db"),
            "QUEUE_NAME": "qbo-stack",
            "INSTANCE_PATH": str(self.workdir / "instance"),
            "HUBSPOT_APP_ID": str(self.hubspot.app_id),
            "HUBSPOT_CLIENT_ID": self.hubspot.client_id,
            "HUBSPOT_CLIENT_SECRET": self.hubspot.client_secret,
            "HUBSPOT_DEVELOPER_API_KEY": self.hubspot.developer_api_key,
            "HUBSPOT_API_BASE_URL": self.hubspot.url,
            "HUBSPOT_AUTHORIZE_URL": self.hubspot.url + "/oauth/authorize",
            "QBO_CLIENT_ID": self.quickbooks.client_id,
            "QBO_CLIENT_SECRET": self.quickbooks.client_secret,
            "QBO_ENVIRONMENT": self.quickbooks.discovery_url,
            "QBO_API_BASE_URL": self.quickbooks.api_base,
            "QBO_APP_URL": self.quickbooks.url,
            "SENTRY_DSN": "",
            "LOG_LEVEL": "WARNING",
            "WORKER_THREADS": str(self.worker_threads),
        }
        return {**env, **{k: str(v) for k, v in self.settings.items()}}

    def process_env(self) -> dict[str, str]:
        return {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}

    def start_web(self) -> None:
        self.web = self.start_gunicorn("app:create_app()", self.port, "web.log")
        wait_until(lambda: requests.get(self.url + "/healthz", timeout=1).ok, 60, "the web server")

    def start_gunicorn(self, app_spec: str, port: int, log_name: str) -> subprocess.Popen:
        """gunicorn serving `app_spec` on 127.0.0.1:port with this stack's web processes and threads, from the
        project's directory (so gunicorn.conf.py applies, as deployed) and with the stack's environment. The
        benchmark serves its bare endpoint (bench/bare.py) the same way."""
        log = open(self.workdir / log_name, "a")  # noqa: SIM115 - kept open for the process's life
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(self.web_workers),
                "--threads",
                str(self.web_threads),
                "--graceful-timeout",
                "5",
                app_spec,
            ],
            cwd=ROOT,
            env=self.process_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def start_worker(self) -> subprocess.Popen:
        log = open(self.workdir / f"worker-{len(self.workers)}.log", "a")  # noqa: SIM115
        worker = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "app", "worker"],
            cwd=ROOT,
            env=self.process_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.workers.append(worker)
        return worker

    def stop(self) -> None:
        for process in [*self.workers, self.web]:
            if process is not None and process.poll() is None:
                process.terminate()
        for process in [*self.workers, self.web]:
            if process is not None:
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
        self.hubspot.stop()
        self.quickbooks.stop()
        if self.app is not None:
            with self.app.app_context():
                db.session.remove()
                db.engine.dispose()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    # -- tenants and deliveries --------------------------------------------------------------------------

    def install(self, portal_id: int, realm_id: str, *, company_name: str = "", country: str = "US") -> None:
        """A portal that installed the app and connected one QuickBooks company."""
        self.quickbooks.add_company(realm_id, name=company_name or f"Company {realm_id}", country=country)
        tokens = self.hubspot.issue_tokens(portal_id)
        with self.app.app_context():
            portal = get_or_create_portal(db.session, portal_id)
            hubspot_oauth.store_tokens(portal, tokens)
            portal.scopes = list(DEFAULT_SCOPES)
            db.session.commit()
        connect_company(self.app, self.quickbooks, realm_id, portal_id=portal_id)

    def deliver(self, action: str, body: dict, timeout: float = 30) -> requests.Response:
        """POST one execution as HubSpot does: signed (v3) with the app's client secret."""
        path = f"/hubspot/actions/{action}"
        raw = json.dumps(body).encode()
        headers = sign_request("POST", self.url + path, raw, secret=self.hubspot.client_secret)
        return requests.post(
            self.url + path, data=raw, headers={**headers, "Content-Type": "application/json"}, timeout=timeout
        )

    @staticmethod
    def execution_body(**kwargs) -> dict:
        return execution_body(**kwargs)

    # -- processes: which, how much memory, paused ---------------------------------------------------------

    def web_processes(self) -> list[int]:
        """The pids of the gunicorn master's children: the processes that answer requests."""
        return child_pids(self.web.pid) if self.web is not None and self.web.poll() is None else []

    def worker_processes(self) -> list[int]:
        return [worker.pid for worker in self.workers if worker.poll() is None]

    def peak_memory(self) -> dict[str, dict[int, int]]:
        """{"web": {pid: bytes}, "workers": {pid: bytes}}: each live process's peak resident set (VmHWM) so far."""
        return {
            "web": {pid: peak_rss(pid) for pid in self.web_processes()},
            "workers": {pid: peak_rss(pid) for pid in self.worker_processes()},
        }

    def wait_for_workers(self, timeout: float = 60) -> None:
        """Until every worker's consumer has started (its log says so at LOG_LEVEL=INFO; at a quieter level, until
        each has printed its start line): jobs are being taken."""
        verbose = self.env.get("LOG_LEVEL", "INFO").upper() in ("INFO", "DEBUG")
        mark = "consumer started" if verbose else "starting"

        def started() -> bool:
            logs = [self.workdir / f"worker-{n}.log" for n in range(len(self.workers))]
            return all(log.exists() and mark in log.read_text() for log in logs)

        wait_until(started, timeout, "the workers")

    def pause_workers(self) -> None:
        """SIGSTOP every worker: deliveries are recorded and queued, nothing runs them until resume_workers()."""
        for pid in self.worker_processes():
            os.kill(pid, signal.SIGSTOP)

    def resume_workers(self) -> None:
        for pid in self.worker_processes():
            os.kill(pid, signal.SIGCONT)

    # -- faults ------------------------------------------------------------------------------------------

    def note(self, what: str) -> None:
        self.events.append((time.time(), what))

    def kill_worker(self, index: int = 0, restart_after: float = 1.0) -> None:
        """SIGKILL one worker in the middle of its jobs, then start another in its place (same host)."""
        worker = self.workers[index]
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait()
        self.note(f"worker {worker.pid} killed (SIGKILL)")
        time.sleep(restart_after)
        self.workers[index] = self.start_worker()
        self.workers.pop()  # start_worker appended it; it replaces the killed one at `index`

    def restart_postgres(self) -> None:
        self.postgres.restart()
        self.note("PostgreSQL restarted")

    def restart_redis(self, down_for: float = 1.0) -> None:
        """Redis restarted without persistence (as configured here): every queued job is gone."""
        self.redis.restart(down_for)
        self.note("Redis restarted (its jobs lost)")
