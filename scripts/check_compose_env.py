"""Static checks of docker-compose.yml against .env.example (no Docker
engine needed; run by scripts/check_deploy.sh in `make test`):

- every ${NAME} the compose file reads is documented in .env.example
  (as `NAME=...` or a commented `# NAME=...`), so `.env` can be written
  from it;
- every environment key a service passes to our image is a name in
  .env.example too: the settings ignore unknown names, so a typo there
  would silently drop a setting (the images' own POSTGRES_* excepted);
- no secret (a name with PASSWORD or SECRET, or ending in _KEY) has a
  non-empty default: a default password or key would work in production.

Prints each finding and exits 1 when there is any."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
INTERPOLATION = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
DOCUMENTED = re.compile(r"^#?\s*([A-Z_][A-Z0-9_]*)=", re.MULTILINE)
SECRET = re.compile(r"PASSWORD|SECRET|_KEY$")
# Read by the images' own entrypoints, not by our settings.
IMAGE_NAMES = frozenset({"POSTGRES_DB", "POSTGRES_PASSWORD", "POSTGRES_INITDB_ARGS"})
IMAGE_NAMES |= {"POSTGRES_HOST_AUTH_METHOD", "PGHOST", "PGUSER", "PGDATABASE"}
# Read by docker/pgbouncer-entrypoint.sh (documented in .env.example too).
IMAGE_NAMES |= {"PGBOUNCER_POOL_SIZE"}
# Read by the migrate step (ox_sidecar.role_passwords), not by the settings.
PASSWORD_NAMES = frozenset(
    {
        "AUTHENTICATOR_PASSWORD",
        "ADMIN_AUTHENTICATOR_PASSWORD",
        "SERVICE_PASSWORD",
        "OPERATOR_PASSWORD",
        "AUDITOR_PASSWORD",
        "REPLICATION_PASSWORD",
    }
)


def findings(compose_text: str, example_text: str) -> list[str]:
    documented = set(DOCUMENTED.findall(example_text))
    problems: list[str] = []
    # Comments are not interpolated by compose.
    lines = [line for line in compose_text.splitlines() if not line.lstrip().startswith("#")]
    for match in INTERPOLATION.finditer("\n".join(lines)):
        name, op, default = match.group(1), match.group(2), match.group(3)
        if name not in documented:
            problems.append(f"${{{name}}} is used by docker-compose.yml but not in .env.example")
        if SECRET.search(name) and op in (":-", "-") and default:
            problems.append(f"${{{name}}} is a secret with a default ({default!r}): use :?")
    compose = yaml.safe_load(compose_text)
    for service, spec in (compose.get("services") or {}).items():
        environment = spec.get("environment") or {}
        if isinstance(environment, list):
            environment = dict(item.partition("=")[::2] for item in environment)
        for key in environment:
            if key in IMAGE_NAMES or key in PASSWORD_NAMES:
                continue
            if key not in documented:
                problems.append(f"service {service}: {key} is not a setting in .env.example")
    return sorted(set(problems))


def main() -> int:
    compose = (ROOT / "docker-compose.yml").read_text()
    example = (ROOT / ".env.example").read_text()
    problems = findings(compose, example)
    for p in problems:
        print(f"docker-compose.yml: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
