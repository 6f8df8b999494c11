"""Named, forward-only migrations from the one schema folder, applied with yoyo-migrations.

yoyo takes a lock in the database itself, so replicas starting together apply each
migration once.
"""

from __future__ import annotations

from importlib.resources import files


def migrations_dir() -> str:
    return str(files("spendgate.store") / "migrations")


def shipped_migrations() -> set[str]:
    """The ids of the migrations in the schema folder (yoyo's id is the file name without .sql)."""
    names = (entry.name for entry in (files("spendgate.store") / "migrations").iterdir())
    return {n.removesuffix(".sql") for n in names if n.endswith(".sql") and not n.endswith(".rollback.sql")}


def apply_migrations(yoyo_url: str) -> list[str]:
    from yoyo import get_backend, read_migrations  # ~50 ms: only when something may be pending

    backend = get_backend(yoyo_url)
    try:
        migrations = read_migrations(migrations_dir())
        if not backend.to_apply(migrations):
            return []  # the common case, answered without taking the lock
        with backend.lock():
            pending = backend.to_apply(migrations)
            backend.apply_migrations(pending)
        return [m.id for m in pending]
    finally:
        backend.connection.close()
