# Warroom: `make run` starts a server with example data; `make test` runs every check.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
CONFIG ?= examples/warroom.yaml
PORT ?= 8080
# The mail intake (alerts by email); `make run MAIL_PORT=` turns it off.
MAIL_PORT ?= 2525

.PHONY: run test lint typecheck unit install install-dev peers bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-dev: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e '.[dev]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

run: install
	@mkdir -p var
	@$(BIN)/python -m compileall -q src
	$(BIN)/warroom config check $(CONFIG)
	$(BIN)/warroom db upgrade
	$(BIN)/warroom demo seed --config $(CONFIG)
	@if [ ! -s var/admin.token ]; then umask 077; $(BIN)/warroom token create --name first-admin --role admin 2>/dev/null | tail -n 1 > var/admin.token; fi
	@echo ""
	@echo "  Warroom UI and API:  http://127.0.0.1:$(PORT)/  (API docs at /docs)"
	@echo "  First admin token:   $$(cat var/admin.token)"
	@echo "  CLI:                 export WARROOM_URL=http://127.0.0.1:$(PORT) WARROOM_TOKEN=$$(cat var/admin.token) WARROOM_CONFIG=$(CONFIG)"
	@$(if $(MAIL_PORT),echo "  Alerts by email:     SMTP on 127.0.0.1:$(MAIL_PORT) (to KEY@... of 'warroom integration create --type email')")
	@echo ""
	$(BIN)/warroom serve --config $(CONFIG) --port $(PORT) $(if $(MAIL_PORT),--mail-port $(MAIL_PORT))

peers:
	@bash scripts/install-peers.sh

lint: install-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: install-dev
	$(BIN)/mypy

# Tests run in parallel processes (pytest-xdist); each has its own SQLite files and PostgreSQL database.
# The slowest tests are listed at the end, to keep an eye on the CI's time.
TEST_WORKERS ?= 3
# Byte-compiled up front: where PYTHONDONTWRITEBYTECODE is set (as on CI machines) every `warroom` the tests
# start would otherwise compile the sources again.
unit: install-dev
	$(BIN)/python -m compileall -q src
	$(BIN)/pytest -q -n $(TEST_WORKERS) --durations=15

test: install-dev peers lint typecheck unit

# Each script prints its figures; bench/README.md has the latest ones and how they were taken.
# BENCH_POSTGRES_URL names a scratch PostgreSQL database (it is emptied) for the PostgreSQL runs.
bench: install-dev
	$(BIN)/python bench/timers.py $(if $(BENCH_POSTGRES_URL),--backend both --postgres-url $(BENCH_POSTGRES_URL))
	$(BIN)/python bench/escalations.py
	$(BIN)/python bench/alerts_intake.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
