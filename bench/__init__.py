"""Benchmarks of the ledger, run from the repository root (``make bench``)."""
