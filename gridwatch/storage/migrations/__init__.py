"""Numbered SQL migrations, applied in order by ``Store.migrate`` and recorded in ``schema_migrations``."""
