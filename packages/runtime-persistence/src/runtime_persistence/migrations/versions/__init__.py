"""The migration scripts, one per schema revision (Alembic loads them by path; importing them runs nothing)."""
