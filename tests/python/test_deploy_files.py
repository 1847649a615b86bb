"""The static checks of the deployment files (issue 14, items 1-3) find
what they are for: scripts/check_compose_env.py on a made-up compose file,
and the real files pass it. (hadolint, the schemas and promtool run on the
real files in the lint step: scripts/check_deploy.sh.)"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    "check_compose_env", ROOT / "scripts" / "check_compose_env.py"
)
assert _spec and _spec.loader
check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check)

EXAMPLE = "# FOO_URL=https://x\nLOG_LEVEL=INFO\n# API_PASSWORD=<secret>\n"


def test_the_repository_files_pass() -> None:
    compose = (ROOT / "docker-compose.yml").read_text()
    assert check.findings(compose, (ROOT / ".env.example").read_text()) == []


def test_undocumented_names_typos_and_secret_defaults_are_found() -> None:
    compose = """
services:
  api:
    environment:
      LOG_LEVEL: ${LOG_LEVEL:-INFO}
      FOO_URL: ${FOO_URL:?required}
      LOG_LEVLE: debug
      API_DATABASE_URL: postgresql://a:${API_PASSWORD:-changeme}@db/oxp
      OTHER: ${NOT_DOCUMENTED}
# ${IN_A_COMMENT} is not read by compose
"""
    found = check.findings(compose, EXAMPLE)
    assert found == [
        "${API_PASSWORD} is a secret with a default ('changeme'): use :?",
        "${NOT_DOCUMENTED} is used by docker-compose.yml but not in .env.example",
        "service api: API_DATABASE_URL is not a setting in .env.example",
        "service api: LOG_LEVLE is not a setting in .env.example",
        "service api: OTHER is not a setting in .env.example",
    ]
    assert check.findings(compose.replace(":-changeme", ":?set it"), EXAMPLE) == [
        f for f in found if "changeme" not in f
    ]


def test_each_service_gets_only_its_secrets() -> None:
    """The worker signs no token, the API never has the owner's password,
    and only the migrate step (and the database) have POSTGRES_PASSWORD."""
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]

    def names(service: str) -> str:
        return str(services[service].get("environment", {}))

    assert "JWT" not in names("worker") and "TOTP" not in names("worker")
    for service in ("api", "worker"):
        assert "POSTGRES_PASSWORD" not in names(service)
        assert "DATABASE_URL': 'postgresql://postgres" not in names(service)
    assert "SERVICE_PASSWORD" not in str(services["api"])
    assert "AUTHENTICATOR_PASSWORD" not in names("worker")
    owners = [s for s in services if "POSTGRES_PASSWORD" in names(s)]
    assert owners == ["db", "migrate"]
    assert services["api"]["deploy"]["replicas"] == 2
    assert services["migrate"]["depends_on"]["db"]["condition"] == "service_healthy"
    for service in ("api", "worker"):
        cond = services[service]["depends_on"]["migrate"]["condition"]
        assert cond == "service_completed_successfully"
    # The migration signs and decrypts nothing.
    assert "JWT" not in names("migrate") and "TOTP" not in names("migrate")


def test_pooler_replica_and_backups_get_only_what_they_need() -> None:
    """PgBouncer has the API's two logins only; the replica the streaming
    login only; the backup worker neither vendor nor mail nor token secrets;
    the API reaches the primary only through PgBouncer and the replica
    without the owner's password; each long-running service is checked."""
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]

    def env(service: str) -> dict[str, str]:
        return {k: str(v) for k, v in (services[service].get("environment") or {}).items()}

    secrets = re.compile(r"PASSWORD|SECRET|_KEY$")
    assert sorted(k for k in env("pgbouncer") if secrets.search(k)) == [
        "ADMIN_AUTHENTICATOR_PASSWORD",
        "AUTHENTICATOR_PASSWORD",
    ]
    assert sorted(k for k in env("db-replica") if secrets.search(k)) == ["REPLICATION_PASSWORD"]
    backup = env("backup-worker")
    assert not [k for k in backup if secrets.search(k) or k.startswith(("VENDOR", "SMTP", "JWT"))]
    assert "oxp_service:" in backup["WORKER_DATABASE_URL"]
    assert json.loads(backup["WORKER_KINDS"]) == [
        "backup.full",
        "backup.diff",
        "backup.incr",
        "backup.verify",
    ]
    # The two workers split the kinds: every job kind is someone's, once.
    from ox_sidecar.worker import HANDLERS

    kinds = json.loads(env("worker")["WORKER_KINDS"]) + json.loads(backup["WORKER_KINDS"])
    assert sorted(kinds) == sorted(HANDLERS)
    api = env("api")
    assert api["DATABASE_POOLER"] == "pgbouncer"
    assert "@pgbouncer:6432/" in api["API_DATABASE_URL"]
    assert "@pgbouncer:6432/" in api["ADMIN_API_DATABASE_URL"]
    assert api["DATABASE_REPLICA_URL"] == "postgresql://authenticator@db-replica:5432/oxp"
    # The worker, the migrate step and the backups stay direct.
    assert "@db:5432/" in env("worker")["WORKER_DATABASE_URL"]
    assert "@db:5432/" in env("migrate")["DATABASE_URL"]
    for service in ("db", "db-replica", "pgbouncer", "worker", "backup-worker"):
        assert "test" in services[service]["healthcheck"], service
    # A replica still copying or broken (an old volume whose pg_hba lacks its
    # line) must not keep the API from starting: its reads fall back.
    assert services["api"]["depends_on"]["db-replica"] == {
        "condition": "service_started",
        "required": False,
    }
    for service, needs in {
        "api": {"pgbouncer"},
        "db-replica": {"db"},
        "backup-init": {"db"},
    }.items():
        for need in needs:
            assert services[service]["depends_on"][need]["condition"] == "service_healthy"
    assert services["backup-worker"]["depends_on"]["backup-init"] == {
        "condition": "service_completed_successfully"
    }
    # Archiving reaches the repository the backup worker reads.
    assert "archive_command=pgbackrest --stanza=oxp archive-push %p" in services["db"]["command"]
    for service in ("db", "backup-init", "backup-worker"):
        assert "pgbackrest:/var/lib/pgbackrest" in services[service]["volumes"], service
    assert backup["BACKUP_CONFIG"] == "/etc/pgbackrest/pgbackrest.conf"


