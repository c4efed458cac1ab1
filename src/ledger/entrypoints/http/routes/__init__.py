"""One module per route family; ``app.ROUTERS`` lists them (add yours there)."""
