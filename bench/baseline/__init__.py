"""The reference the ledger is measured against: one mutable row per token, plain SQL."""

from bench.baseline.store import (
    BaselinePrincipal,
    BaselineStore,
    ExchangeCounts,
    Renewal,
    SeededTokens,
)

__all__ = ["BaselinePrincipal", "BaselineStore", "ExchangeCounts", "Renewal", "SeededTokens"]
