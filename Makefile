# The two entry points: `make demo` and `make test`. Each creates .venv when missing and installs
# the project (editable) with the pins of constraints/dev.txt.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
# Test processes: the Spark, cluster and notebook tests spend much of their time waiting on JVMs and
# child processes, so two processes on two cores cut the suite's wall time by about a quarter. Files go out
# in collection order (tests/conftest.py puts the minutes-long ones first), not xdist's largest-file-first.
TEST_WORKERS ?= 2

.PHONY: demo test install clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints/dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is needed; set PYTHON=python3.11")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints/dev.txt -e '.[all]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/topotrigger --fast-start --config configs/demo.toml run

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=12 $(PYTEST_ARGS)

clean:
	rm -rf runs .pytest_cache
