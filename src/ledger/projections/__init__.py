"""Read models built one way from the events: the auditors' trail and the credential lists.

The asynchronous projections of the read-side issue live here. The auth lookup table is not
one of them: it must be exact the moment a command returns, so the recorder writes it in the
event-insert transaction (``ledger.adapters.credentials_table``, docs/adr/0005).
"""
