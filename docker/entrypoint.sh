#!/bin/sh
# serve: serve ARTIFACTS_DIR/current (building it first from BUILD_DATA when there is none).
# build: build a bundle from BUILD_DATA into ARTIFACTS_DIR and exit (the compose training job).
set -eu
build() {
    : "${BUILD_DATA:?set BUILD_DATA to a dataset path (mounted) or a known name}"
    python -m training build --data "$BUILD_DATA" --out "$ARTIFACTS_DIR" ${BUILD_ARGS:-}
}
case "${1:-serve}" in
    build)
        build
        ;;
    serve)
        if [ ! -e "$ARTIFACTS_DIR/current/manifest.json" ] && [ -n "${BUILD_DATA:-}" ]; then
            build
        fi
        exec python -m uvicorn app.main:app --host 0.0.0.0 --port "${PORT:-8000}" --loop asyncio --no-access-log
        ;;
    *)
        exec "$@"
        ;;
esac
