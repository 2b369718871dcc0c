VENV ?= .venv
PY := $(VENV)/bin/python
# Every package, direct and transitive, at the version the suite last passed with (hashes checked).
LOCK := requirements.lock

.PHONY: install run test test-fast test-latest lock bench clean

$(VENV)/.installed: $(LOCK) pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --require-hashes -r $(LOCK)
	$(PY) -m pip install -q --no-deps -e .
	touch $@

install: $(VENV)/.installed

# Move the lock forward: the newest versions pyproject.toml allows. Run `make test` after it and commit
# requirements.lock with whatever the new versions needed.
lock: install
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --universal --python-version 3.11 \
		--generate-hashes --upgrade --quiet --output-file $(LOCK)

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

# Drift found on purpose: the newest versions pyproject.toml allows, the lock ignored, in a venv of its own.
LATEST := .venv-latest
test-latest: $(SEED)/node_modules/.installed
	rm -rf $(LATEST)
	python3 -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install -q --upgrade pip
	$(LATEST)/bin/python -m pip install -q --upgrade --upgrade-strategy eager -e '.[dev]'
	$(LATEST)/bin/python -m pip freeze --exclude-editable > $(LATEST)/versions.txt
	PY=$(LATEST)/bin/python scripts/check

bench: install
	$(PY) -m benchmarks.sign

clean:
	rm -rf $(VENV) $(LATEST) results .pytest_cache .mypy_cache .ruff_cache
