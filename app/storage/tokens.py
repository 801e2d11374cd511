"""One token refresh at a time per row, across threads and processes, with the database as the lock."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from app.extensions import db

# Refresh this long before the provider's expiry, so a token never dies in the middle of a job.
EXPIRY_MARGIN = timedelta(minutes=5)


def expires_soon(expires_at: datetime | None) -> bool:
    return expires_at is None or expires_at - EXPIRY_MARGIN <= datetime.now(UTC)


def refresh_single_flight(model, row_id, *, rejected: str | None, refresh) -> tuple[str, datetime | None]:
    """Refresh the row's tokens unless another process already did; return the access token and its expiry.

    The UPDATE takes the row lock (PostgreSQL) or the write lock (SQLite) until commit, so a second
    refresher waits, then sees the new token and does not spend the (possibly rotated) refresh token again.
    """
    with db.new_session() as session:
        session.execute(update(model).where(model.id == row_id).values(lock_version=model.lock_version + 1))
        row = session.get(model, row_id, populate_existing=True)
        if row.access_token and row.access_token != rejected and not expires_soon(row.access_expires_at):
            session.commit()
            return row.access_token, row.access_expires_at
        try:
            refresh(row)
        finally:
            # Persist whatever refresh() recorded: new tokens, or the "reconnect needed" state.
            session.commit()
        return row.access_token, row.access_expires_at


def expiry_from(seconds) -> datetime | None:
    return datetime.now(UTC) + timedelta(seconds=int(seconds)) if seconds else None
