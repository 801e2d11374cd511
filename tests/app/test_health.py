"""GET /healthz answers while the process lives, whatever the database does; GET /readyz says whether the
database and the queue answer, naming what failed and why, within about two seconds."""

import threading
import time

import pytest
from huey import SqliteHuey
from sqlalchemy import create_engine

from app.blueprints import health
from app.extensions import db

READY = {"status": "ready", "database": "ok", "queue": "ok"}


@pytest.fixture
def broken_database(app, tmp_path, monkeypatch):
    """The database cannot be opened any more (its directory is gone)."""
    engine = create_engine(f"sqlite:///{tmp_path / 'gone' / 'nothing.db'}")
    monkeypatch.setattr(db, "engine", engine)
    yield engine
    engine.dispose()


def test_healthz_answers_without_the_database(client, broken_database):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}


def test_readyz_is_ready_on_sqlite(client):
    response = client.get("/readyz")
    assert response.status_code == 200, response.json
    assert response.json == READY


def test_readyz_names_a_database_that_does_not_answer(client, broken_database):
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json
    assert (body["status"], body["database"], body["queue"]) == ("unavailable", "failed", "ok")
    assert set(body["reasons"]) == {"database"}
    assert body["reasons"]["database"].startswith("OperationalError: ")
    assert "unable to open database file" in body["reasons"]["database"]


def test_readyz_names_a_redis_that_does_not_answer(app, client):
    app.config["REDIS_URL"] = "redis://:s3cret-redis-password@127.0.0.1:1/0"  # nothing listens on port 1
    started = time.monotonic()
    response = client.get("/readyz")
    assert time.monotonic() - started < health.READY_TIMEOUT + 0.5
    assert response.status_code == 503
    body = response.json
    assert (body["database"], body["queue"]) == ("ok", "failed")
    assert "ConnectionError" in body["reasons"]["queue"]
    assert "s3cret-redis-password" not in response.get_data(as_text=True)


def test_readyz_opens_the_huey_sqlite_file(app, client, tmp_path):
    """Out of immediate mode the queue is Huey's SQLite file: opened afresh by each probe, so a file that was
    removed under the running server is noticed."""
    queue = app.extensions["queue"]
    path = tmp_path / "queue-files" / "queue.db"
    path.parent.mkdir()
    original, queue.huey = queue.huey, SqliteHuey("readyz-test", filename=str(path))
    try:
        assert client.get("/readyz").json == READY
        path.unlink()
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.json["queue"] == "failed"
        assert "unable to open database file" in response.json["reasons"]["queue"]
    finally:
        queue.huey.storage.close()
        queue.huey = original


def test_readyz_answers_in_time_when_a_check_hangs(client, monkeypatch):
    release = threading.Event()
    calls = []

    def hanging(engine):
        calls.append(engine)
        release.wait(10)

    monkeypatch.setattr(health, "check_database", hanging)
    monkeypatch.setattr(health, "READY_TIMEOUT", 0.3)
    try:
        started = time.monotonic()
        first = client.get("/readyz")
        assert time.monotonic() - started < 1.5
        assert first.status_code == 503
        assert first.json["reasons"] == {"database": "no answer within 0.3 s"}
        assert first.json["queue"] == "ok"
        # Still stuck: the next probe does not start another check (threads never pile up).
        second = client.get("/readyz")
        assert second.status_code == 503
        assert second.json["reasons"]["database"].startswith("an earlier check has not answered for")
        assert len(calls) == 1
    finally:
        release.set()
    for _ in range(100):  # the stuck check ends; the next probe runs a new one, which answers at once now
        response = client.get("/readyz")
        if response.status_code == 200:
            break
        time.sleep(0.02)
    assert response.json == READY
    assert len(calls) >= 2


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_readyz_is_ready_on_postgres_and_redis(client, app):
    assert app.config["REDIS_URL"]
    response = client.get("/readyz")
    assert response.status_code == 200, response.json
    assert response.json == READY
