"""Run Alembic migrations against the app's database (`flask db upgrade`, the Procfile's release step)."""

from pathlib import Path

import click
from alembic import command
from alembic.config import Config
from flask import current_app
from flask.cli import AppGroup

from app.extensions import db

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", current_app.config["DATABASE_URL"].replace("%", "%%"))
    config.attributes["engine"] = db.engine
    return config


def upgrade(revision: str = "head") -> None:
    command.upgrade(alembic_config(), revision)


db_cli = AppGroup("db", help="Database migrations.")


@db_cli.command("upgrade")
@click.argument("revision", default="head")
def upgrade_command(revision):
    """Apply migrations up to REVISION (default: head)."""
    upgrade(revision)
    click.echo(f"database at {revision}")


@db_cli.command("revision")
@click.option("-m", "--message", required=True)
def revision_command(message):
    """Autogenerate a migration from the models (developers only)."""
    command.revision(alembic_config(), message=message, autogenerate=True)


def init_app(app):
    app.cli.add_command(db_cli)
