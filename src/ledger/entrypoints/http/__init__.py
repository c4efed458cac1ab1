"""The HTTP service: the contract's routes over FastAPI (``app.create_app``) and ``ledger
serve`` (``server``).

Nothing is imported here: ``ledger serve`` must set ``PROMETHEUS_MULTIPROC_DIR`` before the
metrics module (and so ``prometheus_client``) is first imported.
"""
