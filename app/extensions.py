"""Unbound singletons bound to the app by the factory: the database, CSRF protection (and the job queue)."""

from contextlib import contextmanager

from flask_wtf.csrf import CSRFProtect
from sqlalchemy import create_engine, event, text
from sqlalchemy.orm import Session, scoped_session, sessionmaker


class Database:
    """One engine per app; a scoped session per request or job, removed on teardown."""

    def __init__(self):
        self.engine = None
        self.session = scoped_session(sessionmaker(expire_on_commit=False))

    def init_app(self, app):
        self.engine = make_engine(app.config["DATABASE_URL"])
        self.session.configure(bind=self.engine)
        app.teardown_appcontext(lambda _exc: self.session.remove())

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


def make_engine(url: str):
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _tune_sqlite)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


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
