"""Pieces that other applications embed to use the ledger (e.g. ``ledger.integrations.fastapi``)."""
