# Two commands for a fresh machine (Python 3.11 and the package registries are all it needs):
#   make run    set up, build the index if missing, then start the bot (or a terminal chat)
#   make test   set up, then run the whole test suite (CI runs `make lint` first)
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

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

run: setup
	$(BIN)/verbatim start

# ruff (style, bugbear, bandit security rules) and mypy, as configured in pyproject.toml; offline.
lint: setup
	$(BIN)/ruff check index bot tests benchmarks
	$(BIN)/mypy index bot

test: setup
	$(BIN)/python -m pytest

# Re-pin every dependency after changing pyproject.toml (torch stays pinned to the CPU build).
lock:
	$(BIN)/pip freeze --exclude-editable | sed 's/^torch==.*/torch==2.13.0/' > requirements.lock

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
