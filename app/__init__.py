"""qbo-actions: HubSpot workflow actions that create QuickBooks Online documents."""

import logging
import os

from flask import Flask

from app.config import finish_config, load_config


def create_app(test_config: dict | None = None) -> Flask:
    app = Flask(__name__, instance_path=os.environ.get("INSTANCE_PATH") or None, instance_relative_config=True)
    os.makedirs(app.instance_path, exist_ok=True)
    app.config.from_mapping(load_config(app.instance_path))
    if test_config:
        app.config.from_mapping(test_config)
    finish_config(app.config, app.instance_path)
    configure_logging(app)
    init_sentry(app)
    init_extensions(app)
    load_app_definition(app)
    register_blueprints(app)
    register_errorhandlers(app)
    register_commands(app)
    return app


def configure_logging(app):
    logging.basicConfig(level=app.config["LOG_LEVEL"], format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)


def init_sentry(app):
    if app.config["SENTRY_DSN"]:
        import sentry_sdk

        # send_default_pii off: request bodies and headers (signatures, tokens) never leave the server.
        sentry_sdk.init(
            dsn=app.config["SENTRY_DSN"],
            send_default_pii=False,
            environment=app.config["APP_ENV"],
            before_breadcrumb=redact_breadcrumb,
        )


def redact_breadcrumb(crumb, _hint):
    """HubSpot's token metadata URL carries the access token in its path: keep it out of Sentry."""
    url = (crumb.get("data") or {}).get("url", "")
    if "/access-tokens/" in url:
        crumb["data"]["url"] = url.split("/access-tokens/")[0] + "/access-tokens/[redacted]"
    return crumb


def init_extensions(app):
    from app import queue
    from app.extensions import csrf, db
    from app.storage import crypto

    crypto.configure(app.config["TOKEN_ENCRYPTION_KEYS"])
    db.init_app(app)
    csrf.init_app(app)
    queue.init_app(app)


def register_blueprints(app):
    from app import console
    from app.blueprints import actions, cards, health, oauth, options
    from app.extensions import csrf

    for module in (health, actions, options, cards):  # machine endpoints: signed by HubSpot, no browser session
        csrf.exempt(module.bp)
    for module in (health, actions, oauth, options, cards, console):
        app.register_blueprint(module.bp)
    from app.blueprints import quickbooks_webhooks  # signed by Intuit (intuit-signature), no browser session

    app.register_blueprint(csrf.exempt(quickbooks_webhooks.bp))


def register_errorhandlers(app):
    from app.blueprints.errors import init_app

    init_app(app)


def register_commands(app):
    from app import commands
    from app.hubspot import commands as hubspot_commands
    from app.storage import migrate

    migrate.init_app(app)
    commands.init_app(app)
    hubspot_commands.init_app(app)


def load_app_definition(app):
    """hubspot-app.json is checked at start-up: a broken definition must not reach HubSpot or the endpoints."""
    from app.hubspot import app_definition

    app_definition.init_app(app)
