#!/usr/bin/env bash
# Docker smoke test on a machine with no registry access: build a local stand-in for the base
# image (debootstrap Debian bookworm + its Python 3.11, tagged python:3.11-slim), build the real
# Dockerfile, run the container with host networking (traffic stays on loopback), build a bundle
# from a tiny generated dataset on first start, check /health and a recommendation. Then bring up
# the real docker-compose.yml (PostgreSQL from a stand-in image tagged postgres:16, the one-shot
# training job, the API) and check the API serves the trained bundle and stores a rating in
# PostgreSQL. Finally remove everything it started or built.
#
#   make docker-smoke
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${SMOKE_PORT:-18080}
BASE=python:3.11-slim
WORK=$(mktemp -d)
COMPOSE_PORT=${SMOKE_COMPOSE_PORT:-18081}
STARTED_DOCKERD=""
CREATED_BASE=""
CREATED_PG=""
CONTAINER=cinerec-smoke-$$
PROJECT=cinerecsmoke$$

compose() {
    if docker compose version >/dev/null 2>&1; then docker compose -p "$PROJECT" "$@"; else docker-compose -p "$PROJECT" "$@"; fi
}

cleanup() {
    docker rm -f "$CONTAINER" >/dev/null 2>&1 || true
    compose down -v >/dev/null 2>&1 || true
    docker rmi -f cinerec:smoke >/dev/null 2>&1 || true
    if [ -n "$CREATED_PG" ]; then docker rmi -f postgres:16 >/dev/null 2>&1 || true; fi
    if [ -n "$CREATED_BASE" ]; then docker rmi -f "$BASE" cinerec-smoke-debian >/dev/null 2>&1 || true; fi
    if [ -n "$STARTED_DOCKERD" ]; then kill "$STARTED_DOCKERD" 2>/dev/null || true; wait "$STARTED_DOCKERD" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null; then
    apt-get install -y -qq docker.io debootstrap >/dev/null
fi
if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null; then
    apt-get install -y -qq docker-compose >/dev/null
fi
if ! docker info >/dev/null 2>&1; then
    dockerd >"$WORK/dockerd.log" 2>&1 &
    STARTED_DOCKERD=$!
    for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
    docker info >/dev/null
fi

if ! docker image inspect "$BASE" >/dev/null 2>&1; then
    echo "building a local stand-in for $BASE"
    CREATED_BASE=1
    debootstrap --variant=minbase bookworm "$WORK/rootfs" http://deb.debian.org/debian >"$WORK/debootstrap.log"
    tar -C "$WORK/rootfs" -c . | docker import - cinerec-smoke-debian >/dev/null
    mkdir -p "$WORK/base"
    cp /etc/ssl/certs/ca-certificates.crt "$WORK/base/host-ca.crt"  # this network re-signs TLS
    cat >"$WORK/base/Dockerfile" <<'DOCKERFILE'
FROM cinerec-smoke-debian
COPY host-ca.crt /usr/local/share/host-ca.crt
RUN apt-get -o Acquire::https::CAInfo=/usr/local/share/host-ca.crt update -qq \
    && apt-get install -y -qq --no-install-recommends python3 python3-pip python3-venv ca-certificates >/dev/null \
    && rm -rf /var/lib/apt/lists/* /usr/lib/python3*/EXTERNALLY-MANAGED \
    && ln -s /usr/bin/python3 /usr/local/bin/python
ENV PIP_CERT=/usr/local/share/host-ca.crt
CMD ["python3"]
DOCKERFILE
    docker build --network host -q -t "$BASE" "$WORK/base" >/dev/null
fi

echo "building the cinerec image"
docker build --network host -q -t cinerec:smoke . >/dev/null

echo "generating a tiny dataset"
# shellcheck source=scripts/fixture-server.sh
source scripts/fixture-server.sh
fixture_dataset "$WORK/data/ml-mini"
chmod -R a+rX "$WORK/data"

echo "running the container (host network, port $PORT)"
docker run -d --name "$CONTAINER" --network host -e PORT="$PORT" -e BUILD_DATA=/data/ml-mini \
    -v "$WORK/data:/data:ro" cinerec:smoke >/dev/null
running() { [ "$(docker inspect --format '{{.State.Running}}' "$CONTAINER")" = true ]; }
for _ in $(seq 180); do
    curl -sf "127.0.0.1:$PORT/health" >/dev/null && break
    running || break
    sleep 1
done
curl -sf "127.0.0.1:$PORT/health" | grep -q '"status":"ok"' || { docker logs "$CONTAINER"; exit 1; }
items=$(curl -sf "127.0.0.1:$PORT/users/2/recommendations?k=5" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["items"]))')
[ "$items" = 5 ] || { echo "expected 5 recommendations, got $items"; docker logs "$CONTAINER"; exit 1; }
# The visitor process starts in the image (as its user) and answers a visitor.
for _ in $(seq 60); do
    curl -sf "127.0.0.1:$PORT/metrics" | grep -q '^cinerec_visitor_process_up 1' && break
    sleep 1
