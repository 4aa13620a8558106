#!/usr/bin/env bash
# Browser check: headless Chromium (Debian's package) opens /docs on a running server with no
# network, the endpoint list must render, and a screenshot is kept in reports/docs.png.
#
#   make docs-check [FUZZ_ARTIFACTS=artifacts]
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${DOCS_PORT:-8767}
WORK=$(mktemp -d)
SERVER=""
trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
command -v chromium >/dev/null || apt-get install -y -qq chromium >/dev/null

# shellcheck source=scripts/fixture-server.sh
source scripts/fixture-server.sh
serve_fixture "$PORT" "${1:-}"

browse() {
    timeout 60 chromium --headless --no-sandbox --disable-gpu --disable-background-networking \
        --disable-component-update --disable-sync --no-first-run --user-data-dir="$WORK/profile" \
        --virtual-time-budget=8000 --window-size=1280,1600 "$@" "http://127.0.0.1:$PORT/docs" 2>/dev/null
}
expected=$(curl -sf "127.0.0.1:$PORT/openapi.json" | .venv/bin/python -c \
    'import json,sys; print(sum(len(ops) for ops in json.load(sys.stdin)["paths"].values()))')
rendered=$(browse --dump-dom | grep -o 'class="opblock opblock-' | wc -l)
mkdir -p reports
browse --screenshot=reports/docs.png >/dev/null
if [ "$rendered" != "$expected" ]; then
    echo "docs page rendered $rendered of $expected operations"
    exit 1
fi
echo "docs page rendered all $expected operations offline; screenshot reports/docs.png"
