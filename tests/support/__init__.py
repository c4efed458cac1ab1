"""Builders and helpers the tests share (imported by name; conftest modules only hold fixtures).

- ``principals``: users as the principals their tokens verify to, and aggregates by id;
- ``databases``: fresh, migrated databases on the suite's PostgreSQL server;
- ``memory``: a ``Ledger`` on the event-sourcing library's in-memory persistence, with in-memory
  adapters, for fast unit tests of the application.
"""
