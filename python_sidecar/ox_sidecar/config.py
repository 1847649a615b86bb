"""One settings object, from the environment or `.env`; DATABASE_URL overrides the local default."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal, Self

from psycopg.conninfo import conninfo_to_dict, make_conninfo
from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parents[2]
LOCAL_DATABASE_URL = "postgresql://postgres@127.0.0.1:54329/oxp"
# The longest vendor timeouts (seconds): a call's claim (connect + 2 x read,
# plus 10 s) must fit crypto.redemption_sending's 3600 s.
VENDOR_CONNECT_TIMEOUT_MAX = 30.0
VENDOR_READ_TIMEOUT_MAX = 600.0


class VendorNotConfigured(RuntimeError):
    pass


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    env: Literal["development", "production"] = "development"
    # The owner's connection: migrations and the CLI.
    database_url: str = LOCAL_DATABASE_URL
    # The API's connection: the rights-less `authenticator` login.
    api_database_url: str | None = None
    # The admin routes' connection: `admin_authenticator`, the only login
    # that can become app_admin.
    admin_api_database_url: str | None = None
    # The worker's connection: the service role.
    worker_database_url: str | None = None
    # What API_DATABASE_URL and ADMIN_API_DATABASE_URL reach: PostgreSQL
    # itself, or PgBouncer in transaction mode (README "Connection pooling"),
    # where a server-side prepared statement would be looked for on another
    # server connection, so the API prepares none. The worker and the CLI
    # never go through it (LISTEN/NOTIFY and session state need their own).
    database_pooler: Literal["none", "pgbouncer"] = "none"
    # A streaming replica for reads that may lag (README "Read replica"): its
    # URL as the owner's (the API logs in there as its own two logins). Unset:
    # every read is from the primary.
    database_replica_url: str | None = None
    # Reads go to the primary while the replica is this far behind, or down.
    replica_max_lag_seconds: float = 10.0
    # How often each API process looks at the replica's lag (cached between).
    replica_check_seconds: float = 1.0
    replica_pool_size: int = 4
    # The worker's heartbeat commit on the primary (crypto.replica_heartbeat):
    # a replica's lag is the age of the last commit it replayed, so this must
    # stay well under REPLICA_MAX_LAG_SECONDS. 0: no heartbeat.
    replica_heartbeat_seconds: float = 2.0
    # `oxp db replica init` (this machine): where and on which port.
    replica_dir: Path = ROOT / ".local" / "replica"
    replica_port: int = 54331
    api_pool_size: int = 16
    admin_api_pool_size: int = 4
    # Each API request's statement_timeout (set in its transaction: a role's
    # own setting does not apply on SET ROLE); past it the answer is 503.
    user_statement_timeout_ms: int = 5000
    admin_statement_timeout_ms: int = 30000

    jwt_issuer: str = "ox-predict"
    jwt_audience: str = "ox-predict-api"
    jwt_access_ttl_seconds: int = 900
    jwt_private_key_file: Path = ROOT / ".local" / "keys" / "jwt-private.pem"
    jwt_private_key: str | None = None
    # During a rotation: the key before, still accepted (and published) until
    # every token it signed has expired.
    jwt_previous_private_key: str | None = None
    # Admin tokens have a key of their own; by default beside the user key file.
    jwt_admin_private_key_file: Path | None = None
    jwt_admin_private_key: str | None = None
    jwt_admin_previous_private_key: str | None = None

    # Google sign-in (OpenID Connect); the issuer is discovered from its
    # /.well-known/openid-configuration, so a local server can stand in.
    google_oidc_issuer: str = "https://accounts.google.com"
    google_client_id: str | None = None
    google_client_secret: str | None = None
    # Where Google sends the browser back: this API's callback, as registered.
    oauth_redirect_uri: str = "http://127.0.0.1:8000/v1/auth/oauth/callback"

    # Where closes come from: yfinance (the real source) or a CSV file (offline).
    eod_provider: Literal["yfinance", "stooq", "csv"] = "yfinance"
    eod_csv_file: Path = ROOT / "data" / "demo_closes.csv"
    # Asked for what the first source could not give (an outage, a rate
    # limit, a missing symbol). Unset: Stooq behind yfinance, none otherwise.
    eod_fallback_provider: Literal["yfinance", "stooq", "csv", "none"] | None = None
    stooq_url: str = "https://stooq.com/q/d/l/"

    # Admins' TOTP secrets are stored encrypted with this key (pgcrypto); the
    # database never stores it, the API and the CLI pass it per call.
    # Required in production; development uses a fixed, public key.
    totp_encryption_key: str | None = None

    # Mail (the worker sends email verification links).
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_from: str = "OX Predict <no-reply@ox-predict.example>"
    smtp_tls: Literal["none", "starttls", "ssl"] = "starttls"
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_timeout_seconds: float = 10.0
    # This API as users reach it, for links in emails.
    public_base_url: str = "http://127.0.0.1:8000"

    # The reward vendor (the worker turns redemptions into vouchers there):
    # JSON over HTTPS, each request signed with HMAC-SHA256 under the shared
    # secret (see vendor.py). Without VENDOR_URL the worker uses the
    # simulated vendor, which development alone may run.
    vendor_url: str | None = None
    vendor_secret: str | None = None
    vendor_connect_timeout_seconds: float = 5.0
    vendor_read_timeout_seconds: float = 20.0
    # The worker wakes on NOTIFY, and at least this often for what comes due
    # without one: a retry's backoff ending, a dead worker's lease expiring.
    worker_poll_seconds: float = 30.0
    # The job kinds this worker takes (JSON list; unset: all). Compose runs
    # the backups in a worker of their own beside the database's files.
    worker_kinds: list[str] | None = None

    # Password hashing is memory-hard (argon2id: 64 MiB each): at most this
    # much memory is spent on it at once; a request waits for its turn up to
    # argon2_wait_seconds, then gets 503.
    argon2_memory_budget_mb: int = 256
    argon2_wait_seconds: float = 10.0
    # Request bodies larger than this are refused (413) before any parsing.
    max_body_bytes: int = 65536

    # Where alerts reach a person: Slack-compatible incoming webhooks,
    # several separated by spaces or commas. Secrets: never logged.
    alert_webhook_url: str | None = None
    # Rewarded ads pay on the ad network's server-side verification callback,
    # signed with keys the network publishes here (AdMob's list by default).
    ad_ssv_keys_url: str = "https://www.gstatic.com/admob/reward/verifier-keys.json"
    ad_ssv_keys_cache_seconds: float = 3600.0
    # A callback with an unknown key fetches the list again, at most this often.
    ad_ssv_refetch_seconds: float = 10.0
    # Our rewarded ad units: a callback for any other (another publisher's,
    # signed with the same network keys) pays nothing. Required in production.
    ad_ssv_ad_units: list[str] = []

    # Who may scrape GET /metrics (the peer address; a request through a
    # trusted proxy never may). Loopback and private networks by default.
    metrics_networks: list[str] = [
        "127.0.0.0/8",
        "::1/128",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
    ]

    # How often each API process adds its answers to the database's
    # per-minute counts (the 5xx-rate alert).
    http_counts_report_seconds: float = 15.0
    # A SQLSTATE the API has not seen (a code added by a migration while it
    # ran) re-reads the error map, at most once per this many seconds.
    error_codes_reload_seconds: float = 30.0

    # Backups (pgBackRest; README "Backups and restore"). Its configuration
    # names the repository: `make run` writes one for .local/backups
    # (scripts/backups.sh); production points at its own, e.g. S3.
    backup_config: Path = ROOT / ".local" / "backups" / "pgbackrest.conf"
    backup_stanza: str = "oxp"
    # Kept: this many full backups, this many differential ones; the WAL
    # from the oldest kept backup on.
    backup_retention_full: int = 2
    backup_retention_diff: int = 6
    # The cluster a restore stops, replaces and starts (on this machine),
    # and the OS user that owns it (pgBackRest and pg_ctl run as that user).
    pg_data_dir: Path = ROOT / ".local" / "pg"
    pg_bin_dir: Path = Path("/usr/lib/postgresql/15/bin")
    pg_os_user: str = "postgres"

    # The log archive (README "Partitions and retention"): price-fetch log
    # months past their retention are written here, then dropped. Cold
    # storage in production (a volume kept apart from the database's).
    archive_dir: Path = ROOT / ".local" / "archive"

    cors_origins: list[str] = []
    # Proxies whose X-Forwarded-For is believed (addresses or CIDRs).
    trusted_proxies: list[str] = []
    # Off only to measure what the limiter costs (bench/ratelimit).
    rate_limits_enabled: bool = True
    log_level: str = "INFO"

    @model_validator(mode="after")
    def _production_needs_real_secrets(self) -> Settings:
        if self.env == "production":
            if not self.jwt_private_key or not self.jwt_admin_private_key:
                raise ValueError("JWT_PRIVATE_KEY and JWT_ADMIN_PRIVATE_KEY are required")
            # The API may have only its own logins' URLs (no owner URL).
            api_urls = self.api_database_url and self.admin_api_database_url
            if self.database_url == LOCAL_DATABASE_URL and not api_urls:
                raise ValueError(
                    "DATABASE_URL (or API_DATABASE_URL and ADMIN_API_DATABASE_URL) must be set"
                )
            if not self.totp_encryption_key or len(self.totp_encryption_key) < 32:
                raise ValueError("TOTP_ENCRYPTION_KEY (32 characters or more) is required")
        return self

    @model_validator(mode="after")
    def _vendor_is_safe(self) -> Settings:
        """Every process that may call the vendor: the worker too (its own
        validator replaces only the API's secrets check)."""
        if (
            self.env == "production"
            and self.vendor_url
            and not self.vendor_url.startswith("https://")
        ):
            raise ValueError("VENDOR_URL must be https:// in production")
        if self.env == "production" and not self.ad_ssv_keys_url.startswith("https://"):
            raise ValueError("AD_SSV_KEYS_URL must be https:// in production")
        if self.vendor_url and (not self.vendor_secret or len(self.vendor_secret) < 32):
            raise ValueError("VENDOR_SECRET (32 characters or more) is required with VENDOR_URL")
        if self.vendor_connect_timeout_seconds <= 0 or self.vendor_read_timeout_seconds <= 0:
            raise ValueError("vendor timeouts are positive numbers of seconds")
        # A vendor call stretches its job's claim over its timeouts
        # (HttpVendor.call_seconds: connect + 2 x read, at most 3600 s in
        # crypto.redemption_sending): past these caps every call would fail.
        if self.vendor_connect_timeout_seconds > VENDOR_CONNECT_TIMEOUT_MAX:
            raise ValueError(
                f"VENDOR_CONNECT_TIMEOUT_SECONDS is at most {VENDOR_CONNECT_TIMEOUT_MAX:g}"
            )
        if self.vendor_read_timeout_seconds > VENDOR_READ_TIMEOUT_MAX:
            raise ValueError(f"VENDOR_READ_TIMEOUT_SECONDS is at most {VENDOR_READ_TIMEOUT_MAX:g}")
        return self

    def require_real_vendor(self) -> None:
        """The API and the worker start in production only with a real reward
        vendor: the simulated one issues vouchers that do not exist."""
        if self.env == "production" and not self.vendor_url:
            raise VendorNotConfigured(
                "VENDOR_URL is required in production: the simulated reward vendor"
                " issues vouchers that do not exist, so it only runs in development"
            )

    @property
    def alert_webhooks(self) -> list[str]:
        return [u for u in (self.alert_webhook_url or "").replace(",", " ").split() if u]

    @property
    def eod_fallback(self) -> str:
        if self.eod_fallback_provider is not None:
            return self.eod_fallback_provider
        return "stooq" if self.eod_provider == "yfinance" else "none"

    @property
    def env_given(self) -> bool:
        """ENV was set, not defaulted: a process with no ENV is told so."""
        return "env" in self.model_fields_set

    @property
    def totp_key(self) -> str:
        """The key TOTP secrets are encrypted with; development's is public."""
        return self.totp_encryption_key or "development-only-totp-key-not-secret"

    @property
    def admin_key_file(self) -> Path:
        return self.jwt_admin_private_key_file or (
            self.jwt_private_key_file.parent / "jwt-admin-private.pem"
        )

    def url_as(self, user: str) -> str:
        """The owner's URL with another login, for the API and worker defaults."""
        parts = conninfo_to_dict(self.database_url)
        parts["user"] = user
        parts.pop("password", None)
        return make_conninfo("", **parts)

    @property
    def api_url(self) -> str:
        return self.api_database_url or self.url_as("authenticator")

    @property
    def admin_api_url(self) -> str:
        return self.admin_api_database_url or self.url_as("admin_authenticator")

    def replica_url_as(self, user: str) -> str | None:
        """DATABASE_REPLICA_URL with another login. The replica's logins are
        the primary's, so is their password: the one in that login's own API
        URL (compose), else none (PGPASSFILE or the environment, as for the
        primary). Never the replica URL's own password (the owner's)."""
        if not self.database_replica_url:
            return None
        parts = conninfo_to_dict(self.database_replica_url)
        parts["user"] = user
        parts.pop("password", None)
        own = {"authenticator": self.api_url, "admin_authenticator": self.admin_api_url}.get(user)
        if own:
            mine = conninfo_to_dict(own)
            if mine.get("user") == user and mine.get("password"):
                parts["password"] = mine["password"]
        return make_conninfo("", **parts)

    @property
    def api_prepare_threshold(self) -> int | None:
        """psycopg's default (prepare a query on its 5th run) directly;
        never through PgBouncer 1.18 in transaction mode (no
        max_prepared_statements before 1.21)."""
        return None if self.database_pooler == "pgbouncer" else 5

    @property
    def worker_url(self) -> str:
        return self.worker_database_url or self.url_as("oxp_service")


class WorkerSettings(Settings):
    """The worker's settings: it signs no token and checks no second factor,
    so it needs no JWT or TOTP key and keeps none, even when the environment
    or `.env` has them."""

    @model_validator(mode="after")
    def _production_needs_real_secrets(self) -> Self:  # replaces the API's checks
        no_url = not self.worker_database_url and self.database_url == LOCAL_DATABASE_URL
        if self.env == "production" and no_url:
            raise ValueError("WORKER_DATABASE_URL must be set in production")
        self.jwt_private_key = self.jwt_previous_private_key = None
        self.jwt_admin_private_key = self.jwt_admin_previous_private_key = None
        self.totp_encryption_key = None
        return self


class OwnerSettings(Settings):
    """The owner's one-shot steps (`oxp db migrate`, `oxp calendar sync`:
    compose's `migrate` service): they sign no token and decrypt no TOTP
    secret, so they need neither key and keep none."""

    @model_validator(mode="after")
    def _production_needs_real_secrets(self) -> Self:  # replaces the API's checks
        if self.env == "production" and self.database_url == LOCAL_DATABASE_URL:
            raise ValueError("DATABASE_URL must be set in production")
        self.jwt_private_key = self.jwt_previous_private_key = None
        self.jwt_admin_private_key = self.jwt_admin_previous_private_key = None
        self.totp_encryption_key = None
        return self


def get_owner_settings() -> OwnerSettings:
    """Read each time (no cache): a one-shot step reads its environment once."""
    return OwnerSettings()


@lru_cache
def get_settings() -> Settings:
    return Settings()


@lru_cache
def get_worker_settings() -> WorkerSettings:
    return WorkerSettings()


def clear_settings() -> None:
    """Read the environment again (tests change it between cases)."""
    get_settings.cache_clear()
    get_worker_settings.cache_clear()
