# The sidecar (API, worker, CLI): one image, three commands.
FROM python:3.11-slim-bookworm
RUN pip install --no-cache-dir uv
WORKDIR /app
COPY pyproject.toml uv.lock ./
COPY python_sidecar python_sidecar
COPY cli cli
COPY sql sql
COPY plpgsql plpgsql
COPY pg_cron pg_cron
COPY data data
RUN uv sync --frozen --no-dev
ENV PATH=/app/.venv/bin:$PATH
