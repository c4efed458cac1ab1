"""One module per route family; ``ledger.http.app.ROUTERS`` lists them (add yours there)."""
