"""Alembic environment: the URL comes from the app's config, handed over by app.storage.migrate."""

from alembic import context

from app.storage.models import Base

config = context.config


def render_item(type_, obj, autogen_context):
    """Migrations name plain SQL types, so they never import app code that may change later."""
    from app.storage.crypto import EncryptedText
    from app.storage.models import UTCDateTime

    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    if type_ == "type" and isinstance(obj, EncryptedText):
        return "sa.Text()"
    return False


target_metadata = Base.metadata


def run_migrations_offline():
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    connectable = config.attributes["engine"]
    with connectable.connect() as connection:
        # render_as_batch: SQLite can only alter tables by copying them; batch mode does that for us.
        context.configure(
            connection=connection, target_metadata=target_metadata, render_as_batch=True, render_item=render_item
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