done
curl -sf "127.0.0.1:$PORT/metrics" | grep -q '^cinerec_visitor_process_up 1' \
    || { echo "the visitor process did not start"; docker logs "$CONTAINER"; exit 1; }
items=$(curl -sf -XPOST "127.0.0.1:$PORT/recommendations" -H 'content-type: application/json' \
    -d '{"ratings": [{"movie_id": 1, "rating": 5}], "k": 3}' | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["items"]))')
[ "$items" = 3 ] || { echo "expected 3 visitor recommendations, got $items"; docker logs "$CONTAINER"; exit 1; }
user=$(docker exec "$CONTAINER" id -u)
[ "$user" != 0 ] || { echo "the container runs as root"; exit 1; }
# The image's own HEALTHCHECK (first probe 15 s after start) must report healthy.
for _ in $(seq 60); do
    health=$(docker inspect --format '{{.State.Health.Status}}' "$CONTAINER")
    [ "$health" = starting ] || break
    sleep 1
done
[ "$health" = healthy ] || { echo "HEALTHCHECK says $health"; docker inspect --format '{{json .State.Health}}' "$CONTAINER"; exit 1; }
echo "docker smoke test passed: /health ok, 5 recommendations, a visitor answered by the visitor process, uid $user, HEALTHCHECK $health"

echo "docker compose: PostgreSQL (stand-in postgres:16), the training job, the API (port $COMPOSE_PORT)"
docker rm -f "$CONTAINER" >/dev/null
if ! docker image inspect postgres:16 >/dev/null 2>&1; then
    CREATED_PG=1
    docker image inspect cinerec-smoke-debian >/dev/null 2>&1 || {
        [ -d "$WORK/rootfs" ] || debootstrap --variant=minbase bookworm "$WORK/rootfs" http://deb.debian.org/debian >"$WORK/debootstrap.log"
        tar -C "$WORK/rootfs" -c . | docker import - cinerec-smoke-debian >/dev/null
    }
    mkdir -p "$WORK/pg"
    cp docker/postgres-standin/entrypoint.sh "$WORK/pg/"
    cp /etc/ssl/certs/ca-certificates.crt "$WORK/pg/host-ca.crt"
    cat >"$WORK/pg/Dockerfile" <<'DOCKERFILE'
FROM cinerec-smoke-debian
COPY host-ca.crt /usr/local/share/host-ca.crt
RUN apt-get -o Acquire::https::CAInfo=/usr/local/share/host-ca.crt update -qq \
    && apt-get install -y -qq --no-install-recommends postgresql-15 >/dev/null \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /var/lib/postgresql/data /var/run/postgresql \
    && chown -R postgres /var/lib/postgresql /var/run/postgresql
COPY entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data
USER postgres
ENTRYPOINT ["docker-entrypoint.sh"]
DOCKERFILE
    docker build --network host -q -t postgres:16 "$WORK/pg" >/dev/null
fi
export CINEREC_IMAGE=cinerec:smoke CINEREC_PORT=$COMPOSE_PORT DATASETS=$WORK/data BUILD_DATA=/data/ml-mini
compose up -d >"$WORK/compose.log" 2>&1 || { cat "$WORK/compose.log"; compose logs; exit 1; }
api=$(compose ps -q api)
for _ in $(seq 240); do
    curl -sf "127.0.0.1:$COMPOSE_PORT/health" >/dev/null && break
    [ "$(docker inspect --format '{{.State.Status}}' "$api")" = exited ] && break
    sleep 1
done
curl -sf "127.0.0.1:$COMPOSE_PORT/health" | grep -q '"status":"ok"' || { compose logs; exit 1; }
trained=$(docker inspect --format '{{.State.ExitCode}}' "$(compose ps -q train)")
[ "$trained" = 0 ] || { echo "the training job exited with $trained"; compose logs train; exit 1; }
movie=$(curl -sf "127.0.0.1:$COMPOSE_PORT/top-rated?k=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["movie_id"])')
curl -sf -XPOST "127.0.0.1:$COMPOSE_PORT/users/424242/ratings" -H 'Content-Type: application/json' \
    -d "{\"ratings\": [{\"movie_id\": $movie, \"rating\": 4.5}]}" >/dev/null || { compose logs api; exit 1; }
stored=$(compose exec -T postgres psql -U cinerec -d cinerec -tAc "SELECT rating FROM ratings WHERE user_id = 424242")
[ "$stored" = 4.5 ] || { echo "expected the rating 4.5 in PostgreSQL, found '$stored'"; compose logs api; exit 1; }
items=$(curl -sf "127.0.0.1:$COMPOSE_PORT/users/424242/recommendations?k=5" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["items"]))')
[ "$items" = 5 ] || { echo "expected 5 recommendations from the compose stack, got $items"; exit 1; }
echo "docker compose smoke test passed: training job exited 0, /health ok, a rating stored in PostgreSQL, 5 recommendations"
