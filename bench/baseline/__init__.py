"""The reference the ledger is measured against: one mutable row per token, plain SQL."""

from bench.baseline.store import BaselineStore, ExchangeCounts

__all__ = ["BaselineStore", "ExchangeCounts"]
