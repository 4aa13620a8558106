#!/usr/bin/env bash
# Load run: uvicorn on loopback, wrk with 64 connections against /health and each main
# endpoint in the same run; prints requests/s, p50/p99, errors, the ratio to /health (measured
# just before and after each row) and the event loop's CPU time per request (the server's
# main thread, which holds the GIL).
#
#   bench/load.sh [ARTIFACTS_DIR] [SECONDS]      (defaults: artifacts, 30)
#
# ONLY=REGEX runs only the rows whose label matches it, besides the first /health row and the
# /health run after each row (e.g. ONLY='new|visitors' for an A/B of the visitor endpoint).
# BRACKET=SECONDS sets how long that /health run after each row lasts (default 10).
set -euo pipefail
cd "$(dirname "$0")/.."
ARTIFACTS=${1:-artifacts}
SECONDS_EACH=${2:-30}
PORT=${PORT:-8765}
WARM_UP=${WARM_UP:-5}  # seconds of load before each measured run
if ! command -v wrk >/dev/null; then
  apt-get install -y -qq wrk >/dev/null
fi

OPENBLAS_NUM_THREADS=1 ARTIFACTS_DIR="$ARTIFACTS" MIGRATE_ON_START=true .venv/bin/python -m uvicorn app.main:app \
  --host 127.0.0.1 --port "$PORT" --loop asyncio --log-level warning --no-access-log >/tmp/cinerec-load-server.log 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 60); do curl -sf "127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.5; done

