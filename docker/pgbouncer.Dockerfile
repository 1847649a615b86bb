# syntax=docker/dockerfile:1
# PgBouncer (Debian's) in transaction mode for the API's two logins only
# (README "Connection pooling"); its ini and userlist are written at start
# from the environment (docker/pgbouncer-entrypoint.sh).
FROM debian:bookworm-slim
# Debian's package versions move with the base image's tag, which pins them.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends pgbouncer \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10002 pgbouncer-oxp \
 && useradd --system --uid 10002 --gid pgbouncer-oxp --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin pgbouncer-oxp
COPY --chmod=755 docker/pgbouncer-entrypoint.sh /usr/local/bin/pgbouncer-entrypoint.sh
USER 10002:10002
EXPOSE 6432
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=5 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/6432"]
ENTRYPOINT ["/usr/local/bin/pgbouncer-entrypoint.sh"]
