"""`flask hubspot ...`: publish the action definitions to HubSpot, or export them as a developer project."""

from __future__ import annotations

from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup

from app.hubspot.app_definition import PATH_SETTING, AppDefinition, AppDefinitionError, load_app_definition
from app.hubspot.publishing import DEFAULT_API_VERSION, PublishError, PublishRow, export_project, publish_actions

hubspot = AppGroup("hubspot", help="The HubSpot app: publish its workflow actions, export it as a project.")


def init_app(app) -> None:
    app.cli.add_command(hubspot)


@hubspot.command("publish-actions")
@click.option("--dry-run", is_flag=True, help="Only show what would be created or updated.")
def publish_actions_command(dry_run: bool) -> None:
    """Create or update the six action definitions in HubSpot (matched by actionUrl)."""
    config = current_app.config
    app_id = str(config.get("HUBSPOT_APP_ID") or "").strip()
    api_key = config.get("HUBSPOT_DEVELOPER_API_KEY") or None
    token = config.get("HUBSPOT_DEVELOPER_TOKEN") or None
    missing = [] if app_id else ["HUBSPOT_APP_ID (the id of your app in HubSpot)"]
    if not api_key and not token:
        missing.append("HUBSPOT_DEVELOPER_API_KEY or HUBSPOT_DEVELOPER_TOKEN (to manage the app's definitions)")
    if missing:
        raise click.ClickException("Set " + " and ".join(missing) + " first.")
    public_url = _public_url()
    if not public_url.startswith("https://"):
        click.echo(f"Warning: PUBLIC_URL is {public_url}; HubSpot only calls actions on public https URLs.", err=True)

    try:
        rows = publish_actions(
            app_definition=_app_definition(),
            public_url=public_url,
            api_base_url=config.get("HUBSPOT_API_BASE_URL") or "https://api.hubapi.com",
            app_id=app_id,
            api_version=config.get("HUBSPOT_API_VERSION") or DEFAULT_API_VERSION,
            developer_api_key=api_key,
            developer_token=token,
            dry_run=dry_run,
        )
    except PublishError as exc:
        if exc.rows:
            _print_table(exc.rows)
        raise click.ClickException(str(exc)) from exc
    _print_table(rows)
    if dry_run:
        click.echo("Dry run: nothing was sent to HubSpot.")


@hubspot.command("export-project")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def export_project_command(directory: Path) -> None:
    """Write a HubSpot developer project (platform 2026.03) into DIRECTORY, for `hs project upload`."""
    paths = export_project(app_definition=_app_definition(), public_url=_public_url(), directory=directory)
    for path in paths:
        click.echo(str(path))
    click.echo(f"Wrote {len(paths)} files. Upload them with `hs project upload` from {directory}.")


def _app_definition() -> AppDefinition:
    definition = current_app.extensions.get("hubspot_app_definition")
    if definition is not None:
        return definition
    try:
        return load_app_definition(current_app.config.get(PATH_SETTING) or None)
    except AppDefinitionError as exc:
        raise click.ClickException(str(exc)) from exc


def _public_url() -> str:
    public_url = str(current_app.config.get("PUBLIC_URL") or "").rstrip("/")
    if not public_url.startswith(("http://", "https://")):
        raise click.ClickException(
            "Set PUBLIC_URL to the server's public address, e.g. https://qbo-actions.example.com."
        )
    return public_url


def _print_table(rows: list[PublishRow]) -> None:
    table = [("ACTION", "DEFINITION ID", "RESULT")] + [
        (row.action, row.definition_id or "-", row.outcome + (f" ({', '.join(row.changes)})" if row.changes else ""))
        for row in rows
    ]
    widths = [max(len(line[column]) for line in table) for column in range(2)]
    for action, definition_id, outcome in table:
        click.echo(f"{action:<{widths[0]}}  {definition_id:<{widths[1]}}  {outcome}")
