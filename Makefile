# Everything runs from the repository's own virtual environment (.venv), made by `make setup`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Swagger UI and ReDoc for /docs and /redoc, from pinned npm tarballs (checked by SHA-256).
DOCS_ASSETS := src/ledger/entrypoints/http/docs_assets/MANIFEST.json

.PHONY: setup run demo test check check-render lint typecheck bench fuzz clean

setup: $(STAMP) $(DOCS_ASSETS)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip==26.3
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(DOCS_ASSETS): scripts/vendor_docs_assets.py
	$(PYTHON) scripts/vendor_docs_assets.py

run: setup
	$(BIN)/ledger serve

demo: setup
	$(BIN)/ledger demo

test: setup
	TZ=UTC $(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/lint-imports --no-cache

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test

# /docs, /redoc and an audit report rendered in headless Chromium (Debian's `chromium`; skipped
# without it, except under CI=true). Not part of `make test`, which needs no browser.
check-render: setup
	$(BIN)/python scripts/check_render.py

# The whole suite (at most 10 minutes); `python -m bench --quick` runs in about a minute.
bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python -m bench

# A long schema-driven fuzzing run against a live `ledger serve` (at least 10,000 requests; the
# test suite runs the same test with 20 examples per operation).
fuzz: $(STAMP)
	TZ=UTC LEDGER_FUZZ_EXAMPLES=800 LEDGER_FUZZ_MIN_REQUESTS=10000 \
		$(BIN)/pytest tests/acceptance/test_fuzz.py -q -p no:cacheprovider

clean:
	rm -rf $(VENV) .ledger .pytest_cache .mypy_cache .ruff_cache
