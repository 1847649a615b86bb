# syntax=docker/dockerfile:1
# The backup worker (compose `backup-worker`): `oxp worker` for the backup
# jobs only (WORKER_KINDS), beside the database's files. pgBackRest reads
# the cluster's folder and socket (shared volumes) as the cluster's own user
# (uid 999, the postgres image's), and the restore drill starts a throwaway
# cluster with the server's binaries, so this image is the database's base
# image (the same pgBackRest and PostgreSQL) with our Python beside it.
FROM python:3.11-slim-bookworm AS build
RUN pip install --no-cache-dir uv==0.13.9
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11
WORKDIR /app
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project
COPY python_sidecar python_sidecar
COPY cli cli
RUN uv sync --frozen --no-dev

FROM postgres:15-bookworm AS runtime
# Debian's package versions move with the base image's tag, which pins them.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends pgbackrest \
    ca-certificates libffi8 libsqlite3-0 libbz2-1.0 liblzma5 libexpat1 libssl3 zlib1g \
 && rm -rf /var/lib/apt/lists/*
# The interpreter the .venv was built with (both images are bookworm; the
# libraries above are what python:3.11-slim links against).
COPY --from=build /usr/local/bin/python3.11 /usr/local/bin/python3.11
COPY --from=build /usr/local/lib/python3.11 /usr/local/lib/python3.11
COPY --from=build /usr/local/lib/libpython3.11.so.1.0 /usr/local/lib/libpython3.11.so.1.0
RUN ldconfig
WORKDIR /app
COPY --from=build /app/.venv /app/.venv
COPY pyproject.toml ./
COPY python_sidecar python_sidecar
COPY cli cli
COPY sql sql
COPY plpgsql plpgsql
COPY pg_cron pg_cron
COPY data data
RUN /app/.venv/bin/python -m compileall -q python_sidecar cli
ENV PATH=/app/.venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 ENV=production
# postgres (uid 999 in this base image): the owner of the cluster's files.
USER 999:999
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, psycopg; psycopg.connect(os.environ['WORKER_DATABASE_URL'], connect_timeout=3).close()"]
ENTRYPOINT []
CMD ["oxp", "worker"]
