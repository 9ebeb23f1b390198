"""Persistence: one store interface (``Database``), SQLite and PostgreSQL behind it."""

from bot.db.api import Checkpoint, Database, DatabaseLocked, is_url, open_database

__all__ = ["Checkpoint", "Database", "DatabaseLocked", "is_url", "open_database"]
