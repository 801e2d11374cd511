"""One blueprint per module: HubSpot action endpoints, OAuth, health."""
