# imsconf — two commands on a fresh Debian 12 machine:  make run  /  make test
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
ARGS ?=

.PHONY: run test venv test-deps lint typecheck unit bench clean

$(BIN)/imsconf: pyproject.toml setup.py src/imsconf/media/_fastpath.c src/imsconf/media/_codecs.c
	bash scripts/ensure-python.sh $(PY)
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

venv: $(BIN)/imsconf

## Start the server on the embedded defaults (./var, self-generated dev certificates, SQLite).
run: venv
	$(BIN)/imsconf serve $(ARGS)

## Install every test peer (SIPp, baresip, tshark, socat) and run lint, type checks and the whole suite.
test: venv test-deps
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/pytest $(ARGS)

test-deps:
	bash scripts/install-test-deps.sh

lint: venv
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports

typecheck: venv
	$(BIN)/mypy

unit: venv
	$(BIN)/pytest -m "not peer" $(ARGS)

bench: venv test-deps
	$(BIN)/python bench/sip_parse.py
	$(BIN)/python bench/sip_load.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
