"""Settings, declared once: typed, with defaults and help, read from SPENDGATE_* variables.

Secrets are `SecretStr`, so they never print by accident; `redacted()` is what
`spendgate config` shows, every URL's password replaced by ***, as in the logs (`RedactingFilter`).
"""

from __future__ import annotations

import copy
import logging
import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

DEFAULT_DB_FILE = "spendgate.db"


ENV_PREFIX = "SPENDGATE_"


class Settings(BaseModel):
    """Each field is read from SPENDGATE_<NAME> (in any case); a value given as an argument wins.

    A plain pydantic model, not pydantic-settings' BaseSettings: for settings that are all single
    values, reading the environment is the few lines of `_from_environment`, while importing
    pydantic-settings (with asyncio, argparse and dotenv) was a tenth of `spendgate spend`'s
    start-up (bench/cli_startup.py). tests/test_settings.py keeps the fields single values.
    """

    model_config = ConfigDict(extra="ignore", frozen=True, validate_default=True)

    database_url: str = Field(
        f"sqlite:///{DEFAULT_DB_FILE}",
        description="Ledger and configuration database: sqlite:///path (default) or postgresql://...",
    )
    spool_dir: Path | None = Field(
        None,
        description="Folder for the ledger journal (crash safety); default: '<database file>.spool'.",
    )
    anthropic_base_url: str = Field(
        "https://api.anthropic.com", description="Upstream Anthropic API root, without /v1."
    )
    anthropic_api_key: SecretStr | None = Field(None, description="Provider key sent to Anthropic.")
    openai_base_url: str = Field(
        "https://api.openai.com/v1", description="Upstream OpenAI API root, with /v1."
    )
    openai_api_key: SecretStr | None = Field(None, description="Provider key sent to OpenAI.")
    bedrock_region: str | None = Field(
        None,
        description="AWS region of the Bedrock runtime behind /bedrock/; default: the AWS configuration's "
        "(AWS_REGION, AWS_DEFAULT_REGION, the profile's region). Credentials come from the standard AWS "
        "chain (environment, profiles, SSO, container and instance roles).",
    )
    bedrock_base_url: str | None = Field(
        None,
        description="Overrides https://bedrock-runtime.{region}.amazonaws.com (a VPC endpoint, or a test "
        "fake); the inference-profiles listing then goes to the same base.",
    )
    vertex_base_url: str | None = Field(
        None,
        description="Overrides https://{region}-aiplatform.googleapis.com for /vertex_ai/v1/ (a Private "
        "Service Connect endpoint, or a test fake). Credentials: Application Default Credentials "
        "(GOOGLE_APPLICATION_CREDENTIALS, gcloud, the metadata server).",
    )
    master_key: SecretStr | None = Field(
        None, description="Bearer token for the /admin/ API; the admin API is disabled when unset."
    )
    admin_docs_public: bool = Field(
        False,
        description="Serve /admin/openapi.json and /admin/docs without the master key (they describe "
        "the admin API, never its data).",
    )
    header_timeout_s: float = Field(
        10.0, description="A request's headers must arrive within this many seconds, else 408 and close."
    )
    body_timeout_s: float = Field(
        60.0,
        description="A request's body must arrive within this many seconds of its headers, else 408 "
        "and close (slow clients never hold a connection).",
    )
    keep_alive_timeout_s: int = Field(
        5,
        description="An idle keep-alive connection is closed after this many seconds (set it above "
        "your load balancer's idle timeout).",
    )
    max_concurrency: int = Field(
        2000,
        description="Most open connections or requests in flight per process; past it a request is "
        "answered 503 at once.",
    )
    max_body_bytes: int = Field(32 * 1024 * 1024, description="Largest request body accepted (bytes).")
    upstream_connect_timeout_s: float = Field(10.0, description="Seconds to connect to a provider.")
    upstream_read_timeout_s: float = Field(
        600.0, description="Seconds a provider may stay silent (streams send pings well inside this)."
    )
    upstream_max_connections: int = Field(1000, description="Pooled connections per provider host.")
    ledger_batch_size: int = Field(500, description="Most ledger rows written in one transaction.")
    ledger_flush_interval_s: float = Field(0.2, description="Longest a ledger row waits before its batch.")
    ledger_ingest_process: bool | Literal["auto"] = Field(
        "auto",
        description="Under 'spendgate serve', a child process lands the journaled ledger rows in the "
        "database, rather than a thread of the serving process (which shares the event loop's GIL). "
        "'auto': the child process when the serving processes leave a CPU free, else the thread.",
    )
    ledger_stall_unhealthy_s: float = Field(
        60.0,
        description="/healthz answers 503 once the oldest row the ledger writer holds has waited this "
        "long for the database (an outage; rows stay safe in the journal meanwhile).",
    )
    journal_segment_bytes: int = Field(
        16 * 1024 * 1024, description="Journal segment size before it rotates (bytes)."
    )
    key_cache_refresh_s: float = Field(
        5.0,
        description="How often keys are reloaded from the database, so keys created or revoked by "
        "another process take effect.",
    )
    key_negative_cache_s: float = Field(
        30.0,
        description="How long a key the database does not know is refused without looking it up "
        "again (new keys are looked up at once on their first call).",
    )
    routing_policy_file: Path | None = Field(
        None,
        description="TOML routing policy (rules, tiers, allowlists, fallbacks); default: the built-in one.",
    )
    routing_sticky_ttl_s: float = Field(
        3600.0,
        description="How long a session keeps the model routing chose for it after its last call (prompt "
        "caches are per model); shared by the replicas through Redis when SPENDGATE_REDIS_URL is set.",
    )
    use_case_rules_file: Path | None = Field(
        None,
        description="TOML rules that name the use case of calls declaring none, from their headers and "
        "shape (docs/attribution.md); default: the built-in ones; an empty file turns inference off.",
    )
    price_overrides_file: Path | None = Field(
        None, description="TOML file of per-model price overrides (USD per million tokens)."
    )
    log_level: str = Field("info", description="Log level: debug, info, warning, error.")
    redis_url: str | None = Field(
        None,
        description="Redis for budget counters and rate limits shared by replicas (redis://host:port/db).",
    )
    redis_prefix: str = Field("spendgate:", description="Prefix of every Redis key Spendgate writes.")
    counters_dir: Path | None = Field(
        None,
        description="Folder of the budget counters and rate limits that the gateway processes of one "
        "host share without Redis (an LMDB file); 'serve --workers N' uses '<spool dir>/counters'.",
    )
    redis_failure_mode: Literal["closed", "open"] = Field(
        "closed",
        description="Redis unreachable: 'closed' refuses calls that have budgets (503); 'open' enforces "
        "on this replica's local counters until Redis is back.",
    )
    budget_mode: Literal["enforce", "observe"] = Field(
        "enforce", description="'observe' blocks nothing and records what budgets would have blocked."
    )
    budget_refresh_s: float = Field(5.0, description="How often budgets and exemptions are reloaded.")
    budget_reservation_ttl_s: int = Field(
        900, description="A reservation a crashed replica never settled is released after this long."
    )
    budget_default_max_tokens: int = Field(
        16384, description="Output tokens reserved for a call that does not set max_tokens."
    )
    alerts_file: Path | None = Field(
        None,
        description="TOML file for anomaly detection and alert channels (Slack, PagerDuty, webhook, "
        "email) routed per team; alerts are off when unset.",
    )
    alerts_interval_s: float = Field(
        300.0, description="How often the alert loop runs its checks (intraday burn rate, daily check)."
    )
    alerts_retry_attempts: int = Field(5, description="Attempts to deliver one alert to one channel.")
    alerts_retry_base_s: float = Field(
        2.0, description="First retry delay of an alert delivery; it doubles on each further attempt."
    )
    reports_file: Path | None = Field(
        None,
        description="TOML schedule of the finance and governance reports (which, when, into which "
        "folder, to whom by email); scheduled reports are off when unset.",
    )
    reports_interval_s: float = Field(
        300.0, description="How often the gateway checks whether a scheduled report is due."
    )
    metrics_token: SecretStr | None = Field(
        None,
        description="Bearer token Prometheus must send to GET /metrics; unset: /metrics is open "
        "(expose it to the monitoring network only).",
    )
    github_webhook_secret: SecretStr | None = Field(
        None,
        description="Secret of the GitHub webhook (pull_request events) that POSTs merged PRs to "
        "/webhooks/github; the endpoint answers 503 when unset.",
    )
    drain_delay_s: float = Field(
        5.0,
        description="On SIGTERM, how long the gateway keeps serving with /readyz at 503 (so a load "
        "balancer stops sending it calls) before it closes its port.",
    )
    drain_timeout_s: int = Field(
        120,
        description="After the port closes, the longest the gateway waits for calls in flight "
        "(streams included) before it stops; the ledger is flushed after them.",
    )
    gateway_provider_key_ids: str | None = Field(
        None,
        description="Comma-separated provider key ids of the gateway's own upstream keys (e.g. "
        "apikey_01...,key_abc...): `spendgate reconcile` flags usage on any other key as bypassing "
        "the gateway.",
    )

    ui_auth: Literal["link", "header", "oidc"] = Field(
        "link",
        description="How people sign in to the web console under /ui/: 'link' (one-time links from "
        "`spendgate console link`, the embedded default), 'header' (an auth proxy's trusted header) or "
        "'oidc' (the company's identity provider). One-time links work in every mode.",
    )
    ui_user_header: str = Field(
        "X-Forwarded-Email",
        description="With SPENDGATE_UI_AUTH=header: the request header holding the signed-in user's email "
        "(oauth2-proxy: X-Forwarded-Email; Google IAP: X-Goog-Authenticated-User-Email).",
    )
    ui_groups_header: str = Field(
        "X-Forwarded-Groups",
        description="With SPENDGATE_UI_AUTH=header: the header holding the user's groups (comma-separated), "
        "mapped to roles by SPENDGATE_UI_GROUP_ROLES.",
    )
    ui_trusted_proxies: str = Field(
        "127.0.0.1/32",
        description="With SPENDGATE_UI_AUTH=header: comma-separated CIDRs the auth proxy connects from; the "
        "user header from any other address is ignored.",
    )
    ui_oidc_issuer: str | None = Field(
        None, description="OIDC issuer URL (discovery at {issuer}/.well-known/openid-configuration)."
    )
    ui_oidc_client_id: str | None = Field(None, description="OIDC client id registered for Spendgate.")
    ui_oidc_client_secret: SecretStr | None = Field(
        None, description="OIDC client secret (unset: a public client, PKCE only)."
    )
    ui_oidc_scopes: str = Field("openid email profile", description="OIDC scopes requested.")
    ui_oidc_groups_claim: str = Field(
        "groups", description="The ID token / userinfo claim listing the user's groups."
    )
    ui_group_roles: str = Field(
        "",
        description="Identity-provider groups that grant console roles, comma-separated group=role pairs, "
        "e.g. 'finops=finance,vp-eng=approver,sre=admin,platform-leads=lead:platform'.",
    )
    ui_public_url: str | None = Field(
        None,
        description="The console's external base URL (e.g. https://spendgate.acme.example), used in sign-in "
        "links, the OIDC redirect and notifications; default: the URL the request came to "
        "(http://127.0.0.1:8787 for links made by the CLI).",
    )
    ui_session_hours: float = Field(
        12.0, description="A console session expires this many hours after sign-in."
    )

    @model_validator(mode="before")
    @classmethod
    def _from_environment(cls, values: Any) -> Any:
        """The SPENDGATE_* environment variables under the values given, as pydantic-settings read
        them for these fields: a name in any case, its value a string the field's type validates."""
        if not isinstance(values, dict):
            return values
        prefix = ENV_PREFIX.lower()
        environment = {name.lower(): value for name, value in os.environ.items()}
        found = {name: environment[key] for name in cls.model_fields if (key := prefix + name) in environment}
        return {**found, **values}

    def sqlite_path(self) -> Path | None:
        if self.database_url.startswith("sqlite:///"):
            return Path(self.database_url.removeprefix("sqlite:///"))
        return None

    def resolved_spool_dir(self) -> Path:
        if self.spool_dir is not None:
            return self.spool_dir
        db = self.sqlite_path()
        return Path(f"{db}.spool") if db is not None else Path("spendgate-spool")

    def ingest_in_process(self, workers: int = 1) -> bool:
        """Whether `spendgate serve` with `workers` serving processes lands rows in a child process.

        'auto' chooses it when a CPU is left over: the ingester then runs beside the event loop
        instead of taking turns with it on the GIL. Where the serving processes already use every
        CPU it would only add work (it reads each row back from the journal), so the thread stays.
        """
        if self.ledger_ingest_process == "auto":
            return workers < usable_cpus()
        return self.ledger_ingest_process

    def redacted(self) -> dict[str, Any]:
        """Every setting with its value, secrets shown as '***' (or unset)."""
        shown: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                value = "***"
            shown[name] = None if value is None else redact_urls(str(value))
        return shown


