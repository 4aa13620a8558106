# Sourced by the scripts that need a running server: a tiny generated dataset, a bundle
# built from it, and uvicorn on loopback. Callers set WORK (a temporary folder) and clean up.

# fixture_dataset DIR: a small MovieLens-CSV dataset (the tests' generator) in DIR.
fixture_dataset() {
    .venv/bin/python -c "import sys; from pathlib import Path; from tests.conftest import write_movielens_csv; write_movielens_csv(Path(sys.argv[1]))" "$1"
}

# serve_fixture PORT [ARTIFACTS]: serve ARTIFACTS (or a bundle built from the fixture dataset)
# with a fresh SQLite database; sets SERVER to the server's pid once /health answers.
serve_fixture() {
    local port=$1 artifacts=${2:-}
    if [ -z "$artifacts" ] || [ ! -e "$artifacts/current/manifest.json" ]; then
        fixture_dataset "$WORK/ml-mini"
        .venv/bin/python -m training build --data "$WORK/ml-mini" --out "$WORK/artifacts" --tune off --device cpu >/dev/null 2>&1
        artifacts=$WORK/artifacts
    fi
    ARTIFACTS_DIR=$artifacts DATABASE_URL="sqlite+aiosqlite:///$WORK/server.db" MIGRATE_ON_START=true LOG_LEVEL=warning \
        .venv/bin/python -m uvicorn app.main:app --host 127.0.0.1 --port "$port" --loop asyncio --no-access-log >"$WORK/server.log" 2>&1 &
    SERVER=$!
    for _ in $(seq 60); do curl -sf "127.0.0.1:$port/health" >/dev/null && return 0; sleep 0.5; done
    cat "$WORK/server.log"
    return 1
}
