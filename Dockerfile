# cinerec API image: locked dependencies first (cached layer), then the source.
#   docker build -t cinerec .
#   docker run -p 8000:8000 -v $PWD/artifacts:/app/artifacts cinerec          # serve a bundle
#   docker run -p 8000:8000 -e BUILD_DATA=/data/ml-latest-small \
#       -v /path/to/datasets:/data:ro -v cinerec-artifacts:/app/artifacts cinerec   # build on first start
FROM python:3.11-slim AS runtime

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    OPENBLAS_NUM_THREADS=1 \
    ARTIFACTS_DIR=/app/artifacts \
    DATABASE_URL=sqlite+aiosqlite:////app/data/cinerec.db \
    MIGRATE_ON_START=true \
    NUMBA_CACHE_DIR=/app/.cache/numba

# implicit's OpenMP runtime
RUN apt-get update -qq \
    && apt-get install -y -qq --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY requirements/main.txt requirements/main.txt
RUN pip install --require-hashes --no-deps -r requirements/main.txt

COPY app/ app/
COPY training/ training/
COPY migrations/ migrations/
COPY alembic.ini docker/entrypoint.sh ./

RUN useradd --system --uid 10001 --home-dir /app cinerec \
    && mkdir -p /app/artifacts /app/data /app/.cache/numba \
    && chown -R cinerec /app/artifacts /app/data /app/.cache \
    && chmod +x /app/entrypoint.sh
USER cinerec
# numba's machine code for the kernels, compiled once here instead of in every new container
RUN python -m training.jit

EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD python -c "import os, sys, urllib.request; url = 'http://127.0.0.1:%s/health' % os.environ.get('PORT', '8000'); sys.exit(urllib.request.urlopen(url, timeout=2).status != 200)"
ENTRYPOINT ["/app/entrypoint.sh"]
CMD ["serve"]