def test_the_replica_logins_take_their_password_from_the_api_urls() -> None:
    """Compose's DATABASE_REPLICA_URL names no password: each API login
    uses its own (the replica's logins are the primary's), never another's."""
    from psycopg.conninfo import conninfo_to_dict

    from ox_sidecar.config import Settings

    settings = Settings(
        api_database_url="postgresql://authenticator:user-pw@pgbouncer:6432/oxp",
        admin_api_database_url="postgresql://admin_authenticator:admin-pw@pgbouncer:6432/oxp",
        database_replica_url="postgresql://postgres:owner-pw@db-replica:5432/oxp",
    )
    user = conninfo_to_dict(settings.replica_url_as("authenticator"))
    admin = conninfo_to_dict(settings.replica_url_as("admin_authenticator"))
    assert (user["user"], user["password"], user["host"]) == (
        "authenticator",
        "user-pw",
        "db-replica",
    )
    assert (admin["user"], admin["password"]) == ("admin_authenticator", "admin-pw")
    # Without the API's own URLs: no password at all (never the owner's).
    bare = Settings(database_replica_url="postgresql://postgres:owner-pw@db-replica:5432/oxp")
    assert "password" not in conninfo_to_dict(bare.replica_url_as("authenticator"))


def _stages(dockerfile: str) -> list[str]:
    """The Dockerfile's stages, each from its FROM line on."""
    text = (ROOT / "docker" / dockerfile).read_text()
    return ["FROM" + part for part in text.split("\nFROM")[1:]]


def test_the_sidecar_image_is_multi_stage_locked_and_unprivileged() -> None:
    build, runtime = _stages("app.Dockerfile")
    assert "uv sync --frozen --no-dev" in build
    # The runtime stage installs nothing and copies no tests or build tool.
    assert "pip install" not in runtime and "apt-get" not in runtime and "uv " not in runtime
    assert "COPY tests" not in runtime and "COPY --from=build /app/.venv /app/.venv" in runtime
    assert "\nUSER 10001:10001" in runtime and "\nHEALTHCHECK" in runtime
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".env", ".local", ".venv", "tests"} <= set(ignored), "secrets never enter the context"


def test_the_database_image_has_what_make_run_and_the_tests_use() -> None:
    (db,) = _stages("db.Dockerfile")
    assert db.startswith("FROM postgres:15-")
    for package in (
        "postgresql-15-cron",
        "postgresql-15-partman",
        "postgresql-15-pgtap",
        "postgresql-15-plpgsql-check",
        "libtap-parser-sourcehandler-pgtap-perl",
        "pgbackrest",
    ):
        assert package in db
    assert "shared_preload_libraries=pg_cron" in db and "\nHEALTHCHECK" in db
