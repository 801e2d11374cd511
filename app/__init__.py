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
    from app.observability import configure_log_format

    configure_log_format(app.config)  # LOG_FORMAT text or json, and each line's execution


def init_sentry(app):
    """Error reporting, and the redaction it shares with logging: log records are masked whether or not
    SENTRY_DSN is set (see app/observability.py for what is masked where)."""
    from app import observability

    observability.install_log_redaction()
    observability.remember_secrets(app.config)
    if app.config["SENTRY_DSN"]:
        import warnings

        import sentry_sdk

        with warnings.catch_warnings():
            # Newer sentry-sdk 2.x deprecates send_default_pii for data_collection; False means the same on both.
            warnings.filterwarnings("ignore", message=".*send_default_pii.*", category=DeprecationWarning)
            sentry_sdk.init(**observability.sentry_options(app.config))


def redact_breadcrumb(crumb, hint):
    """Kept for callers of app.redact_breadcrumb: the redaction lives in app.observability."""
    from app.observability import redact_breadcrumb as redact

    return redact(crumb, hint)


def init_extensions(app):
    from app import queue
    from app.extensions import csrf, db
    from app.storage import crypto

    crypto.configure(app.config["TOKEN_ENCRYPTION_KEYS"])
    db.init_app(app)
    csrf.init_app(app)
    queue.init_app(app)
    from app import coalesce, limits

    limits.init_app(app)  # app.extensions["limiter"]: QuickBooks and HubSpot rate limits, shared by all processes
    coalesce.init_app(app)  # app.extensions["coalescer"]: concurrent HubSpot calls of this process, batched


def register_blueprints(app):
    from app import console
    from app.blueprints import actions, cards, health, oauth, openapi, options
    from app.extensions import csrf

    for module in (health, actions, options, cards):  # machine endpoints: signed by HubSpot, no browser session
        csrf.exempt(module.bp)
    for module in (health, actions, oauth, options, cards, console):
        app.register_blueprint(module.bp)
    from app.blueprints import quickbooks_webhooks  # signed by Intuit (intuit-signature), no browser session

    app.register_blueprint(csrf.exempt(quickbooks_webhooks.bp))
    app.register_blueprint(openapi.bp)  # GET /openapi.json: the machine endpoints, described
    from app import metrics

    metrics.init_app(app)  # GET /metrics: Prometheus (METRICS_TOKEN, PROMETHEUS_MULTIPROC_DIR)


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
