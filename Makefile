VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install run test bench clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

run: install
	$(VENV)/bin/fleetbench run

test: install
	PY=$(PY) scripts/check

bench: install
	$(PY) -m target.bench

clean:
	rm -rf $(VENV) results .pytest_cache .mypy_cache .ruff_cache
