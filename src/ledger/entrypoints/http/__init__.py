"""The HTTP service: the contract's routes over FastAPI (``ledger.http.app.create_app``) and
``ledger serve`` (``ledger.http.server``).

Nothing is imported here: ``ledger serve`` must set ``PROMETHEUS_MULTIPROC_DIR`` before the
metrics module (and so ``prometheus_client``) is first imported.
"""
