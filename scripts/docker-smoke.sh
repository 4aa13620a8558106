#!/usr/bin/env bash
# Docker smoke test on a machine with no registry access: build a local stand-in for the base
# image (debootstrap Debian bookworm + its Python 3.11, tagged python:3.11-slim), build the real
# Dockerfile, run the container with host networking (traffic stays on loopback), build a bundle
# from a tiny generated dataset on first start, check /health and a recommendation, then remove
# everything it started or built.
#
#   make docker-smoke
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${SMOKE_PORT:-18080}
BASE=python:3.11-slim
WORK=$(mktemp -d)
STARTED_DOCKERD=""
CREATED_BASE=""
CONTAINER=cinerec-smoke-$$

cleanup() {
    docker rm -f "$CONTAINER" >/dev/null 2>&1 || true
    docker rmi -f cinerec:smoke >/dev/null 2>&1 || true
    if [ -n "$CREATED_BASE" ]; then docker rmi -f "$BASE" cinerec-smoke-debian >/dev/null 2>&1 || true; fi
    if [ -n "$STARTED_DOCKERD" ]; then kill "$STARTED_DOCKERD" 2>/dev/null || true; wait "$STARTED_DOCKERD" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null; then
    apt-get install -y -qq docker.io debootstrap >/dev/null
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
user=$(docker exec "$CONTAINER" id -u)
[ "$user" != 0 ] || { echo "the container runs as root"; exit 1; }
# The image's own HEALTHCHECK (first probe 15 s after start) must report healthy.
for _ in $(seq 60); do
    health=$(docker inspect --format '{{.State.Health.Status}}' "$CONTAINER")
    [ "$health" = starting ] || break
    sleep 1
done
[ "$health" = healthy ] || { echo "HEALTHCHECK says $health"; docker inspect --format '{{json .State.Health}}' "$CONTAINER"; exit 1; }
echo "docker smoke test passed: /health ok, 5 recommendations, uid $user, HEALTHCHECK $health"
