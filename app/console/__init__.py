"""The operator console: a HubSpot admin's or accountant's view of one portal's connections, settings,
sync errors and history, all read from the executions the server already stores.

Server-rendered pages (Jinja), one stylesheet, no front-end build. Every page is bound to the portal the
browser signed in to (`auth.current_portal`); another portal's records answer 404.
"""

from flask import Blueprint

bp = Blueprint(
    "console", __name__, template_folder="templates", static_folder="static", static_url_path="/console/static"
)

from app.console import auth, connections, executions, home, settings  # noqa: E402,F401  (routes register on bp)
