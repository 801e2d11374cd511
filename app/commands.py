"""CLI commands: `flask worker` runs the job consumer; `flask settings` shows and changes portal settings;
`flask keys rotate` re-encrypts stored tokens under the newest TOKEN_ENCRYPTION_KEY."""

import json

import click
from flask import current_app
from flask.cli import AppGroup

from actions.settings import COMPANY_SETTINGS, DEFAULT_SETTINGS, SettingError, parse_setting
from actions.steps.taxes import rate_text
from app.extensions import db
from app.settings import check_tax_codes_exist, company_tax_tables
from app.storage.connections import get_portal, list_connections


@click.command("worker")
@click.option("--threads", type=int, default=None, help="Worker threads (default: WORKER_THREADS).")
def worker_command(threads):
    """Run the job consumer: executions, callback completions, and the lost-job sweep."""
    from huey.consumer import Consumer

    from app.storage.executions import worker_identity
    from app.worker import requeue_stale

    click.echo(f"worker {worker_identity()} starting (its leases carry this name)")
    # Work left behind by a crash runs first: what a dead worker of this host held, at once, however long
    # its lease still runs, and every job that may have been lost, however recently.
    requeue_stale(at_start=True)
    queue = current_app.extensions["queue"]
    # An idle consumer polls SQLite with a backoff; cap it so a new job waits at most a fraction of a second.
    Consumer(
        queue.huey,
        workers=threads or current_app.config["WORKER_THREADS"],
        worker_type="thread",
        periodic=True,
        check_worker_health=True,
        max_delay=0.25,
    ).run()


settings_cli = AppGroup("settings", help="Show or change a portal's settings.")


@settings_cli.command("show")
@click.argument("portal_id", type=int)
def settings_show(portal_id):
    """Print PORTAL_ID's settings (and each connected company's) as JSON."""
    click.echo(json.dumps(describe_settings(require_portal(portal_id)), indent=2, sort_keys=True))


@settings_cli.command("set")
@click.argument("portal_id", type=int)
@click.argument("assignments", nargs=-1, required=True)
@click.option("--realm", help="The QuickBooks company (realm id) for company settings such as income_account.")
def settings_set(portal_id, assignments, realm):
    """Set KEY=VALUE pairs on PORTAL_ID, then print its settings as JSON."""
    portal = require_portal(portal_id)
    changes = {}
    for assignment in assignments:
        key, separator, value = assignment.partition("=")
        if not separator:
            raise click.BadParameter(f"'{assignment}' is not KEY=VALUE", param_hint="ASSIGNMENTS")
        try:
            changes[key.strip()] = parse_setting(key.strip(), value.strip())
        except SettingError as error:
            raise click.BadParameter(str(error), param_hint="ASSIGNMENTS") from None
    company_changes = {k: v for k, v in changes.items() if k in COMPANY_SETTINGS}
    if company_changes:
        connection = pick_connection(portal, realm)
        try:
            check_tax_codes_exist(connection, company_changes)
        except SettingError as error:
            raise click.BadParameter(str(error), param_hint="ASSIGNMENTS") from None
        connection.settings = {**(connection.settings or {}), **company_changes}
    portal.settings = {**(portal.settings or {}), **{k: v for k, v in changes.items() if k not in COMPANY_SETTINGS}}
    db.session.commit()
    click.echo(json.dumps(describe_settings(portal), indent=2, sort_keys=True))


@settings_cli.command("tax-codes")
@click.argument("portal_id", type=int)
@click.option("--realm", help="The QuickBooks company (realm id), when several are connected.")
def settings_tax_codes(portal_id, realm):
    """List the QuickBooks company's tax codes: the ids tax_codes and default_tax_code take."""
    connection = pick_connection(require_portal(portal_id), realm)
    try:
        codes, rates = company_tax_tables(connection)
    except SettingError as error:
        raise click.ClickException(str(error)) from None
    for code_id, code in sorted(codes.items(), key=lambda item: int(item[0]) if item[0].isdigit() else 0):
        state = "" if code.get("Active", True) else " (inactive)"
        click.echo(f"{code_id}\t{code.get('Name')}{state}\t{rate_text(code, rates)}")


def require_portal(portal_id):
    portal = get_portal(db.session, portal_id)
    if portal is None:
        raise click.ClickException(f"HubSpot account {portal_id} has not installed qbo-actions on this server.")
    return portal


def pick_connection(portal, realm):
    connections = list_connections(db.session, portal.id)
    if realm:
        for connection in connections:
            if connection.realm_id == realm:
                return connection
        raise click.ClickException(f"QuickBooks company {realm} is not connected to HubSpot account {portal.id}.")
    if not connections:
        raise click.ClickException(
            f"HubSpot account {portal.id} has no QuickBooks company connected: connect one "
            "before setting company settings such as income_account."
        )
    if len(connections) != 1:
        raise click.ClickException(
            "Say which QuickBooks company with --realm: "
            f"{len(connections)} are connected to HubSpot account {portal.id}."
        )
    return connections[0]


def describe_settings(portal) -> dict:
    portal_settings = {
        key: value
        for key, value in {**DEFAULT_SETTINGS, **(portal.settings or {})}.items()
        if key not in COMPANY_SETTINGS
    }
    companies = {
        c.realm_id: {key: (c.settings or {}).get(key, DEFAULT_SETTINGS[key]) for key in sorted(COMPANY_SETTINGS)}
        for c in list_connections(db.session, portal.id)
    }
    return {"portal_id": portal.id, "settings": portal_settings, "companies": companies}


keys_cli = AppGroup("keys", help="Manage TOKEN_ENCRYPTION_KEY, the keys OAuth tokens are encrypted with at rest.")


@keys_cli.command("rotate")
def keys_rotate():
    """Re-encrypt every stored token under the newest (first) key of TOKEN_ENCRYPTION_KEY.

    Put the new key first ("new,old") on every process, run this, then drop the old key. Safe to run
    again: tokens already under the newest key are left alone.
    """
    from app.storage import crypto
    from app.storage.models import Base

    counts = crypto.rotate_stored_tokens(db.session, Base.metadata)
    for table_name, count in counts.items():
        click.echo(
            f"{table_name}: {count.rotated} re-encrypted under the newest key, {count.current} already were"
            + (f", {count.changed} refreshed meanwhile (run again to check them)" if count.changed else "")
            + (f", {count.unreadable} unreadable with these keys" if count.unreadable else "")
        )
    if any(count.unreadable for count in counts.values()):
        raise click.ClickException(
            "Some tokens could not be decrypted with any key of TOKEN_ENCRYPTION_KEY: add back the key they were "
            "written with (after the new one) and run this again; they were left as they were."
        )


def init_app(app):
    app.cli.add_command(worker_command)
    app.cli.add_command(settings_cli)
    app.cli.add_command(keys_cli)
