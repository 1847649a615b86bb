# syntax=docker/dockerfile:1
# The sidecar (API, worker, CLI): one image, three commands.
# Stage 1 resolves the locked environment with uv; the runtime stage gets
# only that .venv and the code the service reads (no uv, no compiler, no
# tests, no dev dependencies), and runs as an unprivileged user.
FROM python:3.11-slim-bookworm AS build
# uv from PyPI at the version the lock was written with.
RUN pip install --no-cache-dir uv==0.13.9
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11
WORKDIR /app
# Dependencies first, in their own layer: code changes do not reinstall them.
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project
COPY python_sidecar python_sidecar
COPY cli cli
# Editable (uv's default): the package finds sql/, plpgsql/ and data/ beside it.
RUN uv sync --frozen --no-dev

FROM python:3.11-slim-bookworm AS runtime
# The worker's log archive (ARCHIVE_DIR) is its one writable folder: a
# volume mounted there starts with this owner.
RUN groupadd --system --gid 10001 oxp \
 && useradd --system --uid 10001 --gid oxp --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin oxp \
 && mkdir -p /var/lib/oxp/archive && chown oxp:oxp /var/lib/oxp/archive
WORKDIR /app
# Owned by root and read-only to the service: it writes only to /tmp
# (Prometheus' per-process files) and the worker to its archive.
COPY --from=build /app/.venv /app/.venv
COPY pyproject.toml ./
COPY python_sidecar python_sidecar
COPY cli cli
COPY sql sql
COPY plpgsql plpgsql
COPY pg_cron pg_cron
COPY data data
# Our own code's bytecode too (the dependencies' was compiled by uv): the
# service cannot write it at run time.
RUN /app/.venv/bin/python -m compileall -q python_sidecar cli
ENV PATH=/app/.venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 ENV=production
USER 10001:10001
EXPOSE 8000
# The API's liveness; the worker and the migrate step override it in compose.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2)"]
CMD ["oxp", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
