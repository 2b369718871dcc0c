VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install run test test-fast bench clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# The seed Express API that the profile tests drive (tests/apis/seed_express); without npm they skip.
SEED := tests/apis/seed_express
$(SEED)/node_modules/.installed: $(SEED)/package-lock.json
	@if command -v npm >/dev/null; then \
		npm ci --prefix $(SEED) --no-audit --no-fund && touch $@; \
	else echo "make: no npm: the seed Express API tests will be skipped"; fi

run: install
	$(VENV)/bin/fleetbench run

test: install $(SEED)/node_modules/.installed
	PY=$(PY) scripts/check

# The quick loop: the same check without the tests that start processes (markers in pyproject.toml).
test-fast: install
	PY=$(PY) scripts/check -m "not slow and not browser and not node and not wheel"

bench: install
	$(PY) -m target.bench

clean:
	rm -rf $(VENV) results .pytest_cache .mypy_cache .ruff_cache
