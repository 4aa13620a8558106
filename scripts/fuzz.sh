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

# shellcheck source=scripts/fixture-server.sh
source scripts/fixture-server.sh
serve_fixture "$PORT" "${1:-}"

.venv/bin/st run "http://127.0.0.1:$PORT/openapi.json" \
    --checks not_a_server_error,response_schema_conformance \
    --max-examples "${MAX_EXAMPLES:-30}" --seed 1 --workers 2 --no-color