# Per-user endpoints cycle through up to 1,000 of the bundle's users (one user per request, in
# turn), so a run measures many users' answers, not one user's kept answer.
USERS=$(.venv/bin/python - "$ARTIFACTS" <<'PY'
import sys, numpy as np, pathlib
print(",".join(str(int(u)) for u in np.load(pathlib.Path(sys.argv[1]) / "current" / "users.npy")[:1000]))
PY
)
user_script() {  # a wrk script asking /users/{id}/$1 for each user in turn
  cat > "/tmp/cinerec-users-$2.lua" <<LUA
local users = {$USERS}
local turn = 0
request = function()
  turn = turn % #users + 1
  return wrk.format("GET", "/users/" .. users[turn] .. "/$1")
end
LUA
  echo "/tmp/cinerec-users-$2.lua"
}
MOVIE_ID=$(curl -sf "127.0.0.1:$PORT/top-rated?k=1" | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["movie_id"])')
# Visitors rate three of the bundle's 300 most rated movies. "visitors": 1,000 such bodies in
# turn (a visitor's answer is kept per bundle and body, as a user's is per user); "new
# visitors": random picks, a body never seen before on every request (the fold-in every time).
POPULAR=$(.venv/bin/python - "$ARTIFACTS" <<'PY'
import sys, pathlib, pandas as pd
stats = pd.read_parquet(pathlib.Path(sys.argv[1]) / "current" / "movies.parquet")
print(",".join(str(int(m)) for m in stats.nlargest(300, "n_ratings")["movie_id"]))
PY
)
cat > /tmp/cinerec-visitors.lua <<LUA
local movies = {$POPULAR}
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local bodies = {}
for i = 1, 1000 do  -- visitor i rates movies i, i+7 and i+61 of the list (mod its length), no two alike
  local pick = function(step) return movies[(i + step - 1) % #movies + 1] end
  bodies[i] = string.format('{"ratings": [{"movie_id": %d, "rating": %d}, {"movie_id": %d, "rating": %d}, ' ..
    '{"movie_id": %d, "rating": %d}], "k": 10}', pick(0), (i + math.floor(i / 300)) % 5 + 1, pick(7), 4, pick(61), 5)
end
local turn = 0
request = function()
  turn = turn % #bodies + 1
  return wrk.format(nil, "/recommendations", nil, bodies[turn])
end
LUA
cat > /tmp/cinerec-new-visitors.lua <<LUA
local movies = {$POPULAR}
local threads = 0
function setup(thread) threads = threads + 1; thread:set("seed", threads) end
function init() math.randomseed(seed * 7919) end  -- each wrk thread its own random picks
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  local pick = function() return movies[math.random(#movies)] end
  return wrk.format(nil, "/recommendations", nil, string.format(
    '{"ratings": [{"movie_id": %d, "rating": %.1f}, {"movie_id": %d, "rating": %.1f}, ' ..
    '{"movie_id": %d, "rating": %.1f}], "k": 10}',
    pick(), math.random(1, 10) / 2, pick(), math.random(1, 10) / 2, pick(), math.random(1, 10) / 2))
end
LUA

# The server's main thread (the event loop) holds the GIL for almost all of a request's Python:
# its CPU time per request, read from /proc around each measured run, is what bounds a row's
# throughput, and it moves less with the host's load than requests/s do.
TICK_US=$((1000000 / $(getconf CLK_TCK)))
loop_cpu() { awk '{print $14 + $15}' "/proc/$SERVER/task/$SERVER/stat"; }
# Each row's ratio is to /health measured just before and just after it (BRACKET seconds each,
# default 10; the first /health row serves as the first "before"): this host's throughput has
# drifted by 20 % within one run, and a ratio to the first /health alone charges that drift to
# the rows that come late. The ratio to the first /health row is printed beside it.
BRACKET=${BRACKET:-10}
first=""   # the first /health row's requests/s
before=""  # the latest /health bracket's
measure() {  # url script seconds: prints "requests/s|p50|p99|loop us a request|errors"
  local url=$1 script=$2 seconds=$3 out cpu_before cpu_after rps
  cpu_before=$(loop_cpu)
  out=$(wrk -t2 -c64 -d"${seconds}s" --latency ${script:+-s "$script"} "http://127.0.0.1:$PORT$url")
  cpu_after=$(loop_cpu)
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  printf '%s|%s|%s|%s|%s\n' "$rps" "$(awk '$1=="50%" {print $2}' <<<"$out")" \
    "$(awk '$1=="99%" {print $2}' <<<"$out")" \
    "$(echo "($cpu_after - $cpu_before) * $TICK_US / ($rps * $seconds)" | bc -l)" \
    "$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out" | tr '\n' ' ')"
}
line() {  # label, measure's output, the ratios' text
  local rps p50 p99 loop_us errors
  IFS='|' read -r rps p50 p99 loop_us errors <<<"$2"
  printf '%-46s %10s req/s  p50 %8s  p99 %8s  %s  loop %4.0f us/req  %s\n' \
    "$1" "$rps" "$p50" "$p99" "$3" "$loop_us" "${errors:-no errors}"
}
run() {
  local label=$1 url=$2 script=${3:-} figures health rps around
  if [[ -n "${ONLY:-}" && "$label" != "GET /health" && ! "$label" =~ $ONLY ]]; then
    return
  fi
  # A short run first, not counted: the figures are the steady state (users' first requests
  # are timed by bench.api), and each endpoint starts from the same warm server.
  wrk -t2 -c64 -d"${WARM_UP}s" ${script:+-s "$script"} "http://127.0.0.1:$PORT$url" >/dev/null
  figures=$(measure "$url" "$script" "$SECONDS_EACH")
  rps=${figures%%|*}
  if [[ -z "$first" ]]; then  # the first /health row: the first "before"
    first=$rps before=$rps
    line "$label" "$figures" "x1.00 of /health"
    return
  fi
  health=$(measure /health "" "$BRACKET")
  around=$(echo "($before + ${health%%|*}) / 2" | bc -l)
  line "$label" "$figures" "$(printf 'x%.2f of /health around it (x%.2f of the first)' \
    "$(echo "$rps / $around" | bc -l)" "$(echo "$rps / $first" | bc -l)")"
  line "  then GET /health, ${BRACKET}s" "$health" ""
  before=${health%%|*}
}
echo "wrk: 64 connections, ${SECONDS_EACH}s each after ${WARM_UP}s of warm-up, /health for ${BRACKET}s after each row, bundle $ARTIFACTS"
run "GET /health" "/health"
run "GET /trending" "/trending?k=10"
run "GET /top-rated" "/top-rated?k=10"
run "GET /movies/{id}/similar" "/movies/$MOVIE_ID/similar?k=10"
run "GET /users/{id}/recommendations" / "$(user_script 'recommendations?k=10' recs)"
run "GET /users/{id}/because-you-watched" / "$(user_script 'because-you-watched?rows=3' because)"
run "GET /users/{id}/home" / "$(user_script home home)"
run "POST /recommendations (1,000 visitors)" / /tmp/cinerec-visitors.lua
run "POST /recommendations (every body new)" / /tmp/cinerec-new-visitors.lua

# The same load on a user's recommendations while the bundle is reloaded every 2 s: zero
# failed requests expected (the new bundle is verified beside the old one, then swapped).
RELOAD_ROW="GET /users/{id}/recommendations + reloads"
if [[ -n "${ONLY:-}" && ! "$RELOAD_ROW" =~ $ONLY ]]; then
  exit 0
fi
RELOADS=$(mktemp)
(
    # Reloads during the warm-up and the measured row only, not the /health run after it: the
    # last one starts at least 3 s before the row ends (one takes ~1-2 s on ml-latest-small).
    stop=$((SECONDS + WARM_UP + SECONDS_EACH - 3))
    sleep 1
    while sleep 2 && ((SECONDS < stop)); do
        if curl -sf -XPOST "127.0.0.1:$PORT/admin/reload" ${API_KEY:+-H "X-API-Key: $API_KEY"} >/dev/null; then
            echo ok >>"$RELOADS"
        else
            echo "reload failed"
        fi
    done
) &
RELOADER=$!
run "$RELOAD_ROW" / /tmp/cinerec-users-recs.lua
kill $RELOADER 2>/dev/null || true
wait $RELOADER 2>/dev/null || true
echo "bundle reloads completed during that run: $(wc -l <"$RELOADS")"
rm -f "$RELOADS"
