"""The settings an execution runs with: defaults, then the portal's, then the QuickBooks company's own."""

from actions.settings import DEFAULT_SETTINGS


def effective_settings(portal, connection) -> dict:
    return {**DEFAULT_SETTINGS, **(portal.settings or {}), **(connection.settings or {})}
