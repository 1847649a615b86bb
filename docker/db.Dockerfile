# syntax=docker/dockerfile:1
# PostgreSQL 15 as `make run` runs it: pg_cron, pg_partman, pgTAP (with pg_prove, for
# the compose `test` profile), plpgsql_check and pgBackRest, all from the
# PGDG/Debian packages of the base image's apt sources.
FROM postgres:15-bookworm
# Debian's package versions move with the base image's tag, which pins them.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
    postgresql-15-cron postgresql-15-partman postgresql-15-pgtap postgresql-15-plpgsql-check \
    libtap-parser-sourcehandler-pgtap-perl pgbackrest \
 && rm -rf /var/lib/apt/lists/* \
 && install -d -o postgres -g postgres -m 750 /var/lib/pgbackrest \
    /var/lib/pgbackrest/spool /var/lib/pgbackrest/lock /var/lib/pgbackrest/log \
 && install -d -o postgres -g postgres -m 700 /var/lib/postgresql/cold
# The pgBackRest repository's folders and oxp_cold's, the cluster user's: a
# named volume mounted there (compose's `pgbackrest`, `pgcold`) starts as a
# copy of them.
# POSTGRES_DB creates the database on first start; the migrate step does
# the rest (extensions, roles, the login roles' passwords).
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s --retries=5 \
  CMD ["pg_isready", "-U", "postgres", "-d", "oxp", "-h", "127.0.0.1"]
CMD ["postgres", "-c", "shared_preload_libraries=pg_cron", "-c", "cron.database_name=oxp", \
     "-c", "cron.host=/var/run/postgresql", "-c", "timezone=UTC", "-c", "max_connections=300"]
