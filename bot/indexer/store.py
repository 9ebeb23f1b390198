"""The indexer's store: the ``Database`` interface (``bot.db``) and, under its historical
name ``Store``, the SQLite implementation."""

from bot.db.api import SCHEMA_VERSION, Checkpoint, Database
from bot.db.sqlite import SqliteDatabase as Store

__all__ = ["SCHEMA_VERSION", "Checkpoint", "Database", "Store"]
