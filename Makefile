# The two commands a newcomer needs: `make run` and `make test`. Both build .venv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN = $(VENV)/bin
STAMP = $(VENV)/.installed-stamp

.PHONY: run test lint bench emulators clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)  ## migrate and start everything on http://127.0.0.1:5000 (embedded defaults)
	$(BIN)/outreach dev

test: $(STAMP)  ## the whole suite (SQLite + embedded Redis unless DATABASE_URL/REDIS_URL are set)
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check outreach tests bench migrations

bench: $(STAMP)  ## print the performance figures (see bench/README.md)
	@set -e; for script in bench/*.py; do \
		echo "== $$script"; $(BIN)/python $$script; done

emulators: $(STAMP)  ## local SendGrid and Twilio emulators for `make run`
	$(BIN)/outreach emulators

clean:
	rm -rf $(VENV) instance
