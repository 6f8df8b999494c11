"""Named, forward-only migrations from the one schema folder, applied with yoyo-migrations.

yoyo takes a lock in the database itself, so replicas starting together apply each
migration once.
"""

from __future__ import annotations

from importlib.resources import files

from yoyo import get_backend, read_migrations


def migrations_dir() -> str:
    return str(files("spendgate.store") / "migrations")


def apply_migrations(yoyo_url: str) -> list[str]:
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
