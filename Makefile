# The README's two commands: `make run` and `make test`. Everything else supports them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA ?= ml-latest-small
ARTIFACTS_DIR ?= artifacts
HOST ?= 0.0.0.0
PORT ?= 8000

export OPENBLAS_NUM_THREADS ?= 1

.PHONY: install spark install-gpu run bundle migrate serve test lint typecheck pytest format lock clean load docker-smoke fuzz docs-check

install: $(VENV)/.installed $(VENV)/.jit

# The environment is installed by pip from hashed requirements exported from poetry.lock
# (scripts/lock.sh keeps them in step); no network beyond the package index is needed.
$(VENV)/.installed: requirements/dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes --no-deps -r requirements/dev.txt
	touch $@

# numba compiles the kernels ahead of use (cached beside their modules; ~1 min on 2 cores) so
# that no request pays for it, e.g. a visitor's first fold-in; again when training/ changes.
$(VENV)/.jit: $(VENV)/.installed $(wildcard training/*.py training/models/*.py)
	$(BIN)/python -m training.jit
	touch $@

# Optional groups from the same lock: Spark for `training build --engine spark` (make test
# installs it; needs Java 17+) and the CUDA libraries of implicit's GPU path.
spark: $(VENV)/.spark
$(VENV)/.spark: requirements/spark.txt $(VENV)/.installed
	$(BIN)/pip install --quiet --require-hashes --no-deps -r requirements/spark.txt
	touch $@

install-gpu: install
	$(BIN)/pip install --quiet --require-hashes --no-deps -r requirements/gpu.txt

run: bundle serve

bundle: install
	$(BIN)/python -m training build --data $(DATA) --out $(ARTIFACTS_DIR)

# Applies the Alembic migrations to DATABASE_URL (default: the SQLite file data/cinerec.db).
migrate: install
	$(BIN)/alembic upgrade head

# --loop asyncio: under a burst of new connections (64 at once from wrk) uvloop accepted them
# one per busy loop turn and some first requests waited over 2 s; asyncio's loop did not, at
# the same throughput (bench/load.sh).
serve: migrate
	ARTIFACTS_DIR=$(ARTIFACTS_DIR) $(BIN)/python -m uvicorn app.main:app --host $(HOST) --port $(PORT) --loop asyncio --no-access-log

# wrk against a served bundle: make load [ARTIFACTS_DIR=...] [SECONDS=60]
load: install
	bench/load.sh $(ARTIFACTS_DIR) $(or $(SECONDS),60)

test: install spark lint typecheck pytest

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck:
	$(BIN)/mypy

pytest:
	$(BIN)/python -m pytest

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

lock:
	scripts/lock.sh

# schemathesis against a running server: no 5xx, no response outside its schema.
fuzz: install
	scripts/fuzz.sh $(FUZZ_ARTIFACTS)

# Headless Chromium renders /docs with no network; screenshot in reports/docs.png.
docs-check: install
	scripts/docs-check.sh $(FUZZ_ARTIFACTS)

# Builds and runs the real Dockerfile on a local stand-in base image, then cleans up.
docker-smoke: install
	scripts/docker-smoke.sh

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
