"""Unbound singletons bound to the app by the factory: the database, CSRF protection (and the job queue)."""

import time
from contextlib import contextmanager

from flask_wtf.csrf import CSRFProtect
from sqlalchemy import create_engine, event, text
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.orm import Session, scoped_session, sessionmaker

# A pooled PostgreSQL connection idle for longer than this is pinged before use (one round trip). Pinging every
# checkout (pool_pre_ping) cost a round trip per session, several per delivery; a busy connection is not
# pinged: one that meets a restart fails its statement instead, SQLAlchemy then invalidates the whole pool, and
# the caller tries again on a fresh connection (the answer path at once, jobs after INFRASTRUCTURE_RETRY_SECONDS).
PING_IDLE_SECONDS = 10


class Database:
    """One engine per app; a scoped session per request or job, removed on teardown."""

    def __init__(self):
        self.engine = None
        self.autocommit_engine = None
        self.session = scoped_session(sessionmaker(expire_on_commit=False))

    def init_app(self, app):
        self.engine = make_engine(app.config["DATABASE_URL"])
        # The same pool; each statement its own transaction (psycopg sends BEGIN and COMMIT as round trips).
        self.autocommit_engine = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self.session.configure(bind=self.engine)
        app.teardown_appcontext(lambda _exc: self.session.remove())

    @contextmanager
    def autocommit_session(self):
        """A session of its own in which every statement commits by itself: for work whose writes are single
        statements (recording a delivery), where BEGIN and COMMIT would triple the round trips."""
        session = Session(bind=self.autocommit_engine, expire_on_commit=False)
        try:
            yield session
        finally:
            session.close()

    @contextmanager
    def write_session(self):
        """A session of its own whose transaction holds the write lock from its first statement.

        On SQLite a transaction that reads and then writes fails when another process wrote in between;
        BEGIN IMMEDIATE makes it wait for the lock instead. PostgreSQL needs nothing special.
        """
        with self.new_session() as session:
            if self.engine.dialect.name == "sqlite":
                session.execute(text("BEGIN IMMEDIATE"))
            yield session

    @contextmanager
    def new_session(self):
        """A session of its own, for work outside a request (jobs, CLI, token refresh locks)."""
        session = Session(bind=self.engine, expire_on_commit=False)
        try:
            yield session
        finally:
            session.close()


# redis-py caps a client's pool at 100 connections; a queue worker thread holds one while it waits for a job (BRPOP)
# and the rate limiter takes another, so a worker of more than ~50 threads ran out (MaxConnectionsError). Every
# Redis client of ours uses this cap instead; connections are only opened when needed.
REDIS_MAX_CONNECTIONS = 10_000


def make_engine(url: str):
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _tune_sqlite)
        return engine
    engine = create_engine(url, pool_size=10, max_overflow=10)
    ping_idle_connections(engine)
    return engine


def ping_idle_connections(engine) -> None:
    """Before lending a connection that sat idle for longer than PING_IDLE_SECONDS, check that it still works:
    a quiet spell is when a database restart or a dropped idle connection goes unnoticed."""

    @event.listens_for(engine, "checkin")
    def remember_idle_since(_dbapi_connection, record):
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def ping_if_idle(dbapi_connection, record, _proxy):
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < PING_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            # Likely a restart, which took every pooled connection with it: the pool connects anew.
            raise InvalidatePoolError("an idle connection no longer works") from exc


def _tune_sqlite(dbapi_connection, _record):
    # WAL lets the web process read while the worker writes; the busy timeout makes writers wait, not fail.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


db = Database()
# Every console form carries a token; HubSpot's signed JSON endpoints are exempted where they are registered.
csrf = CSRFProtect()
