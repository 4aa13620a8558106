#!/usr/bin/env bash
# Fuzz the OpenAPI schema with schemathesis against a running server on loopback: any 5xx or a
# response that violates its own schema fails. Serves ARTIFACTS_DIR when given, else a bundle
# built here from a tiny generated dataset. Bounded: MAX_EXAMPLES per operation, fixed seed.
#
#   make fuzz [ARTIFACTS_DIR=artifacts] [MAX_EXAMPLES=30]
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${FUZZ_PORT:-8766}
WORK=$(mktemp -d)
trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
SERVER=""

ARTIFACTS=${1:-}
if [ -z "$ARTIFACTS" ] || [ ! -e "$ARTIFACTS/current/manifest.json" ]; then
    .venv/bin/python -c "import sys; from pathlib import Path; from tests.conftest import write_movielens_csv; write_movielens_csv(Path(sys.argv[1]))" "$WORK/ml-mini"
    .venv/bin/python -m training build --data "$WORK/ml-mini" --out "$WORK/artifacts" --tune off --device cpu >/dev/null 2>&1
    ARTIFACTS=$WORK/artifacts
fi

ARTIFACTS_DIR=$ARTIFACTS DATABASE_URL="sqlite+aiosqlite:///$WORK/fuzz.db" MIGRATE_ON_START=true LOG_LEVEL=warning \
    .venv/bin/python -m uvicorn app.main:app --host 127.0.0.1 --port "$PORT" --no-access-log >"$WORK/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 60); do curl -sf "127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.5; done

.venv/bin/st run "http://127.0.0.1:$PORT/openapi.json" \
    --checks not_a_server_error,response_schema_conformance \
    --max-examples "${MAX_EXAMPLES:-30}" --seed 1 --workers 2 --no-color
