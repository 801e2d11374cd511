"""Storage: SQLAlchemy models, small get/create services, Alembic migrations."""
