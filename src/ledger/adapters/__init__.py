"""Adapters: PostgreSQL persistence, the embedded server, the group-commit writer."""
