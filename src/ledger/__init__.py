"""ledger: an event-sourced credential ledger."""
