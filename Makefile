# imsconf — two commands on a fresh Debian 12 machine:  make run  /  make test
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
ARGS ?=

.PHONY: run test venv test-deps lint typecheck unit bench clean cluster cluster-down

$(BIN)/imsconf: pyproject.toml setup.py src/imsconf/media/_fastpath.c src/imsconf/media/_codecs.c
	bash scripts/ensure-python.sh $(PY)
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,cluster]'
	touch $@

venv: $(BIN)/imsconf

## Start the server on the embedded defaults (./var, self-generated dev certificates, SQLite).
run: venv
	$(BIN)/imsconf serve $(ARGS)

## A development cluster on loopback: Kamailio in front of two nodes (scripts/cluster.sh); cluster-down stops it.
cluster: venv test-deps
	PY=$(BIN)/python bash scripts/cluster.sh up

cluster-down:
	bash scripts/cluster.sh down

## Install every test peer (SIPp, baresip, tshark, socat) and run lint, type checks and the whole suite.
test: venv test-deps
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports
	@# byte-compiled once here: the suite starts a hundred server, mixer and node processes, and where the
	@# environment sets PYTHONDONTWRITEBYTECODE each of them would compile every module again (~0.5 s each)
	$(BIN)/python -m compileall -q -j 0 src tests
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
	$(BIN)/python bench/codec_cost.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