def usable_cpus() -> float:
    """CPUs this process may use: its affinity set, capped by a cgroup v2 CPU quota (a container's
    `--cpus`), which the affinity set does not show."""
    cpus = float(len(os.sched_getaffinity(0)))
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return cpus
    if quota != "max" and float(period) > 0:
        cpus = min(cpus, float(quota) / float(period))
    return cpus


def describe_settings() -> list[tuple[str, str, str]]:
    """(environment variable, default, help) for each setting: used by docs and `spendgate config`."""
    rows = []
    for name, field in Settings.model_fields.items():
        default = field.default
        rows.append(
            (f"SPENDGATE_{name.upper()}", "" if default is None else str(default), field.description or "")
        )
    return rows


# scheme://user:password@ anywhere in a text; the user may be empty (redis://:secret@host)
_URL_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*):[^@\s]+@")


def redact_urls(text: str) -> str:
    """postgresql://user:secret@host/db -> postgresql://user:***@host/db, wherever it appears."""
    return _URL_PASSWORD.sub(r"\1:***@", text) if "://" in text else text


class RedactingFilter(logging.Filter):
    """On a log handler: URL passwords in a record's message (and its traceback) become ***."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "://" in message:
            record.msg, record.args = redact_urls(message), None
        if record.exc_info and record.exc_info[1] is not None:
            # Format the traceback now, redacted; the formatter then uses this text as it is.
            record.exc_text = redact_urls(logging.Formatter().formatException(record.exc_info))
        return True


class ExpectedCutFilter(logging.Filter):
    """On uvicorn's error logger: a stream the provider cut is re-raised into the server on purpose
    (so the client sees the cut too), and the proxy has already logged it in one line with the
    call's request id; uvicorn's "Exception in ASGI application" traceback for it says nothing more
    and reads as a crash to the person on call. Every other exception is logged as before."""

    def filter(self, record: logging.LogRecord) -> bool:
        from spendgate.errors import UpstreamCut

        return not (record.exc_info and isinstance(record.exc_info[1], UpstreamCut))


def logging_config(level: str) -> dict[str, Any]:
    """uvicorn's logging setup plus Spendgate's own lines, every handler redacting URL passwords
    (a dict, so each worker process of `serve --workers` applies the same)."""
    from uvicorn.config import LOGGING_CONFIG

    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"redact": {"()": RedactingFilter}, "expected_cut": {"()": ExpectedCutFilter}}
    config["loggers"]["uvicorn.error"]["filters"] = ["expected_cut"]
    config["formatters"]["spendgate"] = {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}
    config["handlers"]["spendgate"] = {
        "class": "logging.StreamHandler",
        "formatter": "spendgate",
        "stream": "ext://sys.stderr",
    }
    for handler in config["handlers"].values():
        handler["filters"] = ["redact"]
    config["root"] = {"handlers": ["spendgate"], "level": level.upper()}
    return config


def resolve_env_refs(value: Any, what: str) -> Any:
    """In a parsed TOML file (`what`: "the alerts file"), `env:NAME` strings become the environment
    variable NAME, so secrets (webhook URLs, SMTP passwords) stay out of the file."""
    if isinstance(value, dict):
        return {k: resolve_env_refs(v, what) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_env_refs(v, what) for v in value]
    if isinstance(value, str) and value.startswith("env:"):
        name = value.removeprefix("env:")
        if name not in os.environ:
            raise ValueError(f"{what} refers to {name}, which is not set")
        return os.environ[name]
    return value
