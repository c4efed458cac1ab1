"""The ways in: the HTTP service, the command line, the demo, and a FastAPI integration."""
